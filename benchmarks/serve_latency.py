"""Serving latency: LeadScoringPredictor vs a seed-style predictor vs the server's floor.

Starts the real Vertex AI ``CprModelServer`` on 127.0.0.1 three times in one run (same handler,
same uvicorn settings), each with a different predictor, and measures from a keep-alive HTTP client:

- single-instance latency (p50, p99) over ``--single`` sequential requests;
- latency of a 1,000-instance request (median of ``--batch-repeats``) and its rows/s.

Usage: ``.venv/bin/python benchmarks/serve_latency.py [--rows 50000] [--single 2000]``
"""

from __future__ import annotations

import argparse
import json
import pickle
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import xgboost as xgb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from training.features import detect_features, target_array  # noqa: E402
from training.preprocess import build_column_transformer, prepare_frame  # noqa: E402
from training.serve import start_server_process  # noqa: E402
from training.sources import read_table  # noqa: E402
from training.synth import EXAMPLE_LEAD, TARGET, generate_leads, write_table  # noqa: E402
from training.train import TrainConfig, XGBParams, train  # noqa: E402


def train_seed_style(data: Path, out: Path) -> None:
    """The seed's artifacts: a pickled ColumnTransformer and a pickled XGBRegressor."""
    frame = read_table(data)
    spec = detect_features(frame, TARGET)
    params = XGBParams()
    preprocessor = build_column_transformer(spec)
    matrix = preprocessor.fit_transform(prepare_frame(frame, spec))
    model = xgb.XGBRegressor(
        n_estimators=params.n_estimators, max_depth=params.max_depth, learning_rate=params.learning_rate,
        subsample=params.subsample, colsample_bytree=params.colsample_bytree, random_state=params.seed,
        objective=params.objective,
    )
    model.fit(matrix, target_array(frame[TARGET]))
    out.mkdir(parents=True, exist_ok=True)
    (out / "preprocessor.pkl").write_bytes(pickle.dumps(preprocessor))
    (out / "model.pkl").write_bytes(pickle.dumps(model))


def measure(url: str, leads: list[dict], single: int, batch_repeats: int) -> dict[str, float]:
    """Latencies in milliseconds from one keep-alive client."""
    with httpx.Client(base_url=url, timeout=60) as client:
        body_one = json.dumps({"instances": [EXAMPLE_LEAD]})
        body_batch = json.dumps({"instances": leads[:1000]})
        headers = {"Content-Type": "application/json"}
        for _ in range(50):  # warm-up
            client.post("/predict", content=body_one, headers=headers).raise_for_status()
        singles = []
        for _ in range(single):
            started = time.perf_counter()
            client.post("/predict", content=body_one, headers=headers).raise_for_status()
            singles.append(time.perf_counter() - started)
        batches = []
        for _ in range(batch_repeats):
            started = time.perf_counter()
            response = client.post("/predict", content=body_batch, headers=headers)
            response.raise_for_status()
            batches.append(time.perf_counter() - started)
            assert len(response.json()["predictions"]) == 1000
    batch_median = statistics.median(batches)
    return {
        "p50_ms": float(np.percentile(singles, 50) * 1000),
        "p99_ms": float(np.percentile(singles, 99) * 1000),
        "batch_ms": batch_median * 1000,
        "batch_rows_per_s": 1000 / batch_median,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=50_000, help="training rows")
    parser.add_argument("--single", type=int, default=2_000, help="sequential single-instance requests")
    parser.add_argument("--batch-repeats", type=int, default=30, help="1,000-instance requests")
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = write_table(generate_leads(args.rows, seed=42), work / "leads.parquet")
        train(TrainConfig(data=str(data), out=work / "leadscore"))
        train_seed_style(data, work / "seed")
        leads = generate_leads(1000, seed=7).drop_columns(["lead_id", TARGET]).to_pylist()
        bench_env = {"PYTHONPATH": f"{ROOT / 'benchmarks'}:{ROOT}"}
        variants = {
            "leadscore": (work / "leadscore", {}),
            "seed-style": (work / "seed", {"PREDICTOR_MODULE": "seed_predictors", "PREDICTOR_CLASS": "SeedStylePredictor"}),
            "floor (no-op)": (work / "seed", {"PREDICTOR_MODULE": "seed_predictors", "PREDICTOR_CLASS": "NoopPredictor"}),
        }
        results = {}
        for name, (artifacts, env) in variants.items():
            server = start_server_process(artifacts, extra_env={**bench_env, **env})
            try:
                results[name] = measure(server.url, leads, args.single, args.batch_repeats)
            finally:
                server.stop()

    ours, seed, floor = results["leadscore"], results["seed-style"], results["floor (no-op)"]
    ratios = {
        "p50 vs floor (target ≤ 1.5×)": ours["p50_ms"] / floor["p50_ms"],
        "p50 speed-up vs seed-style (target ≥ 4×)": seed["p50_ms"] / ours["p50_ms"],
        "1,000-instance rows/s vs seed-style (target ≥ 3×)": ours["batch_rows_per_s"] / seed["batch_rows_per_s"],
    }
    if args.json:
        print(json.dumps({"results": results, "ratios": ratios}, indent=2))
        return
    print(f"| predictor | single p50 ms | single p99 ms | 1,000-instance ms | rows/s |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, r in results.items():
        print(f"| {name} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['batch_ms']:.1f} | {r['batch_rows_per_s']:,.0f} |")
    print()
    for name, value in ratios.items():
        print(f"- {name}: {value:.2f}×")


if __name__ == "__main__":
    main()

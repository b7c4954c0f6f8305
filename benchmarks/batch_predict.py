"""Batch prediction throughput: ``leadscore batch-predict`` vs a seed-style batch job, same run, same data.

Seed style: ``pandas.read_parquet``, the pickled scikit-learn ``ColumnTransformer``, a pickled
``XGBRegressor.predict``, and the output written with pandas (JSONL rows built per record, or
``DataFrame.to_parquet``). leadscore: ``training.batch.batch_predict`` (DuckDB chunks, numpy
transform, ``inplace_predict``, JSONL rendered by DuckDB).

Each variant runs in a fresh interpreter so its peak RSS is its own; the time is the scoring
call end to end (model load, read, score, write), and the process wall time is reported too.

Usage: ``.venv/bin/python benchmarks/batch_predict.py [--rows 1000000] [--chunk-rows 100000]``
"""

from __future__ import annotations

import argparse
import json
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def run_leadscore(model: Path, data: Path, output: Path, chunk_rows: int) -> dict:
    from training.batch import batch_predict

    result = batch_predict(str(model), str(data), output, chunk_rows=chunk_rows)
    return {"seconds": result.seconds, "rows": result.rows, "errors": result.errors}


def run_seed_style(model: Path, data: Path, output: Path) -> dict:
    import pandas as pd

    started = time.perf_counter()
    preprocessor = pickle.loads((model / "preprocessor.pkl").read_bytes())
    regressor = pickle.loads((model / "model.pkl").read_bytes())
    frame = pd.read_parquet(data)
    predictions = regressor.predict(preprocessor.transform(frame))
    if output.suffix == ".jsonl":
        with open(output, "w") as handle:
            for record, prediction in zip(frame.to_dict(orient="records"), predictions.tolist()):
                clean = {k: (None if isinstance(v, float) and v != v else v) for k, v in record.items()}
                handle.write(json.dumps({"instance": clean, "prediction": prediction}) + "\n")
    else:
        frame.assign(prediction=predictions).to_parquet(output)
    return {"seconds": time.perf_counter() - started, "rows": len(frame), "errors": 0}


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM; unlike ru_maxrss it is not inherited from the parent across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def child(args: argparse.Namespace) -> None:
    """One measured run in this (fresh) process; prints its result as JSON."""
    runner = run_leadscore if args.child == "leadscore" else run_seed_style
    extra = (args.chunk_rows,) if args.child == "leadscore" else ()
    result = runner(Path(args.model), Path(args.data), Path(args.output), *extra)
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result))


def measure(variant: str, model: Path, data: Path, output: Path, chunk_rows: int) -> dict:
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, __file__, "--child", variant, "--model", str(model), "--data", str(data),
         "--output", str(output), "--chunk-rows", str(chunk_rows)],
        capture_output=True, text=True, check=True,
    )
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    result["process_seconds"] = time.perf_counter() - started
    return result


def output_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    if path.suffix == ".parquet":
        return pq.read_metadata(path).num_rows
    with open(path, "rb") as handle:
        return sum(1 for _ in handle)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--train-rows", type=int, default=50_000)
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    parser.add_argument("--child", choices=["leadscore", "seed"])
    parser.add_argument("--model")
    parser.add_argument("--data")
    parser.add_argument("--output")
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    from serve_latency import train_seed_style  # the lead's seed-style trainer (same directory)
    from training.synth import TARGET, generate_leads, write_table
    from training.train import TrainConfig, train

    with tempfile.TemporaryDirectory(prefix="leadscore-bench-") as tmp:
        work = Path(tmp)
        train_data = write_table(generate_leads(args.train_rows, seed=42), work / "train.parquet")
        train(TrainConfig(data=str(train_data), out=work / "model"))
        train_seed_style(train_data, work / "seed")
        table = generate_leads(args.rows, seed=2024).drop_columns([TARGET])
        data = write_table(table, work / "leads.parquet")
        print(f"{args.rows:,} rows ({data.stat().st_size / 1e6:.1f} MB Parquet), chunks of {args.chunk_rows:,}")

        rows = []
        for fmt in ("jsonl", "parquet"):
            results = {}
            for variant, model in (("seed", work / "seed"), ("leadscore", work / "model")):
                output = work / f"{variant}.{fmt}"
                results[variant] = measure(variant, model, data, output, args.chunk_rows)
                assert output_rows(output) == args.rows, f"{variant} wrote {output_rows(output)} rows"
                output.unlink()
            for variant in ("seed", "leadscore"):
                r = results[variant]
                rows.append((variant, fmt, r["seconds"], args.rows / r["seconds"], r["process_seconds"],
                             r["peak_rss_mb"], results["seed"]["seconds"] / r["seconds"]))

        print("| variant | output | scoring s | rows/s | process s | peak RSS MB | speed-up vs seed |\n"
              "|---|---|---:|---:|---:|---:|---:|")
        for variant, fmt, seconds, rate, process, rss, ratio in rows:
            print(f"| {variant} | {fmt} | {seconds:.2f} | {rate:,.0f} | {process:.2f} | {rss:,.0f} | {ratio:.1f}x |")


if __name__ == "__main__":
    main()

"""Training at scale: `leadscore train` against the seed-style approach, in the same run.

For each size, synthetic leads are written once as Parquet (the "warehouse table", not timed).
Then two child processes each go from that table to a trained, evaluated model on disk, and
their wall time and peak RSS (``os.wait4``'s rusage of exactly that child) are measured:

- **leadscore**: ``leadscore train --data leads.parquet`` (DuckDB → Arrow, validation, exact
  fit, dense chunks into a QuantileDMatrix, evaluation with bootstrap interval, profile,
  fingerprint, run tracking, checksummed artifacts).
- **seed-style**: what the seed did: pandas reads the table, writes it to CSV and reads the CSV
  back; a ``ColumnTransformer`` per split with the one-hot block densified (``.toarray()``) and
  ``np.hstack``-ed to the numeric block; ``XGBRegressor.fit``; RMSE; ``pickle.dump`` of the
  preprocessor and the model. (Pickle only here, to measure the approach leadscore replaces.)

Both use the seed's hyperparameters, the same 80/20 split (``random_state=42``) and all cores.

Usage::

    python benchmarks/train_scale.py                      # 1M and 10M rows (10M needs ~9 GB free)
    python benchmarks/train_scale.py --rows 1000000
    python benchmarks/train_scale.py --json results.json
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NUMERIC = ["company_size", "pages_visited", "time_on_site", "prior_contacts"]
CATEGORICAL = ["industry", "product_interest", "campaign_source"]
TARGET = "conversion_probability"


def seed_style(data: Path, out: Path) -> dict[str, float]:
    """The seed's training, from the warehouse table to pickled artifacts (runs in a child process)."""
    import numpy as np
    import pandas as pd
    import xgboost as xgb
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from training.train import XGBParams

    out.mkdir(parents=True, exist_ok=True)
    csv = out / "leads.csv"
    pd.read_parquet(data).to_csv(csv, index=False)  # the seed exported query results to CSV...
    frame = pd.read_csv(csv)  # ...and read them back
    train, test = train_test_split(frame, test_size=0.2, random_state=42)
    numeric = ColumnTransformer([("num", Pipeline([("impute", SimpleImputer(strategy="median")),
                                                   ("scale", StandardScaler())]), NUMERIC)])
    categorical = ColumnTransformer([("cat", Pipeline([
        ("impute", SimpleImputer(strategy="constant", fill_value="missing")),
        ("onehot", OneHotEncoder(handle_unknown="ignore")),
    ]), CATEGORICAL)])
    x_train = np.hstack([numeric.fit_transform(train), categorical.fit_transform(train).toarray()])
    x_test = np.hstack([numeric.transform(test), categorical.transform(test).toarray()])
    params = XGBParams()
    model = xgb.XGBRegressor(n_estimators=params.n_estimators, max_depth=params.max_depth,
                             learning_rate=params.learning_rate, subsample=params.subsample,
                             colsample_bytree=params.colsample_bytree, random_state=params.seed,
                             objective=params.objective, tree_method=params.tree_method)
    model.fit(x_train, train[TARGET].to_numpy())
    predictions = model.predict(x_test)
    truth = test[TARGET].to_numpy()
    with open(out / "preprocessor.pkl", "wb") as handle:
        pickle.dump((numeric, categorical), handle)
    with open(out / "model.pkl", "wb") as handle:
        pickle.dump(model, handle)
    return {"rmse": float(np.sqrt(mean_squared_error(truth, predictions))),
            "mae": float(mean_absolute_error(truth, predictions)), "r2": float(r2_score(truth, predictions))}


def measure(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Runs a child process; returns its wall seconds, its peak RSS in MB and its standard output."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        output.seek(0)
        text = output.read().decode()
    if process.returncode:
        raise RuntimeError(f"{' '.join(command)} failed with exit code {process.returncode}")
    return seconds, usage.ru_maxrss / 1024, text  # ru_maxrss is in KB on Linux


def run_size(rows: int, workdir: Path) -> dict[str, object]:
    """Generates ``rows`` leads and measures both approaches on them."""
    data = workdir / f"leads-{rows}.parquet"
    if not data.exists():
        subprocess.run([sys.executable, "-m", "training", "data", "synth", "--rows", str(rows), "--out", str(data)],
                       check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {**os.environ, "LEADSCORE_HOME": str(workdir / "state")}
    ours_seconds, ours_rss, ours_out = measure(
        [sys.executable, "-m", "training", "train", "--data", str(data), "--out", str(workdir / f"model-{rows}"),
         "--json"], env)
    ours = json.loads(ours_out[ours_out.index("{"):])["metrics"]
    base_seconds, base_rss, base_out = measure(
        [sys.executable, __file__, "--seed-style", str(data), str(workdir / f"seed-{rows}")], env)
    base = json.loads(base_out)
    return {
        "rows": rows,
        "leadscore": {"seconds": ours_seconds, "peak_rss_mb": ours_rss, "rmse": ours["rmse"]},
        "seed_style": {"seconds": base_seconds, "peak_rss_mb": base_rss, "rmse": base["rmse"]},
        "speedup": base_seconds / ours_seconds,
        "memory_ratio": ours_rss / base_rss,
        "rmse_change": ours["rmse"] / base["rmse"] - 1,
    }


def report(results: list[dict]) -> str:
    """The results as a Markdown table."""
    lines = [
        "| rows | leadscore: time | peak RSS | test RMSE | seed-style: time | peak RSS | test RMSE "
        "| speed-up | memory ratio | RMSE change |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        ours, base = r["leadscore"], r["seed_style"]
        lines.append(
            f"| {r['rows']:,} | {ours['seconds']:.1f} s | {ours['peak_rss_mb']:,.0f} MB | {ours['rmse']:.5f} "
            f"| {base['seconds']:.1f} s | {base['peak_rss_mb']:,.0f} MB | {base['rmse']:.5f} "
            f"| {r['speedup']:.2f}× | {r['memory_ratio']:.2f}× | {r['rmse_change']:+.2%} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--workdir", type=Path, help="Where data and models go (default: a temporary directory).")
    parser.add_argument("--json", type=Path, help="Also write the results as JSON here.")
    parser.add_argument("--seed-style", nargs=2, metavar=("DATA", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seed_style:
        print(json.dumps(seed_style(Path(args.seed_style[0]), Path(args.seed_style[1]))))
        return
    with tempfile.TemporaryDirectory(prefix="train-scale-") as scratch:
        workdir = args.workdir or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        results = []
        for rows in args.rows:
            results.append(run_size(rows, workdir))
            print(report(results[-1:]).splitlines()[-1], flush=True)
    print(f"\n{os.cpu_count()} cores\n\n{report(results)}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

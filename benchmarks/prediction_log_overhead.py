"""What prediction logging costs a request: LeadScoringPredictor with logging off, with the
asynchronous prediction log (predictor/prediction_log.py), and with a seed-style synchronous log.

The seed-style log does what a straightforward implementation does on the request path:
serialise the request and response and append a line to a file (open, write, close) for each
sampled request. All three run the same predictor in-process (preprocess → predict → postprocess),
in one run, so the differences are the logging alone. Sampling is 80 % in both logged variants.

Usage: ``.venv/bin/python benchmarks/prediction_log_overhead.py [--rows 20000] [--requests 3000]``
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from predictor.prediction_log import DIR_ENV, RATE_ENV  # noqa: E402
from predictor.predictor import LeadScoringPredictor  # noqa: E402
from training.synth import generate_leads, write_table  # noqa: E402
from training.train import TrainConfig, train  # noqa: E402

RATE = 0.8


class SeedStyleLoggingPredictor(LeadScoringPredictor):
    """Logs synchronously in the request: json.dumps and a file append per sampled request."""

    def load(self, artifacts_uri: str, **kwargs: Any) -> None:
        super().load(artifacts_uri, **kwargs)
        self.seed_log_ = Path(os.environ["SEED_LOG"])

    def postprocess(self, prediction_results):  # noqa: ANN001, ANN201
        response = super().postprocess(prediction_results)
        if random.random() < RATE:
            with open(self.seed_log_, "a") as handle:
                handle.write(json.dumps({"request": prediction_results.body, "response": response}) + "\n")
        return response


def per_request_us(predictor: LeadScoringPredictor, bodies: list[dict]) -> list[float]:
    """Microseconds per request, one measurement per request."""
    times = []
    for body in bodies:
        start = time.perf_counter()
        predictor.postprocess(predictor.predict(predictor.preprocess(body)))
        times.append((time.perf_counter() - start) * 1e6)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000, help="training rows")
    parser.add_argument("--requests", type=int, default=3_000, help="requests per variant and size")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="leadscore-bench-log-"))
    data = write_table(generate_leads(args.rows, seed=1), work / "leads.parquet")
    model = train(TrainConfig(data=str(data), out=work / "model")).out
    leads = generate_leads(1_000, seed=2).drop_columns(["conversion_probability"]).to_pylist()
    sizes = {"1 instance": [{"instances": [leads[i % 1000]]} for i in range(args.requests)],
             "100 instances": [{"instances": leads[(i % 10) * 100:(i % 10) * 100 + 100]}
                               for i in range(args.requests // 10)]}

    os.environ["SEED_LOG"] = str(work / "seed.jsonl")
    variants: dict[str, LeadScoringPredictor] = {}
    for name, cls, env in (
        ("no logging", LeadScoringPredictor, {}),
        ("seed-style sync log (80 %)", SeedStyleLoggingPredictor, {}),
        ("prediction_log (80 %)", LeadScoringPredictor, {DIR_ENV: str(work / "log"), RATE_ENV: str(RATE)}),
    ):
        for key in (DIR_ENV, RATE_ENV):
            os.environ.pop(key, None)
        os.environ.update(env)
        predictor = cls()
        predictor.load(str(model))
        variants[name] = predictor

    results: dict[str, dict[str, float]] = {}
    tails: dict[str, dict[str, float]] = {}
    for size, bodies in sizes.items():
        for name, predictor in variants.items():
            per_request_us(predictor, bodies[:200])  # warm-up
            time.sleep(1.0)  # the writer thread has written everything queued: it is measured only in its own run
            times = per_request_us(predictor, bodies)
            time.sleep(1.0)
            results.setdefault(size, {})[name] = statistics.median(times)
            tails.setdefault(size, {})[name] = statistics.quantiles(times, n=100)[98]
    logger = variants["prediction_log (80 %)"].prediction_log_
    logger.close()
    floor = {size: r["no logging"] for size, r in results.items()}
    print(f"µs per request, in-process, {args.requests} requests (1 instance) / {args.requests // 10} "
          f"(100 instances); overhead = median - median without logging")
    for size, row in results.items():
        print(f"\n{size}:")
        for name, median in row.items():
            print(f"  {name:28s} median {median:8.1f} µs (overhead {median - floor[size]:7.1f})   "
                  f"p99 {tails[size][name]:8.1f} µs")
        seed = row["seed-style sync log (80 %)"] - floor[size]
        ours = row["prediction_log (80 %)"] - floor[size]
        if ours > 0:
            print(f"  overhead ratio seed-style / prediction_log: {seed / ours:.1f}x")
    print(f"\nprediction_log: {logger.logged} records written, {logger.dropped} dropped (queue full)")


if __name__ == "__main__":
    main()

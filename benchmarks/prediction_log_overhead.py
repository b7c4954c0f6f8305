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


def run_variant(cls: type[LeadScoringPredictor], env: dict[str, str], model: Path,
                bodies: list[dict]) -> dict[str, float]:
    """Median and p99 request time (µs), and process CPU per request (µs) including the log writer's
    background work (the log is closed, so everything queued is written, before the clock stops)."""
    for key in (DIR_ENV, RATE_ENV):
        os.environ.pop(key, None)
    os.environ.update(env)
    predictor = cls()
    predictor.load(str(model))
    per_request_us(predictor, bodies[:200])  # warm-up
    time.sleep(1.0)  # the warm-up's log records are written before measuring
    cpu = time.process_time()
    times = per_request_us(predictor, bodies)
    if predictor.prediction_log_ is not None:
        predictor.prediction_log_.close()
    cpu = time.process_time() - cpu
    return {"median": statistics.median(times), "p99": statistics.quantiles(times, n=100)[98],
            "cpu": cpu / len(bodies) * 1e6}


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
    variants = (
        ("no logging", LeadScoringPredictor, {}),
        ("seed-style sync log (80 %)", SeedStyleLoggingPredictor, {}),
        ("prediction_log (80 %)", LeadScoringPredictor, {DIR_ENV: str(work / "log"), RATE_ENV: str(RATE)}),
    )
    print(f"in-process requests: {args.requests} of 1 instance, {args.requests // 10} of 100 instances; "
          "overhead = against no logging; CPU = process CPU per request, background writing included")
    for size, bodies in sizes.items():
        results = {name: run_variant(cls, env, model, bodies) for name, cls, env in variants}
        floor = results["no logging"]
        print(f"\n{size}:")
        for name, r in results.items():
            print(f"  {name:28s} median {r['median']:8.1f} µs (overhead {r['median'] - floor['median']:7.1f})   "
                  f"p99 {r['p99']:8.1f} µs   CPU {r['cpu']:8.1f} µs (overhead {r['cpu'] - floor['cpu']:7.1f})")
    logged = sum(1 for path in (work / "log").glob("predictions-*") for _ in path.open())
    print(f"\nprediction_log wrote {logged} records (80 % of {args.requests + args.requests // 10 + 400} requests "
          "including warm-ups)")


if __name__ == "__main__":
    main()

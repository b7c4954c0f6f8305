"""Load on the local CPR server: 8 concurrent clients x 2,000 requests, errors, throughput and memory over time.

The real ``CprModelServer`` under uvicorn on 127.0.0.1, once with leadscore's handler and
predictor (``LeadScoringHandler`` + ``LeadScoringPredictor``), once seed-style (the SDK's default
``PredictionHandler`` + the pickled ``ColumnTransformer``/``XGBRegressor`` predictor), same run,
same requests. Each client sends 1-10 leads per request from a pool of synthetic leads; every
tenth request asks for exact explanations (leadscore only; the seed has none). The server's RSS
is sampled every 0.2 s: its value after a warm-up round, its peak, and at the end.

Usage: ``.venv/bin/python benchmarks/serve_load.py [--clients 8] [--requests 2000]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from serve_latency import train_seed_style  # noqa: E402  (the lead's seed-style trainer, same directory)
from training.serve import start_server_process  # noqa: E402
from training.synth import TARGET, generate_leads, write_table  # noqa: E402
from training.train import TrainConfig, train  # noqa: E402


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def bodies(leads: list[dict], explain: bool, count: int = 200) -> list[str]:
    """Request bodies: 1-10 leads each; every tenth with parameters.explain when ``explain``."""
    out = []
    for i in range(count):
        size = 1 + i % 10
        body = {"instances": leads[(i * 7) % 900:(i * 7) % 900 + size]}
        if explain and i % 10 == 0:
            body["parameters"] = {"explain": True}
        out.append(json.dumps(body))
    return out


def load(url: str, payloads: list[str], clients: int, per_client: int) -> dict:
    """``clients`` threads, each with its own keep-alive connection, ``per_client`` requests each."""
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()

    def client(worker: int) -> None:
        mine, bad = [], []
        with httpx.Client(base_url=url, headers={"Content-Type": "application/json"}, timeout=60) as http:
            for i in range(per_client):
                body = payloads[(worker * 31 + i) % len(payloads)]
                started = time.perf_counter()
                try:
                    response = http.post("/predict", content=body)
                    ok = response.status_code == 200 and len(response.json()["predictions"]) == body.count(
                        '"company_size"')
                    if not ok:
                        bad.append(f"{response.status_code} {response.text[:120]}")
                except httpx.HTTPError as exc:
                    bad.append(repr(exc))
                mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)
            failures.extend(bad)

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(w,)) for w in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies), "errors": len(failures), "first_errors": failures[:3], "seconds": seconds,
        "requests_per_s": len(latencies) / seconds,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
    }


def run_variant(artifacts: Path, env: dict[str, str], payloads: list[str], clients: int, per_client: int) -> dict:
    server = start_server_process(artifacts, extra_env=env)
    samples: list[tuple[float, float]] = []
    stop = threading.Event()

    def sample() -> None:
        start = time.perf_counter()
        while not stop.is_set():
            samples.append((time.perf_counter() - start, rss_mb(server.process.pid)))
            stop.wait(0.2)

    try:
        load(server.url, payloads, clients, 50)  # warm-up: allocator pools, caches, connections
        after_warmup = rss_mb(server.process.pid)
        sampler = threading.Thread(target=sample)
        sampler.start()
        result = load(server.url, payloads, clients, per_client)
        stop.set()
        sampler.join()
        result.update(rss_after_warmup_mb=after_warmup, rss_peak_mb=max(r for _, r in samples),
                      rss_end_mb=rss_mb(server.process.pid),
                      rss_timeline_mb=[round(r, 1) for _, r in samples[:: max(1, len(samples) // 10)]])
        return result
    finally:
        stop.set()
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=2_000, help="requests per client")
    parser.add_argument("--rows", type=int, default=50_000, help="training rows")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="leadscore-load-") as tmp:
        work = Path(tmp)
        data = write_table(generate_leads(args.rows, seed=42), work / "leads.parquet")
        train(TrainConfig(data=str(data), out=work / "leadscore"))
        train_seed_style(data, work / "seed")
        leads = generate_leads(1000, seed=7).drop_columns(["lead_id", TARGET]).to_pylist()
        seed_env = {"PYTHONPATH": f"{ROOT / 'benchmarks'}:{ROOT}", "PREDICTOR_MODULE": "seed_predictors",
                    "PREDICTOR_CLASS": "SeedStylePredictor",
                    "HANDLER_MODULE": "google.cloud.aiplatform.prediction.handler", "HANDLER_CLASS": "PredictionHandler"}
        results = {
            "leadscore": run_variant(work / "leadscore", {}, bodies(leads, explain=True), args.clients, args.requests),
            "seed-style": run_variant(work / "seed", seed_env, bodies(leads, explain=False), args.clients,
                                      args.requests),
        }

    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{args.clients} clients x {args.requests:,} requests (1-10 leads each)\n")
    print("| server | requests | errors | req/s | p50 ms | p99 ms | RSS after warm-up MB | peak MB | end MB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {r['requests']:,} | {r['errors']} | {r['requests_per_s']:,.0f} | {r['p50_ms']:.1f} | "
              f"{r['p99_ms']:.1f} | {r['rss_after_warmup_mb']:.0f} | {r['rss_peak_mb']:.0f} | {r['rss_end_mb']:.0f} |")
    ours, seed = results["leadscore"], results["seed-style"]
    print(f"\n- throughput vs seed-style: {ours['requests_per_s'] / seed['requests_per_s']:.2f}x")
    print(f"- leadscore RSS timeline (MB): {ours['rss_timeline_mb']}")
    for name, r in results.items():
        if r["first_errors"]:
            print(f"- {name} errors: {r['first_errors']}")


if __name__ == "__main__":
    main()

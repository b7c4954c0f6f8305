"""``make demo``: the main job on synthetic leads, the champion served by the real CPR server,
the example lead scored over HTTP, then a second run on fresh data with its promotion decision."""

from __future__ import annotations

import json
import os
import shutil

import httpx
from rich.console import Console

from training.cli.pipeline import print_summary
from training.config import LeadscoreConfig
from training.job import run_job
from training.refs import resolve_model
from training.serve import start_server_process
from training.state import HOME_ENV, home_dir
from training.synth import EXAMPLE_LEAD

DEMO_ROWS = 50_000


def run_demo(console: Console | None = None) -> float:
    """Runs the demo in ``<state dir>/demo`` (emptied first) and returns the example lead's score."""
    console = console or Console()
    home = home_dir() / "demo"
    shutil.rmtree(home, ignore_errors=True)
    os.environ[HOME_ENV] = str(home)  # the demo's own registry: its first model is 1.0.0

    def progress(message: str) -> None:
        console.print(f"[green]›[/] {message}")

    config = LeadscoreConfig()
    config.pipeline.synth_rows = DEMO_ROWS
    console.rule(f"leadscore run: {DEMO_ROWS:,} synthetic leads")
    print_summary(run_job(config, "local", progress))

    champion = resolve_model("lead-scoring@champion")
    console.rule("serving lead-scoring@champion with Vertex AI's CprModelServer")
    server = start_server_process(champion)
    try:
        body = {"instances": [EXAMPLE_LEAD]}
        response = httpx.post(f"{server.url}/predict", json=body, timeout=30)
        response.raise_for_status()
        score = response.json()["predictions"][0]
        console.print(f"POST {server.url}/predict {json.dumps(body)}")
        console.print(f"[bold]conversion probability of the example lead: {score:.4f}[/] "
                      f"(model {response.json()['model_version']})")
    finally:
        server.stop()

    console.rule("leadscore run again, on fresh leads: champion or challenger?")
    config.pipeline.synth_seed = 43
    print_summary(run_job(config, "local", progress))
    return score


def main() -> None:
    """Entry point of ``python -m training.demo``."""
    run_demo()


if __name__ == "__main__":
    main()

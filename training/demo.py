"""``make demo``: the main job on synthetic leads, the champion served by the real CPR server,
the example lead scored over HTTP, then a second run on fresh data with its promotion decision."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import httpx
from rich.console import Console

from training.cli.app import guarded
from training.cli.pipeline import print_summary
from training.config import LeadscoreConfig
from training.errors import LeadscoreError
from training.job import run_job
from training.refs import resolve_model
from training.serve import start_server_process
from training.state import HOME_ENV, home_dir
from training.synth import EXAMPLE_LEAD
from training.tracking import RUNS_DB

DEMO_ROWS = 50_000


# Written into the demo's state directory: the next run empties only a directory the demo made.
DEMO_MARKER = ".leadscore-demo"


def fresh_demo_home() -> Path:
    """``<state dir>/demo``, empty but for the marker.

    Raises:
        LeadscoreError: The directory exists but the demo did not make it (no marker, no run log):
            it is left as it is.
    """
    home = home_dir() / "demo"
    if home.exists():
        if not ((home / DEMO_MARKER).is_file() or (home / RUNS_DB).is_file()):  # run logs: demos before the marker
            raise LeadscoreError(f"{home} exists and was not made by the demo: move it, or point "
                                 f"{HOME_ENV} elsewhere")
        shutil.rmtree(home)
    home.mkdir(parents=True)
    (home / DEMO_MARKER).write_text("The state of `make demo`; each run empties this directory.\n")
    return home


def run_demo(console: Console | None = None) -> float:
    """Runs the demo in ``<state dir>/demo`` (emptied first) and returns the example lead's score.

    Raises:
        LeadscoreError: ``<state dir>/demo`` holds something the demo did not make.
    """
    console = console or Console()
    os.environ[HOME_ENV] = str(fresh_demo_home())  # the demo's own registry: its first model is 1.0.0

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
    guarded(run_demo)


if __name__ == "__main__":
    main()

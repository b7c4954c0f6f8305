"""``make demo``: synthetic leads → training → the real CPR server → one scored lead over HTTP."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
from rich.console import Console

from training.serve import start_server_process
from training.state import home_dir
from training.synth import EXAMPLE_LEAD, generate_leads, write_table
from training.train import TrainConfig, train



def run_demo(workdir: Path, rows: int = 50_000, console: Console | None = None) -> float:
    """Runs the demo and returns the example lead's score.

    Args:
        workdir: Where the data and the artifact directory go.
        rows: Synthetic leads to train on.
        console: Where to report progress.
    """
    console = console or Console()
    data = workdir / "leads.parquet"
    with console.status(f"synthesising {rows:,} leads"):
        write_table(generate_leads(rows, seed=42), data)
    console.print(f"[green]✓[/] {rows:,} synthetic leads → {data}")
    with console.status("training") as status:
        result = train(TrainConfig(data=str(data), out=workdir / "model"), progress=status.update)
    m = result.metrics
    console.print(f"[green]✓[/] trained in {result.seconds:.1f} s: RMSE {m['rmse']:.4f}, MAE {m['mae']:.4f}, "
                  f"R² {m['r2']:.3f} → {result.out}")
    with console.status("starting the Vertex AI CPR model server"):
        server = start_server_process(result.out)
    try:
        console.print(f"[green]✓[/] CprModelServer with LeadScoringPredictor on {server.url}")
        response = httpx.post(f"{server.url}/predict", json={"instances": [EXAMPLE_LEAD]}, timeout=30)
        response.raise_for_status()
        score = response.json()["predictions"][0]
        console.print("POST /predict " + json.dumps({"instances": [EXAMPLE_LEAD]}))
        console.print(f"[bold]conversion probability of the example lead: {score:.4f}[/]")
        return score
    finally:
        server.stop()
        console.print("[green]✓[/] server stopped")


def main() -> None:
    """Entry point of ``python -m training.demo``."""
    workdir = home_dir() / "demo"
    workdir.mkdir(parents=True, exist_ok=True)
    run_demo(workdir)
    sys.exit(0)


if __name__ == "__main__":
    main()

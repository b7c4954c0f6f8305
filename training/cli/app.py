"""The ``leadscore`` Typer application, its console and the error boundary.

Commands live in sibling modules (one area each) and register themselves on :data:`app`;
``training/cli/__init__.py`` imports them all. This module is the only place where library
errors become messages and exit codes.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from collections.abc import Callable
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape

from predictor.artifacts import ArtifactError
from training.errors import LeadscoreError
from training.state import HOME_ENV

app = typer.Typer(
    help="Lead scoring on Google Cloud: train, register, serve and monitor an XGBoost lead-scoring model.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

console = Console(stderr=True)
stdout = Console()


@app.callback()
def _setup(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show debug logging.")] = False,
    home: Annotated[
        Optional[Path],
        typer.Option(help="State directory (registry, runs, logs). Default: $LEADSCORE_HOME or ./.leadscore."),
    ] = None,
) -> None:
    if home is not None:
        os.environ[HOME_ENV] = str(home)
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False, show_time=False)],
        force=True,
    )
    # Libraries we call are chatty at INFO; keep our own messages.
    for noisy in ("google", "urllib3", "kfp", "uvicorn.access", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def print_json(payload: Any) -> None:
    """Prints JSON to standard output (for ``--json`` and machine-readable commands)."""
    sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")


def guarded(command: Callable[[], object]) -> None:
    """Runs a command; a library error becomes one line on stderr and exit code 1."""
    try:
        command()
    except (LeadscoreError, ArtifactError) as exc:
        # One line, verbatim: no wrapping at the terminal width, no markup read into "[train]".
        console.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)
        sys.exit(1)


def main() -> None:
    """Entry point of the ``leadscore`` console script."""
    guarded(app)

"""Where local state (registry, runs, logs) lives: ``./.leadscore`` unless told otherwise."""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "LEADSCORE_HOME"
DEFAULT_HOME = ".leadscore"


def home_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The state directory: ``override`` (``--home``), else ``$LEADSCORE_HOME``, else ``./.leadscore``.

    The directory is created on first use.
    """
    path = Path(override or os.environ.get(HOME_ENV) or DEFAULT_HOME)
    path.mkdir(parents=True, exist_ok=True)
    return path

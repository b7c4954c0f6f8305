"""The ``leadscore`` command line: importing each command module registers its commands on ``app``."""

from training.cli import core  # noqa: F401  (registers its commands)
from training.cli import monitor  # noqa: F401
from training.cli import pipeline  # noqa: F401
from training.cli import registry  # noqa: F401
from training.cli import runs  # noqa: F401
from training.cli import serving  # noqa: F401
from training.cli import train  # noqa: F401
from training.cli.app import app, main

__all__ = ["app", "main"]

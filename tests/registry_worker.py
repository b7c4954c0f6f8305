"""A process that changes a local registry, for the crash and concurrency tests.

``python -m tests.registry_worker ROOT HOLDOUT_DIR [--kill-at POINT] [--go FILE] OP...``

Each OP is ``register:ARTIFACT_DIR``, ``promote:REF`` or ``rollback``. The worker prints
``ready`` once its imports are done; with ``--go`` it then waits for that file to exist, so that
several workers start their changes together. ``--kill-at`` makes it SIGKILL itself at one
point of a registration (see ``KILL_POINTS``): the test-only hook wraps a library call of this
process; the registry code itself is unchanged. A refused promotion or rollback
(``RegistryError``) is printed and the worker goes on.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from training.errors import RegistryError
from training.registry import base, local
from training.registry.local import LocalRegistry
from training.registry.promotion import Holdout


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _kill_during_copy() -> None:
    """Dies with the staging directory half copied."""
    original, calls = base.shutil.copyfile, []

    def copy(*args, **kwargs):
        calls.append(args)
        if len(calls) == 3:
            _die()
        return original(*args, **kwargs)

    base.shutil.copyfile = copy


def _kill_before_manifest() -> None:
    """Dies after the version was written into metadata.json, before the manifest is rewritten."""
    base.write_manifest = lambda *args, **kwargs: _die()


def _kill_after_rename() -> None:
    """Dies with the version directory in place and its row not inserted."""
    original = Path.rename

    def rename(self, target):
        result = original(self, target)
        if not Path(target).name.startswith(base.STAGING_PREFIX):
            _die()
        return result

    Path.rename = rename


def _kill_before_commit() -> None:
    """Dies with the row and alias inserted but not committed (the log entry is next)."""
    local._LocalSession.append = lambda self, event: _die()


KILL_POINTS = {
    "copy": _kill_during_copy,
    "manifest": _kill_before_manifest,
    "rename": _kill_after_rename,
    "commit": _kill_before_commit,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("root", type=Path)
    parser.add_argument("holdout", type=Path)
    parser.add_argument("ops", nargs="+")
    parser.add_argument("--kill-at", choices=sorted(KILL_POINTS))
    parser.add_argument("--go", type=Path)
    args = parser.parse_args(argv)

    holdout = Holdout(pd.read_parquet(args.holdout / "holdout.parquet"), np.load(args.holdout / "target.npy"))
    registry = LocalRegistry(args.root)
    if args.kill_at:
        KILL_POINTS[args.kill_at]()
    print("ready", flush=True)
    while args.go and not args.go.exists():
        time.sleep(0.01)
    for op in args.ops:
        verb, _, target = op.partition(":")
        try:
            if verb == "register":
                outcome = registry.register(target, holdout)
            elif verb == "promote":
                outcome = registry.promote(target)
            else:
                outcome = registry.rollback("lead-scoring")
            print(f"{op} -> {outcome.event.action} {outcome.version.version}", flush=True)
        except RegistryError as exc:
            print(f"{op} refused: {exc}", flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()

"""The local registry under crashes and concurrency, with real processes.

A process killed (SIGKILL) anywhere in a registration leaves no half version, and several
processes registering, promoting and rolling back at once never produce a duplicate version,
a lost update or two champions.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from predictor.model import LeadScoringModel
from tests.registry_worker import KILL_POINTS
from training.registry.base import STAGING_PREFIX
from training.registry.local import LocalRegistry
from training.registry.promotion import Holdout

REPO = Path(__file__).resolve().parent.parent
WEAK = {"max_depth": 1, "n_estimators": 10}
MEDIUM = {"max_depth": 2, "n_estimators": 30}
STRONG = {"max_depth": 4, "n_estimators": 60}


@pytest.fixture(scope="module")
def runs(synth_run, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Artifact directories of three models and their shared held-out rows, on disk for workers."""
    weak, medium, strong = synth_run(**WEAK), synth_run(**MEDIUM), synth_run(**STRONG)
    holdout = tmp_path_factory.mktemp("holdout")
    weak.holdout.to_parquet(holdout / "holdout.parquet")
    np.save(holdout / "target.npy", weak.holdout_target)
    return {"weak": weak.out, "medium": medium.out, "strong": strong.out, "holdout": holdout}


def start_worker(root: Path, runs: dict[str, Path], ops: list[str], *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.registry_worker", str(root), str(runs["holdout"]), *extra, "--", *ops],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def wait_ready(process: subprocess.Popen) -> None:
    line = process.stdout.readline()
    assert line.strip() == "ready", f"worker failed to start: {line}{process.stderr.read()}"


def assert_consistent(root: Path) -> LocalRegistry:
    """Every version listed is complete and verified; exactly one champion; one log entry per version."""
    registry = LocalRegistry(root)
    versions = registry.versions()
    for version in versions:
        registry.verify(version)
        assert LeadScoringModel.load(version.artifact_uri).version == version.version
    assert sum(v.is_champion for v in versions) == (1 if versions else 0)
    registered = [e.version for e in registry.history() if e.action in ("promote", "reject")]
    assert sorted(registered) == sorted(v.version for v in versions)
    return registry


def leftovers(registry: LocalRegistry) -> set[Path]:
    """Directories in the store that are not a registered version."""
    on_disk = {p for p in registry.store.glob("*") if p.name.startswith(STAGING_PREFIX)}
    on_disk |= {p for p in registry.store.glob("*/*")}
    return on_disk - {Path(v.artifact_uri) for v in registry.versions()}


@pytest.mark.parametrize("point", sorted(KILL_POINTS))
def test_kill_at_each_step_leaves_no_half_version(point: str, runs, tmp_path: Path):
    root = tmp_path / "registry"
    registry = LocalRegistry(root)
    registry.register(runs["weak"], _holdout(runs))  # a champion to compare with
    worker = start_worker(root, runs, [f"register:{runs['strong']}"], "--kill-at", point)
    worker.wait(timeout=120)
    assert worker.returncode == -9, worker.stderr.read()

    assert_consistent(root)
    assert [v.version for v in registry.versions()] == ["1.0.0"]
    assert registry.get("lead-scoring", "champion").version == "1.0.0"
    # The kill happened where intended: it left a staging or an unregistered version directory...
    assert leftovers(registry), "the worker died before touching the store"
    # ...which nothing reads, and the next change sweeps away.
    again = registry.register(runs["strong"], _holdout(runs))
    assert (again.version.version, again.event.action) == ("1.0.1", "promote")
    assert leftovers(registry) == set()
    assert_consistent(root)


def test_kill_at_random_times_leaves_no_half_version(runs, tmp_path: Path):
    root = tmp_path / "registry"
    rng = random.Random(20261126)
    ops = [f"register:{runs[name]}" for name in ("weak", "strong", "medium") * 8]
    for _ in range(4):
        worker = start_worker(root, runs, ops)
        wait_ready(worker)
        time.sleep(rng.uniform(0.0, 1.5))
        worker.kill()
        worker.wait(timeout=60)
        registry = assert_consistent(root)
    assert registry.versions(), "no registration finished before the kills"
    registry.register(runs["strong"], _holdout(runs))
    assert leftovers(registry) == set()
    assert_consistent(root)


def test_concurrent_registrations_and_promotions(runs, tmp_path: Path):
    root = tmp_path / "registry"
    go = tmp_path / "go"
    rng = random.Random(7)
    plans = []
    for _ in range(4):
        ops = [f"register:{runs[name]}" for name in rng.sample(["weak", "medium", "strong"], 3)]
        ops.insert(rng.randrange(1, 4), "promote:lead-scoring@1.0.0")
        ops.insert(rng.randrange(1, 5), "rollback")
        plans.append(ops)
    workers = [start_worker(root, runs, ops, "--go", str(go)) for ops in plans]
    for worker in workers:
        wait_ready(worker)
    go.touch()
    outputs = []
    for worker in workers:
        out, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err
        outputs.append(out)

    registry = assert_consistent(root)
    versions = [v.version for v in registry.versions()]
    assert len(versions) == len(set(versions)) == 12  # every registration kept, none numbered twice
    # Replaying the log reproduces the champion: no change was based on a stale view.
    champion, releases = None, []
    for event in registry.history():
        assert event.previous_champion == champion, (event, outputs)
        if event.moves_champion:
            champion = event.version
        if event.action == "promote":
            releases.append(event.version)
    assert champion == registry.get("lead-scoring", "champion").version
    assert releases == sorted(releases, key=lambda v: tuple(map(int, v.split(".")))) == list(dict.fromkeys(releases))


def _holdout(runs: dict[str, Path]) -> Holdout:
    return Holdout(pd.read_parquet(runs["holdout"] / "holdout.parquet"), np.load(runs["holdout"] / "target.npy"))

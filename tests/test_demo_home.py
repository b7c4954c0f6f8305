"""The demo empties only a state directory it made itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.demo import DEMO_MARKER, fresh_demo_home
from training.errors import LeadscoreError
from training.state import HOME_ENV
from training.tracking import RUNS_DB


@pytest.fixture
def demo_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(HOME_ENV, str(tmp_path))
    return tmp_path / "demo"


def test_a_new_demo_directory_is_marked(demo_dir: Path):
    assert fresh_demo_home() == demo_dir
    assert [p.name for p in demo_dir.iterdir()] == [DEMO_MARKER]


@pytest.mark.parametrize("made_by", [DEMO_MARKER, RUNS_DB])  # a run log: a demo from before the marker
def test_the_demos_own_directory_is_emptied(demo_dir: Path, made_by: str):
    (demo_dir / "registry").mkdir(parents=True)
    (demo_dir / made_by).write_text("")
    (demo_dir / "registry" / "old.json").write_text("{}")
    fresh_demo_home()
    assert [p.name for p in demo_dir.iterdir()] == [DEMO_MARKER]


def test_a_directory_the_demo_did_not_make_is_left_alone(demo_dir: Path):
    (demo_dir / "slides").mkdir(parents=True)
    (demo_dir / "slides" / "talk.md").write_text("mine")
    with pytest.raises(LeadscoreError, match="was not made by the demo"):
        fresh_demo_home()
    assert (demo_dir / "slides" / "talk.md").read_text() == "mine"
    assert not (demo_dir / DEMO_MARKER).exists()

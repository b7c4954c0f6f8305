"""The model registry on its local backend: versions, promotion on the same rows, rollback, refs, CLI."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from predictor.artifacts import METADATA_FILE, ArtifactError, read_json, verify
from predictor.model import LeadScoringModel
from training.cli import app
from training.errors import RegistryError
from training.refs import resolve_model
from training.registry.base import CHAMPION, rollback_target
from training.registry.config import (
    BACKEND_ENV,
    PROJECT_ENV,
    REGION_ENV,
    REGISTRY_URI_ENV,
    SERVING_IMAGE_ENV,
    VERTEX_ENDPOINT_ENV,
)
from training.registry.local import DB_FILE, LocalRegistry
from training.registry.promotion import Holdout, PromotionPolicy, improvement_interval, rmse
from training.registry.semver import assign_version, schema_change
from training.state import HOME_ENV
from training.synth import EXAMPLE_LEAD

# Three models of increasing quality trained on the same split (same held-out rows).
WEAK = {"max_depth": 1, "n_estimators": 10}
MEDIUM = {"max_depth": 2, "n_estimators": 30}
STRONG = {"max_depth": 4, "n_estimators": 60}
SCHEMA = {"a": "numeric", "b": "categorical", "c": "boolean"}


@pytest.fixture
def registry(tmp_path: Path) -> LocalRegistry:
    return LocalRegistry(tmp_path / "registry")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private state directory; registry settings the CLI writes into the environment are undone."""
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "home"))
    monkeypatch.setenv(BACKEND_ENV, "local")
    for key in (PROJECT_ENV, REGION_ENV, REGISTRY_URI_ENV, SERVING_IMAGE_ENV, VERTEX_ENDPOINT_ENV):
        monkeypatch.setenv(key, "")
    return tmp_path / "home"


def register(registry: LocalRegistry, run, policy: PromotionPolicy | None = None):
    return registry.register(run.out, Holdout.from_result(run), policy)


def champion_version(registry: LocalRegistry) -> str:
    return registry.get("lead-scoring", CHAMPION).version


# Version rules --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("new", "expected"),
    [
        (SCHEMA, "patch"),
        ({**SCHEMA, "d": "numeric"}, "minor"),
        ({"a": "numeric", "b": "categorical"}, "major"),  # removed
        ({"a": "numeric", "b2": "categorical", "c": "boolean"}, "major"),  # renamed
        ({**SCHEMA, "a": "categorical"}, "major"),  # retyped
        ({**SCHEMA, "a": "categorical", "d": "numeric"}, "major"),
    ],
)
def test_schema_change_kinds(new, expected):
    assert schema_change(SCHEMA, new) == expected


def test_version_numbers_follow_the_rules():
    assert assign_version([], None, SCHEMA, promoted=True) == "1.0.0"
    assert assign_version(["1.0.0"], SCHEMA, SCHEMA, promoted=True) == "1.0.1"
    assert assign_version(["1.0.0"], SCHEMA, SCHEMA, promoted=False) == "1.0.1-rc.1"
    assert assign_version(["1.0.0", "1.0.1-rc.1"], SCHEMA, SCHEMA, promoted=False) == "1.0.1-rc.2"
    assert assign_version(["1.0.0", "1.0.1-rc.1"], SCHEMA, SCHEMA, promoted=True) == "1.0.1"
    assert assign_version(["1.0.0"], SCHEMA, {**SCHEMA, "d": "numeric"}, promoted=True) == "1.1.0"
    assert assign_version(["1.3.2"], SCHEMA, {"a": "numeric"}, promoted=True) == "2.0.0"
    assert assign_version(["1.0.0"], SCHEMA, {"a": "numeric"}, promoted=False) == "2.0.0-rc.1"
    # Numbered from the latest release, not the champion (which a rollback moved back).
    assert assign_version(["1.0.0", "1.0.1", "1.0.2"], SCHEMA, SCHEMA, promoted=True) == "1.0.3"
    # Pre-release numbers compare as numbers: after rc.9 comes rc.10.
    existing = ["1.0.0", *(f"1.0.1-rc.{i}" for i in range(1, 10))]
    assert assign_version(existing, SCHEMA, SCHEMA, promoted=False) == "1.0.1-rc.10"


# Promotion ------------------------------------------------------------------------------------


def test_first_model_becomes_champion_1_0_0(registry: LocalRegistry, synth_run):
    run = synth_run(**WEAK)
    registration = register(registry, run)
    version = registration.version
    assert (version.version, version.aliases, registration.event.action) == ("1.0.0", (CHAMPION,), "promote")
    assert registration.event.previous_champion is None and registration.event.rows == len(run.holdout_target)
    stored = Path(version.artifact_uri)
    assert stored.parent.parent == registry.store and stored != run.out
    verify(stored)
    assert LeadScoringModel.load(stored).version == "1.0.0"  # what the served response carries
    assert read_json(run.out / METADATA_FILE)["version"] is None  # the training output is left as it was
    assert version.metrics == read_json(run.out / "metrics.json")
    assert version.schema == LeadScoringModel.load(run.out).transform.feature_types()
    assert version.params["max_depth"] == WEAK["max_depth"]
    metadata = read_json(run.out / METADATA_FILE)
    assert (version.data_fingerprint, version.run_id) == (metadata["data"]["fingerprint"]["sha256"],
                                                          metadata["run_id"])
    assert not any(os.stat(p).st_mode & stat.S_IWUSR for p in stored.iterdir())  # stored versions are read-only


def test_registry_directory_can_move(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, synth_run):
    monkeypatch.chdir(tmp_path)
    register(LocalRegistry("registry"), synth_run(**WEAK))  # a relative root, like the default ./.leadscore
    shutil.move(tmp_path / "registry", tmp_path / "moved")
    moved = LocalRegistry(tmp_path / "moved")
    (version,) = moved.versions()
    assert Path(version.artifact_uri).is_relative_to(tmp_path / "moved")
    moved.verify(version)
    assert moved.resolve(version.artifact_uri).version == "1.0.0"


def test_champion_is_rescored_on_the_challengers_rows(registry: LocalRegistry, synth_run):
    weak, strong = synth_run(**WEAK), synth_run(**STRONG)
    register(registry, weak)
    # Half of the challenger's held-out rows: the champion's own recorded RMSE is from other rows.
    rows = slice(0, len(strong.holdout_target) // 2)
    holdout = Holdout(strong.holdout.iloc[rows], strong.holdout_target[rows])
    event = registry.register(strong.out, holdout).event

    def independent_rmse(model_dir: Path) -> float:
        model = LeadScoringModel.load(model_dir)
        columns = {name: holdout.columns[name].to_numpy() for name in model.transform.feature_names}
        return rmse(holdout.target, model.predict_matrix(model.transform.transform_columns(columns)))

    assert event.rows == len(holdout)
    assert event.champion_rmse == pytest.approx(independent_rmse(weak.out), rel=1e-12)
    assert event.challenger_rmse == pytest.approx(independent_rmse(strong.out), rel=1e-12)
    assert event.champion_rmse != pytest.approx(weak.metrics["rmse"], rel=1e-6)
    assert (event.action, event.version, event.previous_champion) == ("promote", "1.0.1", "1.0.0")
    assert champion_version(registry) == "1.0.1"


def test_rejected_challengers_are_registered_as_prereleases(registry: LocalRegistry, synth_run):
    weak, strong = synth_run(**WEAK), synth_run(**STRONG)
    register(registry, strong)
    first, second = register(registry, weak), register(registry, weak)
    assert [first.version.version, second.version.version] == ["1.0.1-rc.1", "1.0.1-rc.2"]
    assert not first.promoted and first.version.aliases == () and first.event.action == "reject"
    assert first.event.challenger_rmse > first.event.champion_rmse
    assert "not better than the champion" in first.event.reason
    verify(Path(second.version.artifact_uri))
    assert champion_version(registry) == "1.0.0"
    # An equal RMSE keeps the champion: retraining the same model is not an improvement.
    assert register(registry, strong).event.action == "reject"
    assert [v.version for v in registry.versions()] == ["1.0.0", "1.0.1-rc.1", "1.0.1-rc.2", "1.0.1-rc.3"]


def test_min_improvement_is_required(registry: LocalRegistry, synth_run):
    weak, medium = synth_run(**WEAK), synth_run(**MEDIUM)
    register(registry, weak)
    improvement = weak.metrics["rmse"] - medium.metrics["rmse"]
    assert improvement > 0
    refused = register(registry, medium, PromotionPolicy(min_improvement=improvement + 1e-3))
    assert refused.event.action == "reject" and "below the minimum" in refused.event.reason
    accepted = register(registry, medium, PromotionPolicy(min_improvement=improvement - 1e-3))
    assert accepted.event.action == "promote" and accepted.version.version == "1.0.1"


def test_significance_needs_an_interval_above_zero(registry: LocalRegistry, synth_run):
    weak, strong = synth_run(**WEAK), synth_run(**STRONG)
    # Two runs that differ only in their seed: a tiny difference, within resampling noise.
    twins = sorted([synth_run(**STRONG), synth_run(**STRONG, seed=7)], key=lambda r: -r.metrics["rmse"])
    register(registry, weak)
    clear = register(registry, strong, PromotionPolicy(require_significance=True)).event
    assert clear.action == "promote" and clear.improvement_ci[0] > 0
    assert clear.improvement_ci[0] < clear.champion_rmse - clear.challenger_rmse < clear.improvement_ci[1]

    other = LocalRegistry(registry.root.parent / "other")
    register(other, twins[0])
    noisy = register(other, twins[1], PromotionPolicy(require_significance=True)).event
    assert noisy.champion_rmse > noisy.challenger_rmse  # better, but...
    assert noisy.action == "reject" and "not significant" in noisy.reason
    assert noisy.improvement_ci[0] <= 0 <= noisy.improvement_ci[1]
    # Without the requirement the same challenger wins.
    assert register(other, twins[1]).event.action == "promote"


def test_bootstrap_interval_of_identical_predictions_is_zero():
    rng = np.random.default_rng(1)
    target, pred = rng.random(500), rng.random(500)
    assert improvement_interval(target, pred, pred) == (0.0, 0.0)


def test_schema_changes_bump_minor_and_major(registry: LocalRegistry, synth_run):
    narrow = synth_run(exclude=("prior_contacts",), **WEAK)
    wide = synth_run(**STRONG)
    without_industry = synth_run(exclude=("industry",), **STRONG)
    assert register(registry, narrow).version.version == "1.0.0"
    added = register(registry, wide)
    assert added.version.version == "1.1.0" and added.promoted
    removed = register(registry, without_industry)
    # The champion is scored on rows without `industry`: it gets the field as missing, as serving would.
    assert "industry" in removed.event.reason
    assert removed.version.version.startswith("2.0.0")


def test_rollback_walks_back_through_promotions(registry: LocalRegistry, synth_run):
    for params in (WEAK, MEDIUM, STRONG):
        register(registry, synth_run(**params))
    assert champion_version(registry) == "1.0.2"
    first = registry.rollback("lead-scoring")
    assert (first.event.action, first.version.version, first.event.previous_champion) == ("rollback", "1.0.1", "1.0.2")
    assert first.event.challenger_rmse == registry.get("lead-scoring", "1.0.1").rmse and first.event.rows is None
    assert registry.rollback("lead-scoring").version.version == "1.0.0"
    with pytest.raises(RegistryError, match="no previous champion"):
        registry.rollback("lead-scoring")
    assert registry.rollback("lead-scoring", to="1.0.2").version.version == "1.0.2"
    assert champion_version(registry) == "1.0.2"
    assert [e.action for e in registry.history()] == ["promote"] * 3 + ["rollback"] * 3
    assert sum(v.is_champion for v in registry.versions()) == 1


def test_rollback_target_skips_rollbacks(registry: LocalRegistry, synth_run):
    for params in (WEAK, MEDIUM, STRONG):
        register(registry, synth_run(**params))
    registry.rollback("lead-scoring")  # 1.0.2 → 1.0.1
    register(registry, synth_run(**STRONG, seed=7))  # beats 1.0.1: 1.0.3
    history = registry.history("lead-scoring")
    assert rollback_target(history, "1.0.3") == "1.0.1"
    assert rollback_target(history, "1.0.1") == "1.0.0"


def test_promote_by_hand(registry: LocalRegistry, synth_run):
    weak, strong = synth_run(**WEAK), synth_run(**STRONG)
    register(registry, strong)
    rejected = register(registry, weak).version
    manual = registry.promote(rejected.ref, reason="business asked for the simpler model")
    assert (manual.version.version, manual.event.action) == ("1.0.1-rc.1", "manual-promote")
    assert manual.event.reason == "business asked for the simpler model" and manual.event.rows is None
    assert (manual.event.challenger_rmse, manual.event.champion_rmse) == (rejected.rmse, strong.metrics["rmse"])
    assert champion_version(registry) == "1.0.1-rc.1"
    with pytest.raises(RegistryError, match="already the champion"):
        registry.promote("lead-scoring@champion")
    # The stored directory is a reference too.
    assert registry.promote(registry.get("lead-scoring", "1.0.0").artifact_uri).version.version == "1.0.0"
    # An unregistered artifact directory is registered as the next release and made champion.
    forced = registry.promote(str(synth_run(**MEDIUM).out))
    assert (forced.version.version, forced.event.action, forced.version.aliases) == ("1.0.1", "manual-promote",
                                                                                   (CHAMPION,))
    assert [e.action for e in registry.history()] == ["promote", "reject", "manual-promote", "manual-promote",
                                                      "manual-promote"]


def test_promotion_log_is_append_only(registry: LocalRegistry, synth_run):
    register(registry, synth_run(**WEAK))
    with sqlite3.connect(registry.root / DB_FILE) as conn:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("UPDATE promotion_log SET reason = 'edited'")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("DELETE FROM promotion_log")
    assert registry.history()[0].reason == "first model: no champion yet"


def test_artifacts_that_fail_verification_are_not_registered(registry: LocalRegistry, synth_run, tmp_path: Path):
    broken = tmp_path / "broken"
    shutil.copytree(synth_run(**WEAK).out, broken)
    (broken / "profile.json").write_text("{}")
    with pytest.raises(ArtifactError, match="does not match its sha256"):
        registry.register(broken, Holdout.from_result(synth_run(**WEAK)))
    assert registry.versions() == [] and list(registry.store.glob("*")) == []


# References, serving and the CLI --------------------------------------------------------------


def _tamper(path: Path) -> None:
    path.chmod(0o644)
    path.write_text(path.read_text().replace('"lead-scoring"', '"evil"'))


def test_altered_or_replaced_versions_are_reported_and_never_served(home: Path, synth_run):
    registry = LocalRegistry(home / "registry")
    weak, medium, strong = (synth_run(**p) for p in (WEAK, MEDIUM, STRONG))
    for run in (weak, medium, strong):
        register(registry, run)
    altered = Path(registry.get("lead-scoring", "1.0.0").artifact_uri)
    _tamper(altered / METADATA_FILE)
    # A directory replaced wholesale verifies against its own manifest, but not against the registry's.
    replaced = Path(registry.get("lead-scoring", "1.0.1").artifact_uri)
    shutil.rmtree(replaced)
    shutil.copytree(weak.out, replaced)
    verify(replaced)

    with pytest.raises(ArtifactError, match="1.0.0 failed verification.*sha256"):
        resolve_model("lead-scoring@1.0.0")
    with pytest.raises(ArtifactError, match="1.0.1 failed verification.*replaced"):
        resolve_model("lead-scoring@1.0.1")
    with pytest.raises(ArtifactError):
        registry.rollback("lead-scoring")  # to 1.0.1: refused, the champion stays
    assert champion_version(registry) == "1.0.2" and len(registry.history()) == 3

    runner = CliRunner()
    listed = runner.invoke(app, ["registry", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    assert {v["version"]: v["verified"] for v in json.loads(listed.stdout)} == {
        "1.0.0": False, "1.0.1": False, "1.0.2": True}
    served = runner.invoke(app, ["serve", "--model", "lead-scoring@1.0.0"])
    assert served.exit_code != 0 and "failed verification" in str(served.exception)
    # A broken champion cannot be compared with: registration stops and registers nothing.
    _tamper(Path(registry.get("lead-scoring", CHAMPION).artifact_uri) / METADATA_FILE)
    with pytest.raises(ArtifactError, match="cannot be compared with the champion"):
        register(registry, weak)
    assert len(registry.versions()) == 3 and len(registry.history()) == 3


def test_refs_cli_and_serving(home: Path, synth_parquet: Path, tmp_path: Path, cpr_server):
    runner = CliRunner()

    def cli(*args: str) -> dict | list:
        result = runner.invoke(app, [*args, "--json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout[result.stdout.index("{") if args[0] == "train" else 0:])

    out = str(tmp_path / "model")
    trained = cli("train", "--data", str(synth_parquet), "--out", out, "--register")
    assert trained["registration"]["version"]["version"] == "1.0.0" and trained["registration"]["promoted"]
    again = cli("train", "--data", str(synth_parquet), "--out", out, "--register", "--min-improvement", "0.01")
    assert again["registration"]["version"]["version"] == "1.0.1-rc.1" and not again["registration"]["promoted"]

    listed = cli("registry", "list")
    assert [(v["version"], v["aliases"], v["verified"]) for v in listed] == [
        ("1.0.0", [CHAMPION], True), ("1.0.1-rc.1", [], True)]
    shown = cli("registry", "show", "lead-scoring@1.0.1-rc.1")
    assert shown["schema"]["industry"] == "categorical" and [e["action"] for e in shown["events"]] == ["reject"]
    promoted = cli("registry", "promote", "lead-scoring@1.0.1-rc.1", "--reason", "trial")
    assert promoted["event"]["action"] == "manual-promote" and promoted["version"]["aliases"] == [CHAMPION]
    rolled = cli("registry", "rollback")
    assert rolled["version"]["version"] == "1.0.0"
    assert [e["action"] for e in cli("registry", "log")] == ["promote", "reject", "manual-promote", "rollback"]

    predicted = runner.invoke(app, ["predict", "--model", "lead-scoring@champion", "--instances", "-"],
                              input=json.dumps(EXAMPLE_LEAD))
    assert predicted.exit_code == 0, predicted.output
    assert json.loads(predicted.stdout)["model_version"] == "1.0.0"

    server = cpr_server(resolve_model("lead-scoring@1.0.1-rc.1"))
    response = server.post(json.dumps({"instances": [EXAMPLE_LEAD]}))
    assert response.status_code == 200 and response.json()["model_version"] == "1.0.1-rc.1"

    missing = runner.invoke(app, ["registry", "show", "lead-scoring@9.9.9"])
    assert missing.exit_code != 0 and "no such version" in str(missing.exception)


def test_listing_the_registry_does_not_import_the_model_stack(home: Path):
    # XGBoost imports scikit-learn, SciPy and pandas: a second that `registry list` need not pay.
    code = ("import sys\nfrom training.cli import main\nsys.argv = ['leadscore', 'registry', 'list', '--json']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('xgboost', 'sklearn', 'scipy', 'pandas') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={**os.environ, HOME_ENV: str(home)})
    assert result.stdout.strip().splitlines()[-1] == "[]"

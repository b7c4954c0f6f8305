"""Experiment tracking: every training run's parameters, metrics, data, code and artifact location.

Every run is recorded locally, in a SQLite file in the state directory (``runs.db``), which
``leadscore runs list|show|compare`` reads. With the ``vertex`` backend the run is also logged
to Vertex AI Experiments (``aiplatform.init(experiment=...)``, ``start_run``, ``log_params``,
``log_metrics``, ``end_run``) under the same run ID.
"""

from __future__ import annotations

import json
import re
import secrets
import sqlite3
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from predictor.artifacts import package_versions
from training.errors import TrackingError
from training.state import home_dir

RUNS_DB = "runs.db"
DEFAULT_EXPERIMENT = "lead-scoring"
BACKENDS = ("local", "vertex")
# Vertex AI Experiments names experiments and runs with lowercase letters, digits and dashes.
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,127}")
_TRACKED_PACKAGES = ("pandas", "pyarrow", "duckdb", "sqlglot", "optuna", "google-cloud-aiplatform",
                     "google-cloud-bigquery")


@dataclass
class TrackingConfig:
    """Where runs are recorded.

    Attributes:
        backend: ``local`` (SQLite in the state directory) or ``vertex`` (also Vertex AI Experiments).
        experiment: The experiment name (lowercase letters, digits and dashes).
        project: Google Cloud project (Vertex; default from the environment).
        location: Vertex AI region.
        api_endpoint: Vertex AI API endpoint override (a regional or private endpoint); requests
            then use the REST transport.
    """

    backend: str = "local"
    experiment: str = DEFAULT_EXPERIMENT
    project: str | None = None
    location: str = "us-central1"
    api_endpoint: str | None = None

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise TrackingError(f"tracking backend {self.backend!r}: use one of {', '.join(BACKENDS)}")
        if not NAME_PATTERN.fullmatch(self.experiment):
            raise TrackingError(f"experiment name {self.experiment!r}: use lowercase letters, digits and dashes")


@dataclass
class RunRecord:
    """One training run.

    Attributes:
        run_id: Unique ID, also the Vertex AI experiment run name (``20261126-061500-a1b2c3``).
        experiment: The experiment it belongs to.
        started_at: UTC start time (ISO 8601).
        params: Flat parameters: data options, split, hyperparameters, tuning, device.
        data: Source, query and fingerprint (rows, schema, sha256) of the data.
        code: leadscore version and git commit (``git_sha``, ``git_dirty``) when available.
        packages: Versions of the libraries the run used.
        status: ``running``, ``finished`` or ``failed``.
        ended_at: UTC end time.
        metrics: Flat held-out metrics (and the tuning's best validation RMSE).
        artifact_uri: The artifact directory written.
        error: Why a failed run failed.
        trials: Tuning trials: number, params, validation RMSE, best iteration, state.
    """

    run_id: str
    experiment: str
    started_at: str
    params: dict[str, Any]
    data: dict[str, Any] = field(default_factory=dict)
    code: dict[str, Any] = field(default_factory=dict)
    packages: dict[str, str] = field(default_factory=dict)
    status: str = "running"
    ended_at: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    artifact_uri: str | None = None
    error: str | None = None
    trials: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return dict(self.__dict__)


def utc_now() -> str:
    """The current UTC time in ISO 8601, to the millisecond (runs started in the same second still sort)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def new_run_id() -> str:
    """A sortable, unique run ID that is also a valid Vertex AI run name."""
    return f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def code_version() -> dict[str, Any]:
    """leadscore's version and, when the code runs from a git checkout, its commit and dirtiness."""
    info: dict[str, Any] = {"leadscore": _version("leadscore"), "git_sha": None, "git_dirty": None}
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        if sha.returncode == 0:
            info["git_sha"] = sha.stdout.strip()
            status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                                    capture_output=True, text=True, timeout=10)
            info["git_dirty"] = bool(status.stdout.strip()) if status.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        pass  # no git, or not a checkout: the package version is what we have
    return info


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def run_packages() -> dict[str, str]:
    """Versions of the libraries a training run depends on."""
    versions = package_versions()
    versions.update({d: v for d in _TRACKED_PACKAGES if (v := _version(d))})
    return versions


_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    experiment TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    params TEXT NOT NULL,
    metrics TEXT NOT NULL,
    data TEXT NOT NULL,
    code TEXT NOT NULL,
    packages TEXT NOT NULL,
    artifact_uri TEXT,
    error TEXT,
    trials TEXT NOT NULL
);
"""
_JSON_FIELDS = ("params", "metrics", "data", "code", "packages", "trials")


class RunStore:
    """The local run log: one SQLite file (``<state dir>/runs.db``), safe to share between processes."""

    def __init__(self, path: Path | None = None):
        self.path = Path(path) if path else home_dir() / RUNS_DB

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(_SCHEMA)
        return conn

    def save(self, run: RunRecord) -> None:
        """Inserts or replaces a run."""
        values = {k: json.dumps(v, default=str) if k in _JSON_FIELDS else v for k, v in run.to_dict().items()}
        columns = ", ".join(values)
        with self._connect() as conn:
            conn.execute(f"INSERT OR REPLACE INTO runs ({columns}) VALUES ({', '.join('?' * len(values))})",
                         list(values.values()))
        conn.close()

    def _record(self, row: sqlite3.Row) -> RunRecord:
        values = {k: json.loads(row[k]) if k in _JSON_FIELDS else row[k] for k in row.keys()}
        return RunRecord(**values)

    def get(self, run_id: str) -> RunRecord:
        """A run by ID or unique ID prefix.

        Raises:
            TrackingError: No run, or several, match.
        """
        with self._connect() as conn:
            rows = conn.execute("SELECT * FROM runs WHERE run_id = ? OR run_id LIKE ? ORDER BY run_id",
                                (run_id, run_id.replace("%", "").replace("_", "") + "%")).fetchall()
        conn.close()
        exact = [r for r in rows if r["run_id"] == run_id]
        if exact or len(rows) == 1:
            return self._record((exact or rows)[0])
        if not rows:
            raise TrackingError(f"no run {run_id!r} in {self.path}")
        raise TrackingError(f"run ID prefix {run_id!r} matches {len(rows)} runs; give more characters")

    def list(self, experiment: str | None = None, limit: int | None = None) -> list[RunRecord]:
        """Runs, newest first."""
        query, args = "SELECT * FROM runs", []
        if experiment:
            query, args = query + " WHERE experiment = ?", [experiment]
        query += " ORDER BY started_at DESC, run_id DESC"
        if limit:
            query, args = query + " LIMIT ?", [*args, limit]
        with self._connect() as conn:
            rows = conn.execute(query, args).fetchall()
        conn.close()
        return [self._record(r) for r in rows]


def _vertex_params(run: RunRecord) -> dict[str, str | float | int]:
    """Parameters as Vertex AI Experiments accepts them (strings and numbers), plus data and code facts."""
    params: dict[str, str | float | int] = {}
    for key, value in run.params.items():
        if isinstance(value, bool):
            params[key] = str(value).lower()
        elif isinstance(value, (int, float, str)):
            params[key] = value
        elif value is not None:
            params[key] = json.dumps(value)
    fingerprint = run.data.get("fingerprint") or {}
    params.update({"data_rows": fingerprint.get("rows", 0), "data_sha256": fingerprint.get("sha256", ""),
                   "git_sha": run.code.get("git_sha") or ""})
    if run.artifact_uri:
        params["artifact_uri"] = run.artifact_uri
    return params


class VertexExperiment:
    """Logs runs to Vertex AI Experiments with the aiplatform SDK.

    Args:
        config: Experiment, project, location and endpoint.
        credentials: Google credentials (default: application default credentials).
    """

    def __init__(self, config: TrackingConfig, credentials: Any = None):
        self.config = config
        self.credentials = credentials

    def start(self, run: RunRecord) -> None:
        """Creates the experiment (if needed) and the run, and logs the parameters.

        Raises:
            TrackingError: Vertex AI refused or could not be reached.
        """
        from google.cloud import aiplatform

        options: dict[str, Any] = {}
        if self.config.api_endpoint:
            options = {"api_endpoint": self.config.api_endpoint, "api_transport": "rest"}
        try:
            aiplatform.init(project=self.config.project, location=self.config.location,
                            experiment=self.config.experiment, experiment_tensorboard=False,
                            credentials=self.credentials, **options)
            aiplatform.start_run(run.run_id)
            aiplatform.log_params(_vertex_params(run))
        except Exception as exc:  # noqa: BLE001 (the SDK raises API, auth and value errors alike)
            raise TrackingError(f"Vertex AI Experiments ({self.config.experiment}): {exc}") from exc

    def finish(self, run: RunRecord) -> None:
        """Logs the final parameters, the metrics and the artifact location, then ends the run (complete or failed).

        Raises:
            TrackingError: Vertex AI refused or could not be reached.
        """
        from google.cloud import aiplatform
        from google.cloud.aiplatform.compat.types import execution as execution_types

        state = execution_types.Execution.State
        try:
            aiplatform.log_params(_vertex_params(run))
            if run.metrics:
                aiplatform.log_metrics({k: float(v) for k, v in run.metrics.items()})
            aiplatform.end_run(state=state.COMPLETE if run.status == "finished" else state.FAILED)
        except Exception as exc:  # noqa: BLE001
            raise TrackingError(f"Vertex AI Experiments ({self.config.experiment}): {exc}") from exc

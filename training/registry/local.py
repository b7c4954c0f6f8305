"""The local registry: SQLite plus an artifact store directory, in the state directory.

Layout (``ROOT`` is ``<state dir>/registry``)::

    ROOT/registry.db                      versions, aliases, promotion_log
    ROOT/artifacts/<name>/<version>/      one verified artifact directory per version (read-only files)

Atomicity and concurrency: every change runs in one ``BEGIN IMMEDIATE`` transaction, which
takes SQLite's write lock before reading anything, so registrations and promotions from several
processes are serialised (each sees the previous one's champion and versions). Within it the
artifacts are staged in ``ROOT/artifacts/.staging-*``, verified, renamed into place, and only
then is the row inserted; the commit makes version, alias and log entry visible together. A
crash before the commit leaves at most a directory without a row: nothing reads it (every read
goes through the database), and the next change sweeps it away while it holds the lock. The
``(name, version)`` unique key and the ``(name, alias)`` primary key make a duplicate version
or a second champion impossible, whatever happens.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from predictor.artifacts import MANIFEST_FILE, ArtifactError, sha256_file, verify
from training.errors import RegistryError
from training.registry.base import (
    CHAMPION,
    STAGING_PREFIX,
    ModelVersion,
    PromotionEvent,
    Registry,
    Session,
    load_model_at,
    sort_versions,
)

if TYPE_CHECKING:
    from predictor.model import LeadScoringModel

DB_FILE = "registry.db"
ARTIFACTS_DIR = "artifacts"
SCHEMA_VERSION = 1
# Registrations wait for each other; one holds the lock while it copies and scores (seconds).
LOCK_TIMEOUT_SECONDS = 300.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS versions (
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    artifact_path TEXT NOT NULL,  -- relative to the registry directory, which may move
    manifest_sha256 TEXT NOT NULL,
    created_at TEXT NOT NULL,
    metrics TEXT NOT NULL,
    data_fingerprint TEXT,
    run_id TEXT,
    params TEXT NOT NULL,
    schema TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS aliases (
    name TEXT NOT NULL,
    alias TEXT NOT NULL,
    version TEXT NOT NULL,
    PRIMARY KEY (name, alias),
    FOREIGN KEY (name, version) REFERENCES versions (name, version)
);
CREATE TABLE IF NOT EXISTS promotion_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    action TEXT NOT NULL,
    version TEXT NOT NULL,
    previous_champion TEXT,
    challenger_rmse REAL,
    champion_rmse REAL,
    rows INTEGER,
    ci_low REAL,
    ci_high REAL,
    reason TEXT NOT NULL,
    at TEXT NOT NULL,
    user TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS promotion_log_no_update BEFORE UPDATE ON promotion_log
BEGIN SELECT RAISE(ABORT, 'the promotion log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS promotion_log_no_delete BEFORE DELETE ON promotion_log
BEGIN SELECT RAISE(ABORT, 'the promotion log is append-only'); END;
"""


class LocalRegistry(Registry):
    """The embedded registry (the default backend).

    Args:
        root: The registry directory, normally ``training.state.home_dir() / "registry"``.
    """

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)

    @property
    def location(self) -> Path:
        """The registry directory as an absolute path (stored paths are relative to it)."""
        return self.root.resolve()

    @property
    def store(self) -> Path:
        """The artifact store directory."""
        return self.root / ARTIFACTS_DIR

    # Reads ---------------------------------------------------------------------------------------

    def versions(self, name: str | None = None) -> list[ModelVersion]:
        with self._connect() as conn:
            return sort_versions(_read_versions(conn, name, self.location))

    def history(self, name: str | None = None) -> list[PromotionEvent]:
        with self._connect() as conn:
            return _read_history(conn, name)

    def verify(self, version: ModelVersion) -> dict[str, Any]:
        """Checks the stored directory against its manifest, and the manifest against the database.

        The second check catches a directory replaced wholesale (with a manifest of its own).
        """
        path = Path(version.artifact_uri)
        try:
            manifest = verify(path)
        except ArtifactError as exc:
            raise ArtifactError(f"{version.ref} failed verification and will not be served: {exc}") from exc
        with self._connect() as conn:
            row = conn.execute("SELECT manifest_sha256 FROM versions WHERE name = ? AND version = ?",
                               (version.name, version.version)).fetchone()
        if row is None or sha256_file(path / MANIFEST_FILE) != row["manifest_sha256"]:
            raise ArtifactError(f"{version.ref} failed verification and will not be served: its manifest is not "
                                f"the one registered (the directory {path} was replaced)")
        return manifest

    def load_model(self, version: ModelVersion) -> LeadScoringModel:
        self.verify(version)
        return load_model_at(version.artifact_uri)

    # Changes -------------------------------------------------------------------------------------

    @contextmanager
    def _session(self, name: str) -> Iterator[Session]:
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            session = _LocalSession(self, conn, name)
            try:
                self._sweep(conn)
                yield session
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                for path in session.moved:  # a directory whose row was rolled back
                    shutil.rmtree(path, ignore_errors=True)
                raise

    def _sweep(self, conn: sqlite3.Connection) -> None:
        """Removes what a crashed change left behind: staging directories and version
        directories without a row. Safe only under the write lock (every rename happens under it)."""
        if not self.store.is_dir():
            return
        registered = {self.root / row["artifact_path"] for row in conn.execute("SELECT artifact_path FROM versions")}
        for entry in self.store.iterdir():
            if entry.name.startswith(STAGING_PREFIX):
                shutil.rmtree(entry, ignore_errors=True)
            elif entry.is_dir():
                for version_dir in entry.iterdir():
                    if version_dir not in registered:
                        shutil.rmtree(version_dir, ignore_errors=True)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self.root.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE), never implicit.
        conn = sqlite3.connect(self.root / DB_FILE, timeout=LOCK_TIMEOUT_SECONDS, isolation_level=None)
        conn.row_factory = sqlite3.Row
        try:
            conn.execute("PRAGMA foreign_keys = ON")
            if conn.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
                _create_schema(conn)
            yield conn
        finally:
            conn.close()


def _create_schema(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in _split_sql(_SCHEMA):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _split_sql(script: str) -> list[str]:
    """Statements of a script (triggers contain ``;`` inside ``BEGIN … END``)."""
    statements, current = [], ""
    for line in script.strip().splitlines():
        current += line + "\n"
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    return statements


class _LocalSession(Session):
    """A change inside the registry's ``BEGIN IMMEDIATE`` transaction."""

    def __init__(self, registry: LocalRegistry, conn: sqlite3.Connection, name: str):
        self.registry = registry
        self.conn = conn
        self.name = name
        self.moved: list[Path] = []

    def versions(self) -> list[ModelVersion]:
        return sort_versions(_read_versions(self.conn, self.name, self.registry.location))

    def history(self) -> list[PromotionEvent]:
        return _read_history(self.conn, self.name)

    def staging_dir(self) -> Path:
        return self.registry.store

    def add_version(self, staged: Path, record: ModelVersion, champion: bool) -> ModelVersion:
        final = self.registry.store / record.name / record.version
        if final.exists():
            raise RegistryError(f"{final} exists although {record.ref} is not registered")
        for path in staged.rglob("*"):
            if path.is_file():  # stored versions are immutable
                path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        final.parent.mkdir(parents=True, exist_ok=True)
        staged.rename(final)
        self.moved.append(final)
        self.conn.execute(
            "INSERT INTO versions (name, version, artifact_path, manifest_sha256, created_at, metrics, "
            "data_fingerprint, run_id, params, schema) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (record.name, record.version, final.relative_to(self.registry.root).as_posix(),
             sha256_file(final / MANIFEST_FILE), record.created_at,
             json.dumps(record.metrics), record.data_fingerprint, record.run_id, json.dumps(record.params),
             json.dumps(record.schema)),
        )
        added = replace(record, artifact_uri=str(self.registry.location / final.relative_to(self.registry.root)))
        if champion:
            self.move_champion(added)
            added = replace(added, aliases=(CHAMPION,))
        return added

    def move_champion(self, version: ModelVersion) -> None:
        self.conn.execute(
            "INSERT INTO aliases (name, alias, version) VALUES (?, ?, ?) "
            "ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version",
            (version.name, CHAMPION, version.version),
        )

    def append(self, event: PromotionEvent) -> PromotionEvent:
        ci_low, ci_high = event.improvement_ci or (None, None)
        cursor = self.conn.execute(
            "INSERT INTO promotion_log (name, action, version, previous_champion, challenger_rmse, champion_rmse, "
            "rows, ci_low, ci_high, reason, at, user) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (event.name, event.action, event.version, event.previous_champion, event.challenger_rmse,
             event.champion_rmse, event.rows, ci_low, ci_high, event.reason, event.at, event.user),
        )
        return replace(event, seq=cursor.lastrowid)


def _read_versions(conn: sqlite3.Connection, name: str | None, root: Path) -> list[ModelVersion]:
    where, args = ("WHERE name = ?", (name,)) if name else ("", ())
    aliases: dict[tuple[str, str], list[str]] = {}
    for row in conn.execute(f"SELECT name, alias, version FROM aliases {where}", args):
        aliases.setdefault((row["name"], row["version"]), []).append(row["alias"])
    return [
        ModelVersion(
            name=row["name"],
            version=row["version"],
            artifact_uri=str(root / row["artifact_path"]),
            aliases=tuple(sorted(aliases.get((row["name"], row["version"]), []))),
            metrics=json.loads(row["metrics"]),
            data_fingerprint=row["data_fingerprint"],
            run_id=row["run_id"],
            params=json.loads(row["params"]),
            schema=json.loads(row["schema"]),
            created_at=row["created_at"],
        )
        for row in conn.execute(f"SELECT * FROM versions {where}", args)
    ]


def _read_history(conn: sqlite3.Connection, name: str | None) -> list[PromotionEvent]:
    where, args = ("WHERE name = ?", (name,)) if name else ("", ())
    return [
        PromotionEvent(
            name=row["name"], action=row["action"], version=row["version"],
            previous_champion=row["previous_champion"], challenger_rmse=row["challenger_rmse"],
            champion_rmse=row["champion_rmse"], rows=row["rows"],
            improvement_ci=(row["ci_low"], row["ci_high"]) if row["ci_low"] is not None else None,
            reason=row["reason"], at=row["at"], user=row["user"], seq=row["seq"],
        )
        for row in conn.execute(f"SELECT * FROM promotion_log {where} ORDER BY seq", args)
    ]

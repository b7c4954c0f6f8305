"""The monitoring history: every alert and action with its evidence, in SQLite in the state directory."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from training.state import home_dir

HISTORY_FILE = "monitor.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    model TEXT NOT NULL,
    status TEXT NOT NULL,
    summary TEXT NOT NULL,
    evidence TEXT NOT NULL
)
"""


@dataclass
class Event:
    """One recorded alert or action.

    Attributes:
        kind: ``alert`` or ``action``.
        name: ``drift`` or ``degradation`` for alerts; ``retrain`` or ``rollback`` for actions.
        model: The monitored model reference.
        status: What happened: ``sent``, ``not sent``, ``webhook failed`` (alerts);
            ``started``, ``done``, ``failed`` (actions).
        summary: One line for people.
        evidence: The measurements and outcomes behind it (JSON-ready).
        time: ISO 8601 UTC; now when not given.
        id: Row id once recorded.
    """

    kind: str
    name: str
    model: str
    status: str
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)
    time: str = ""
    id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"id": self.id, "time": self.time, "kind": self.kind, "name": self.name, "model": self.model,
                "status": self.status, "summary": self.summary, "evidence": self.evidence}


class History:
    """The event log in ``<state dir>/monitor.sqlite`` (or another path)."""

    def __init__(self, path: Path | None = None):
        self.path = Path(path) if path is not None else home_dir() / HISTORY_FILE

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=30)
        connection.execute(_SCHEMA)
        return connection

    def record(self, event: Event) -> Event:
        """Stores an event and returns it with its id and time."""
        event.time = event.time or datetime.now(timezone.utc).isoformat(timespec="seconds")
        with closing(self._connect()) as connection, connection:
            cursor = connection.execute(
                "INSERT INTO events (time, kind, name, model, status, summary, evidence) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (event.time, event.kind, event.name, event.model, event.status, event.summary,
                 json.dumps(event.evidence, default=str, allow_nan=True)),
            )
            event.id = cursor.lastrowid
        return event

    def events(self, limit: int = 50, kind: str | None = None) -> list[Event]:
        """The most recent events, newest first."""
        if not self.path.exists():
            return []
        query = "SELECT id, time, kind, name, model, status, summary, evidence FROM events"
        params: list[Any] = []
        if kind:
            query += " WHERE kind = ?"
            params.append(kind)
        query += " ORDER BY id DESC LIMIT ?"
        params.append(limit)
        with closing(self._connect()) as connection:
            rows = connection.execute(query, params).fetchall()
        return [Event(id=r[0], time=r[1], kind=r[2], name=r[3], model=r[4], status=r[5], summary=r[6],
                      evidence=json.loads(r[7])) for r in rows]

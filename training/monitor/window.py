"""A serving window: the leads a model saw, from a prediction log or a table of leads.

One reader for both prediction-log sinks. The local JSONL log (``predictor/prediction_log.py``)
and Vertex AI's request-response logging table in BigQuery have the same columns
(``endpoint``, ``deployed_model_id``, ``logging_time``, ``request_id``, ``request_payload``,
``response_payload``); :func:`window_from_log_rows` turns rows of either into one row per
instance.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd

from predictor.prediction_log import FILE_PREFIX, FILE_SUFFIX
from training.errors import MonitorError, SourceError

log = logging.getLogger(__name__)

LOGGED_PREDICTION = "logged_prediction"
LOGGING_TIME = "logging_time"
REQUEST_ID = "request_id"
# Columns the log adds to the instances' own fields.
LOG_META_COLUMNS = (LOGGED_PREDICTION, LOGGING_TIME, REQUEST_ID)


@dataclass
class Window:
    """Serving inputs to compare with the training profile.

    Attributes:
        frame: One row per scored lead: the raw fields as sent (feature columns, ids such as
            ``lead_id``) and, for a prediction log, ``logged_prediction``, ``logging_time`` and
            ``request_id``.
        source: Where the window came from.
        requests: Logged requests read (0 for a table of leads).
        model_versions: For a log, how many instances each model version (or deployed model) scored.
        skipped_lines: Log lines that could not be parsed (a line cut short by a crash).
    """

    frame: pd.DataFrame
    source: str
    requests: int = 0
    model_versions: dict[str, int] = field(default_factory=dict)
    skipped_lines: int = 0

    @property
    def rows(self) -> int:
        """Number of leads in the window."""
        return len(self.frame)


def _payload_items(value: Any) -> list[Any]:
    """The decoded elements of a payload column: BigQuery's repeated string, our list, or one string."""
    if value is None:
        return []
    if isinstance(value, (str, bytes)):
        value = [value]
    items = []
    for element in list(value):
        if isinstance(element, (str, bytes)):
            try:
                element = json.loads(element)
            except json.JSONDecodeError:
                continue
        items.append(element)
    return items


def _instances(request_items: list[Any]) -> list[Any]:
    instances: list[Any] = []
    for item in request_items:
        if isinstance(item, Mapping) and isinstance(item.get("instances"), list):
            instances.extend(item["instances"])
        elif isinstance(item, list):
            instances.extend(item)
        else:
            instances.append(item)  # one instance per element
    return instances


def _predictions(response_items: list[Any]) -> tuple[list[Any], str | None]:
    predictions: list[Any] = []
    version = None
    for item in response_items:
        if isinstance(item, Mapping) and isinstance(item.get("predictions"), list):
            predictions.extend(item["predictions"])
            version = item.get("model_version", version)
        elif isinstance(item, list):
            predictions.extend(item)
        else:
            predictions.append(item)
    return predictions, version


def _score(prediction: Any) -> float:
    """A prediction's score: a number, or the ``score`` of an explained prediction."""
    if isinstance(prediction, Mapping):
        prediction = prediction.get("score")
    try:
        return float(prediction)
    except (TypeError, ValueError):
        return float("nan")


def window_from_log_rows(rows: Iterable[Mapping[str, Any]], source: str, since: datetime | None = None) -> Window:
    """Expands prediction-log rows (local JSONL or the Vertex BigQuery table) into a window.

    Args:
        rows: Rows with the request-response logging columns.
        source: Where the rows come from (for messages and reports).
        since: Keep only rows logged at or after this time.

    Returns:
        One row per instance; ``logged_prediction`` is NaN where the response did not hold
        one prediction per instance.
    """
    records: list[dict[str, Any]] = []
    versions: Counter[str] = Counter()
    requests = 0
    for row in rows:
        logged_at = _timestamp(row.get(LOGGING_TIME))
        if since is not None and logged_at is not None and logged_at < since:
            continue
        requests += 1
        instances = _instances(_payload_items(row.get("request_payload")))
        predictions, version = _predictions(_payload_items(row.get("response_payload")))
        aligned = len(predictions) == len(instances)
        model = str(version or row.get("deployed_model_id") or "unknown")
        for i, instance in enumerate(instances):
            if not isinstance(instance, Mapping):
                continue
            record = dict(instance)
            record[LOGGED_PREDICTION] = _score(predictions[i]) if aligned else float("nan")
            record[LOGGING_TIME] = logged_at
            record[REQUEST_ID] = _request_id(row.get(REQUEST_ID))
            records.append(record)
            versions[model] += 1
    frame = pd.DataFrame.from_records(records) if records else pd.DataFrame(columns=list(LOG_META_COLUMNS))
    return Window(frame=frame, source=source, requests=requests, model_versions=dict(versions))


def _request_id(value: Any) -> str | None:
    """The id as text: Vertex's NUMERIC ids arrive as Decimal('1000.000000000') through Arrow."""
    if value is None:
        return None
    if isinstance(value, (Decimal, float)) and value == int(value):
        return str(int(value))
    return str(value)


def _timestamp(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        stamp = value
    else:
        try:
            stamp = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)


def log_files(path: Path) -> list[Path]:
    """The prediction-log files at ``path`` (a log directory or one file), oldest first."""
    if path.is_dir():
        files = [p for p in path.glob(f"{FILE_PREFIX}*{FILE_SUFFIX}*") if p.is_file()]
        return sorted(files, key=lambda p: p.stat().st_mtime)
    return [path]


def _jsonl_rows(files: list[Path], skipped: list[int]) -> Iterator[dict[str, Any]]:
    for path in files:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    skipped[0] += 1
                    continue
                if isinstance(row, dict):
                    yield row


def load_window(source: str, since: datetime | None = None, bigquery_client: Any = None) -> Window:
    """Reads a serving window.

    Args:
        source: A prediction-log directory or ``.jsonl`` file (``leadscore serve`` logs to
            ``<state dir>/predictions``); or any data source (a CSV/Parquet of leads,
            ``bq://project.dataset.table``, ``duckdb:///file.db?table=NAME``). A table with the
            request-response logging columns (Vertex AI's logging table) is read as a prediction log.
        since: Keep only rows logged at or after this time (a table needs a ``logging_time`` column).
        bigquery_client: The client for a ``bq://`` source; the default one when None.

    Raises:
        MonitorError: The source holds no leads.
        training.errors.SourceError: The source cannot be read.
    """
    from training.sources import IngestOptions, ingest
    from training.sources import Window as TimeWindow

    path = Path(source)
    if "://" not in source and (path.is_dir() or FILE_SUFFIX in path.name):
        files = log_files(path)
        if not files or not all(p.is_file() for p in files):
            raise SourceError(f"{source}: no prediction log here (expected {FILE_PREFIX}*{FILE_SUFFIX} files)")
        skipped = [0]
        window = window_from_log_rows(_jsonl_rows(files, skipped), source, since)
        window.skipped_lines = skipped[0]
        if skipped[0]:
            log.warning("%s: skipped %d unreadable log line(s)", source, skipped[0])
    else:
        # The data sources' one ingestion query; ``since`` becomes its WHERE clause, so BigQuery
        # reads only the recent part of a logging table.
        options = IngestOptions(window=TimeWindow(LOGGING_TIME, start=since)) if since else IngestOptions()
        table = ingest(source, options, bigquery_client=bigquery_client)
        if {"request_payload", "response_payload"} <= set(table.column_names):
            window = window_from_log_rows(table.to_pylist(), source)
        else:
            window = Window(frame=table.to_pandas(), source=source)
    if window.rows == 0:
        raise MonitorError(f"{source}: the window holds no leads" + (f" logged since {since:%Y-%m-%d %H:%M}" if since else ""))
    return window

"""Sampled request/response logging for drift and performance monitoring.

The serving process logs a random sample of requests (and their responses) to JSONL files in
``LEADSCORE_PREDICTION_LOG_DIR``. Each line has exactly the columns of the BigQuery table that
Vertex AI's endpoint request-response logging writes (``endpoint``, ``deployed_model_id``,
``logging_time``, ``request_id``, ``request_payload``, ``response_payload``; the payloads are
arrays of JSON strings), so ``leadscore monitor`` reads a local log and the Vertex table with
one reader.

Logging must never slow down or fail a request, and must never fill the disk:

- the request thread only samples and ``put_nowait``\\s onto a bounded queue; when the queue is
  full the record is dropped and counted (:attr:`PredictionLogger.dropped`);
- one background thread wakes every ``flush_seconds`` (0.5 s), serialises what is queued and
  writes it in one go, so the request thread neither serialises nor waits for a wake-up;
- files rotate by size (``RotatingFileHandler``), each serving process writing its own file
  (uvicorn may run several workers); after every rotation, and at start-up, the oldest files of
  the directory are deleted until the others' total is at most ``keep * max_bytes``, so files
  left by earlier processes count too and the directory stays bounded across restarts.

Configuration comes from the environment, as everything in a serving container:

``LEADSCORE_PREDICTION_LOG_DIR``
    Where the log goes. Unset means no logging (the default inside the Vertex serving image, where
    the endpoint's own request-response logging to BigQuery is the sink); ``leadscore serve`` sets
    it to ``<state dir>/predictions``.
``LEADSCORE_PREDICTION_LOG_RATE``
    Share of requests logged, 0..1 (default 0.8, the seed's rate); 0 turns logging off.
``LEADSCORE_PREDICTION_LOG_MAX_BYTES`` / ``LEADSCORE_PREDICTION_LOG_KEEP``
    Rotation size (default 10 MiB) and how many files' worth of older logs are kept (default 5).
"""

from __future__ import annotations

import atexit
import json
import logging
import logging.handlers
import os
import queue
import random
import socket
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

DIR_ENV = "LEADSCORE_PREDICTION_LOG_DIR"
RATE_ENV = "LEADSCORE_PREDICTION_LOG_RATE"
MAX_BYTES_ENV = "LEADSCORE_PREDICTION_LOG_MAX_BYTES"
KEEP_ENV = "LEADSCORE_PREDICTION_LOG_KEEP"
DEFAULT_RATE = 0.8
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_KEEP = 5
DEFAULT_QUEUE_SIZE = 10_000
DEFAULT_FLUSH_SECONDS = 0.5
BATCH = 500
FILE_PREFIX = "predictions-"
FILE_SUFFIX = ".jsonl"

# The columns of Vertex AI's request-response logging table, in its order.
LOG_COLUMNS = ("endpoint", "deployed_model_id", "logging_time", "request_id", "request_payload", "response_payload")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PredictionLogConfig:
    """Where and how much to log.

    Attributes:
        directory: The log directory.
        rate: Share of requests logged (0..1).
        max_bytes: Size at which a file is rotated.
        keep: Rotated files kept per serving process.
        queue_size: Records waiting to be written before new ones are dropped.
        flush_seconds: How often the writer thread writes what is queued.
    """

    directory: Path
    rate: float = DEFAULT_RATE
    max_bytes: int = DEFAULT_MAX_BYTES
    keep: int = DEFAULT_KEEP
    queue_size: int = DEFAULT_QUEUE_SIZE
    flush_seconds: float = DEFAULT_FLUSH_SECONDS

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> PredictionLogConfig | None:
        """The configuration the environment asks for, or None when logging is off.

        Raises:
            ValueError: A variable is set to something that is not a number in range.
        """
        env = os.environ if environ is None else environ
        directory = env.get(DIR_ENV)
        if not directory:
            return None
        rate = float(env.get(RATE_ENV, DEFAULT_RATE))
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"{RATE_ENV}={rate}: expected a share between 0 and 1")
        if rate == 0.0:
            return None
        max_bytes = int(env.get(MAX_BYTES_ENV, DEFAULT_MAX_BYTES))
        keep = int(env.get(KEEP_ENV, DEFAULT_KEEP))
        if max_bytes <= 0 or keep < 0:
            raise ValueError(f"{MAX_BYTES_ENV} must be positive and {KEEP_ENV} non-negative")
        return cls(directory=Path(directory), rate=rate, max_bytes=max_bytes, keep=keep)


def _line(columns: dict[str, Any]) -> str:
    """One JSONL line; the payloads become one-element arrays of JSON strings, as in BigQuery."""
    columns = dict(columns)
    columns["request_payload"] = [json.dumps(columns["request_payload"], default=str)]
    columns["response_payload"] = [json.dumps(columns["response_payload"], default=str)]
    return json.dumps(columns, default=str)


def prune(directory: Path, budget: int, keep_path: Path) -> None:
    """Deletes the oldest log files of ``directory`` until all but ``keep_path`` fit in ``budget`` bytes."""
    others = []
    for path in directory.glob(f"{FILE_PREFIX}*{FILE_SUFFIX}*"):
        if path == keep_path:
            continue
        try:
            stat = path.stat()
        except FileNotFoundError:  # another worker pruned it first
            continue
        others.append((stat.st_mtime, stat.st_size, path))
    total = 0
    for _, size, path in sorted(others, reverse=True):
        total += size
        if total > budget:
            path.unlink(missing_ok=True)


class _RotatingHandler(logging.handlers.RotatingFileHandler):
    """Size-based rotation that also bounds the whole directory (see :func:`prune`)."""

    def __init__(self, path: Path, max_bytes: int, keep: int):
        super().__init__(path, maxBytes=max_bytes, backupCount=keep, encoding="utf-8", delay=True)
        self._budget = max_bytes * keep
        prune(path.parent, self._budget, path)

    def doRollover(self) -> None:
        super().doRollover()
        prune(Path(self.baseFilename).parent, self._budget, Path(self.baseFilename))


class PredictionLogger:
    """Samples requests and writes them to rotating JSONL files from a background thread.

    Attributes:
        config: The configuration.
        path: The file this process writes (rotated copies get ``.1``, ``.2``... appended).
        logged: Records queued for writing.
        dropped: Records dropped because the queue was full.
    """

    def __init__(self, config: PredictionLogConfig, endpoint: str, deployed_model_id: str):
        self.config = config
        self.endpoint = endpoint
        self.deployed_model_id = deployed_model_id
        self.logged = 0
        self.dropped = 0
        self._random = random.Random()
        self._lock = threading.Lock()
        config.directory.mkdir(parents=True, exist_ok=True)
        self.path = config.directory / f"{FILE_PREFIX}{socket.gethostname()}-{os.getpid()}{FILE_SUFFIX}"
        self._handler = _RotatingHandler(self.path, config.max_bytes, config.keep)
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=config.queue_size)
        self._stop = threading.Event()
        self._writer = threading.Thread(target=self._run, name="prediction-log-writer", daemon=True)
        self._writer.start()
        atexit.register(self.close)

    def log(self, request: Any, response: Any, request_id: str | None = None) -> bool:
        """Queues one request/response pair if it falls in the sample; never blocks or raises.

        Args:
            request: The decoded request body.
            response: The response body.
            request_id: The request's id; a random UUID when not given.

        Returns:
            True when the pair was queued for writing.
        """
        try:
            if self._random.random() >= self.config.rate:
                return False
            columns = {
                "endpoint": self.endpoint,
                "deployed_model_id": self.deployed_model_id,
                "logging_time": datetime.now(timezone.utc).isoformat(timespec="microseconds"),
                "request_id": request_id or uuid.uuid4().hex,
                "request_payload": request,
                "response_payload": response,
            }
            self._queue.put_nowait(columns)
        except queue.Full:
            with self._lock:
                self.dropped += 1
            return False
        except Exception:  # logging must never fail a request
            log.exception("prediction logging failed")
            return False
        with self._lock:
            self.logged += 1
        return True

    def _run(self) -> None:
        # Wake up on a timer, not per record: a request only appends to the queue, and the
        # writer's work (serialising, writing, flushing) is batched.
        while not self._stop.wait(self.config.flush_seconds):
            self._drain()
        self._drain()

    def _drain(self) -> None:
        """Writes everything queued, in batches of at most :data:`BATCH` lines."""
        while True:
            batch: list[dict[str, Any]] = []
            try:
                while len(batch) < BATCH:
                    batch.append(self._queue.get_nowait())
            except queue.Empty:
                pass
            chunk: list[str] = []
            size = 0
            for line in map(_line, batch):
                if chunk and size + len(line) + 1 > self.config.max_bytes:
                    self._write(chunk)
                    chunk, size = [], 0
                chunk.append(line)
                size += len(line) + 1
            if chunk:
                self._write(chunk)
            if len(batch) < BATCH:
                return

    def _write(self, lines: list[str]) -> None:
        # One record per chunk (never above max_bytes unless one line is): the handler rotates,
        # prunes, writes and flushes once per chunk.
        self._handler.handle(logging.makeLogRecord({"msg": "\n".join(lines), "levelno": logging.INFO}))

    def close(self) -> None:
        """Writes what is queued and closes the file (idempotent; also runs at exit)."""
        if not self._stop.is_set():
            self._stop.set()
            self._writer.join()
            self._handler.close()
        atexit.unregister(self.close)


def open_prediction_log(model_id: str) -> PredictionLogger | None:
    """The logger the environment asks for, or None when logging is off.

    Args:
        model_id: What identifies the model in the log when ``AIP_DEPLOYED_MODEL_ID`` is unset
            (``name@version``). ``endpoint`` is ``AIP_ENDPOINT_ID``, or ``local``.

    A misconfiguration is logged and turns logging off: it must not stop the server.
    """
    try:
        config = PredictionLogConfig.from_env()
        if config is None:
            return None
        logger = PredictionLogger(
            config,
            endpoint=os.environ.get("AIP_ENDPOINT_ID") or "local",
            deployed_model_id=os.environ.get("AIP_DEPLOYED_MODEL_ID") or model_id,
        )
    except (ValueError, OSError) as exc:
        log.error("prediction logging is off: %s", exc)
        return None
    log.info("logging %.0f%% of requests to %s", config.rate * 100, logger.path)
    return logger

"""Actions a monitoring check can take: start a retraining run, roll the champion back."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from predictor.artifacts import ArtifactError
from training.errors import LeadscoreError
from training.state import home_dir

RETRAIN_COMMAND_ENV = "LEADSCORE_RETRAIN_COMMAND"
TRIGGER_ENV = "LEADSCORE_TRIGGER"
EVIDENCE_ENV = "LEADSCORE_TRIGGER_EVIDENCE"


def default_retrain_command() -> list[str]:
    """The pipeline's main job: ``leadscore run`` with this interpreter."""
    return [sys.executable, "-m", "training", "run"]


def retrain_command() -> list[str]:
    """``$LEADSCORE_RETRAIN_COMMAND`` (split like a shell would) or :func:`default_retrain_command`."""
    configured = os.environ.get(RETRAIN_COMMAND_ENV)
    return shlex.split(configured) if configured else default_retrain_command()


@dataclass
class ActionResult:
    """What an action did.

    Attributes:
        name: ``retrain`` or ``rollback``.
        ok: It was carried out (for retrain: the job was started).
        summary: One line for people.
        details: Command, process id, log file, registry outcome...
    """

    name: str
    ok: bool
    summary: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def start_retrain(trigger: str, evidence: dict[str, Any], command: list[str] | None = None,
                  workdir: Path | None = None) -> ActionResult:
    """Starts the retraining job in the background and returns at once.

    The job gets ``LEADSCORE_TRIGGER`` (why it runs) and ``LEADSCORE_TRIGGER_EVIDENCE`` (a JSON
    file with the measurements) in its environment; its output goes to a log file next to the
    evidence in ``<state dir>/monitor/``.

    Args:
        trigger: Why (``drift``).
        evidence: The measurements that triggered it.
        command: The command; :func:`retrain_command` when None.
        workdir: Where evidence and log go; ``<state dir>/monitor`` when None.

    Returns:
        The outcome; ``ok`` is False when the command could not be started.
    """
    command = command or retrain_command()
    folder = workdir or home_dir() / "monitor"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    evidence_path = folder / f"retrain-{stamp}.evidence.json"
    log_path = folder / f"retrain-{stamp}.log"
    evidence_path.write_text(json.dumps(evidence, indent=2, default=str))
    env = {**os.environ, TRIGGER_ENV: trigger, EVIDENCE_ENV: str(evidence_path.absolute())}
    details: dict[str, Any] = {"command": command, "log": str(log_path), "evidence_file": str(evidence_path)}
    try:
        with open(log_path, "wb") as log_file:
            process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       env=env, start_new_session=True)
    except OSError as exc:
        return ActionResult("retrain", False, f"could not start {shlex.join(command)}: {exc}", details)
    details["pid"] = process.pid
    return ActionResult("retrain", True, f"started {shlex.join(command)} (pid {process.pid}, log {log_path})", details)


def rollback_champion(model_name: str, reason: str) -> ActionResult:
    """Rolls the champion of ``model_name`` back to the previous champion through the model registry.

    The registry (local, or Vertex AI Model Registry with ``LEADSCORE_REGISTRY=vertex``) moves the
    ``champion`` alias and logs the rollback with ``reason``; a failure (no champion, nothing to
    roll back to, artifacts that do not verify) is returned, not raised, so that it is recorded.
    """
    from training.registry import open_registry

    try:
        registration = open_registry().rollback(model_name, reason=reason)
    except (LeadscoreError, ArtifactError) as exc:
        return ActionResult("rollback", False, f"rollback of {model_name} failed: {exc}")
    event = registration.event
    return ActionResult(
        "rollback", True,
        f"champion of {model_name} rolled back from {event.previous_champion} to {registration.version.version}",
        {"registration": registration.to_dict()},
    )

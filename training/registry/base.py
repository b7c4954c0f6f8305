"""The model registry interface, its records, and the registration/promotion logic both backends share.

A backend provides reads (:meth:`Registry.versions`, :meth:`Registry.history`), artifact checks
(:meth:`Registry.verify`, :meth:`Registry.load_model`) and a :class:`Session`: a consistent view of
one model's entries in which a change is made. Everything else (choosing the version number,
the champion/challenger decision, rollback targets, the promotion log) is written once, here.
"""

from __future__ import annotations

import getpass
import os
import re
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import semantic_version

from predictor.artifacts import (
    METADATA_FILE,
    METRICS_FILE,
    ArtifactError,
    read_json,
    verify,
    write_json,
    write_manifest,
)
from training.errors import RegistryError
from training.registry.promotion import Decision, Holdout, PromotionPolicy
from training.registry.semver import assign_version

if TYPE_CHECKING:
    from predictor.model import LeadScoringModel

CHAMPION = "champion"
STAGING_PREFIX = ".staging-"
# Registry names become directory names and Vertex AI label values: keep them to what both accept.
NAME_PATTERN = re.compile(r"[a-z][a-z0-9-]{0,62}")

PROMOTE = "promote"
REJECT = "reject"
MANUAL_PROMOTE = "manual-promote"
ROLLBACK = "rollback"
REGISTER = "register"
# Actions that make a version champion on their own merit (a rollback only undoes one).
_PROMOTING = (PROMOTE, MANUAL_PROMOTE)


@dataclass(frozen=True)
class ModelVersion:
    """One registered version of a model.

    Attributes:
        name: The model name (``lead-scoring``).
        version: Its semantic version (``1.2.0``, or ``1.2.1-rc.1`` for a rejected challenger).
        artifact_uri: The stored artifact directory: a local path or ``gs://`` URI.
        aliases: Aliases pointing at it (``champion``; on Vertex AI also ``default``).
        metrics: Held-out metrics from ``metrics.json`` (rmse, mae, r2, rows).
        data_fingerprint: Fingerprint of the training data, when the run recorded one.
        run_id: Experiment run ID, when the run recorded one.
        params: Training hyperparameters.
        schema: Input schema: raw feature name → numeric, boolean or categorical.
        created_at: Registration time (UTC, ISO 8601).
        resource_name: The backend's own ID (Vertex AI ``projects/…/models/ID@VERSION``), if any.
    """

    name: str
    version: str
    artifact_uri: str
    aliases: tuple[str, ...] = ()
    metrics: dict[str, Any] = field(default_factory=dict)
    data_fingerprint: str | None = None
    run_id: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    schema: dict[str, str] = field(default_factory=dict)
    created_at: str = ""
    resource_name: str | None = None

    @property
    def is_champion(self) -> bool:
        """Whether this version carries the ``champion`` alias."""
        return CHAMPION in self.aliases

    @property
    def rmse(self) -> float | None:
        """The held-out RMSE its training run measured (on its own test rows)."""
        value = self.metrics.get("rmse")
        return None if value is None else float(value)

    @property
    def ref(self) -> str:
        """Its registry reference, ``name@version``."""
        return f"{self.name}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {**asdict(self), "aliases": list(self.aliases)}


@dataclass(frozen=True)
class PromotionEvent:
    """One entry of the append-only promotion log.

    Attributes:
        name: The model name.
        action: ``promote`` (a challenger won), ``reject`` (it lost; registered without the
            alias), ``manual-promote`` (a person moved the champion), ``rollback`` or ``register``
            (added without a comparison and without the alias, e.g. by ``leadscore deploy``).
        version: The version the decision is about: the new champion, or the rejected challenger.
        previous_champion: The champion before this event (None for the first model).
        challenger_rmse: RMSE of ``version``.
        champion_rmse: RMSE of ``previous_champion``.
        rows: Number of held-out rows both RMSEs come from; None when they are each version's
            recorded RMSE (manual promotion, rollback), which may come from different test sets.
        improvement_ci: Paired-bootstrap interval of ``champion_rmse - challenger_rmse``, when computed.
        reason: Why, in words.
        at: When (UTC, ISO 8601).
        user: Who (the OS user that ran the command).
        seq: Position in the log (assigned by the backend).
    """

    name: str
    action: str
    version: str
    previous_champion: str | None
    challenger_rmse: float | None
    champion_rmse: float | None
    rows: int | None
    reason: str
    improvement_ci: tuple[float, float] | None = None
    at: str = field(default_factory=lambda: utc_now())
    user: str = field(default_factory=lambda: current_user())
    seq: int | None = None

    @property
    def moves_champion(self) -> bool:
        """Whether the champion alias moved with this event."""
        return self.action not in (REJECT, REGISTER)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        payload = asdict(self)
        payload["improvement_ci"] = list(self.improvement_ci) if self.improvement_ci else None
        return payload

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> PromotionEvent:
        """Rebuilds an event from :meth:`to_dict` output."""
        ci = payload.get("improvement_ci")
        return cls(**{**payload, "improvement_ci": tuple(ci) if ci else None})


@dataclass(frozen=True)
class Registration:
    """The outcome of registering or promoting: the version and the log entry written for it."""

    version: ModelVersion
    event: PromotionEvent

    @property
    def promoted(self) -> bool:
        """Whether the version is champion now."""
        return self.event.moves_champion

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"version": self.version.to_dict(), "event": self.event.to_dict(), "promoted": self.promoted}


def load_model_at(uri: str | os.PathLike[str], **kwargs: Any) -> LeadScoringModel:
    """:meth:`LeadScoringModel.load`, imported on first use: XGBoost (and through it scikit-learn)
    takes a second to import, which listing or showing the registry need not pay."""
    from predictor.model import LeadScoringModel

    return LeadScoringModel.load(uri, **kwargs)


def utc_now() -> str:
    """The current UTC time, ISO 8601 with microseconds (log entries sort by it)."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def current_user() -> str:
    """The OS user, for the audit trail."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return str(os.getuid()) if hasattr(os, "getuid") else "unknown"


def parse_ref(ref: str) -> tuple[str, str]:
    """Splits ``name@selector`` (selector: an alias or a semantic version).

    Raises:
        RegistryError: The reference is not of that form.
    """
    name, at, selector = ref.partition("@")
    if not at or not name or not selector:
        raise RegistryError(f"{ref}: expected name@alias or name@1.2.3")
    return name, selector


def is_version(selector: str) -> bool:
    """Whether a ref's selector is a semantic version (``1.2.3``, ``1.2.4-rc.1``) rather than an alias."""
    try:
        semantic_version.Version(selector)
    except ValueError:
        return False
    return True


def champion_of(versions: list[ModelVersion]) -> ModelVersion | None:
    """The version carrying the champion alias, if any."""
    return next((v for v in versions if v.is_champion), None)


def select(versions: list[ModelVersion], name: str, selector: str) -> ModelVersion:
    """Picks ``name@selector`` from a model's versions.

    Raises:
        RegistryError: Nothing matches.
    """
    matcher: Callable[[ModelVersion], bool]
    if is_version(selector):
        wanted = semantic_version.Version(selector)
        matcher = lambda v: semantic_version.Version(v.version) == wanted  # noqa: E731
    else:
        matcher = lambda v: selector in v.aliases  # noqa: E731
    found = next((v for v in versions if matcher(v)), None)
    if found is None:
        known = ", ".join(v.version for v in versions) or "none"
        raise RegistryError(f"{name}@{selector}: no such version or alias (registered versions: {known})")
    return found


def sort_versions(versions: list[ModelVersion]) -> list[ModelVersion]:
    """Sorted by name, then semantic version (a pre-release before its release)."""
    return sorted(versions, key=lambda v: (v.name, semantic_version.Version(v.version)))


def rollback_target(history: list[PromotionEvent], champion: str) -> str:
    """The champion before ``champion`` became champion on its own merit.

    Rollbacks are skipped when looking for that promotion, so repeated rollbacks walk back
    through the promotion history (C → B → A) instead of flip-flopping between two versions.

    Raises:
        RegistryError: ``champion`` has no earlier champion to go back to.
    """
    for event in reversed(history):
        if event.action in _PROMOTING and event.version == champion:
            if event.previous_champion is None:
                break
            return event.previous_champion
    raise RegistryError(f"{champion} has no previous champion in the promotion log to roll back to; "
                        "name one with --to VERSION")


def check_name(name: str) -> str:
    """Checks a model name is usable as a directory name and a Vertex AI label value.

    Raises:
        RegistryError: It is not.
    """
    if not NAME_PATTERN.fullmatch(name):
        raise RegistryError(f"model name {name!r}: use lowercase letters, digits and dashes, starting with a letter "
                            "(at most 63 characters)")
    return name


def version_record(source: Path, version: str, metadata: dict[str, Any]) -> ModelVersion:
    """The facts a registry stores about a version, read from its artifact directory.

    The data fingerprint and run ID are optional in ``metadata.json`` (older runs lack them); of
    the fingerprint (``{"rows", "schema", "sha256"}``) the sha256 of the data is kept.
    """
    metrics_path = source / METRICS_FILE
    fingerprint = (metadata.get("data") or {}).get("fingerprint")
    if isinstance(fingerprint, dict):
        fingerprint = fingerprint.get("sha256")
    return ModelVersion(
        name=str(metadata.get("model_name")),
        version=version,
        artifact_uri="",
        metrics=read_json(metrics_path) if metrics_path.is_file() else {},
        data_fingerprint=fingerprint,
        run_id=metadata.get("run_id"),
        params=metadata.get("params") or {},
        schema=metadata.get("features") or {},
        created_at=utc_now(),
    )


def stage_version(source: Path, version: str, into: Path) -> Path:
    """Copies an artifact directory into a staging directory and stamps the version into it.

    Only the files the source manifest lists are copied; ``metadata.json`` gets ``version``,
    the manifest is rewritten (keeping the library versions the model was trained with) and
    the copy is verified, so what is stored is exactly what serving will load.

    Args:
        source: A verified artifact directory.
        version: The semantic version to record.
        into: Where to create the staging directory (the store, for an atomic rename).

    Returns:
        The staging directory; the caller moves or removes it.
    """
    manifest = verify(source)
    into.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=into))
    try:
        for name in manifest["files"]:
            target = staged / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / name, target)
        metadata = read_json(staged / METADATA_FILE)
        metadata["version"] = version
        write_json(staged / METADATA_FILE, metadata)
        write_manifest(staged, versions=manifest.get("versions"))
        verify(staged)
        os.chmod(staged, 0o755)  # mkdtemp creates 0700; the store is meant to be readable
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    return staged


class Session(ABC):
    """One consistent view of one model's registry entries, in which a change is made.

    The local backend holds the database's write lock for the session's lifetime, so
    concurrent registrations and promotions are serialised.
    """

    @abstractmethod
    def versions(self) -> list[ModelVersion]:
        """The model's versions."""

    @abstractmethod
    def history(self) -> list[PromotionEvent]:
        """The model's promotion log, oldest first."""

    @abstractmethod
    def staging_dir(self) -> Path:
        """Where to stage a new version's files before they are stored."""

    @abstractmethod
    def add_version(self, staged: Path, record: ModelVersion, champion: bool) -> ModelVersion:
        """Stores a staged, verified artifact directory as a new version (champion or not)."""

    @abstractmethod
    def move_champion(self, version: ModelVersion) -> None:
        """Moves the champion alias to ``version``."""

    @abstractmethod
    def append(self, event: PromotionEvent) -> PromotionEvent:
        """Appends an event to the promotion log; returns it with its sequence number."""


class Registry(ABC):
    """A model registry: semantic versions, a champion alias, an append-only promotion log."""

    @abstractmethod
    def versions(self, name: str | None = None) -> list[ModelVersion]:
        """All versions (of one model, or of every model), sorted by name and version."""

    @abstractmethod
    def history(self, name: str | None = None) -> list[PromotionEvent]:
        """The promotion log (of one model, or of every model), oldest first."""

    @abstractmethod
    def verify(self, version: ModelVersion) -> dict[str, Any]:
        """Checks a version's stored artifacts; returns the manifest.

        Raises:
            predictor.artifacts.ArtifactError: A file is missing or altered.
        """

    @abstractmethod
    def load_model(self, version: ModelVersion) -> LeadScoringModel:
        """Loads (and verifies) a version's model."""

    @abstractmethod
    def _session(self, name: str) -> AbstractContextManager[Session]:
        """A session for changing one model's entries."""

    # Reads ---------------------------------------------------------------------------------------

    def get(self, name: str, selector: str) -> ModelVersion:
        """The version ``name@selector`` (an alias such as ``champion``, or ``1.2.3``).

        Raises:
            RegistryError: No such model, version or alias.
        """
        versions = self.versions(name)
        if not versions:
            raise RegistryError(f"{name}: no such model in the registry")
        return select(versions, name, selector)

    def resolve(self, ref: str) -> ModelVersion:
        """The version a ``name@alias``/``name@1.2.3`` reference or a stored artifact path names.

        Raises:
            RegistryError: The reference names no registered version.
        """
        if "@" in ref and not Path(ref).exists():
            return self.get(*parse_ref(ref))
        registered = self.find_artifacts(Path(ref))
        if registered is None:
            raise RegistryError(f"{ref}: not a registered version (register it with `leadscore train --register` "
                                "or `leadscore registry promote PATH`)")
        return registered

    def find_artifacts(self, path: Path) -> ModelVersion | None:
        """The registered version stored at ``path``, or None for any other directory."""
        metadata_path = path / METADATA_FILE
        if not metadata_path.is_file():
            return None
        metadata = read_json(metadata_path)
        if not metadata.get("version") or not metadata.get("model_name"):
            return None
        target = str(path.resolve())
        return next((v for v in self.versions(str(metadata["model_name"])) if v.artifact_uri == target), None)

    # Changes -------------------------------------------------------------------------------------

    def register(
        self, artifacts: str | os.PathLike[str], holdout: Holdout, policy: PromotionPolicy | None = None
    ) -> Registration:
        """Registers a trained artifact directory and applies the promotion policy.

        The champion is re-scored on the challenger's held-out rows, so both RMSEs come from
        the same data. A challenger that wins gets the next release version and the champion
        alias; one that loses is still registered, as a pre-release of the next version,
        without the alias. The decision is appended to the promotion log.

        Args:
            artifacts: The artifact directory a training run wrote.
            holdout: The run's held-out rows and targets.
            policy: The promotion policy (default: any improvement wins).

        Raises:
            predictor.artifacts.ArtifactError: The artifacts do not verify; nothing is registered.
            RegistryError: The model name is unusable.
        """
        policy = policy or PromotionPolicy()
        source = Path(artifacts)
        challenger = load_model_at(source)

        def decide(champion: ModelVersion | None) -> Decision:
            return policy.decide(challenger, self._champion_model(champion), holdout, champion)

        return self._add(source, challenger, decide)

    def add_unpromoted(self, artifacts: str | os.PathLike[str], reason: str) -> Registration:
        """Registers an artifact directory without comparing it and without the champion alias.

        For a version that must exist in the registry before it is used, such as a canary that
        ``leadscore deploy`` uploads: it gets a pre-release of the next version, like a rejected
        challenger, and the log records it as ``register`` with the reason.

        Raises:
            predictor.artifacts.ArtifactError: The artifacts do not verify; nothing is registered.
        """
        path = Path(artifacts)
        challenger = load_model_at(path)

        def unpromoted(champion: ModelVersion | None) -> Decision:
            return Decision(False, reason, _recorded_rmse(path), champion.rmse if champion else None)

        return self._add(path, challenger, unpromoted, action=REGISTER)

    def promote(self, ref: str, reason: str | None = None) -> Registration:
        """Makes a version champion by hand: an explicit human decision, logged as ``manual-promote``.

        ``ref`` is a registered version (``name@1.2.3``, ``name@alias`` or its stored path), whose
        champion alias is moved without renaming it; or an unregistered artifact directory, which
        is registered with the next release version and made champion, without comparing it to
        the champion. The log records each version's own held-out RMSE (``rows`` is None: they
        may come from different test sets) and the reason.

        Raises:
            RegistryError: The version is already champion, or the reference names nothing.
            predictor.artifacts.ArtifactError: Its artifacts do not verify: it is never made champion.
        """
        why = reason or "promoted by hand"
        path = Path(ref)
        if path.is_dir() and self.find_artifacts(path) is None:
            challenger = load_model_at(path)

            def manual(champion: ModelVersion | None) -> Decision:
                return Decision(True, why, _recorded_rmse(path), champion.rmse if champion else None)

            return self._add(path, challenger, manual, action=MANUAL_PROMOTE)
        target = self.resolve(ref)
        with self._session(target.name) as session:
            target = select(session.versions(), target.name, target.version)
            return self._move(session, target, MANUAL_PROMOTE, why)

    def rollback(self, name: str, to: str | None = None, reason: str | None = None) -> Registration:
        """Moves the champion back to the previous champion in the log, or to version ``to``.

        Raises:
            RegistryError: No champion, nothing to roll back to, or ``to`` is already champion.
            predictor.artifacts.ArtifactError: The target's artifacts do not verify.
        """
        with self._session(name) as session:
            versions = session.versions()
            champion = champion_of(versions)
            if champion is None:
                raise RegistryError(f"{name}: no champion to roll back")
            target_version = to or rollback_target(session.history(), champion.version)
            target = select(versions, name, target_version)
            why = reason or f"rolled back from {champion.version} to {target.version}"
            return self._move(session, target, ROLLBACK, why)

    # Shared steps --------------------------------------------------------------------------------

    def _champion_model(self, champion: ModelVersion | None) -> LeadScoringModel | None:
        if champion is None:
            return None
        try:
            return self.load_model(champion)
        except ArtifactError as exc:
            # No automatic replacement: a broken champion is an incident for a person to look at.
            raise ArtifactError(f"{exc}; the challenger cannot be compared with the champion: roll back or promote "
                                "a verified version by hand first") from exc

    def _add(
        self,
        source: Path,
        challenger: LeadScoringModel,
        decide: Callable[[ModelVersion | None], Decision],
        action: str | None = None,
    ) -> Registration:
        name = check_name(challenger.name)
        with self._session(name) as session:
            versions = session.versions()
            champion = champion_of(versions)
            decision = decide(champion)
            number = assign_version(
                [v.version for v in versions],
                champion.schema if champion else None,
                challenger.transform.feature_types(),
                promoted=decision.promote,
            )
            record = version_record(source, number, challenger.metadata)
            staged = stage_version(source, number, session.staging_dir())
            try:
                added = session.add_version(staged, record, champion=decision.promote)
            finally:
                shutil.rmtree(staged, ignore_errors=True)  # a no-op once the backend moved it
            event = session.append(PromotionEvent(
                name=name,
                action=action or (PROMOTE if decision.promote else REJECT),
                version=number,
                previous_champion=champion.version if champion else None,
                challenger_rmse=decision.challenger_rmse,
                champion_rmse=decision.champion_rmse,
                rows=decision.rows,
                improvement_ci=decision.ci,
                reason=decision.reason,
            ))
        return Registration(added, event)

    def _move(self, session: Session, target: ModelVersion, action: str, reason: str) -> Registration:
        champion = champion_of(session.versions())
        if champion is not None and champion.version == target.version:
            raise RegistryError(f"{target.ref} is already the champion")
        self.verify(target)  # an artifact that fails verification is never made champion
        session.move_champion(target)
        event = session.append(PromotionEvent(
            name=target.name,
            action=action,
            version=target.version,
            previous_champion=champion.version if champion else None,
            challenger_rmse=target.rmse,
            champion_rmse=champion.rmse if champion else None,
            rows=None,
            reason=reason,
        ))
        aliases = tuple(sorted({*target.aliases, CHAMPION}))
        return Registration(replace(target, aliases=aliases), event)


def _recorded_rmse(path: Path) -> float | None:
    metrics_path = path / METRICS_FILE
    return float(read_json(metrics_path)["rmse"]) if metrics_path.is_file() else None

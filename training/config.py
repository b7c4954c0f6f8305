"""The leadscore configuration file (TOML), its sections as dataclasses, and the training config it yields.

Example (every key is optional; command-line flags override file values)::

    [data]
    source = "bq://my-project.crm.leads"     # or a .csv/.parquet path, or duckdb:///leads.db?table=leads
    target = "converted"
    exclude = ["Tags", "Lead Quality", "Last Notable Activity"]   # leakage columns
    columns = []                             # read only these (all when empty)
    sample_percent = 10                      # TABLESAMPLE SYSTEM (10 PERCENT)
    missing_tokens = ["Select"]
    min_rows = 100

    [data.window]                            # incremental window on a TIMESTAMP column
    column = "created_at"
    start = 2026-01-01T00:00:00Z
    end = 2026-11-01T00:00:00Z

    [train]
    tune_trials = 0                          # > 0: optuna TPE search before the final fit
    device = "cpu"                           # "cuda" on GPU machines
    test_size = 0.2
    validation_size = 0.2
    random_state = 42
    model_name = "lead-scoring"

    [train.hyperparameters]                  # XGBoost; defaults are the seed's
    n_estimators = 100
    max_depth = 6
    learning_rate = 0.1

    [tracking]
    backend = "local"                        # or "vertex": also Vertex AI Experiments
    experiment = "lead-scoring"
    project = "my-project"
    location = "us-central1"

    [cloud]                                  # Google Cloud (the vertex engine, registry, deployment)
    project = "my-project"
    region = "us-central1"
    service_account = "leadscore-pipelines@my-project.iam.gserviceaccount.com"

    [registry]
    backend = "local"                        # or "vertex": Vertex AI Model Registry
    uri = "gs://my-bucket/registry"          # artifacts and promotion log (vertex)
    min_improvement = 0.0                    # RMSE a challenger must gain to be promoted
    require_significance = false             # paired-bootstrap 95 % interval must exclude zero

    [serving]
    image = "us-central1-docker.pkg.dev/my-project/leadscore/serving:1.0.0"
    endpoint = ""                            # deploy promoted models here (empty: no deployment)
    traffic = 10                             # canary share of a new deployment, percent

    [pipeline]
    engine = "local"                         # local | kfp-local | vertex
    root = "gs://my-bucket/pipeline-root"    # vertex; locally <state dir>/pipeline-root
    training_image = "us-central1-docker.pkg.dev/my-project/leadscore/training:0.1.0"
    synth_rows = 20000                       # leads synthesised when [data] has no source
    synth_seed = 42
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from predictor.transform import DEFAULT_MISSING_TOKENS
from training.errors import ConfigError, LeadscoreError
from training.sources import IngestOptions, Window
from training.tracking import TrackingConfig
from training.train import DEFAULT_MODEL_NAME, DEFAULT_TARGET, TrainConfig, XGBParams
from training.validation import MIN_ROWS


@dataclass
class WindowSection:
    """``[data.window]``: keep rows with ``start <= column < end``."""

    column: str
    start: datetime | None = None
    end: datetime | None = None


@dataclass
class DataSection:
    """``[data]``: where the leads come from and which columns count."""

    source: str | None = None
    target: str = DEFAULT_TARGET
    exclude: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    sample_percent: float | None = None
    window: WindowSection | None = None
    missing_tokens: list[str] = field(default_factory=lambda: list(DEFAULT_MISSING_TOKENS))
    min_rows: int = MIN_ROWS


@dataclass
class TrainSection:
    """``[train]``: hyperparameters, tuning, split and device (``device`` overrides the hyperparameters')."""

    hyperparameters: XGBParams = field(default_factory=XGBParams)
    tune_trials: int = 0
    validation_size: float = 0.2
    test_size: float = 0.2
    random_state: int = 42
    device: str | None = None
    model_name: str = DEFAULT_MODEL_NAME


@dataclass
class CloudSection:
    """``[cloud]``: the Google Cloud project and region the job uses."""

    project: str | None = None
    region: str = "us-central1"
    service_account: str | None = None


@dataclass
class RegistrySection:
    """``[registry]``: where versions go and when a challenger is promoted."""

    backend: str = "local"
    uri: str | None = None
    min_improvement: float = 0.0
    require_significance: bool = False


@dataclass
class ServingSection:
    """``[serving]``: the CPR serving image and the endpoint promoted models are deployed to."""

    image: str | None = None
    endpoint: str = ""
    traffic: int = 10


@dataclass
class PipelineSection:
    """``[pipeline]``: how ``leadscore run`` runs the pipeline."""

    engine: str = "local"
    root: str | None = None
    training_image: str | None = None
    synth_rows: int = 20_000
    synth_seed: int = 42


@dataclass
class LeadscoreConfig:
    """The whole file: ``[data]``, ``[train]``, ``[tracking]``, ``[cloud]``, ``[registry]``,
    ``[serving]``, ``[pipeline]``."""

    data: DataSection = field(default_factory=DataSection)
    train: TrainSection = field(default_factory=TrainSection)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    cloud: CloudSection = field(default_factory=CloudSection)
    registry: RegistrySection = field(default_factory=RegistrySection)
    serving: ServingSection = field(default_factory=ServingSection)
    pipeline: PipelineSection = field(default_factory=PipelineSection)

    def train_config(self, out: Path) -> TrainConfig:
        """The training run this configuration describes.

        Raises:
            ConfigError: No data source is configured.
        """
        if not self.data.source:
            raise ConfigError("no data source: set [data] source in the config file or pass --data")
        window = self.data.window
        return TrainConfig(
            data=self.data.source,
            out=Path(out),
            target=self.data.target,
            exclude=list(self.data.exclude),
            query=IngestOptions(
                columns=tuple(self.data.columns),
                sample_percent=self.data.sample_percent,
                window=Window(window.column, window.start, window.end) if window else None,
            ),
            test_size=self.train.test_size,
            random_state=self.train.random_state,
            params=dataclasses.replace(self.train.hyperparameters, device=self.train.device or
                                       self.train.hyperparameters.device),
            tune_trials=self.train.tune_trials,
            validation_size=self.train.validation_size,
            min_rows=self.data.min_rows,
            model_name=self.train.model_name,
            missing_tokens=tuple(self.data.missing_tokens),
            tracking=self.tracking,
        )


def load_config(path: str | Path) -> LeadscoreConfig:
    """Reads a TOML configuration file.

    Raises:
        ConfigError: The file is missing or not TOML, or a key is unknown or of the wrong type
            (the message names the key).
    """
    path = Path(path)
    try:
        payload = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
    return _build(LeadscoreConfig, payload, str(path), "")


# TOML values arrive typed, so a config only needs its key names and types checked; a small
# checker over the dataclasses' type hints does that without another dependency.
def _build(cls: type, payload: Any, file: str, section: str) -> Any:
    where = f"{file} [{section}]" if section else file
    if not isinstance(payload, dict):
        raise ConfigError(f"{where}: expected a table, got {payload!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(payload) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    values = {key: _value(hints[key], value, file, f"{section}.{key}".lstrip("."))
              for key, value in payload.items()}
    try:
        return cls(**values)
    except LeadscoreError as exc:  # a section's own checks (tracking backend, experiment name...)
        raise ConfigError(f"{where}: {exc}") from exc


def _value(hint: Any, value: Any, file: str, key: str) -> Any:
    section, _, name = key.rpartition(".")
    where = f"{file} [{section}] {name}" if section else f"{file} {name}"
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for option in options:
        if option is type(None) and value is None:
            return None
        if dataclasses.is_dataclass(option):
            return _build(option, value, file, key)
        if typing.get_origin(option) is list and isinstance(value, list):
            (item,) = typing.get_args(option)
            return [_value(item, v, file, key) for v in value]
        if option is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if option is datetime and isinstance(value, (datetime, date, str)):
            return _datetime(value, where)
        if option in (int, str, bool) and type(value) is option:
            return value
    raise ConfigError(f"{where}: expected {_type_name(hint)}, got {value!r}")


def _datetime(value: datetime | date | str, where: str) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime.combine(value, time())
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{where}: expected a date-time such as 2026-01-01T00:00:00Z, got {value!r}") from None


def _type_name(hint: Any) -> str:
    return " or ".join(getattr(o, "__name__", str(o)) for o in (typing.get_args(hint) or (hint,))
                       if o is not type(None)) + (" (or nothing)" if type(None) in typing.get_args(hint) else "")

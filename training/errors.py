"""Exceptions raised by the training library; only the CLI turns them into messages and exit codes."""


class LeadscoreError(Exception):
    """Base class of the errors a user can act on."""


class DataError(LeadscoreError):
    """The input data cannot be used for training (missing target, no rows, bad columns...)."""


class OutputError(LeadscoreError):
    """An output location cannot be written, or holds something that must not be replaced."""


class SourceError(LeadscoreError):
    """A data source URI cannot be read."""


class MonitorError(LeadscoreError):
    """A monitoring window, label file or action cannot be used (no rows, missing columns...)."""


class RegistryError(LeadscoreError):
    """A registry reference names nothing, or a promotion or rollback cannot be done."""


class TrackingError(LeadscoreError):
    """An experiment run cannot be recorded or found (unknown run ID, Vertex AI Experiments failure...)."""


class ConfigError(LeadscoreError):
    """A configuration file cannot be read or holds an unknown or ill-typed setting."""


class PipelineError(LeadscoreError):
    """A pipeline run failed (the message names the failed task)."""

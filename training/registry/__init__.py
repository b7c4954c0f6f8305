"""The model registry: semantic versions, champion/challenger promotion on RMSE, rollback.

Modules: ``base`` (the ``Registry`` interface, records, shared registration logic), ``semver``
(version rules), ``promotion`` (policy and paired bootstrap), ``local`` (SQLite backend),
``vertex`` (Vertex AI Model Registry backend), ``config`` (which backend; ``open_registry``).
This package import stays light (no model libraries) so that the CLI starts fast.
"""

from training.registry.config import RegistryConfig, open_registry

__all__ = ["RegistryConfig", "open_registry"]

"""Vertex AI Model Monitoring for a deployed endpoint, with the thresholds the local monitor uses.

On Vertex AI the endpoint's request-response logging samples requests into BigQuery and a
model deployment monitoring job compares them, on a schedule, with the same metrics as
``leadscore monitor drift`` (Jensen-Shannon divergence for numeric, L-infinity distance for
categorical features), alerting by e-mail above each feature's threshold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from training.monitor.drift import DriftThresholds

DEFAULT_SAMPLE_RATE = 0.8  # the seed's sampling rate
DEFAULT_INTERVAL_HOURS = 24


@dataclass
class MonitoringJobSpec:
    """A model deployment monitoring job.

    Attributes:
        endpoint: Endpoint resource name or ID.
        features: Raw feature names to monitor (the model's input schema).
        thresholds: Drift threshold per feature (the default for features without their own).
        sample_rate: Share of requests logged for monitoring.
        interval_hours: How often the job analyses the logs (Vertex AI allows whole hours, at least 1).
        emails: Who gets alert e-mails.
        notification_channels: Cloud Monitoring notification channels that also get alerts
            (e.g. the Terraform module's ``notification_channel`` output).
        display_name: The job's name in the console; derived from the endpoint when None.
        labels: Resource labels.
    """

    endpoint: str
    features: list[str]
    thresholds: DriftThresholds = field(default_factory=DriftThresholds)
    sample_rate: float = DEFAULT_SAMPLE_RATE
    interval_hours: int = DEFAULT_INTERVAL_HOURS
    emails: list[str] = field(default_factory=list)
    notification_channels: list[str] = field(default_factory=list)
    display_name: str | None = None
    labels: dict[str, str] = field(default_factory=dict)

    def drift_thresholds(self) -> dict[str, float]:
        """Feature → threshold, for every monitored feature."""
        return {name: self.thresholds.for_feature(name) for name in self.features}


def create_monitoring_job(spec: MonitoringJobSpec, project: str | None = None, location: str | None = None,
                          credentials: Any = None) -> dict[str, Any]:
    """Creates the monitoring job with the Vertex AI SDK.

    The SDK applies the objective to every model deployed on the endpoint; it reads the endpoint
    first to list them. Anomalies are also written to Cloud Logging (``enable_logging``), which
    the Terraform module's alert policy watches.

    Args:
        spec: What to monitor and how.
        project: Google Cloud project; ``aiplatform.init``'s when None.
        location: Region; ``aiplatform.init``'s when None.
        credentials: Credentials; ``aiplatform.init``'s when None.

    Returns:
        The created job's resource name, display name and state.
    """
    from google.cloud import aiplatform
    from google.cloud.aiplatform import model_monitoring

    objective = model_monitoring.ObjectiveConfig(
        drift_detection_config=model_monitoring.DriftDetectionConfig(drift_thresholds=spec.drift_thresholds())
    )
    job = aiplatform.ModelDeploymentMonitoringJob.create(
        display_name=spec.display_name or f"leadscore-monitoring-{spec.endpoint.rsplit('/', 1)[-1]}",
        endpoint=spec.endpoint,
        objective_configs=objective,
        logging_sampling_strategy=model_monitoring.RandomSampleConfig(sample_rate=spec.sample_rate),
        schedule_config=model_monitoring.ScheduleConfig(monitor_interval=spec.interval_hours),
        alert_config=model_monitoring.AlertConfig(user_emails=list(spec.emails), enable_logging=True,
                                                  notification_channels=list(spec.notification_channels)),
        labels=spec.labels or None,
        project=project,
        location=location,
        credentials=credentials,
    )
    resource = job.gca_resource  # what the create call returned: no second request
    return {"name": resource.name, "display_name": resource.display_name, "state": resource.state.name}

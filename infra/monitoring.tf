# Alerting on Vertex AI Model Monitoring anomalies.
#
# Monitoring jobs are created by `leadscore monitor create-job`, not here. With
# model_monitoring_alert_config.enable_logging set, each monitoring window that finds skew or drift
# writes one log entry to the log "aiplatform.googleapis.com/model_monitoring_anomaly", resource
# type aiplatform.googleapis.com/ModelDeploymentMonitoringJob, with jsonPayload.anomalyObjective
# (RAW_FEATURE_SKEW, RAW_FEATURE_DRIFT, ...) and the anomalous features.
#
# Choice: a log-based counter metric on those entries, and a threshold alert on the metric.
# Vertex AI publishes no Cloud Monitoring metric type for anomalies, and its own e-mail alerts are
# configured per job and bypass Cloud Monitoring; the metric gives one alert policy for every job
# in the project, a chart of anomalies per objective over time, and incidents that close by
# themselves when a window comes back clean.

resource "google_monitoring_notification_channel" "email" {
  display_name = "leadscore alerts"
  type         = "email"
  labels = {
    email_address = var.alert_email
  }
  depends_on = [google_project_service.apis]
}

resource "google_logging_metric" "model_monitoring_anomalies" {
  name        = "${var.name_prefix}/model_monitoring_anomalies"
  description = "Vertex AI Model Monitoring windows that found at least one anomalous feature."
  filter = join(" AND ", [
    "logName=\"projects/${var.project_id}/logs/aiplatform.googleapis.com%2Fmodel_monitoring_anomaly\"",
    "resource.type=\"aiplatform.googleapis.com/ModelDeploymentMonitoringJob\"",
  ])

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "leadscore model monitoring anomalies"
    labels {
      key         = "anomaly_objective"
      value_type  = "STRING"
      description = "RAW_FEATURE_SKEW, RAW_FEATURE_DRIFT, FEATURE_ATTRIBUTION_SKEW or FEATURE_ATTRIBUTION_DRIFT."
    }
    labels {
      key         = "monitoring_job"
      value_type  = "STRING"
      description = "ID of the ModelDeploymentMonitoringJob that reported the anomaly."
    }
  }
  label_extractors = {
    anomaly_objective = "EXTRACT(jsonPayload.anomalyObjective)"
    monitoring_job    = "EXTRACT(resource.labels.model_deployment_monitoring_job)"
  }

  depends_on = [google_project_service.apis]
}

resource "google_monitoring_alert_policy" "model_monitoring_anomalies" {
  display_name          = "leadscore: model monitoring anomaly"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = [google_monitoring_notification_channel.email.id]

  conditions {
    display_name = "Model Monitoring found skew or drift"
    condition_threshold {
      # Only the metric type: the series carry the monitored resource of the log entries, which
      # the filter need not name.
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.model_monitoring_anomalies.name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      # Windows without anomalies write nothing: no data means no anomaly, so the incident closes.
      evaluation_missing_data = "EVALUATION_MISSING_DATA_INACTIVE"

      aggregations {
        alignment_period     = "600s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.anomaly_objective", "metric.label.monitoring_job"]
      }
      trigger {
        count = 1
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "leadscore: model monitoring found skew or drift"
    content   = <<-EOT
      Vertex AI Model Monitoring reported features whose serving distribution moved away from the
      baseline (objective: $${metric.label.anomaly_objective}, job $${metric.label.monitoring_job}).

      Look at the anomaly log entries (log `aiplatform.googleapis.com/model_monitoring_anomaly`) for
      the features and their distances, then decide whether to retrain: the scheduled pipeline can
      be started at once with `gcloud scheduler jobs run ${google_cloud_scheduler_job.retrain.name} --location ${var.region}`.
    EOT
  }
}

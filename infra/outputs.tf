# What the leadscore CLI and pipeline need to know about this stack.
# `terraform output -json` gives them all; README.md maps them to CLI settings.

output "project_id" {
  description = "Project that hosts leadscore."
  value       = var.project_id
}

output "region" {
  description = "Region of Vertex AI, the bucket, the repositories and the dataset."
  value       = var.region
}

output "bucket" {
  description = "Artifacts bucket name (model artifacts, pipeline root); also the Vertex AI staging bucket."
  value       = google_storage_bucket.artifacts.name
}

output "pipeline_root" {
  description = "Pipeline root for Vertex AI pipeline runs (a gs:// URI)."
  value       = local.pipeline_root
}

output "docker_repository_url" {
  description = "Artifact Registry Docker repository, as the prefix of image URIs (no tag)."
  value       = local.docker_repository_url
}

output "serving_image_uri" {
  description = "Serving (Custom Prediction Routine) image URI without tag: append :<version>."
  value       = "${local.docker_repository_url}/serving"
}

output "training_image_uri" {
  description = "Training image URI without tag: append :<version>."
  value       = "${local.docker_repository_url}/training"
}

output "kfp_repository_url" {
  description = "Artifact Registry KFP repository URL, the host to upload compiled pipelines to (kfp.registry.RegistryClient)."
  value       = local.kfp_repository_url
}

output "pipeline_template_uri" {
  description = "Template URI that scheduled retraining runs start from."
  value       = local.pipeline_template_uri
}

output "bigquery_dataset" {
  description = "BigQuery dataset for leads and prediction logs, as project.dataset."
  value       = "${var.project_id}.${google_bigquery_dataset.leadscore.dataset_id}"
}

output "prediction_log_table" {
  description = "BigQuery table of the endpoint's request-response log, as project.dataset.table (created by Vertex AI on the first logged request)."
  value       = local.prediction_log_table
}

output "endpoint_name" {
  description = "Full resource name of the Vertex AI endpoint (projects/.../locations/.../endpoints/ID)."
  value       = google_vertex_ai_endpoint.leadscore.id
}

output "endpoint_display_name" {
  description = "Display name of the Vertex AI endpoint."
  value       = google_vertex_ai_endpoint.leadscore.display_name
}

output "pipelines_service_account" {
  description = "Service account pipeline runs run as (PipelineJob service_account)."
  value       = google_service_account.pipelines.email
}

output "serving_service_account" {
  description = "Service account the deployed model runs as (deploy's service_account)."
  value       = google_service_account.serving.email
}

output "scheduler_service_account" {
  description = "Service account whose token Cloud Scheduler uses to start pipeline runs."
  value       = google_service_account.scheduler.email
}

output "retrain_scheduler_job" {
  description = "Cloud Scheduler job that starts the retraining pipeline."
  value       = google_cloud_scheduler_job.retrain.id
}

output "notification_channel" {
  description = "Cloud Monitoring notification channel (projects/.../notificationChannels/ID) for alerts; can also be given to Model Monitoring jobs."
  value       = google_monitoring_notification_channel.email.id
}

output "anomaly_alert_policy" {
  description = "Alert policy on model monitoring anomalies."
  value       = google_monitoring_alert_policy.model_monitoring_anomalies.name
}

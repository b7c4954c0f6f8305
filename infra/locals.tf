locals {
  # Every resource that takes labels gets these (provider default_labels), so costs and ownership
  # can be traced back to this stack.
  labels = merge(var.labels, { app = "leadscore", managed-by = "terraform" })

  bucket_name   = var.bucket_name != "" ? var.bucket_name : "${var.project_id}-${var.name_prefix}"
  pipeline_root = "gs://${google_storage_bucket.artifacts.name}/${local.pipeline_root_prefix}"
  # Vertex AI Pipelines writes every run's intermediate artifacts under this prefix; the lifecycle
  # rule in storage.tf ages them out. Models registered in the Model Registry live elsewhere.
  pipeline_root_prefix = "pipeline-root"

  docker_repository_url = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}"
  kfp_repository_url    = "https://${var.region}-kfp.pkg.dev/${var.project_id}/${google_artifact_registry_repository.pipelines.repository_id}"
  pipeline_template_uri = "${local.kfp_repository_url}/${var.pipeline_template_name}/${var.pipeline_template_tag}"

  prediction_log_table = "${var.project_id}.${google_bigquery_dataset.leadscore.dataset_id}.${var.prediction_log_table}"
}

# Scheduled retraining: Cloud Scheduler POSTs a PipelineJob to the Vertex AI REST API
# (projects.locations.pipelineJobs.create), with an OAuth token of the scheduler account.
locals {
  retrain_request = {
    displayName    = "${var.name_prefix}-scheduled-retrain"
    templateUri    = local.pipeline_template_uri
    serviceAccount = google_service_account.pipelines.email
    labels         = merge(local.labels, { trigger = "cloud-scheduler" })
    runtimeConfig = {
      gcsOutputDirectory = local.pipeline_root
      parameterValues    = var.pipeline_parameters
    }
  }
}

resource "google_cloud_scheduler_job" "retrain" {
  name        = "${var.name_prefix}-retrain"
  region      = var.region
  description = "Starts the leadscore training pipeline from its template in Artifact Registry."
  schedule    = var.retrain_schedule
  time_zone   = var.scheduler_time_zone
  paused      = var.scheduler_paused

  # No retry: a retried POST whose first attempt did reach Vertex AI would start a second run.
  # A failed attempt shows in the job's logs, and the next schedule tries again.
  retry_config {
    retry_count = 0
  }

  http_target {
    http_method = "POST"
    uri         = "https://${var.region}-aiplatform.googleapis.com/v1/projects/${var.project_id}/locations/${var.region}/pipelineJobs"
    headers     = { "Content-Type" = "application/json" }
    body        = base64encode(jsonencode(local.retrain_request))

    # OAuth (not OIDC): the target is a Google API.
    oauth_token {
      service_account_email = google_service_account.scheduler.email
      scope                 = "https://www.googleapis.com/auth/cloud-platform"
    }
  }

  # The first scheduled call must find its rights in place.
  depends_on = [
    google_project_iam_member.scheduler_launches_pipelines,
    google_service_account_iam_member.scheduler_act_as_pipelines,
    google_artifact_registry_repository_iam_member.scheduler_reads_templates,
  ]
}

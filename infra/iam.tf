# Three identities, each with only what its job needs. Grants are made on the bucket, dataset,
# repository or service account concerned wherever the API allows it; project-level grants are
# only for what has no narrower resource (Vertex AI jobs, BigQuery jobs).
#
# Images are pulled by Vertex AI's own service agents, which can read Artifact Registry in the
# same project: neither the pipelines nor the serving account is granted read on the images.

resource "google_service_account" "pipelines" {
  account_id   = "${var.name_prefix}-pipelines"
  display_name = "leadscore pipelines"
  description  = "Runs the leadscore Vertex AI pipeline: training, model registration, deployment and monitoring set-up."
  depends_on   = [google_project_service.apis]
}

resource "google_service_account" "serving" {
  account_id   = "${var.name_prefix}-serving"
  display_name = "leadscore serving"
  description  = "Identity of the leadscore prediction container on the Vertex AI endpoint."
  depends_on   = [google_project_service.apis]
}

resource "google_service_account" "scheduler" {
  account_id   = "${var.name_prefix}-scheduler"
  display_name = "leadscore scheduler"
  description  = "Cloud Scheduler's identity when it starts the scheduled retraining pipeline run."
  depends_on   = [google_project_service.apis]
}

# --- pipelines ----------------------------------------------------------------------------------

resource "google_project_iam_member" "pipelines" {
  for_each = toset([
    "roles/aiplatform.user",  # custom jobs, model upload, deploy to the endpoint, monitoring jobs
    "roles/bigquery.jobUser", # queries run as project-level BigQuery jobs
  ])
  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.pipelines.email}"
}

resource "google_storage_bucket_iam_member" "pipelines" {
  bucket = google_storage_bucket.artifacts.name
  role   = "roles/storage.objectAdmin" # writes the pipeline root and model artifacts
  member = "serviceAccount:${google_service_account.pipelines.email}"
}

resource "google_bigquery_dataset_iam_member" "pipelines" {
  dataset_id = google_bigquery_dataset.leadscore.dataset_id
  role       = "roles/bigquery.dataEditor" # reads leads and prediction logs, writes training snapshots
  member     = "serviceAccount:${google_service_account.pipelines.email}"
}

# Pipeline steps start custom jobs as the pipelines account, and deploy models that run as the
# serving account: both need actAs on that one account, not on every account in the project.
resource "google_service_account_iam_member" "pipelines_act_as_self" {
  service_account_id = google_service_account.pipelines.name
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${google_service_account.pipelines.email}"
}

resource "google_service_account_iam_member" "pipelines_act_as_serving" {
  service_account_id = google_service_account.serving.name
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${google_service_account.pipelines.email}"
}

# --- serving ------------------------------------------------------------------------------------

resource "google_storage_bucket_iam_member" "serving" {
  bucket = google_storage_bucket.artifacts.name
  role   = "roles/storage.objectViewer" # reads the model artifacts it serves, nothing else
  member = "serviceAccount:${google_service_account.serving.email}"
}

# --- scheduler ----------------------------------------------------------------------------------

# roles/aiplatform.user would also let the scheduler's token train, deploy and delete models:
# the scheduler only creates pipeline runs.
resource "google_project_iam_custom_role" "pipeline_launcher" {
  role_id     = "${replace(var.name_prefix, "-", "_")}_pipeline_launcher"
  title       = "leadscore pipeline launcher"
  description = "Create Vertex AI pipeline runs, and nothing else."
  permissions = ["aiplatform.pipelineJobs.create"]
}

resource "google_project_iam_member" "scheduler_launches_pipelines" {
  project = var.project_id
  role    = google_project_iam_custom_role.pipeline_launcher.id
  member  = "serviceAccount:${google_service_account.scheduler.email}"
}

resource "google_service_account_iam_member" "scheduler_act_as_pipelines" {
  service_account_id = google_service_account.pipelines.name
  role               = "roles/iam.serviceAccountUser" # the run it creates runs as the pipelines account
  member             = "serviceAccount:${google_service_account.scheduler.email}"
}

resource "google_artifact_registry_repository_iam_member" "scheduler_reads_templates" {
  location   = google_artifact_registry_repository.pipelines.location
  repository = google_artifact_registry_repository.pipelines.name
  role       = "roles/artifactregistry.reader" # the run's templateUri is resolved with the caller's rights
  member     = "serviceAccount:${google_service_account.scheduler.email}"
}

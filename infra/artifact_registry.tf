# Serving (CPR) and training images; the CLI pushes <docker_repository_url>/serving:<version> and
# <docker_repository_url>/training:<version>.
resource "google_artifact_registry_repository" "images" {
  #checkov:skip=CKV_GCP_84:Google-managed encryption is enough for container images that hold code, not lead data; CMEK would add a KMS key and its rotation for no data protection gain.
  repository_id = "${var.name_prefix}-images"
  location      = var.region
  format        = "DOCKER"
  description   = "leadscore serving and training images."

  docker_config {
    immutable_tags = var.immutable_image_tags
  }

  depends_on = [google_project_service.apis]
}

# Compiled KFP pipelines (templates); scheduled runs start from <kfp_repository_url>/<name>/<tag>.
resource "google_artifact_registry_repository" "pipelines" {
  #checkov:skip=CKV_GCP_84:Pipeline templates are compiled pipeline definitions, not data; Google-managed encryption is enough.
  repository_id = "${var.name_prefix}-pipelines"
  location      = var.region
  format        = "KFP"
  description   = "leadscore compiled pipeline templates."

  depends_on = [google_project_service.apis]
}

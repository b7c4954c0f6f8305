resource "google_storage_bucket" "artifacts" {
  #checkov:skip=CKV_GCP_62:Access is recorded by Cloud Audit Logs (Data Access logs can be enabled per project); a second bucket only for usage logs would add a resource without adding an audit trail.
  name     = local.bucket_name
  location = var.region # same region as Vertex AI: pipeline root and model artifacts are read there

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"

  # A model version registered in the Model Registry points at its artifacts here: versioning
  # keeps an overwritten or deleted artifact recoverable.
  versioning {
    enabled = true
  }

  # Pipeline runs leave intermediates under the pipeline root: delete them after a while.
  # Models and other prefixes are kept: registered models need their artifacts to be redeployed.
  lifecycle_rule {
    condition {
      age            = var.pipeline_root_retention_days
      matches_prefix = ["${local.pipeline_root_prefix}/"]
    }
    action {
      type = "Delete"
    }
  }

  # With versioning, a delete (by hand or by the rule above) keeps a noncurrent version: drop it
  # once it has been noncurrent long enough to notice a mistake.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.noncurrent_version_retention_days
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.apis]
}

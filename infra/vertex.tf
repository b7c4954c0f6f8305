# The endpoint only. Terraform cannot put a model on it: the google provider (6.x) has no resource
# that deploys a model, and none for model monitoring jobs. `leadscore deploy` deploys a registered
# model version (as the serving account) and sets the traffic split; `leadscore monitor create-job`
# creates the Model Monitoring job.
resource "google_vertex_ai_endpoint" "leadscore" {
  #checkov:skip=CKV2_GCP_24:Google-managed encryption. encryption_spec cannot be changed after creation: an organisation that requires CMEK adds encryption_spec with its KMS key before the first apply.
  #checkov:skip=CKV2_GCP_33:Callers (the CLI, CRM integrations) reach the endpoint through the public Vertex AI API, authorised by IAM (predict_invoker_members). A private endpoint needs a VPC peered with Google services, which this stack does not own.
  name         = var.endpoint_id
  display_name = var.endpoint_display_name
  description  = "leadscore online lead scoring; models are deployed by the leadscore CLI."
  location     = var.region

  # Every sampled request and its response lands in BigQuery: the record of what was scored,
  # joined with outcomes later to evaluate and retrain the model.
  predict_request_response_logging_config {
    enabled       = true
    sampling_rate = var.prediction_log_sampling_rate
    bigquery_destination {
      output_uri = "bq://${local.prediction_log_table}"
    }
  }

  lifecycle {
    # Deployed models and their traffic split belong to `leadscore deploy`: an apply must not undo
    # a rollout.
    ignore_changes = [traffic_split]
  }

  depends_on = [google_project_service.apis]
}

# Callers of the endpoint (e.g. a CRM integration) get predict on this endpoint only, instead of
# roles/aiplatform.user on the whole project. Endpoint-level IAM exists only in google-beta.
resource "google_project_iam_custom_role" "predictor" {
  role_id     = "${replace(var.name_prefix, "-", "_")}_predictor"
  title       = "leadscore predictor"
  description = "Read a Vertex AI endpoint and call predict on it."
  permissions = ["aiplatform.endpoints.get", "aiplatform.endpoints.predict"]
}

resource "google_vertex_ai_endpoint_iam_member" "invokers" {
  provider = google-beta
  for_each = toset(var.predict_invoker_members)

  project  = var.project_id
  location = var.region
  endpoint = google_vertex_ai_endpoint.leadscore.name
  role     = google_project_iam_custom_role.predictor.id
  member   = each.value
}

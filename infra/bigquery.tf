# Leads (training data) and the endpoint's request-response log. Tables are created by their
# writers: the training data load, and Vertex AI for the prediction log table (which must not
# exist before the endpoint first logs to it).
resource "google_bigquery_dataset" "leadscore" {
  #checkov:skip=CKV_GCP_81:Google-managed encryption by default; a customer-managed key can be added with default_encryption_configuration where policy requires it.
  dataset_id  = var.bigquery_dataset_id
  location    = var.region # Vertex AI logs only to a dataset in a compatible location
  description = "leadscore leads and prediction logs."

  # Prediction logs and leads are the history retraining learns from: `terraform destroy` must
  # not take them with it.
  delete_contents_on_destroy = false

  depends_on = [google_project_service.apis]
}

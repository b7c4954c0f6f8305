variable "project_id" {
  description = "ID of the Google Cloud project that hosts leadscore (it must exist, with billing enabled)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a project ID (6-30 lowercase letters, digits, hyphens), not a number or display name."
  }
}

variable "region" {
  description = "Region for Vertex AI, the bucket, Artifact Registry, BigQuery and Cloud Scheduler; keeping them together avoids cross-region copies."
  type        = string
  default     = "us-central1"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must be a region such as us-central1 or europe-west4 (not a zone, not a multi-region)."
  }
}

variable "name_prefix" {
  description = "Prefix of the names of service accounts, repositories, the scheduler job and the log metric; lets two stacks (staging, prod) share a project."
  type        = string
  default     = "leadscore"

  validation {
    # Service account IDs are at most 30 characters: "<prefix>-pipelines" must fit.
    condition     = can(regex("^[a-z][a-z0-9-]{1,18}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-20 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "labels" {
  description = "Extra labels for every resource that takes labels (app and managed-by are always added)."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k, v in var.labels : can(regex("^[a-z][a-z0-9_-]{0,62}$", k)) && can(regex("^[a-z0-9_-]{0,63}$", v))])
    error_message = "Label keys must start with a lowercase letter; keys and values may hold only lowercase letters, digits, _ and - (63 characters at most)."
  }
}

variable "bucket_name" {
  description = "Name of the artifacts bucket (models, pipeline root). Empty: \"<project_id>-<name_prefix>\"."
  type        = string
  default     = ""

  validation {
    condition     = can(regex("^([a-z0-9][a-z0-9_-]{1,61}[a-z0-9])?$", var.bucket_name))
    error_message = "bucket_name must be empty or 3-63 lowercase letters, digits, _ or -, starting and ending with a letter or digit."
  }
}

variable "pipeline_root_retention_days" {
  description = "Days after which pipeline run intermediates under gs://<bucket>/pipeline-root/ are deleted (they become noncurrent versions first)."
  type        = number
  default     = 30

  validation {
    condition     = var.pipeline_root_retention_days >= 1 && var.pipeline_root_retention_days <= 3650 && floor(var.pipeline_root_retention_days) == var.pipeline_root_retention_days
    error_message = "pipeline_root_retention_days must be a whole number of days from 1 to 3650."
  }
}

variable "noncurrent_version_retention_days" {
  description = "Days a replaced or deleted object version is kept in the bucket before it is deleted for good."
  type        = number
  default     = 30

  validation {
    condition     = var.noncurrent_version_retention_days >= 1 && var.noncurrent_version_retention_days <= 3650 && floor(var.noncurrent_version_retention_days) == var.noncurrent_version_retention_days
    error_message = "noncurrent_version_retention_days must be a whole number of days from 1 to 3650."
  }
}

variable "immutable_image_tags" {
  description = "Make Docker tags immutable, so an image URI recorded with a registered model always names the same image. Pushing a moving tag such as latest then fails."
  type        = bool
  default     = true
}

variable "bigquery_dataset_id" {
  description = "BigQuery dataset for leads and prediction logs."
  type        = string
  default     = "leadscore"

  validation {
    condition     = can(regex("^[A-Za-z0-9_]{1,1024}$", var.bigquery_dataset_id))
    error_message = "bigquery_dataset_id may hold only letters, digits and underscores."
  }
}

variable "prediction_log_table" {
  description = "Table the endpoint's request-response logging writes to, in the dataset. Vertex AI creates it: it must not exist beforehand."
  type        = string
  default     = "prediction_logs"

  validation {
    condition     = can(regex("^[A-Za-z_][A-Za-z0-9_]{0,1023}$", var.prediction_log_table))
    error_message = "prediction_log_table must start with a letter or underscore and hold only letters, digits and underscores."
  }
}

variable "endpoint_id" {
  description = "Numeric ID of the Vertex AI endpoint (the provider requires one): up to 10 digits, no leading zero, unique in the project and region."
  type        = string

  validation {
    condition     = can(regex("^[1-9][0-9]{0,9}$", var.endpoint_id))
    error_message = "endpoint_id must be a number of 1 to 10 digits without a leading zero, e.g. \"1001\"."
  }
}

variable "endpoint_display_name" {
  description = "Display name of the Vertex AI endpoint, which `leadscore deploy` looks up."
  type        = string
  default     = "leadscore"

  validation {
    condition     = length(var.endpoint_display_name) >= 1 && length(var.endpoint_display_name) <= 128
    error_message = "endpoint_display_name must be 1 to 128 characters."
  }
}

variable "prediction_log_sampling_rate" {
  description = "Share of online prediction requests logged to BigQuery (0 < rate <= 1). Model Monitoring reads its own sample; this one is for analysis and retraining."
  type        = number
  default     = 1

  validation {
    condition     = var.prediction_log_sampling_rate > 0 && var.prediction_log_sampling_rate <= 1
    error_message = "prediction_log_sampling_rate must be greater than 0 and at most 1."
  }
}

variable "predict_invoker_members" {
  description = "IAM members (e.g. \"serviceAccount:crm@p.iam.gserviceaccount.com\") allowed to call predict on the endpoint, and nothing else."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for m in var.predict_invoker_members : can(regex("^(user|serviceAccount|group|domain|principal|principalSet):", m))])
    error_message = "Each member must start with user:, serviceAccount:, group:, domain:, principal: or principalSet:."
  }
}

variable "retrain_schedule" {
  description = "Cron schedule (five fields, in scheduler_time_zone) of the retraining pipeline run."
  type        = string
  default     = "0 3 * * 1"

  validation {
    condition     = can(regex("^\\S+ \\S+ \\S+ \\S+ \\S+$", var.retrain_schedule))
    error_message = "retrain_schedule must be a five-field cron expression, e.g. \"0 3 * * 1\" (Mondays at 03:00)."
  }
}

variable "scheduler_time_zone" {
  description = "IANA time zone of retrain_schedule."
  type        = string
  default     = "Etc/UTC"

  validation {
    condition     = can(regex("^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$", var.scheduler_time_zone))
    error_message = "scheduler_time_zone must be an IANA time zone such as Etc/UTC or Europe/Paris."
  }
}

variable "scheduler_paused" {
  description = "Create the retraining schedule paused (e.g. until a first pipeline template has been uploaded)."
  type        = bool
  default     = false
}

variable "pipeline_template_name" {
  description = "Package name of the compiled pipeline in the KFP repository (the pipeline's name, as uploaded by the CLI)."
  type        = string
  default     = "leadscore-training"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,127}$", var.pipeline_template_name))
    error_message = "pipeline_template_name must be lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "pipeline_template_tag" {
  description = "Tag (or sha256:... version) of the pipeline template that scheduled runs use."
  type        = string
  default     = "latest"

  validation {
    condition     = can(regex("^(sha256:[a-f0-9]{64}|[A-Za-z0-9][A-Za-z0-9._-]{0,127})$", var.pipeline_template_tag))
    error_message = "pipeline_template_tag must be a tag (letters, digits, . _ -) or a sha256:<64 hex> version."
  }
}

variable "pipeline_parameters" {
  description = "Parameter values passed to scheduled pipeline runs (runtimeConfig.parameterValues), e.g. { min_auc = 0.8 }."
  type        = any
  default     = {}

  validation {
    condition     = can(keys(var.pipeline_parameters))
    error_message = "pipeline_parameters must be a map or object of parameter name to value."
  }
}

variable "alert_email" {
  description = "Email address that receives the model monitoring anomaly alerts."
  type        = string

  validation {
    condition     = can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.alert_email))
    error_message = "alert_email must be an email address."
  }
}

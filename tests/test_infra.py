"""Offline checks of the Terraform in infra/ (no terraform binary can be installed here).

The validator (infra/validate.py) checks the configuration against the google provider schema;
these tests run it on infra/, prove on broken snippets that it reports what it should, pin what
issue 8 asks of the infrastructure, and run checkov when its virtualenv exists (`make checkov`).
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]
INFRA = REPO / "infra"
sys.path.insert(0, str(INFRA))  # infra/ is not a package of the project

import validate  # noqa: E402


def _load_trim() -> ModuleType:
    """infra/schema/trim.py, loaded by path (infra/schema is not a package)."""
    spec = importlib.util.spec_from_file_location("infra_schema_trim", INFRA / "schema" / "trim.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


trim = _load_trim()

SCHEMAS = validate.load_schemas()
CONFIG = validate.load_directory()

VERSIONS = """
terraform {
  required_providers {
    google      = { source = "hashicorp/google", version = "~> 6.50" }
    google-beta = { source = "hashicorp/google-beta", version = "~> 6.50" }
  }
}
"""


def findings_for(snippet: str) -> list[str]:
    """Findings of the validator for a snippet placed after a valid terraform block."""
    config = validate.load_texts({"main.tf": VERSIONS + snippet})
    return [str(f) for f in validate.validate(config, SCHEMAS)]


def resources(type_name: str) -> list[validate.Block]:
    """The resources of one type declared in infra/."""
    return [b for b in CONFIG.of("resource") if b.labels[0] == type_name]


# --- infra/ as it is ----------------------------------------------------------------------------


def test_every_tf_file_parses() -> None:
    files = sorted(p.name for p in INFRA.glob("*.tf"))
    assert {"versions.tf", "variables.tf", "outputs.tf", "vertex.tf", "scheduler.tf", "monitoring.tf"} <= set(files)
    assert CONFIG.parse_errors == []
    assert {b.file for kind in CONFIG.blocks.values() for b in kind} == set(files)


def test_infra_has_no_findings() -> None:
    findings = validate.validate_directory()
    assert findings == [], "\n".join(map(str, findings))


def test_providers_are_pinned_to_the_schema_version() -> None:
    (terraform,) = CONFIG.of("terraform")
    providers = {k: v for entry in terraform.body["required_providers"] for k, v in entry.items() if k in SCHEMAS}
    for name, requirement in providers.items():
        assert validate.unquote(requirement["version"]) == "~> 6.50"
        assert SCHEMAS[name]["provider_version"].startswith("6.50.")


def test_google_beta_only_for_types_google_lacks() -> None:
    beta = {b.labels[0] for b in CONFIG.of("resource") + CONFIG.of("data") if validate.provider_of(b) == "google-beta"}
    assert beta == {"google_vertex_ai_endpoint_iam_member"}
    assert not beta & set(SCHEMAS["google"]["resources"])


def test_no_resource_the_provider_does_not_have() -> None:
    """Deploying a model and creating monitoring jobs are the CLI's: the provider cannot."""
    used = {b.labels[0] for b in CONFIG.of("resource") + CONFIG.of("data")}
    missing = {"google_vertex_ai_models", "google_vertex_ai_model_deployment", "google_vertex_ai_model_monitoring_job"}
    assert not used & missing
    for name, schema in SCHEMAS.items():
        assert not missing & (set(schema["resources"]) | set(schema["data_sources"])), name


def test_bucket_is_private_versioned_and_ages_out_the_pipeline_root() -> None:
    (bucket,) = resources("google_storage_bucket")
    body = bucket.body
    assert body["uniform_bucket_level_access"] is True
    assert validate.unquote(body["public_access_prevention"]) == "enforced"
    assert body["versioning"][0]["enabled"] is True
    prefixes = [c.get("matches_prefix") for rule in body["lifecycle_rule"] for c in rule["condition"]]
    assert ['"${local.pipeline_root_prefix}/"'] in prefixes
    assert any("days_since_noncurrent_time" in c for rule in body["lifecycle_rule"] for c in rule["condition"])


def test_repositories_for_images_and_pipelines() -> None:
    formats = {validate.unquote(b.body["format"]) for b in resources("google_artifact_registry_repository")}
    assert formats == {"DOCKER", "KFP"}


def test_endpoint_logs_requests_to_the_dataset() -> None:
    (endpoint,) = resources("google_vertex_ai_endpoint")
    (logging,) = endpoint.body["predict_request_response_logging_config"]
    assert logging["enabled"] is True
    uri = logging["bigquery_destination"][0]["output_uri"]
    assert uri == '"bq://${local.prediction_log_table}"'
    locals_refs = {r[:2] for r in validate.references([b.body for b in CONFIG.of("locals")])}
    assert ("google_bigquery_dataset", "leadscore") in locals_refs
    # Deployments (traffic split) belong to the CLI, not to terraform apply.
    assert endpoint.body["lifecycle"][0]["ignore_changes"] == ["traffic_split"]


def test_scheduler_posts_a_pipeline_job_with_an_oauth_token() -> None:
    (job,) = resources("google_cloud_scheduler_job")
    (target,) = job.body["http_target"]
    assert validate.unquote(target["http_method"]) == "POST"
    assert target["uri"].endswith(
        '-aiplatform.googleapis.com/v1/projects/${var.project_id}/locations/${var.region}/pipelineJobs"'
    )
    assert "local.retrain_request" in target["body"]
    assert target["oauth_token"][0]["service_account_email"] == "${google_service_account.scheduler.email}"


def test_alert_policy_watches_the_anomaly_log_metric() -> None:
    (metric,) = resources("google_logging_metric")
    assert "aiplatform.googleapis.com%2Fmodel_monitoring_anomaly" in metric.body["filter"]
    (policy,) = resources("google_monitoring_alert_policy")
    condition = policy.body["conditions"][0]["condition_threshold"][0]
    assert "google_logging_metric.model_monitoring_anomalies.name" in condition["filter"]
    assert policy.body["notification_channels"] == ["${google_monitoring_notification_channel.email.id}"]


def test_three_service_accounts_without_project_wide_act_as() -> None:
    accounts = {b.labels[1] for b in resources("google_service_account")}
    assert accounts == {"pipelines", "serving", "scheduler"}
    project_roles = {
        r for b in resources("google_project_iam_member") for r in re.findall(r"roles/[\w.]+", json.dumps(b.body))
    }
    assert project_roles == {"roles/aiplatform.user", "roles/bigquery.jobUser"}  # plus the custom launcher role


def test_variables_are_documented_and_validated() -> None:
    variables = CONFIG.of("variable")
    assert len(variables) >= 10
    for block in variables:
        assert validate.unquote(block.body["description"]).strip(), block.labels
        assert block.body.get("validation") or block.body["type"] == "bool", block.labels


def test_tfvars_example_sets_declared_variables_only() -> None:
    text = (INFRA / "terraform.tfvars.example").read_text()
    assert validate.check_tfvars(CONFIG, text) == []
    declared = {b.labels[0] for b in CONFIG.of("variable")}
    keys = set(re.findall(r"^([a-z_]+)\s*=", text, flags=re.MULTILINE))
    assert keys and keys <= declared


def test_every_output_is_documented_in_the_readme() -> None:
    readme = (INFRA / "README.md").read_text()
    for block in CONFIG.of("output"):
        assert f"`{block.labels[0]}`" in readme, block.labels[0]
    for command in (
        "terraform init",
        "terraform plan",
        "terraform apply",
        "leadscore deploy",
        "leadscore monitor create-job",
    ):
        assert command in readme


def test_trimmed_schema_is_up_to_date() -> None:
    if not trim.DEFAULT_SOURCE.is_dir():
        pytest.skip(f"full provider schemas not found at {trim.DEFAULT_SOURCE}")
    for provider, schema in trim.trimmed_schemas(trim.DEFAULT_SOURCE).items():
        committed = (INFRA / "schema" / f"{provider}.json").read_text()
        assert committed == trim.render(schema), f"rerun: python infra/schema/trim.py ({provider}.json is stale)"


def test_checkov_skips_are_justified() -> None:
    skips = [m for p in INFRA.glob("*.tf") for m in re.finditer(r"#checkov:skip=(\S+?):(.*)", p.read_text())]
    assert skips
    for skip in skips:
        assert re.fullmatch(r"CKV2?_GCP_\d+", skip.group(1)), skip.group(0)
        assert len(skip.group(2).split()) >= 8, f"give a reason: {skip.group(0)}"


def test_checkov_passes() -> None:
    checkov = REPO / ".venv-checkov" / "bin" / "checkov"
    if not checkov.exists():
        pytest.skip("checkov not installed: `make checkov` creates .venv-checkov (it conflicts with our packages)")
    result = subprocess.run(
        [str(checkov), "-d", "infra", "--framework", "terraform", "--quiet", "--compact", "--skip-download"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Failed checks: 0" in result.stdout


# --- the validator reports what it should -------------------------------------------------------

BUCKET = 'resource "google_storage_bucket" "b" {\n  name = "b"\n  location = "EU"\n%s\n}\n'


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        ('resource "google_storage_bukket" "b" {}', "google_storage_bukket is not in the google provider schema"),
        (BUCKET % '  locaton = "EU"', "google_storage_bucket.b.locaton: no such argument"),
        ('resource "google_storage_bucket" "b" {\n  name = "b"\n}', "missing required argument `location`"),
        (
            'resource "google_monitoring_alert_policy" "p" {\n  display_name = "p"\n  combiner = "OR"\n}',
            "missing required block `conditions`",
        ),
        (BUCKET % "  versioning = { enabled = true }", "`versioning` is a block"),
        (BUCKET % "  labels {\n    a = 1\n  }", "`labels` is an argument"),
        (
            BUCKET % "  versioning {\n    enabled = true\n  }\n  versioning {\n    enabled = false\n  }",
            "block may appear once, found 2",
        ),
        (
            BUCKET
            % '  lifecycle_rule {\n    condition {\n      agee = 3\n    }\n    action {\n      type = "Delete"\n    }\n  }',
            "google_storage_bucket.b.lifecycle_rule.condition.agee: no such argument",
        ),
        (BUCKET % "  lifecycle_rule {\n    condition {\n      age = 3\n    }\n  }", "missing required block `action`"),
        (BUCKET % '  dynamic "corz" {\n    for_each = []\n    content {}\n  }', "dynamic.corz: no such block"),
        (BUCKET % '  id = "x"', "`id` is computed"),
        (BUCKET % "  project = var.nope", "reference to undeclared variable var.nope"),
        (BUCKET % "  project = local.nope", "reference to undeclared local local.nope"),
        (
            BUCKET % '  project = "${google_project_service.nope.project}"',
            "undeclared resource google_project_service.nope",
        ),
        (BUCKET % "  project = google_storag_bucket.x.project", "undeclared resource google_storag_bucket.x"),
        (BUCKET % "  project = data.google_project.nope.project_id", "undeclared data source data.google_project.nope"),
        (
            'resource "google_storage_bucket" "b" {\n  provider = google-beta\n  name = "b"\n  location = "EU"\n}',
            "exists in the google provider: don't use google-beta",
        ),
        ('provider "google" {\n  projekt = "p"\n}', "provider.google.projekt: no such argument"),
        ('resource "google_storage_bucket" "b" {\n  name = "b\n}', "does not parse"),
        ('variable "v" {\n  type = bool\n}', "variable.v: has no description"),
        ('variable "v" {\n  description = "d"\n  type = string\n}', "variable.v: has no validation block"),
        (
            (
                'variable "v" {\n  description = "d"\n  type = string\n  validation {\n'
                '    condition = length(var.w) > 0\n    error_message = "e"\n  }\n}'
            ),
            "validation condition does not refer to the variable",
        ),
        (
            (
                'variable "v" {\n  description = "d"\n  type = string\n  default = "Bad"\n  validation {\n'
                '    condition = can(regex("^[a-z]+$", var.v))\n    error_message = "e"\n  }\n}'
            ),
            "default 'Bad' fails its validation",
        ),
        ('output "o" {\n  value = 1\n}', "output.o: has no description"),
        ('output "o" {\n  description = "d"\n  valeu = 1\n}', "output.o.valeu: not an argument of output blocks"),
        ('variable "v" {\n  descriptio = "d"\n  type = bool\n}', "variable.v.descriptio: not an argument"),
        ("locals {\n  x = 1\n}", "local.x: is declared but never used"),
        ('module "m" {\n  source = "./m"\n}', "unsupported top-level block"),
    ],
)
def test_validator_reports(snippet: str, expected: str) -> None:
    findings = findings_for(snippet)
    assert any(expected in f for f in findings), findings


def test_validator_reports_a_provider_missing_from_required_providers() -> None:
    config = validate.load_texts(
        {"main.tf": 'resource "google_storage_bucket" "b" {\n  name = "b"\n  location = "EU"\n}'}
    )
    findings = [str(f) for f in validate.validate(config, SCHEMAS)]
    assert any("provider `google` is not in terraform.required_providers" in f for f in findings), findings


def test_validator_accepts_a_valid_snippet() -> None:
    snippet = (
        'variable "name" {\n  description = "d"\n  type = string\n  default = "b"\n  validation {\n'
        '    condition = can(regex("^[a-z]+$", var.name))\n    error_message = "e"\n  }\n}\n'
        + BUCKET % '  project = "${var.name}-x"\n  versioning {\n    enabled = true\n  }'
        + 'output "o" {\n  description = "d"\n  value = google_storage_bucket.b.url\n}\n'
    )
    assert findings_for(snippet) == []


def test_references_skip_string_literals_and_escapes() -> None:
    value = '${format("var.not_a_ref %s", var.real)} $${var.escaped} "${local.x}"'
    assert set(validate.references(value)) == {("var", "real"), ("local", "x")}
    heredoc = '"<<-EOT\n  $${metric.label.x} ${google_cloud_scheduler_job.retrain.name}\n  EOT"'
    assert set(validate.references(heredoc)) == {("google_cloud_scheduler_job", "retrain", "name")}


def test_tfvars_check_reports_unknown_missing_and_invalid_values() -> None:
    config = validate.load_texts(
        {
            "variables.tf": 'variable "region" {\n  description = "d"\n  type = string\n  validation {\n'
            '    condition = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))\n    error_message = "e"\n  }\n}\n'
        }
    )
    findings = [str(f) for f in validate.check_tfvars(config, 'regoin = "x"\n')]
    assert any("regoin: is not a declared variable" in f for f in findings), findings
    assert any("region: has no default and is missing here" in f for f in findings), findings
    findings = [str(f) for f in validate.check_tfvars(config, 'region = "us-central1-a"\n')]
    assert any("example value 'us-central1-a' fails its validation" in f for f in findings), findings


def test_cli_exit_status() -> None:
    result = subprocess.run([sys.executable, str(INFRA / "validate.py")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout
    assert "0 finding(s)" in result.stdout


def test_schema_files_are_small_and_trimmed() -> None:
    for provider in validate.PROVIDERS:
        path = INFRA / "schema" / f"{provider}.json"
        assert path.stat().st_size < 200_000
        assert "trimmed" in json.loads(path.read_text())

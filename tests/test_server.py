"""LeadScoringPredictor behind Vertex AI's real CprModelServer, over HTTP."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest

from predictor.model import LeadScoringModel
from tests.conftest import start_server
from training.synth import EXAMPLE_LEAD
from training.serve import ServerStartError
from training.synth import generate_leads


def test_health(synth_server):
    assert httpx.get(f"{synth_server.url}/health").status_code == 200


def test_example_lead_scores_a_finite_number(synth_server):
    response = synth_server.post(json.dumps({"instances": [EXAMPLE_LEAD]}))
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["predictions"]) == 1 and math.isfinite(body["predictions"][0])
    assert body["model_version"] == "unregistered"


def test_batch_matches_in_process_model(synth_server, synth_model: Path):
    leads = generate_leads(200, seed=99).drop_columns(["conversion_probability"]).to_pylist()
    response = synth_server.post(json.dumps({"instances": leads}))
    assert response.status_code == 200, response.text
    served = np.array(response.json()["predictions"])
    expected = LeadScoringModel.load(synth_model).predict_instances(leads)
    assert served.shape == (200,)
    assert np.allclose(served, expected, atol=1e-6)
    assert served.std() > 0.01  # the model discriminates between leads


def test_parameters_are_accepted(synth_server):
    response = synth_server.post(json.dumps({"instances": [EXAMPLE_LEAD], "parameters": {}}))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("body", "content_type", "status", "needle"),
    [
        ("{not json", "application/json", 400, "request body is not valid JSON: Expecting property name"),
        (json.dumps({"instances": [EXAMPLE_LEAD]}), "text/plain", 400, "text/plain"),
        (json.dumps({"instances": [EXAMPLE_LEAD | {"pages_visited": "many"}]}), "application/json", 400,
         "instances[0].pages_visited: expected a number"),
        (json.dumps({"instances": [EXAMPLE_LEAD, EXAMPLE_LEAD | {"industry": 7}]}), "application/json", 400,
         "instances[1].industry: expected a string"),
        (json.dumps({"instances": []}), "application/json", 400, "'instances' is empty"),
        (json.dumps({"instance": [EXAMPLE_LEAD]}), "application/json", 400, "'instances' must be an array"),
        (json.dumps({"instances": "lead"}), "application/json", 400, "'instances' must be an array"),
        (json.dumps([EXAMPLE_LEAD]), "application/json", 400, "request body must be a JSON object"),
        (json.dumps({"instances": [42]}), "application/json", 400, "instances[0]: expected an object"),
        (json.dumps({"instances": [EXAMPLE_LEAD], "parameters": [1]}), "application/json", 400,
         "'parameters' must be an object"),
        ('{"instances": [{"pages_visited": NaN}]}', "application/json", 400, "finite number"),
    ],
)
def test_malformed_requests_are_4xx_with_a_message(synth_server, body, content_type, status, needle):
    response = synth_server.post(body, content_type=content_type)
    assert response.status_code == status, response.text
    assert needle in response.json()["detail"]


def test_the_response_is_json_and_other_accept_types_are_400(synth_server):
    body = json.dumps({"instances": [EXAMPLE_LEAD, EXAMPLE_LEAD]})
    for accept in ("application/json", "*/*", "text/html, application/json;q=0.5"):
        response = synth_server.post(body, headers={"Accept": accept})
        assert response.status_code == 200 and response.headers["content-type"].startswith(accept.split(",")[0])
        assert [type(p) for p in response.json()["predictions"]] == [float, float]
    refused = synth_server.post(body, headers={"Accept": "text/csv"})
    assert refused.status_code == 400 and "text/csv" in refused.json()["detail"]


def test_instances_cap_is_413(synth_model: Path, cpr_server):
    server = cpr_server(synth_model, extra_env={"LEADSCORE_MAX_INSTANCES": "5"})
    ok = server.post(json.dumps({"instances": [EXAMPLE_LEAD] * 5}))
    too_many = server.post(json.dumps({"instances": [EXAMPLE_LEAD] * 6}))
    assert ok.status_code == 200
    assert too_many.status_code == 413 and "at most 5" in too_many.json()["detail"]


def test_tampered_artifact_is_refused_at_start(synth_model: Path, tmp_path: Path):
    tampered = tmp_path / "model"
    shutil.copytree(synth_model, tampered)
    with open(tampered / "model.ubj", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ServerStartError, match="model.ubj does not match its sha256"):
        start_server(tampered, timeout=30)

"""Exact TreeSHAP explanations per raw feature: in-process, over HTTP on the real CPR server, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb
from typer.testing import CliRunner

from predictor.explain import explain_matrix
from predictor.model import LeadScoringModel
from tests.conftest import XEDU_CSV
from training.cli import app
from training.sources import read_table
from training.synth import EXAMPLE_LEAD


@pytest.fixture(scope="module")
def xedu_leads(xedu_model: Path) -> list[dict]:
    """Every fourth X Education lead (2,310) as a client would send it (raw CSV values as JSON).

    Exact TreeSHAP takes about a millisecond per lead; a quarter of the data keeps the suite fast.
    """
    features = LeadScoringModel.load(xedu_model).transform.feature_names
    return json.loads(read_table(XEDU_CSV)[features].iloc[::4].to_json(orient="records"))


def test_attributions_plus_base_value_equal_the_prediction_on_real_data(xedu_model: Path, xedu_leads):
    model = LeadScoringModel.load(xedu_model)
    matrix = model.transform.encode_instances(xedu_leads)
    explanations = explain_matrix(model.booster, model.transform, matrix)
    predictions = model.predict_matrix(matrix)
    assert explanations.features == model.transform.feature_names
    assert explanations.attributions.shape == (len(xedu_leads), len(model.transform.feature_names))
    assert np.max(np.abs(explanations.attributions.sum(axis=1) + explanations.base_values - predictions)) <= 1e-5
    assert np.ptp(explanations.base_values) == 0  # one expected value for the model
    assert np.abs(explanations.attributions).max() > 0.05  # and the features do explain something


def test_one_hot_columns_are_summed_into_their_source_feature(xedu_model: Path, xedu_leads):
    model = LeadScoringModel.load(xedu_model)
    matrix = model.transform.encode_instances(xedu_leads[:500])
    per_column = model.booster.predict(xgb.DMatrix(matrix, missing=model.transform.booster_missing),
                                       pred_contribs=True)[:, :-1]
    explanations = explain_matrix(model.booster, model.transform, matrix)
    sources = np.array(model.transform.output_sources())
    for j, feature in enumerate(explanations.features):
        assert np.allclose(explanations.attributions[:, j], per_column[:, sources == feature].sum(axis=1), atol=1e-9)
    assert len(explanations.features) < matrix.shape[1]  # categorical features span several columns


def test_explain_over_http_on_the_real_server(xedu_model: Path, xedu_leads, cpr_server):
    server = cpr_server(xedu_model)
    sample = xedu_leads[:300]
    plain = server.post(json.dumps({"instances": sample})).json()["predictions"]
    response = server.post(json.dumps({"instances": sample, "parameters": {"explain": True}}))
    assert response.status_code == 200, response.text
    explained = response.json()["predictions"]
    features = LeadScoringModel.load(xedu_model).transform.feature_names
    assert [e["score"] for e in explained] == plain  # the score is the ordinary prediction
    for item in explained:
        assert list(item["attributions"]) == features
        assert abs(item["base_value"] + sum(item["attributions"].values()) - item["score"]) <= 1e-5


def test_explain_requests_have_their_own_instance_cap(synth_model: Path, cpr_server):
    server = cpr_server(synth_model, extra_env={"LEADSCORE_MAX_EXPLAIN_INSTANCES": "3"})
    body = {"instances": [EXAMPLE_LEAD] * 4}
    assert server.post(json.dumps(body)).status_code == 200
    too_many = server.post(json.dumps(body | {"parameters": {"explain": True}}))
    assert too_many.status_code == 413
    assert "at most 3 per request with 'parameters.explain'" in too_many.json()["detail"]


def test_plain_predictions_stay_numbers(synth_server):
    response = synth_server.post(json.dumps({"instances": [EXAMPLE_LEAD], "parameters": {"explain": False}}))
    assert response.status_code == 200
    assert isinstance(response.json()["predictions"][0], float)


def test_explain_must_be_a_boolean(synth_server):
    response = synth_server.post(json.dumps({"instances": [EXAMPLE_LEAD], "parameters": {"explain": "yes"}}))
    assert response.status_code == 400
    assert "'parameters.explain' must be true or false" in response.json()["detail"]


def test_explain_cli_ranks_the_contributions(synth_model: Path, tmp_path: Path):
    lead = tmp_path / "lead.json"
    lead.write_text(json.dumps(EXAMPLE_LEAD))
    runner = CliRunner()
    as_json = runner.invoke(app, ["explain", "--model", str(synth_model), "--instance", str(lead), "--json"])
    assert as_json.exit_code == 0, as_json.output
    result = json.loads(as_json.stdout)
    magnitudes = [abs(v) for v in result["attributions"].values()]
    assert magnitudes == sorted(magnitudes, reverse=True)
    assert abs(result["base_value"] + sum(result["attributions"].values()) - result["score"]) <= 1e-5
    expected = LeadScoringModel.load(synth_model).predict_instances([EXAMPLE_LEAD])[0]
    assert result["score"] == pytest.approx(float(expected), abs=1e-7)

    table = runner.invoke(app, ["explain", "--model", str(synth_model), "--instance", str(lead)])
    assert table.exit_code == 0, table.output
    ranked = list(result["attributions"])
    positions = [table.stdout.index(feature) for feature in ranked]
    assert positions == sorted(positions)  # printed largest contribution first
    assert f"{result['score']:.4f}" in table.stdout


def test_explain_cli_takes_exactly_one_lead(synth_model: Path, tmp_path: Path):
    leads = tmp_path / "leads.json"
    leads.write_text(json.dumps([EXAMPLE_LEAD, EXAMPLE_LEAD]))
    result = CliRunner().invoke(app, ["explain", "--model", str(synth_model), "--instance", str(leads)])
    assert result.exit_code != 0
    assert "exactly one lead" in str(result.exception)

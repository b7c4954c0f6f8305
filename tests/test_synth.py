"""Synthetic leads: deterministic, in schema, with missing values and a learnable signal."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from training.cli import app
from training.sources import read_table
from training.synth import generate_leads

FEATURES = ["company_size", "industry", "product_interest", "pages_visited", "time_on_site", "campaign_source",
            "prior_contacts"]


def test_same_seed_same_rows_other_seed_other_rows():
    assert generate_leads(500, seed=3).equals(generate_leads(500, seed=3))
    assert not generate_leads(500, seed=3).equals(generate_leads(500, seed=4))


def test_schema_target_range_and_missing_values():
    frame = generate_leads(20_000, seed=1).to_pandas()
    assert set(FEATURES + ["conversion_probability"]) <= set(frame.columns)
    target = frame["conversion_probability"]
    assert target.between(0, 1).all() and 0.2 < target.mean() < 0.8
    missing = frame[FEATURES].isna().mean()
    assert 0.01 < missing["company_size"] < 0.06 and 0.01 < missing["industry"] < 0.06
    assert missing["product_interest"] == 0


def test_signal_is_non_linear():
    frame = generate_leads(20_000, seed=2).to_pandas()
    size = np.log10(frame["company_size"].dropna())
    target = frame.loc[size.index, "conversion_probability"]
    # Mid-market companies convert best: the size effect rises then falls.
    bands = target.groupby(np.digitize(size, [1.5, 2.5, 3.5])).mean()
    assert bands[2] > bands[0] and bands[2] > bands[3]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_cli_writes_format_by_extension(tmp_path, suffix):
    out = tmp_path / f"leads{suffix}"
    result = CliRunner().invoke(app, ["data", "synth", "--rows", "300", "--out", str(out), "--seed", "5"])
    assert result.exit_code == 0, result.output
    frame = read_table(out)
    assert len(frame) == 300
    if suffix == ".parquet":
        assert pq.read_metadata(out).num_rows == 300
    expected = generate_leads(300, seed=5).to_pandas()
    assert np.allclose(frame["conversion_probability"], expected["conversion_probability"])

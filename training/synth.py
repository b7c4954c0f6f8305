"""Synthetic leads in the classic lead-scoring schema, with a learnable non-linear signal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

INDUSTRIES = ("technology", "finance", "healthcare", "retail", "manufacturing", "education")
PRODUCTS = ("enterprise", "professional", "basic")
SOURCES = ("google", "linkedin", "facebook", "email", "referral", "direct")
TARGET = "conversion_probability"
MISSING_RATE = 0.03

# The seed's example lead, used by the demo, the tests and the smoke tests.
EXAMPLE_LEAD = {
    "company_size": 152,
    "industry": "technology",
    "product_interest": "enterprise",
    "pages_visited": 15,
    "time_on_site": 320,
    "campaign_source": "google",
    "prior_contacts": 2,
}

# Per-category effects on the log-odds of conversion.
_INDUSTRY_EFFECT = np.array([0.6, 0.3, 0.1, -0.3, -0.2, -0.5])
_PRODUCT_EFFECT = np.array([0.7, 0.2, -0.6])
_SOURCE_EFFECT = np.array([0.4, 0.5, -0.4, 0.1, 0.8, -0.2])


def generate_leads(rows: int, seed: int = 42) -> pa.Table:
    """Generates synthetic leads.

    The conversion probability is a logistic function of interacting, non-linear effects
    (engagement saturates, company size peaks in the mid-market, prior contacts help up to
    a point, enterprise interest pays off only for larger companies) plus noise. About 3 % of
    company_size, time_on_site, industry and campaign_source values are missing.

    Args:
        rows: Number of leads.
        seed: Seed of the random generator; the same seed gives the same table.

    Returns:
        A table with ``lead_id``, the seven features and ``conversion_probability`` in [0, 1].
    """
    rng = np.random.default_rng(seed)
    company_size = np.round(rng.lognormal(mean=5.0, sigma=1.4, size=rows)).clip(1, 100_000)
    industry = rng.choice(len(INDUSTRIES), size=rows, p=[0.3, 0.18, 0.15, 0.15, 0.12, 0.1])
    product = rng.choice(len(PRODUCTS), size=rows, p=[0.25, 0.4, 0.35])
    pages = rng.poisson(lam=6.0, size=rows) + rng.integers(0, 2, size=rows) * rng.poisson(8.0, size=rows)
    time_on_site = np.round(rng.gamma(shape=2.0, scale=90.0, size=rows) * (1 + pages / 10), 1)
    source = rng.choice(len(SOURCES), size=rows, p=[0.3, 0.2, 0.15, 0.15, 0.1, 0.1])
    prior_contacts = rng.poisson(lam=1.5, size=rows)

    log_size = np.log10(company_size)
    logit = (
        -2.1
        + 1.4 * np.tanh(pages / 8.0)
        + 0.9 * np.tanh(time_on_site / 400.0)
        - 0.8 * (log_size - 2.5) ** 2 / 2.0
        + 0.5 * np.minimum(prior_contacts, 3) - 0.35 * np.maximum(prior_contacts - 3, 0)
        + _INDUSTRY_EFFECT[industry]
        + _PRODUCT_EFFECT[product] * np.where(product == 0, np.tanh(log_size - 2.0), 1.0)
        + _SOURCE_EFFECT[source]
        + rng.normal(0.0, 0.35, size=rows)
    )
    target = 1.0 / (1.0 + np.exp(-logit))

    def missing_mask() -> np.ndarray:
        return rng.random(rows) < MISSING_RATE

    company_size_col = pa.array(company_size, mask=missing_mask())
    time_col = pa.array(time_on_site, mask=missing_mask())
    industry_col = pa.array(np.asarray(INDUSTRIES, dtype=object)[industry], type=pa.string(), mask=missing_mask())
    source_col = pa.array(np.asarray(SOURCES, dtype=object)[source], type=pa.string(), mask=missing_mask())
    lead_ids = pa.array([f"L{seed:04d}-{i:09d}" for i in range(rows)], type=pa.string())
    return pa.table(
        {
            "lead_id": lead_ids,
            "company_size": company_size_col,
            "industry": industry_col,
            "product_interest": pa.array(np.asarray(PRODUCTS, dtype=object)[product], type=pa.string()),
            "pages_visited": pa.array(pages.astype(np.int64)),
            "time_on_site": time_col,
            "campaign_source": source_col,
            "prior_contacts": pa.array(prior_contacts.astype(np.int64)),
            TARGET: pa.array(np.round(target, 6)),
        }
    )


def write_table(table: pa.Table, out: Path) -> Path:
    """Writes a table as Parquet or CSV, chosen by the file extension.

    Raises:
        ValueError: The extension is neither ``.parquet`` nor ``.csv``.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    suffix = out.suffix.lower()
    if suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        pq.write_table(table, out)
    elif suffix == ".csv":
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, out)
    else:
        raise ValueError(f"{out}: unknown extension {suffix!r}; use .csv or .parquet")
    return out

"""finance_dag.risk.books on a hand-built model: a covered stock keeps its fundamental exposures
and specific variance, an ETF gets returns-based exposures recovering its true betas, a name with
too short a history is excluded with its weight and the reason, the eight VaR rows, and sector and
region exposure summing to the book's weight."""

import math
from datetime import date, timedelta
from statistics import NormalDist

import numpy as np
import polars as pl
import pytest

from finance_dag.risk import books
from finance_dag.risk.attribution import UNCLASSIFIED
from finance_dag.risk.model import FACTORS, RiskModel

SECTORS = ("Energy", "Information Technology")
MODEL_FACTORS = (*FACTORS, *SECTORS)
SESSIONS = 120
DAYS = [date(2024, 1, 1) + timedelta(days=i) for i in range(SESSIONS)]
STOCKS = pl.DataFrame(
    {
        "symbol": ["AAA", "BBB"],
        "cap": [5e10, 2e9],
        "sector": ["Information Technology", "Energy"],
        "market": [1.2, 0.7],
        "size": [1.1, -0.6],
        "value": [-0.4, 0.9],
        "momentum": [0.5, -0.2],
        "volatility": [0.3, -0.8],
        "liquidity": [0.2, -0.1],
        "missing_reason": [None, None],
    },
    schema_overrides={"missing_reason": pl.String},
)
SPECIFIC = {"AAA": 2.5e-4, "BBB": 4e-4}
TRUE_BETAS = {"market": 0.8, "size": 0.3}  # the ETF's, on the model's factor returns


def build_model() -> RiskModel:
    vols = np.array([0.01, 0.004, 0.003, 0.004, 0.003, 0.002, 0.003, 0.003])
    corr = np.full((8, 8), 0.1) + 0.9 * np.eye(8)
    return RiskModel(
        day=DAYS[-1],
        factors=MODEL_FACTORS,
        exposures=STOCKS,
        covariance=corr * np.outer(vols, vols),
        specific=pl.DataFrame(
            {
                "symbol": list(SPECIFIC),
                "specific_variance": list(SPECIFIC.values()),
                "observations": [252, 252],
            }
        ),
    )


@pytest.fixture(scope="module")
def market() -> tuple[RiskModel, pl.DataFrame, pl.DataFrame]:
    """The model, 120 sessions of its factor returns, and daily returns of the names outside it:
    ETF = 0.8·market + 0.3·size + noise; SHORT has 40 returns only; the stocks have returns too
    (for historical VaR)."""
    rng = np.random.default_rng(11)
    factor_values = rng.normal(0.0, 0.01, (SESSIONS, 8))
    factor_returns = pl.DataFrame({"date": DAYS, **dict(zip(MODEL_FACTORS, factor_values.T, strict=True))})
    etf = 0.8 * factor_values[:, 0] + 0.3 * factor_values[:, 1] + rng.normal(0.0, 0.001, SESSIONS)
    rows = {
        "ETF": (DAYS, etf),
        "SHORT": (DAYS[-40:], rng.normal(0.0, 0.01, 40)),
        "AAA": (DAYS, rng.normal(0.0, 0.02, SESSIONS)),
        "BBB": (DAYS, rng.normal(0.0, 0.015, SESSIONS)),
    }
    asset_returns = pl.concat(
        pl.DataFrame({"date": days, "symbol": symbol, "ret": values})
        for symbol, (days, values) in rows.items()
    )
    return build_model(), asset_returns, factor_returns


def test_a_covered_stock_keeps_its_fundamental_row_and_specific_variance(market):
    model, asset_returns, factor_returns = market
    exposures, specific, sources = books.book_exposures(model, ["AAA", "BBB"], asset_returns, factor_returns)
    assert exposures.columns == ["symbol", *MODEL_FACTORS]
    row = exposures.filter(pl.col("symbol") == "AAA").row(0, named=True)
    stock = STOCKS.row(0, named=True)
    assert {f: row[f] for f in FACTORS} == {f: stock[f] for f in FACTORS}
    assert (row["Energy"], row["Information Technology"]) == (0.0, 1.0)  # its sector dummy
    assert exposures.filter(pl.col("symbol") == "BBB").select(SECTORS).row(0) == (1.0, 0.0)
    assert specific == SPECIFIC
    assert sources.rows() == [("AAA", "fundamental", None), ("BBB", "fundamental", None)]


def test_a_name_outside_the_model_gets_returns_based_exposures_recovering_its_betas(market):
    model, asset_returns, factor_returns = market
    exposures, specific, sources = books.book_exposures(model, ["AAA", "ETF"], asset_returns, factor_returns)
    etf = exposures.filter(pl.col("symbol") == "ETF").row(0, named=True)
    for factor in MODEL_FACTORS:
        assert etf[factor] == pytest.approx(TRUE_BETAS.get(factor, 0.0), abs=0.05), factor
    assert specific["ETF"] == pytest.approx(0.001**2, rel=0.35)  # the noise's variance
    source = sources.filter(pl.col("symbol") == "ETF").row(0, named=True)
    assert source["source"] == "returns-based" and 0.9 < source["r2"] < 1.0
    assert sources.filter(pl.col("symbol") == "AAA")["source"].item() == "fundamental"


def test_a_name_with_fewer_than_60_returns_is_excluded_with_its_weight_never_zero_filled(market):
    model, asset_returns, factor_returns = market
    exposures, specific, _ = books.book_exposures(
        model, ["SHORT", "NONE"], asset_returns, factor_returns
    )  # NONE has no return at all
    assert exposures.select(MODEL_FACTORS).null_count().row(0) == (2,) * len(MODEL_FACTORS)
    assert "SHORT" not in specific and "NONE" not in specific

    weights = {"AAA": 0.4, "ETF": 0.35, "SHORT": 0.15, "NONE": 0.1}
    risk = books.book_risk("book", weights, model, asset_returns, factor_returns, {}, {})
    a = risk.attribution
    excluded = {row["symbol"]: row for row in a.excluded.iter_rows(named=True)}
    assert set(excluded) == {"SHORT", "NONE"}
    assert excluded["SHORT"]["weight"] == 0.15 and excluded["NONE"]["weight"] == 0.1
    assert all(row["reason"].startswith("missing exposure: market") for row in excluded.values())
    assert a.excluded_weight == pytest.approx(0.25)
    assert set(a.positions["symbol"]) == {"AAA", "ETF"}
    assert a.positions["contribution"].sum() == pytest.approx(a.volatility, abs=1e-12)
    assert a.factors["contribution"].sum() + a.specific_contribution == pytest.approx(a.volatility, abs=1e-12)
    r2 = risk.sources.filter(pl.col("symbol") == "SHORT")["r2"].item()
    assert r2 is None or math.isnan(r2)


def test_book_risk_reports_parametric_and_historical_var_and_cvar_at_95_and_99_over_1_and_10_days(market):
    model, asset_returns, factor_returns = market
    weights = {"AAA": 0.5, "BBB": 0.2, "ETF": 0.3}
    risk = books.book_risk("book", weights, model, asset_returns, factor_returns, {}, {})
    assert risk.var.schema == books.VAR_SCHEMA and risk.var.height == 8
    assert set(risk.var.select("method", "confidence", "horizon_days").rows()) == {
        (m, c, h) for m in ("parametric", "historical") for c in (0.95, 0.99) for h in (1, 10)
    }
    sigma = risk.attribution.volatility
    assert sigma > 0 and risk.attribution.excluded.height == 0
    for method, confidence, horizon, var, cvar in risk.var.iter_rows():
        if method == "parametric":
            assert var == pytest.approx(
                NormalDist().inv_cdf(confidence) * sigma * math.sqrt(horizon), rel=1e-12
            )
        assert cvar > var > 0, (method, confidence, horizon)
    by = {(m, c, h): v for m, c, h, v, _ in risk.var.iter_rows()}
    for method in ("parametric", "historical"):
        assert by[(method, 0.99, 1)] > by[(method, 0.95, 1)]
        assert by[(method, 0.95, 10)] == pytest.approx(by[(method, 0.95, 1)] * math.sqrt(10), rel=1e-12)
    # Historical: today's weights on the realised returns, the empirical 5 % quantile.
    wide = asset_returns.pivot("symbol", index="date", values="ret").sort("date")
    realised = wide.select(list(weights)).to_numpy() @ np.array(list(weights.values()))
    assert by[("historical", 0.95, 1)] == pytest.approx(-np.quantile(realised, 0.05), rel=1e-12)


def test_sector_and_region_exposure_sum_to_the_books_weight(market):
    model, asset_returns, factor_returns = market
    weights = {"AAA": 0.5, "BBB": 0.3, "ETF": 0.4, "SHORT": -0.2}  # 130/30: net 1.0
    sectors = {"AAA": "Information Technology", "BBB": "Energy", "ETF": None}  # an uncategorised ETF
    regions = {"AAA": "US", "BBB": "US", "ETF": "International", "SHORT": "US"}
    risk = books.book_risk("book", weights, model, asset_returns, factor_returns, sectors, regions)
    assert risk.sectors["weight"].sum() == pytest.approx(1.0)
    assert dict(risk.sectors.iter_rows()) == {
        "Information Technology": 0.5,
        "Energy": 0.3,
        UNCLASSIFIED: pytest.approx(0.2),  # ETF without a category and SHORT without a label
    }
    assert dict(risk.regions.iter_rows()) == {"US": pytest.approx(0.6), "International": 0.4}
    assert risk.sectors["label"].null_count() == 0

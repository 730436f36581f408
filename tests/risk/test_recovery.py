"""The risk model against the simulated truth: over a year of the simulated equity universe
(3,000 stocks drawn from a known six-factor model), estimated exposures and daily factor
returns recover the truth, and predicted volatility matches realised volatility out of sample."""

from datetime import date

import numpy as np
import polars as pl
import pytest

from finance_dag.risk import (
    FACTORS,
    attribution,
    daily_returns,
    exposures_range,
    factor_returns_range,
    risk_model,
)
from finance_dag.sim.equities import SimulatedEquityMarket

FIRST, LAST = date(2017, 1, 3), date(2019, 12, 31)
YEAR = (date(2019, 1, 1), date(2019, 12, 31))
MODEL_DAY = date(2019, 6, 28)  # the model is built here; the next six months are out of sample


@pytest.fixture(scope="module")
def estimated():
    sim = SimulatedEquityMarket(7, end=date(2020, 1, 31))
    prices = sim.daily(FIRST, LAST)
    market = sim.market_proxy(FIRST, LAST)
    quarters = [
        d for d in sim.sessions if d <= LAST and (d == FIRST or ((d.month - 1) % 3 == 0 and d.day <= 7))
    ]
    fundamentals = pl.concat([sim.fundamentals(d).with_columns(date=pl.lit(d)) for d in quarters])
    sessions = [d for d in sim.sessions if date(2018, 1, 1) <= d <= LAST]
    exposures = exposures_range(prices, market, fundamentals, sessions)
    regressions = factor_returns_range(daily_returns(prices), exposures)
    return sim, prices, exposures, regressions


def correlation(a, b) -> float:
    return float(np.corrcoef(np.asarray(a, dtype=float), np.asarray(b, dtype=float))[0, 1])


def test_daily_factor_returns_recover_the_truth(estimated):
    sim, _, _, regressions = estimated
    truth = sim.true_factor_returns(*YEAR)
    joined = truth.join(regressions.returns, on="date", suffix="_est")
    assert joined.height >= 250
    for factor in FACTORS:
        assert correlation(joined[factor], joined[f"{factor}_est"]) > 0.9, factor
    sectors = [c for c in truth.columns if c not in (*FACTORS, "date")]
    assert min(correlation(joined[s], joined[f"{s}_est"]) for s in sectors) > 0.9


def test_exposures_recover_the_truth(estimated):
    sim, _, exposures, _ = estimated
    day = date(2019, 6, 3)
    previous = sim.sessions[sim.sessions.index(day) - 1]  # the returns of day load on these
    joined = exposures.filter(pl.col("date") == previous).join(
        sim.true_exposures(day), on="symbol", suffix="_true"
    )
    for factor in FACTORS:
        pairs = joined.select(factor, f"{factor}_true").drop_nulls()
        floor = 0.85 if factor == "market" else 0.999  # beta is estimated from 252 noisy returns
        assert correlation(pairs[factor], pairs[f"{factor}_true"]) > floor, factor


def test_predicted_volatility_is_within_15_percent_of_realised_out_of_sample(estimated):
    sim, prices, exposures, regressions = estimated
    model = risk_model(exposures, regressions, MODEL_DAY)
    after = daily_returns(prices).filter((pl.col("date") > MODEL_DAY) & (pl.col("date") <= LAST))
    wide = after.pivot("symbol", index="date", values="ret")
    rng = np.random.default_rng(11)
    names = model.exposures["symbol"].to_list()
    for book in (names, sorted(rng.choice(names, 50, replace=False))):
        weights = {s: 1 / len(book) for s in book}
        frame = pl.DataFrame(model.exposure_matrix(book), schema=list(model.factors), orient="row")
        predicted = attribution.attribute(
            weights,
            frame.with_columns(symbol=pl.Series(book)),
            model.covariance,
            dict(model.specific.select("symbol", "specific_variance").iter_rows()),
        ).volatility
        realised = float((wide.select(book).to_numpy() @ np.full(len(book), 1 / len(book))).std(ddof=1))
        assert abs(predicted / realised - 1) < 0.15, (len(book), predicted, realised)

"""The simulated equity universe: deterministic, and its true exposures are the risk spec's
descriptors recomputed from public data (``daily`` + ``fundamentals``) with nothing from the future."""

from datetime import date

import numpy as np
import pandas as pd
import polars as pl
import pytest

from finance_dag.core import calendar
from finance_dag.sim.equities import (
    ADR_COUNTRIES,
    EQUITY_START,
    EQUITY_UNTIL,
    STYLES,
    WARMUP,
    SimulatedEquityMarket,
)
from finance_dag.sim.market import SECTORS

DAY = date(2024, 6, 3)  # a Monday: its exposures come from the close of Friday 2024-05-31


@pytest.fixture(scope="module")
def small() -> SimulatedEquityMarket:
    return SimulatedEquityMarket(7, n_stocks=300)


def _previous_session(day: date) -> date:
    return calendar.sessions(date(day.year - 1, 1, 1), day)[-2]


def _spec_exposures(market: SimulatedEquityMarket, day: date) -> pd.DataFrame:
    """The spec's standardised style descriptors at the close before ``day``, the plain way."""
    asof = _previous_session(day)
    daily = market.daily(date(asof.year - 1, 1, 1), asof).to_pandas()
    close = daily.pivot(index="date", columns="symbol", values="close")
    turnover = daily.pivot(index="date", columns="symbol", values="volume") / daily.pivot(
        index="date", columns="symbol", values="shares_outstanding"
    )
    fundamentals = market.fundamentals(asof).to_pandas().set_index("symbol")
    cap = close.iloc[-1] * fundamentals["shares_outstanding"]
    raw = pd.DataFrame(
        {
            "size": np.log(cap),
            "value": fundamentals["book_value"] / cap,
            "momentum": close.iloc[-6] / close.iloc[-69] - 1,
            "volatility": close.pct_change().iloc[-21:].std(ddof=1) * np.sqrt(252),
            "liquidity": np.log(turnover.iloc[-21:].mean()),
        }
    )
    weight = cap / cap.sum()
    out = {}
    for name, values in raw.items():
        mean, sd = values.mean(), values.std(ddof=0)
        clipped = values.clip(mean - 3 * sd, mean + 3 * sd)
        out[name] = (clipped - (clipped * weight).sum()) / clipped.std(ddof=0)
    return pd.DataFrame(out)


def test_the_same_seed_gives_the_same_universe_and_another_seed_another(small):
    again = SimulatedEquityMarket(7, n_stocks=300)
    window = (date(2021, 3, 1), date(2021, 3, 31))
    assert again.daily(*window).equals(small.daily(*window))
    assert again.true_factor_returns(*window).equals(small.true_factor_returns(*window))
    assert again.fundamentals(DAY).equals(small.fundamentals(DAY))
    other = SimulatedEquityMarket(8, n_stocks=300)
    assert not other.daily(*window)["close"].equals(small.daily(*window)["close"])


def test_true_exposures_are_the_spec_descriptors_recomputed_from_public_data(small):
    expected = _spec_exposures(small, DAY)
    truth = small.true_exposures(DAY).to_pandas().set_index("symbol").loc[expected.index]
    for style in STYLES:
        assert np.corrcoef(expected[style], truth[style])[0, 1] > 0.999, style
        np.testing.assert_allclose(truth[style], expected[style], atol=1e-4)


def test_the_true_beta_is_what_a_252_session_regression_on_the_proxy_sees(small):
    asof = _previous_session(DAY)
    days = calendar.sessions(date(2023, 1, 1), asof)[-253:]
    close = small.daily(days[0], asof).to_pandas().pivot(index="date", columns="symbol", values="close")
    stock = close.pct_change().iloc[1:].to_numpy()
    proxy = small.market_proxy(days[0], asof)["close"].to_numpy()
    market = proxy[1:] / proxy[:-1] - 1
    centred = market - market.mean()
    beta = centred @ (stock - stock.mean(axis=0)) / (centred @ centred)
    truth = small.true_exposures(DAY)["market"].to_numpy()
    assert np.corrcoef(beta, truth)[0, 1] > 0.8


def test_the_market_proxy_tracks_the_market_factor(small):
    proxy = small.market_proxy(date(2018, 1, 1), EQUITY_UNTIL)
    returns = proxy["close"].pct_change().to_numpy()[1:]
    factor = small.true_factor_returns(date(2018, 1, 1), EQUITY_UNTIL)["market"].to_numpy()[1:]
    assert np.corrcoef(returns, factor)[0, 1] > 0.95
    assert proxy["date"].dtype == pl.Date and proxy["close"][0] > 0


def test_style_exposures_have_cap_weighted_mean_0_and_unit_std(small):
    for day in (small.sessions[WARMUP], date(2020, 3, 16), DAY, date(2026, 12, 31)):
        asof = _previous_session(day)
        cap = small.daily(asof, asof).select(pl.col("close") * pl.col("shares_outstanding"))
        weight = cap.to_series().to_numpy() / cap.to_series().sum()
        exposures = small.true_exposures(day)
        for style in STYLES:
            x = exposures[style].to_numpy().astype(np.float64)
            assert abs(weight @ x) < 1e-5, (day, style)
            assert x.std() == pytest.approx(1.0, abs=1e-5), (day, style)


def test_sector_returns_sum_to_0_with_sector_cap_weights_of_the_previous_close(small):
    daily = small.daily(date(2022, 12, 1), date(2023, 12, 29))
    sectors = small.fundamentals(DAY).select("symbol", "sector")
    caps = (
        daily.join(sectors, on="symbol")
        .group_by("date", "sector")
        .agg(cap=(pl.col("close") * pl.col("shares_outstanding")).sum())
        .pivot(on="sector", index="date", values="cap")
        .sort("date")
    )
    weights = caps.select(SECTORS).to_numpy()
    weights = (weights / weights.sum(axis=1, keepdims=True))[:-1]  # the previous close of each day
    returns = small.true_factor_returns(caps["date"][1], date(2023, 12, 29))
    assert returns["date"].to_list() == caps["date"].to_list()[1:]
    assert np.abs((weights * returns.select(SECTORS).to_numpy()).sum(axis=1)).max() < 1e-12


def test_nothing_depends_on_the_future_a_history_ending_on_a_day_has_its_exposures(small):
    short = SimulatedEquityMarket(7, n_stocks=300, end=DAY)
    assert short.sessions[-1] == DAY
    assert short.true_exposures(DAY).equals(small.true_exposures(DAY))
    window = (date(2024, 1, 2), DAY)
    assert short.daily(*window).equals(small.daily(*window))
    assert short.true_factor_returns(*window).equals(small.true_factor_returns(*window))
    assert short.fundamentals(DAY).equals(small.fundamentals(DAY))


def test_book_value_is_reported_quarterly_and_volume_is_turnover_times_shares(small):
    book = [small.fundamentals(d)["book_value"] for d in (date(2024, 4, 1), date(2024, 6, 28))]
    assert book[0].equals(book[1])  # one quarter, one report
    assert not book[1].equals(small.fundamentals(date(2024, 7, 1))["book_value"])
    daily = small.daily(DAY, DAY)
    assert daily["volume"].dtype == pl.Int64 and daily["volume"].min() > 0
    assert daily.columns == ["date", "symbol", "close", "volume", "shares_outstanding"]
    assert small.daily(DAY, DAY, ["EQ0002", "EQ0001"])["symbol"].to_list() == ["EQ0001", "EQ0002"]
    with pytest.raises(ValueError, match="with a return"):
        small.true_exposures(EQUITY_START)


def test_the_default_universe_has_the_documented_characteristics():
    market = SimulatedEquityMarket()
    assert market.symbols[0] == "EQ0001" and market.symbols[-1] == "EQ3000" and len(market.symbols) == 3000
    assert market.sessions[0] == EQUITY_START and market.sessions[-1] == EQUITY_UNTIL
    first = market.daily(EQUITY_START, EQUITY_START)
    cap = (first["close"] * first["shares_outstanding"]).to_numpy()
    assert cap.min() > 2.5e8 and cap.max() < 2.1e12 and first["close"].is_between(10, 300).all()
    fundamentals = market.fundamentals(EQUITY_START)
    assert 0.85 < (fundamentals["country"] == "US").mean() < 0.95
    assert set(fundamentals["country"]) <= {"US", *ADR_COUNTRIES}
    assert set(fundamentals["sector"]) == set(SECTORS)
    bp = fundamentals["book_value"].to_numpy() / cap
    assert bp.min() > 0.04 and bp.max() < 2.1
    beta = market.true_exposures(market.sessions[1])["market"].to_numpy()
    assert (cap / cap.sum()) @ beta == pytest.approx(1.0, abs=1e-12)
    specific = market.true_specific_vol()["specific_vol"].to_numpy()
    assert specific.min() >= 0.008 and specific.max() <= 0.03
    assert np.corrcoef(np.log(cap), specific)[0, 1] < -0.5  # small caps are more volatile
    factors = market.true_factor_returns(date(2019, 1, 1), EQUITY_UNTIL)
    assert factors.columns == ["date", "market", *STYLES, *SECTORS]
    assert factors["market"].std() == pytest.approx(0.011, rel=0.1)

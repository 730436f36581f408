"""The simulated file drops: valid in their documented schemas, deterministic, delivered when a
vendor would deliver them."""

from datetime import date

import polars as pl

from finance_dag.core import calendar
from finance_dag.core.universe import ETF_SYMBOLS, LENDING_SYMBOLS
from finance_dag.lending.extended import DROPS
from finance_dag.lending.feed import validate
from finance_dag.sim.alt_data import CREATION_UNIT, MENTIONS_OUTAGE, SimulatedAltData

NAMES = list(LENDING_SYMBOLS[:200])
DAY = date(2024, 11, 29)


def test_every_drop_validates_in_its_schema_and_is_deterministic():
    alt = SimulatedAltData(7)
    for dataset, delivery in DROPS.items():
        day = date(2024, 11, 1) if dataset == "esg_scores" else DAY
        frame = alt.drop(dataset, NAMES, day)
        assert validate(frame, delivery, day, dataset).height == frame.height > 0
        assert frame.equals(SimulatedAltData(7).drop(dataset, NAMES, day))


def test_etf_shares_move_in_creation_units_and_the_change_is_the_day_over_day_difference():
    alt = SimulatedAltData(7)
    before, today = (alt.etf_shares(NAMES, d) for d in calendar.sessions(date(2024, 11, 27), DAY))
    assert set(today["symbol"]) == set(ETF_SYMBOLS) & set(NAMES)
    assert (today["shares_outstanding"] % CREATION_UNIT == 0).all()
    joined = today.join(before, on="symbol", suffix="_before")
    change = joined["shares_outstanding"] - joined["shares_outstanding_before"]
    assert (joined["shares_outstanding_change"] == change).all()


def test_esg_is_monthly_and_mentions_skip_names_without_posts_and_some_days():
    alt = SimulatedAltData(7)
    sessions = calendar.sessions(date(2023, 1, 3), DAY)
    esg_days = [d for d in sessions if alt.esg_scores(["SPY"], d) is not None]
    assert len(esg_days) == 23 and all(d.day <= 4 for d in esg_days)  # the first session of each month
    outages = [d for d in sessions if alt.social_mentions(["SPY"], d) is None]
    assert 0 < len(outages) < 3 * MENTIONS_OUTAGE * len(sessions)
    counts = alt.social_mentions(NAMES, DAY)
    assert (counts["mentions"] > 0).all() and 0 < counts.height < len(NAMES)
    assert counts.select(pl.col("mentions").mean()).item() > 1

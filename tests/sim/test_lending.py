"""The simulated lending feed: the vendor's schema, plausible values, and a planted truth that
the market's own prices carry (and nothing else does)."""

from datetime import date

import numpy as np
import polars as pl
from scipy.stats import spearmanr

from finance_dag.core import calendar
from finance_dag.sim import SimulatedMarket
from finance_dag.sim.lending import FEED_COLUMNS, SimulatedLending, lending_universe

DAY = date(2024, 11, 29)


def test_the_feed_has_the_vendors_schema_and_plausible_values():
    names = list(lending_universe(1000))
    assert len(names) == len(set(names)) == 1000 and "SPY" in names and "LND0001" in names
    feed = SimulatedLending(7).feed(names[:200], DAY)
    assert tuple(feed.columns) == FEED_COLUMNS and feed.height == 200
    assert feed["ticker"].is_unique().all() and (feed["Date"] == DAY.isoformat()).all()
    assert feed["Fee All (BPS)"].min() > 0 and feed["Active Utilization (%)"].is_between(0, 100).all()
    assert (feed["Short Interest"] > 0).all() and (feed["Lender Count"] >= 1).all()
    assert feed.equals(SimulatedLending(7).feed(names[:200], DAY))  # deterministic
    assert not feed.equals(SimulatedLending(8).feed(names[:200], DAY))


def test_feed_files_round_trip_as_csv_and_parquet(tmp_path):
    lending = SimulatedLending(7)
    for fmt in ("csv", "parquet"):
        path = lending.write_feed_file(["SPY", "AAPL"], DAY, tmp_path / "inbox", fmt)
        assert path.name == f"lending_{DAY}.{fmt}"
        back = pl.read_csv(path) if fmt == "csv" else pl.read_parquet(path)
        assert back["ticker"].to_list() == ["SPY", "AAPL"] and back.columns == list(FEED_COLUMNS)
    assert not list((tmp_path / "inbox").glob("*.tmp"))


def test_the_planted_relation_is_in_the_markets_prices_and_only_where_planted():
    """Fee shocks under high utilisation precede positive 5-session returns (from the close of
    t+1, as alphalens measures); short-interest momentum and days to cover do not."""
    market = SimulatedMarket(7)
    lending = market.lending
    names = list(lending_universe(400))
    days = calendar.sessions(date(2023, 1, 3), date(2023, 6, 30))
    closes = (
        market.daily_prices(names, days[0], date(2023, 7, 31))
        .pivot(on="symbol", index="date", values="close")
        .sort("date")
    )
    prices, row = closes.select(names).to_numpy(), {d: i for i, d in enumerate(closes["date"])}
    ics: dict[str, list[float]] = {"shock": [], "utilisation": [], "si_momentum": [], "days_to_cover": []}
    for day in days:
        i, s = row[day], lending._index[day]
        forward = prices[i + 6] / prices[i + 1] - 1
        states = [lending.state(n) for n in names]
        signals = {
            "shock": [st["z"][s] for st in states],
            "utilisation": [(st["utilisation"][s - 19 : s + 1] >= 80).mean() for st in states],
            "si_momentum": [st["short_interest"][s] / st["short_interest"][s - 20] for st in states],
            "days_to_cover": [st["short_interest"][s] / st["adv"][s] for st in states],
        }
        for name, values in signals.items():
            ics[name].append(spearmanr(values, forward).statistic)
    t = {name: np.mean(v) / np.std(v, ddof=1) * np.sqrt(len(v)) for name, v in ics.items()}
    assert t["shock"] > 3 and t["utilisation"] > 3, t
    assert abs(t["si_momentum"]) < 3 and abs(t["days_to_cover"]) < 3, t

"""Alpaca daily prices against the loopback fake: raw bars of the simulated ETF market, splits and
dividends from corporate actions, per-symbol failures, the shared boundary validation."""

from datetime import date

import polars as pl
import pytest

from finance_dag.core.http import RateLimiter, RetryPolicy
from finance_dag.market_data.daily import DAILY_PRICE_SCHEMA, conform_daily
from finance_dag.market_data.vendors.alpaca import AlpacaBars
from finance_dag.sim.etf import SimulatedEtfMarket
from finance_dag.testing.alpaca import BARS_PATH, CORPORATE_ACTIONS_PATH, FakeAlpaca

pytestmark = pytest.mark.vendors

KEY, SECRET = "AKFAKEKEY123", "sk-fake-secret-456"
START, END = date(2024, 9, 23), date(2024, 10, 31)  # 29 sessions
# In the simulated ETF market: LMJ splits 2:1 on 10-02 and MQHA 3:1 on 10-14; SPY, LMJ, MQHA
# and NDAG pay dividends in October.
SYMBOLS = ["SPY", "LMJ", "MQHA", "NDAG"]
NO_DATA = "AAA"  # an ETF the simulated vendor has no prices for


@pytest.fixture(scope="module")
def etf() -> SimulatedEtfMarket:
    return SimulatedEtfMarket(7)


def adapter(fake: FakeAlpaca, attempts: int = 3, page_limit: int = 10_000) -> AlpacaBars:
    policy = RetryPolicy(attempts=attempts, initial_wait=0.0, jitter=0.0, timeout=3.0, sleep=lambda s: None)
    limiter = RateLimiter([(10_000, 60.0)])
    return AlpacaBars(KEY, SECRET, base_url=fake.url, policy=policy, limiter=limiter, page_limit=page_limit)


def expected(etf: SimulatedEtfMarket, symbols: list[str]) -> pl.DataFrame:
    rows = etf.daily_prices(symbols, START, END).with_columns(source=pl.lit("alpaca:sip"))
    return rows.sort("symbol", "date")


def test_daily_bars_are_the_raw_truth_with_splits_and_dividends_recorded(market, etf) -> None:
    with FakeAlpaca(market, KEY, SECRET, daily=etf.daily_prices) as fake:
        result = adapter(fake, page_limit=50).fetch_daily(SYMBOLS, START, END)
        bars_pages, action_pages = fake.total(BARS_PATH), fake.total(CORPORATE_ACTIONS_PATH)
        first = next(r for r in fake.log if r.path == BARS_PATH).query
        actions = next(r for r in fake.log if r.path == CORPORATE_ACTIONS_PATH).query
    assert result.failures == {}
    assert result.prices.equals(expected(etf, SYMBOLS))
    assert result.prices.schema == DAILY_PRICE_SCHEMA
    splits = result.prices.filter(pl.col("split_ratio") != 1.0).select("symbol", "date", "split_ratio")
    assert splits.rows() == [("LMJ", date(2024, 10, 2), 2.0), ("MQHA", date(2024, 10, 14), 3.0)]
    assert set(result.prices.filter(pl.col("dividend") > 0)["symbol"]) == set(SYMBOLS)
    assert (bars_pages, action_pages) == (3, 1)  # 4 x 29 bars at 50 a page; one actions page
    assert (first["timeframe"], first["adjustment"], first["symbols"]) == ("1Day", "raw", "LMJ,MQHA,NDAG,SPY")
    assert first["start"] == "2024-09-23T04:00:00+00:00"  # 00:00 New York (EDT): the first bar's stamp
    assert actions["types"] == "forward_split,reverse_split,cash_dividend"
    assert (actions["start"], actions["end"]) == ("2024-09-23", "2025-01-29")  # dividends process when paid


@pytest.mark.chaos("vendor faults", faults="500 503 truncated malformed empty-page")
def test_transient_faults_are_retried_and_the_rows_stay_exact(market, etf) -> None:
    with FakeAlpaca(market, KEY, SECRET, daily=etf.daily_prices) as fake:
        for kind in ("500", "truncated", "malformed", "empty_page"):
            fake.inject(kind, match=lambda r: "page_token" in r.query)
        fake.inject("503", match=lambda r: r.path == CORPORATE_ACTIONS_PATH)
        result = adapter(fake, attempts=6, page_limit=50).fetch_daily(SYMBOLS, START, END)
    assert result.failures == {}
    assert result.prices.equals(expected(etf, SYMBOLS))


def test_symbol_alpaca_has_no_bars_for_fails_alone(market, etf) -> None:
    with FakeAlpaca(market, KEY, SECRET, daily=etf.daily_prices) as fake:
        result = adapter(fake).fetch_daily(["SPY", NO_DATA], START, END)
    assert result.failures == {
        NO_DATA: "alpaca: GET /v2/stocks/bars for AAA,SPY 2024-09-23..2024-10-31 (daily, feed sip) "
        "answered no bars for AAA"
    }
    assert result.prices.equals(expected(etf, ["SPY"]))


@pytest.mark.chaos("vendor faults", faults="500-mid-pagination")
def test_bars_failing_midway_fail_the_symbols_from_the_cut_on(market, etf) -> None:
    with FakeAlpaca(market, KEY, SECRET, daily=etf.daily_prices) as fake:
        fake.inject("500", times=None, match=lambda r: "page_token" in r.query)  # only page 1 comes
        result = adapter(fake, attempts=2, page_limit=40).fetch_daily(SYMBOLS, START, END)
    assert set(result.failures) == {"MQHA", "NDAG", "SPY"}  # LMJ's 29 bars and 11 of MQHA's came
    assert "failed after 2 attempt(s) (HTTP 500)" in result.failures["MQHA"]
    assert result.failures["MQHA"].endswith("[no daily bars for MQHA]")
    assert result.prices.equals(expected(etf, ["LMJ"]))


def test_unreadable_corporate_actions_fail_every_symbol_without_asking_for_bars(market, etf) -> None:
    with FakeAlpaca(market, KEY, SECRET, daily=etf.daily_prices) as fake:
        fake.inject("503", times=None, match=lambda r: r.path == CORPORATE_ACTIONS_PATH)
        result = adapter(fake, attempts=2).fetch_daily(["SPY", "LMJ"], START, END)
        asked_bars = fake.total(BARS_PATH)
    assert result.prices.is_empty() and result.prices.schema == DAILY_PRICE_SCHEMA
    assert set(result.failures) == {"LMJ", "SPY"}
    message = result.failures["SPY"]
    assert message.startswith("alpaca: GET /v1/corporate-actions for LMJ,SPY 2024-09-23..2024-10-31")
    assert "(HTTP 503)" in message and message.endswith("cannot record them")
    assert KEY not in message and SECRET not in message
    assert asked_bars == 0


@pytest.mark.chaos("bad price file", faults="high-below-low repeated-date")
def test_rows_breaking_a_rule_fail_their_symbol_naming_rule_and_dates(market, etf) -> None:
    bad_day, twice = date(2024, 10, 9), date(2024, 10, 15)

    def broken(symbols: list[str], first: date, last: date) -> pl.DataFrame:
        frame = etf.daily_prices(symbols, first, last)
        spy = (pl.col("symbol") == "SPY") & (pl.col("date") == bad_day)
        mqha = (pl.col("symbol") == "MQHA") & (pl.col("date") == twice)
        frame = frame.with_columns(low=pl.when(spy).then(pl.col("high") + 1).otherwise("low"))
        return pl.concat([frame, frame.filter(mqha)])

    with FakeAlpaca(market, KEY, SECRET, daily=broken) as fake:
        result = adapter(fake).fetch_daily(SYMBOLS, START, END)
    assert result.failures == {
        "MQHA": "alpaca:sip: MQHA failed validation: date repeated on 2024-10-15",
        "SPY": "alpaca:sip: SPY failed validation: high below low on 2024-10-09",
    }
    assert result.prices.equals(expected(etf, ["LMJ", "NDAG"]))


def test_conform_daily_fills_missing_events_and_names_every_broken_rule() -> None:
    frame = pl.DataFrame(
        {
            "date": [date(2024, 11, 1), date(2024, 11, 4), date(2024, 11, 1)],
            "symbol": ["A", "A", "B"],
            "open": [10.0, 0.0, 5.0],
            "high": [11.0, 10.5, 5.5],
            "low": [9.0, 9.5, 4.5],
            "close": [10.5, 10.0, 5.0],
            "volume": [100, -1, 200],
        }
    )
    prices, failures = conform_daily(frame, "vendor")
    assert failures == {
        "A": "vendor: A failed validation: price not a positive number on 2024-11-04; "
        "volume missing or negative on 2024-11-04"
    }
    assert prices.schema == DAILY_PRICE_SCHEMA
    assert prices.select("symbol", "split_ratio", "dividend", "source").row(0) == ("B", 1.0, 0.0, "vendor")

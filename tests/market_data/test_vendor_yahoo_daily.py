"""Yahoo daily prices (yfinance) against the loopback fake: split-adjusted answers made raw again,
splits and dividends recorded, per-symbol failures."""

from datetime import UTC, date, datetime

import polars as pl
import pytest
import requests

from finance_dag.core.http import RateLimiter, RetryPolicy
from finance_dag.market_data.daily import DAILY_PRICE_SCHEMA
from finance_dag.market_data.vendors.yahoo import YahooBars
from finance_dag.sim.etf import SimulatedEtfMarket
from finance_dag.testing.yahoo import FakeYahoo, isolate_yfinance_cache

pytestmark = [
    pytest.mark.vendors,
    pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning"),
]
NOW = datetime(2024, 12, 20, 22, 0, tzinfo=UTC)
START, END = date(2024, 9, 23), date(2024, 10, 31)
# In the simulated ETF market: LMJ splits 2:1 on 10-02 and MQHA 3:1 on 10-14, inside the range;
# NDAG 3:1 on 12-06, after it (Yahoo adjusts the range's rows for it anyway); SPY, LMJ, MQHA and
# NDAG pay dividends in October.
SYMBOLS = ["SPY", "LMJ", "MQHA", "NDAG"]
NO_DATA = "AAA"  # an ETF the simulated vendor has no prices for


@pytest.fixture(scope="module")
def etf() -> SimulatedEtfMarket:
    return SimulatedEtfMarket(7)


@pytest.fixture(scope="module", autouse=True)
def yfinance_cache(tmp_path_factory) -> None:
    isolate_yfinance_cache(str(tmp_path_factory.mktemp("yfinance")))  # keep ~/.cache clean


def adapter(url: str, attempts: int = 3) -> YahooBars:
    policy = RetryPolicy(attempts=attempts, initial_wait=0.0, jitter=0.0, timeout=3.0, sleep=lambda s: None)
    return YahooBars(base_url=url, now=NOW, policy=policy, limiter=RateLimiter([(1000, 60.0)]))


def daily_request(request) -> bool:
    return request.query.get("interval") == "1d" and "period1" in request.query


def expected(etf: SimulatedEtfMarket, symbols: list[str]) -> pl.DataFrame:
    return etf.daily_prices(symbols, START, END).with_columns(source=pl.lit("yahoo")).sort("symbol", "date")


def assert_same_rows(got: pl.DataFrame, want: pl.DataFrame) -> None:
    """Equal but for the float rounding of Yahoo's divide-then-multiply (prices, dividends)."""
    assert got.schema == want.schema == DAILY_PRICE_SCHEMA
    assert got.select("date", "symbol", "volume", "source").equals(
        want.select("date", "symbol", "volume", "source")
    )
    for name in ("open", "high", "low", "close", "split_ratio", "dividend"):
        assert (got[name] - want[name]).abs().max() < 1e-9, name


def test_daily_rows_are_the_raw_truth_with_splits_and_dividends_recorded(market, etf) -> None:
    with FakeYahoo(market, NOW, daily=etf.daily_prices) as fake:
        result = adapter(fake.url).fetch_daily(SYMBOLS, START, END)
        asked = [r for r in fake.log if daily_request(r)]
    assert result.failures == {}
    assert_same_rows(result.prices, expected(etf, SYMBOLS))
    splits = result.prices.filter(pl.col("split_ratio") != 1.0).select("symbol", "date", "split_ratio")
    assert splits.rows() == [("LMJ", date(2024, 10, 2), 2.0), ("MQHA", date(2024, 10, 14), 3.0)]
    ndag = result.prices.filter(symbol="NDAG", date=date(2024, 10, 22))
    assert ndag["dividend"].round(9).to_list() == [0.2237]  # raw, though Yahoo served 0.2237 / 3
    assert set(result.prices.filter(pl.col("dividend") > 0)["symbol"]) == set(SYMBOLS)
    assert len(asked) == 4  # one chart request per symbol...
    assert all(int(r.query["period2"]) == int(NOW.timestamp()) for r in asked)  # ...reaching to now
    assert all("div" in r.query["events"] and "split" in r.query["events"] for r in asked)


def test_fake_serves_split_adjusted_daily_rows_and_events_like_yahoo(market, etf) -> None:
    begin = int(datetime(2024, 10, 21, 4, 0, tzinfo=UTC).timestamp())
    with FakeYahoo(market, NOW, daily=etf.daily_prices) as fake:
        params = {"period1": begin, "period2": begin + 2 * 86_400, "interval": "1d", "events": "div,splits"}
        chart = requests.get(f"{fake.url}/v8/finance/chart/NDAG", params=params, timeout=5).json()
    (result,) = chart["chart"]["result"]
    raw = etf.daily_prices(["NDAG"], date(2024, 10, 21), date(2024, 10, 22))
    assert result["indicators"]["quote"][0]["close"] == [c / 3 for c in raw["close"]]  # split on 12-06
    assert result["indicators"]["quote"][0]["volume"] == [v * 3 for v in raw["volume"]]
    moment = int(datetime(2024, 10, 22, 13, 30, tzinfo=UTC).timestamp())  # 09:30 New York
    assert result["events"] == {"dividends": {str(moment): {"amount": 0.2237 / 3, "date": moment}}}


@pytest.mark.chaos("vendor faults", faults="503-persistent 500 404")
def test_a_symbol_yahoo_does_not_know_or_keeps_failing_fails_alone(market, etf) -> None:
    with FakeYahoo(market, NOW, daily=etf.daily_prices) as fake:
        fake.inject("503", times=None, match=lambda r: daily_request(r) and r.path.endswith("/MQHA"))
        fake.inject("500", match=lambda r: daily_request(r) and r.path.endswith("/SPY"))  # retried
        result = adapter(fake.url, attempts=2).fetch_daily(["SPY", "MQHA", NO_DATA], START, END)
    assert set(result.failures) == {"MQHA", NO_DATA}
    assert result.failures["MQHA"].startswith(
        "yahoo: GET /v8/finance/chart 1d prices and events for MQHA 2024-09-23..2024-12-20 failed after 2 "
        "attempt(s) (HTTP 503)"
    )
    assert "(HTTP 404)" in result.failures[NO_DATA] and "No data found" in result.failures[NO_DATA]
    assert_same_rows(result.prices, expected(etf, ["SPY"]))


@pytest.mark.chaos("bad price file", faults="zero-close")
def test_rows_breaking_a_rule_fail_their_symbol(market, etf) -> None:
    def broken(symbols: list[str], first: date, last: date) -> pl.DataFrame:
        frame = etf.daily_prices(symbols, first, last)
        bad = (pl.col("symbol") == "LMJ") & (pl.col("date") == date(2024, 10, 9))
        return frame.with_columns(close=pl.when(bad).then(0.0).otherwise("close"))

    with FakeYahoo(market, NOW, daily=broken) as fake:
        result = adapter(fake.url).fetch_daily(["SPY", "LMJ"], START, END)
    assert result.failures == {
        "LMJ": "yahoo: LMJ failed validation: price not a positive number on 2024-10-09"
    }
    assert_same_rows(result.prices, expected(etf, ["SPY"]))

"""Yahoo adapter (yfinance) against the loopback fake: 30-day refusal, 7-day chunks, faults, UTC;
daily closes of an index (CBOE SKEW)."""

from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl
import pytest
import requests

from finance_dag.core import calendar
from finance_dag.core.http import RateLimiter, RetryPolicy
from finance_dag.market_data.bars import VendorError, validate_bars
from finance_dag.market_data.vendors.yahoo import CLOSES_SCHEMA, LIMIT_MARGIN, YahooBars
from finance_dag.sim.macro import SimulatedMacro
from finance_dag.testing import truth_frame
from finance_dag.testing.yahoo import FakeYahoo, isolate_yfinance_cache

pytestmark = [
    pytest.mark.vendors,
    pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning"),
]
NOW = datetime(2024, 12, 20, 22, 0, tzinfo=UTC)


def minute_request(request) -> bool:
    return request.query.get("interval") == "1m"


@pytest.fixture(scope="module", autouse=True)
def yfinance_cache(tmp_path_factory) -> None:
    isolate_yfinance_cache(str(tmp_path_factory.mktemp("yfinance")))  # keep ~/.cache clean


def adapter(url: str, now: datetime = NOW, attempts: int = 4) -> YahooBars:
    policy = RetryPolicy(attempts=attempts, initial_wait=0.01, jitter=0.0, timeout=3.0, sleep=lambda s: None)
    return YahooBars(base_url=url, now=now, policy=policy, limiter=RateLimiter([(1000, 60.0)]))


def expected(market, symbols, days) -> pl.DataFrame:
    return truth_frame(market, symbols, days, "yahoo", with_vwap=False)


@pytest.mark.chaos("vendor faults", faults="429 500 503 timeout truncated malformed")
def test_faults_give_exactly_the_fault_free_bars_in_7_day_chunks(market) -> None:
    start, end = date(2024, 11, 21), date(2024, 12, 13)
    days = calendar.sessions(start, end)
    with FakeYahoo(market, NOW) as fake:
        fake.slow_seconds = 4.0
        clean = adapter(fake.url).fetch_minute_bars(["SPY", "QQQ"], start, end)
        chunks = len(fake.chart_requests())
        for kind in ("429", "500", "503", "slow", "truncated", "malformed"):
            fake.inject(kind, match=minute_request)
        faulty = adapter(fake.url, attempts=10).fetch_minute_bars(["SPY", "QQQ"], start, end)
        spans = [int(r.query["period2"]) - int(r.query["period1"]) for r in fake.chart_requests()]
        total = len(fake.chart_requests())
    assert clean.failures == faulty.failures == {}
    assert clean.bars.equals(expected(market, ["QQQ", "SPY"], days))
    assert faulty.bars.equals(clean.bars)
    # 11-21..27, 11-29..12-05, 12-06..12-12, 12-13 per symbol; each fault costs one more request
    assert chunks == 2 * 4
    assert total == 2 * chunks + 6
    assert max(spans) <= 7 * 86_400
    assert faulty.bars["vwap"].is_null().all() and faulty.bars["trade_count"].is_null().all()


def test_days_older_than_30_days_are_refused_by_name_not_silently_empty(market) -> None:
    with FakeYahoo(market, NOW) as fake:
        result = adapter(fake.url).fetch_minute_bars(["SPY"], date(2024, 11, 15), date(2024, 11, 22))
        first_period = min(int(r.query["period1"]) for r in fake.chart_requests())
    # 30 days before 2024-12-20 22:00Z is 2024-11-20 22:00Z: the 20th's 04:00 New York is older
    assert set(result.failures) == {("SPY", date(2024, 11, d)) for d in (15, 18, 19, 20)}
    message = result.failures[("SPY", date(2024, 11, 20))]
    assert message.startswith("yahoo: refused SPY 2024-11-15..2024-11-20 without a request (no HTTP status)")
    assert "last 30 days" in message and message.endswith("[no bars for SPY on 2024-11-20]")
    assert first_period == int(datetime(2024, 11, 21, 9, 0, tzinfo=UTC).timestamp())  # 04:00 EST
    assert result.bars.equals(expected(market, ["SPY"], [date(2024, 11, 21), date(2024, 11, 22)]))


def test_vendor_side_refusal_is_permanent_and_names_status(market) -> None:
    with FakeYahoo(market, NOW + timedelta(days=3)) as fake:  # Yahoo's clock ahead of ours
        result = adapter(fake.url).fetch_minute_bars(["SPY"], date(2024, 11, 21), date(2024, 11, 21))
        asked = len(fake.chart_requests())
    (message,) = result.failures.values()
    assert asked == 1  # 422 is not retried
    assert "failed after 1 attempt(s) (HTTP 422)" in message and "within the last 30 days" in message


@pytest.mark.chaos("vendor faults", faults="503-persistent")
def test_symbol_that_keeps_failing_fails_only_its_symbol_days(market) -> None:
    with FakeYahoo(market, NOW) as fake:
        fake.inject("503", times=None, match=lambda r: minute_request(r) and r.path.endswith("/QQQ"))
        result = adapter(fake.url, attempts=3).fetch_minute_bars(
            ["SPY", "QQQ"], date(2024, 12, 16), date(2024, 12, 18)
        )
    days = calendar.sessions(date(2024, 12, 16), date(2024, 12, 18))
    assert set(result.failures) == {("QQQ", d) for d in days}
    message = result.failures[("QQQ", date(2024, 12, 17))]
    assert message.startswith(
        "yahoo: GET /v8/finance/chart 1m for QQQ 2024-12-16..2024-12-18 failed after 3 attempt(s) (HTTP 503)"
    )
    assert message.endswith("[no bars for QQQ on 2024-12-17]")
    assert result.bars.equals(expected(market, ["SPY"], days))


@pytest.mark.parametrize(
    ("now", "day", "first", "last"),
    [
        (datetime(2024, 3, 20, tzinfo=UTC), date(2024, 3, 8), (3, 8, 14, 30), (3, 8, 20, 59)),  # EST
        (datetime(2024, 3, 20, tzinfo=UTC), date(2024, 3, 11), (3, 11, 13, 30), (3, 11, 19, 59)),  # EDT
        (
            datetime(2024, 12, 2, tzinfo=UTC),
            date(2024, 11, 29),
            (11, 29, 14, 30),
            (11, 29, 17, 59),
        ),  # 13:00 close
    ],
)
def test_exchange_zone_index_becomes_utc(market, now, day, first, last) -> None:
    with FakeYahoo(market, now) as fake:
        result = adapter(fake.url, now=now).fetch_minute_bars(["SPY"], day, day)
    valid, invalid = validate_bars(result.bars)
    assert invalid.is_empty() and valid.schema["ts"] == pl.Datetime("us", "UTC")
    regular = valid.filter("regular")["ts"]
    assert (regular.min(), regular.max()) == (
        datetime(2024, *first, tzinfo=UTC),
        datetime(2024, *last, tzinfo=UTC),
    )
    assert result.bars.equals(expected(market, ["SPY"], [day]))


def daily_request(request) -> bool:
    return request.query.get("interval") == "1d" and "period1" in request.query


@pytest.mark.parametrize(
    ("symbol", "split"),
    [
        ("SPY", (date(2024, 12, 11), 4, 1)),  # a 4:1 split inside the requested days
        ("AAPL", (date(2024, 12, 18), 2, 1)),  # a 2:1 split after them: Yahoo adjusts them anyway
    ],
)
def test_split_adjusted_minute_bars_come_back_raw_on_both_sides_of_a_split(market, symbol, split) -> None:
    days = calendar.sessions(date(2024, 12, 9), date(2024, 12, 13))
    with FakeYahoo(market, NOW, splits={symbol: [split]}) as fake:
        result = adapter(fake.url).fetch_minute_bars([symbol, "QQQ"], days[0], days[-1])
        minute = len(fake.chart_requests())
        lookups = [r for r in fake.log if daily_request(r)]
    assert result.failures == {}
    assert result.bars.equals(expected(market, ["QQQ", symbol], days))  # raw, one price scale
    assert minute == 2 and len(lookups) == 2  # one split lookup per symbol


def test_fake_serves_split_adjusted_minute_bars_and_the_split_event_like_yahoo(market) -> None:
    day, ex_date = date(2024, 12, 10), date(2024, 12, 11)
    begin = int(datetime(2024, 12, 10, 9, 0, tzinfo=UTC).timestamp())
    with FakeYahoo(market, NOW, splits={"SPY": [(ex_date, 4, 1)]}) as fake:
        params = {"period1": begin, "period2": begin + 2 * 86_400, "interval": "1m"}
        params |= {"includePrePost": "true", "events": "div,splits,capitalGains"}
        chart = requests.get(f"{fake.url}/v8/finance/chart/SPY", params=params, timeout=5).json()
    (result,) = chart["chart"]["result"]
    stamps = np.array(result["timestamp"], dtype="datetime64[s]").astype("datetime64[us]")
    quote = result["indicators"]["quote"][0]
    before, after = (market.true_minute_bars("SPY", d) for d in (day, ex_date))
    n = before["ts"].size
    assert (stamps[:n] == before["ts"]).all() and (stamps[n:] == after["ts"][: len(stamps) - n]).all()
    assert np.array_equal(np.array(quote["close"][:n]), before["close"] / 4)  # adjusted
    assert np.array_equal(np.array(quote["volume"][:n]), before["volume"] * 4)
    assert np.array_equal(np.array(quote["close"][n:]), after["close"][: len(stamps) - n])  # raw
    moment = int(datetime(2024, 12, 11, 14, 30, tzinfo=UTC).timestamp())  # 09:30 New York
    assert result["events"]["splits"] == {
        str(moment): {"date": moment, "numerator": 4, "denominator": 1, "splitRatio": "4:1"}
    }


def test_unknown_split_events_fail_the_symbol_days_naming_why(market) -> None:
    days = calendar.sessions(date(2024, 12, 16), date(2024, 12, 18))
    with FakeYahoo(market, NOW, splits={"SPY": [(date(2024, 12, 17), 2, 1)]}) as fake:
        fake.inject("503", times=None, match=lambda r: daily_request(r) and r.path.endswith("/SPY"))
        result = adapter(fake.url, attempts=2).fetch_minute_bars(["SPY", "QQQ"], days[0], days[-1])
        spy_minute_requests = [r for r in fake.chart_requests() if r.path.endswith("/SPY")]
    assert set(result.failures) == {("SPY", d) for d in days}
    message = result.failures[("SPY", date(2024, 12, 16))]
    assert message.startswith("yahoo: GET /v8/finance/chart 1d split events for SPY 2024-12-16..2024-12-20")
    assert "(HTTP 503)" in message and "without the split events" in message
    assert spy_minute_requests == []  # nothing asked that could not be made raw
    assert result.bars.equals(expected(market, ["QQQ"], days))


def test_oldest_session_minutes_inside_the_limit_is_not_planned_so_its_chunk_is_served(market) -> None:
    # Our clock puts 2024-11-21 04:00 New York (09:00Z) 5 minutes inside the 30-day limit;
    # Yahoo's clock, 10 minutes ahead (or time spent in the run), puts it 5 minutes outside.
    now = datetime(2024, 12, 21, 8, 55, tzinfo=UTC)
    days = calendar.sessions(date(2024, 11, 18), date(2024, 11, 29))
    with FakeYahoo(market, now + timedelta(minutes=10)) as fake:
        result = adapter(fake.url, now=now).fetch_minute_bars(["SPY"], days[0], days[-1])
        limit = (now + timedelta(minutes=10) - timedelta(days=30)).timestamp()
        refused_by_yahoo = [r for r in fake.chart_requests() if int(r.query["period1"]) < limit]
    older = [d for d in days if d <= date(2024, 11, 21)]
    assert set(result.failures) == {("SPY", d) for d in older}  # only those older than the limit
    assert refused_by_yahoo == []
    assert result.bars.equals(expected(market, ["SPY"], [d for d in days if d not in older]))
    message = result.failures[("SPY", date(2024, 11, 21))]
    assert "refused SPY 2024-11-18..2024-11-21 without a request" in message and "1 h inside" in message
    assert timedelta(hours=1) == LIMIT_MARGIN


def test_fake_refuses_minute_requests_older_than_30_days_on_its_clock(market) -> None:
    ours = datetime(2024, 12, 21, 7, 30, tzinfo=UTC)  # 11-21 04:00 New York is 1.5 h inside...
    with FakeYahoo(market, ours + timedelta(hours=2)) as fake:  # ...and 0.5 h outside on Yahoo's
        result = adapter(fake.url, now=ours).fetch_minute_bars(
            ["SPY"], date(2024, 11, 21), date(2024, 11, 21)
        )
    (message,) = result.failures.values()
    assert "(HTTP 422)" in message and "The requested range must be within the last 30 days" in message


SKEW_NOW = datetime(2024, 12, 2, tzinfo=UTC)
NOVEMBER = (date(2024, 11, 1), date(2024, 11, 29))


def skew_fake(market, closes: pl.DataFrame | None = None) -> FakeYahoo:
    """A fake serving ``closes`` as ^SKEW (default: the simulated SKEW from October to December)."""
    closes = SimulatedMacro(market).skew(date(2024, 10, 1), date(2024, 12, 31)) if closes is None else closes
    return FakeYahoo(market, SKEW_NOW, indices={"^SKEW": closes})


def test_skew_daily_closes_are_the_simulated_ones_in_one_request(market) -> None:
    with skew_fake(market) as fake:
        closes = adapter(fake.url, now=SKEW_NOW).daily_closes("^SKEW", *NOVEMBER)
        asked = [r for r in fake.chart_requests("1d") if daily_request(r)]  # not yfinance's zone probe
    assert closes.equals(SimulatedMacro(market).skew(*NOVEMBER))
    assert closes.schema == CLOSES_SCHEMA and closes["date"][-1] == date(2024, 11, 29)  # end included
    assert date(2024, 11, 28) not in closes["date"]  # Thanksgiving
    (request,) = asked
    assert request.path == "/v8/finance/chart/%5ESKEW"
    after = datetime(2024, 11, 30, tzinfo=calendar.NEW_YORK)  # end + 1 day: yfinance's end is exclusive
    assert int(request.query["period2"]) == int(after.timestamp())


@pytest.mark.chaos("vendor faults", faults="503 truncated")
def test_skew_transient_faults_are_retried_and_the_closes_stay_exact(market) -> None:
    with skew_fake(market) as fake:
        for kind in ("503", "truncated"):
            fake.inject(kind, match=daily_request)
        closes = adapter(fake.url, now=SKEW_NOW).daily_closes("^SKEW", *NOVEMBER)
        asked = [r for r in fake.chart_requests("1d") if daily_request(r)]
    assert closes.equals(SimulatedMacro(market).skew(*NOVEMBER))
    assert len(asked) == 3 and fake.faults_served == {"503": 1, "truncated": 1}


def test_skew_unknown_to_yahoo_fails_at_once_naming_the_symbol(market) -> None:
    with FakeYahoo(market, SKEW_NOW) as fake, pytest.raises(VendorError) as raised:  # no indices: 404
        adapter(fake.url, now=SKEW_NOW).daily_closes("^SKEW", *NOVEMBER)
    assert str(raised.value).startswith(
        "yahoo: GET /v8/finance/chart 1d closes for ^SKEW 2024-11-01..2024-11-29 failed after 1 attempt(s) "
        "(HTTP 404)"
    )
    assert "No data found, symbol may be delisted" in str(raised.value)


def test_skew_holiday_nan_is_dropped_and_a_non_positive_close_fails_naming_its_dates(market) -> None:
    truth = SimulatedMacro(market).skew(*NOVEMBER)
    day = pl.col("date")
    gaps = truth.with_columns(close=pl.when(day == date(2024, 11, 7)).then(None).otherwise("close"))
    broken = truth.with_columns(
        close=pl.when(day == date(2024, 11, 5))
        .then(-1.0)
        .when(day == date(2024, 11, 8))
        .then(0.0)
        .otherwise("close")
    )
    with skew_fake(market, gaps) as fake:
        closes = adapter(fake.url, now=SKEW_NOW).daily_closes("^SKEW", *NOVEMBER)
    with skew_fake(market, broken) as fake, pytest.raises(VendorError) as raised:
        adapter(fake.url, now=SKEW_NOW).daily_closes("^SKEW", *NOVEMBER)
    assert closes.equals(truth.filter(day != date(2024, 11, 7)))
    assert str(raised.value).endswith(
        "closes for ^SKEW 2024-11-01..2024-11-29 answered close not a positive number on 2024-11-05, 2024-11-08"
    )


def test_skew_range_with_no_sessions_served_yet_is_an_empty_frame(market) -> None:
    with skew_fake(market) as fake:
        closes = adapter(fake.url, now=SKEW_NOW).daily_closes("^SKEW", date(2024, 12, 9), date(2024, 12, 13))
    assert closes.is_empty() and closes.schema == CLOSES_SCHEMA

"""Yahoo adapter (yfinance) against the loopback fake: 30-day refusal, 7-day chunks, faults, UTC."""

from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from finance_dag.core import calendar
from finance_dag.core.http import RateLimiter, RetryPolicy
from finance_dag.market_data.bars import validate_bars
from finance_dag.market_data.vendors.yahoo import YahooBars
from finance_dag.testing import truth_frame
from finance_dag.testing.yahoo import FakeYahoo, isolate_yfinance_cache

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")
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

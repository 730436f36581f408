"""Alpha Vantage adapter against the loopback fake: month requests, throttle notes, time zones."""

import logging
from datetime import UTC, date, datetime

import dagster as dg
import polars as pl
import pytest

from finance_dag.core import calendar
from finance_dag.core.http import RateLimiter, RateLimitExceeded, RetryPolicy
from finance_dag.market_data.bars import validate_bars
from finance_dag.market_data.vendors.alpha_vantage import AlphaVantageBars
from finance_dag.platform.vendors import AlphaVantageResource
from finance_dag.testing import truth_frame
from finance_dag.testing.alpha_vantage import FakeAlphaVantage

pytestmark = pytest.mark.vendors

KEY = "AVSECRETKEY789"


@pytest.fixture
def fake(market):
    with FakeAlphaVantage(market, KEY) as server:
        server.slow_seconds = 4.0
        yield server


def adapter(url: str, sleeps: list[float] | None = None, attempts: int = 4, **kwargs) -> AlphaVantageBars:
    sleeps = [] if sleeps is None else sleeps
    policy = RetryPolicy(attempts=attempts, initial_wait=0.01, jitter=0.0, timeout=3.0, sleep=sleeps.append)
    return AlphaVantageBars(
        KEY, base_url=url, throttle_wait=42.0, policy=policy, limiter=RateLimiter([(1000, 60.0)]), **kwargs
    )


def expected(market, symbols, start, end, **kwargs) -> pl.DataFrame:
    return truth_frame(
        market, symbols, calendar.sessions(start, end), "alphavantage", with_vwap=False, **kwargs
    )


def test_one_request_per_symbol_month_cached_for_other_days(market, fake) -> None:
    av = adapter(fake.url)
    result = av.fetch_minute_bars(["SPY"], date(2024, 9, 3), date(2024, 11, 29))
    assert result.failures == {}
    assert result.bars.equals(expected(market, ["SPY"], date(2024, 9, 3), date(2024, 11, 29)))
    assert [r.query["month"] for r in fake.log] == ["2024-09", "2024-10", "2024-11"]
    assert {
        (k, fake.log[0].query[k])
        for k in ("function", "interval", "outputsize", "extended_hours", "adjusted")
    } == {
        ("function", "TIME_SERIES_INTRADAY"),
        ("interval", "1min"),
        ("outputsize", "full"),
        ("extended_hours", "true"),
        ("adjusted", "false"),
    }
    again = av.fetch_minute_bars(["SPY"], date(2024, 11, 29), date(2024, 11, 29))
    assert fake.total() == 3  # served from the month cache
    assert again.bars.equals(expected(market, ["SPY"], date(2024, 11, 29), date(2024, 11, 29)))


@pytest.mark.chaos("vendor faults", faults="throttle-note burst-note 429 503 truncated malformed timeout")
def test_faults_and_throttle_notes_give_exactly_the_fault_free_bars(market, fake) -> None:
    for kind in ("note", "burst", "429", "503", "truncated", "malformed", "slow"):
        fake.inject(kind)
    sleeps: list[float] = []
    result = adapter(fake.url, sleeps, attempts=10).fetch_minute_bars(
        ["SPY", "QQQ"], date(2024, 10, 28), date(2024, 11, 5)
    )
    assert result.failures == {}
    assert result.bars.equals(expected(market, ["QQQ", "SPY"], date(2024, 10, 28), date(2024, 11, 5)))
    assert fake.total() == 4 + 7  # two symbols x two months, one retry per fault
    assert sleeps[:2] == [42.0, 42.0]  # burst messages wait throttle_wait, not the short backoff


@pytest.mark.chaos("vendor faults", faults="503-persistent")
def test_symbol_that_keeps_failing_fails_only_its_symbol_days(market, fake) -> None:
    fake.inject("503", times=None, match=lambda r: r.query.get("symbol") == "MSFT")
    result = adapter(fake.url).fetch_minute_bars(["SPY", "MSFT"], date(2024, 11, 27), date(2024, 12, 2))
    assert set(result.failures) == {
        ("MSFT", date(2024, 11, 27)),
        ("MSFT", date(2024, 11, 29)),
        ("MSFT", date(2024, 12, 2)),
    }
    assert result.failures[("MSFT", date(2024, 12, 2))] == (
        "alphavantage: TIME_SERIES_INTRADAY 1min month=2024-12 for MSFT 2024-12-02 failed after 4 attempt(s) "
        "(HTTP 503): <html><body><h1>503</h1>injected server error</body></html> [no bars for MSFT on 2024-12-02]"
    )
    assert result.bars.equals(expected(market, ["SPY"], date(2024, 11, 27), date(2024, 12, 2)))


@pytest.mark.chaos("vendor faults", faults="throttle-note-persistent")
def test_endless_throttling_is_a_failure_not_empty_data(fake) -> None:
    fake.inject("note", times=None)
    result = adapter(fake.url, attempts=3).fetch_minute_bars(["SPY"], date(2024, 11, 29), date(2024, 11, 29))
    assert result.bars.is_empty()
    (message,) = result.failures.values()
    assert (
        "(HTTP 200, Retry-After 42s): throttled (per-minute burst): Thank you for using Alpha Vantage!"
        in (message)
    )


def test_eastern_labels_become_utc_minute_starts_across_dst_and_early_close(market, fake) -> None:
    result = adapter(fake.url).fetch_minute_bars(["SPY"], date(2024, 3, 8), date(2024, 3, 11))
    late = adapter(fake.url).fetch_minute_bars(["SPY"], date(2024, 11, 29), date(2024, 11, 29))
    raw = {r.query["month"]: r for r in fake.log}
    assert set(raw) == {"2024-03", "2024-11"}
    valid, invalid = validate_bars(pl.concat([result.bars, late.bars]))
    assert invalid.is_empty()
    bounds = valid.filter("regular").group_by("date").agg(first=pl.col("ts").min(), last=pl.col("ts").max())
    assert dict(zip(bounds["date"], zip(bounds["first"], bounds["last"], strict=True), strict=True)) == {
        date(2024, 3, 8): (
            datetime(2024, 3, 8, 14, 30, tzinfo=UTC),
            datetime(2024, 3, 8, 20, 59, tzinfo=UTC),
        ),
        date(2024, 3, 11): (
            datetime(2024, 3, 11, 13, 30, tzinfo=UTC),
            datetime(2024, 3, 11, 19, 59, tzinfo=UTC),
        ),
        date(2024, 11, 29): (
            datetime(2024, 11, 29, 14, 30, tzinfo=UTC),
            datetime(2024, 11, 29, 17, 59, tzinfo=UTC),
        ),
    }
    # the bar AV labels "2024-03-11 09:30:00" (naive US/Eastern, EDT) is the 13:30 UTC minute
    opening = market.true_minute_bars("SPY", date(2024, 3, 11))
    first_regular = int(opening["regular"].argmax())
    row = valid.filter(pl.col("ts") == datetime(2024, 3, 11, 13, 30, tzinfo=UTC)).row(0, named=True)
    assert row["open"] == opening["open"][first_regular]


def test_end_labelled_series_is_shifted_to_minute_start(market) -> None:
    with FakeAlphaVantage(market, KEY, label_end=True) as fake:
        result = adapter(fake.url, labels_mark_end=True).fetch_minute_bars(
            ["SPY"], date(2024, 11, 29), date(2024, 11, 29)
        )
    assert result.bars.equals(expected(market, ["SPY"], date(2024, 11, 29), date(2024, 11, 29)))


def test_regular_hours_only(market, fake) -> None:
    result = adapter(fake.url, extended_hours=False).fetch_minute_bars(
        ["SPY"], date(2024, 11, 29), date(2024, 11, 29)
    )
    assert fake.log[0].query["extended_hours"] == "false"
    assert result.bars.equals(
        expected(market, ["SPY"], date(2024, 11, 29), date(2024, 11, 29), regular_only=True)
    )


def test_api_key_never_appears_in_failures(fake) -> None:
    fake.inject("echo", times=None)  # a 400 whose body repeats the query string, apikey included
    result = adapter(fake.url).fetch_minute_bars(["SPY"], date(2024, 11, 29), date(2024, 11, 29))
    (message,) = result.failures.values()
    assert KEY not in message
    assert "apikey=***" in message and "HTTP 400" in message


def test_api_key_never_appears_in_debug_request_logs(fake, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="urllib3")
    adapter(fake.url).fetch_minute_bars(["SPY"], date(2024, 11, 29), date(2024, 11, 29))
    assert "GET /query?function=TIME_SERIES_INTRADAY" in caplog.text  # the line is logged...
    assert KEY not in caplog.text and "apikey=***" in caplog.text  # ...without the key


def test_missing_credentials_name_the_variable() -> None:
    with pytest.raises(ValueError, match="ALPHAVANTAGE_API_KEY"):
        AlphaVantageResource().setup_for_execution(dg.build_init_resource_context())


@pytest.mark.chaos("vendor faults", faults="daily-quota-or-premium")
@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("daily_quota", "daily request quota exhausted, not retried today: We have detected your API key"),
        ("premium", "premium-only endpoint for this key, not retried: Thank you for using Alpha Vantage!"),
    ],
)
def test_daily_quota_and_premium_answers_fail_fast_for_the_day(market, fake, kind, reason) -> None:
    fake.inject(kind, times=None)
    sleeps: list[float] = []
    days = calendar.sessions(date(2024, 10, 28), date(2024, 11, 5))
    result = adapter(fake.url, sleeps, attempts=10).fetch_minute_bars(["SPY", "QQQ"], days[0], days[-1])
    assert fake.total() == 1 and sleeps == []  # no retry, no further request this run
    assert result.bars.is_empty()
    assert set(result.failures) == {(s, d) for s in ("SPY", "QQQ") for d in days}
    first = result.failures[("SPY", date(2024, 10, 28))]
    assert "month=2024-10 for SPY" in first and "failed after 1 attempt(s) (HTTP 200)" in first
    assert reason in first and KEY not in first  # the quota text names the key: redacted
    later = result.failures[("QQQ", date(2024, 11, 5))]
    assert "month=2024-11 for QQQ 2024-11-01..2024-11-05 not sent" in later and reason in later


@pytest.mark.parametrize("kind", ["note", "burst"])
def test_only_the_burst_throttle_is_waited_out(market, fake, kind) -> None:
    fake.inject(kind, times=2)
    sleeps: list[float] = []
    result = adapter(fake.url, sleeps).fetch_minute_bars(["SPY"], date(2024, 11, 29), date(2024, 11, 29))
    assert result.failures == {} and sleeps == [42.0, 42.0] and fake.total() == 3
    assert result.bars.equals(expected(market, ["SPY"], date(2024, 11, 29), date(2024, 11, 29)))


class FakeClock:
    def __init__(self) -> None:
        self.now, self.sleeps = 0.0, []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_per_day_limit_fails_at_once_naming_it_instead_of_sleeping_for_hours(market, fake) -> None:
    clock = FakeClock()  # the free plan: 5 a minute, 25 a day; waits over 5 minutes are refused
    limiter = RateLimiter(
        [(5, 60.0), (25, 86_400.0)], clock, clock.sleep, max_wait=300.0, vendor="alphavantage"
    )
    av = AlphaVantageBars(
        KEY, base_url=fake.url, policy=RetryPolicy(sleep=clock.sleep, timeout=3.0), limiter=limiter
    )
    served = av.fetch_minute_bars(["SPY"], date(2024, 1, 2), date(2024, 12, 31))  # 12 requests
    assert served.failures == {} and fake.total() == 12
    result = av.fetch_minute_bars(["QQQ", "MSFT"], date(2024, 1, 2), date(2024, 12, 31))
    assert fake.total() == 25  # 13 more, then the day's quota is spent
    assert max(clock.sleeps) <= 60.0 and clock.now < 3_600  # never slept for the day to roll
    failed_months = {d.month for s, d in result.failures if s == "MSFT"}
    assert {s for s, _ in result.failures} == {"MSFT"} and failed_months == set(range(2, 13))
    message = result.failures[("MSFT", date(2024, 2, 1))]
    assert message.startswith("alphavantage: TIME_SERIES_INTRADAY 1min month=2024-02 for MSFT")
    assert "rate limit of 25 requests per 86400 s reached" in message
    assert "would have to wait" in message and "longer than the 300 s allowed" in message
    assert "[no bars for MSFT on 2024-02-01]" in message
    with pytest.raises(RateLimitExceeded):
        limiter.acquire()


def test_resource_limits_the_wait_for_the_daily_quota() -> None:
    resource = AlphaVantageResource(api_key="AVK", requests_per_minute=5, requests_per_day=25)
    limiter = resource.bars().http.limiter
    assert limiter.limits == ((5, 60.0), (25, 86_400.0)) and limiter.max_wait == 300.0

"""Alpaca adapter against the loopback fake: batching, faults, failures, time zones, secrets."""

import json
import math
from datetime import UTC, date, datetime

import dagster as dg
import numpy as np
import polars as pl
import pytest

from finance_dag.core import calendar
from finance_dag.core.http import RateLimiter, RetryPolicy
from finance_dag.market_data.bars import validate_bars
from finance_dag.market_data.vendors.alpaca import AlpacaBars
from finance_dag.platform.vendors import AlpacaResource
from finance_dag.testing import truth_frame
from finance_dag.testing.alpaca import BARS_PATH, FakeAlpaca

pytestmark = pytest.mark.vendors

KEY, SECRET = "AKFAKEKEY123", "sk-fake-secret-456"
SYMBOLS = ["SPY", "AAPL", "MSFT"]
START, END = date(2024, 11, 18), date(2024, 11, 29)


@pytest.fixture
def fake(market):
    with FakeAlpaca(market, KEY, SECRET) as server:
        server.slow_seconds = 4.0
        yield server


def adapter(
    fake: FakeAlpaca, sleeps: list[float] | None = None, timeout: float = 3.0, attempts: int = 4, **kwargs
) -> AlpacaBars:
    """The adapter on the fake; a fault-free page is served well within ``timeout``."""
    sleeps = [] if sleeps is None else sleeps
    policy = RetryPolicy(
        attempts=attempts, initial_wait=0.01, jitter=0.0, timeout=timeout, sleep=sleeps.append
    )
    return AlpacaBars(
        KEY, SECRET, base_url=fake.url, policy=policy, limiter=RateLimiter([(10_000, 60.0)]), **kwargs
    )


@pytest.mark.chaos("vendor faults", faults="429 500 503 timeout truncated malformed empty-page retry-after")
def test_faults_give_exactly_the_fault_free_bars(market, fake) -> None:
    days = calendar.sessions(START, END)
    clean = adapter(fake, page_limit=2_000).fetch_minute_bars(SYMBOLS, START, END)
    pages = fake.total(BARS_PATH)
    expected = truth_frame(market, sorted(SYMBOLS), days, "alpaca:sip")
    assert clean.failures == {}
    assert clean.bars.equals(expected)
    assert pages == math.ceil(expected.height / 2_000)

    for kind in ("429", "500", "503", "slow", "truncated", "malformed", "empty_page"):
        fake.inject(kind, match=lambda r: "page_token" in r.query)  # mid-sequence, not on page 1
    fake.inject("429", retry_after="2")
    sleeps: list[float] = []
    faulty = adapter(fake, sleeps, attempts=10, page_limit=2_000).fetch_minute_bars(SYMBOLS, START, END)
    assert faulty.failures == {}
    assert faulty.bars.equals(expected)  # nothing lost, nothing duplicated
    assert fake.total(BARS_PATH) - pages == pages + 8  # one retry per fault, empty page followed
    assert 2.0 in sleeps  # Retry-After honoured


def test_backfill_is_one_batched_request_sequence(market, fake) -> None:
    symbols = [f"S{i:02d}" for i in range(20)]
    result = adapter(fake, timeout=30.0).fetch_minute_bars(symbols, date(2024, 11, 1), date(2024, 11, 29))
    assert result.failures == {}
    assert fake.total() == math.ceil(result.bars.height / 10_000)  # 20 x 20 symbol-days, full pages
    first = fake.log[0].query
    assert first["symbols"] == ",".join(sorted(symbols))
    assert (first["limit"], first["adjustment"], first["feed"], first["timeframe"]) == (
        "10000",
        "raw",
        "sip",  # consolidated volume by default
        "1Min",
    )
    # 04:00 New York on the first day (EDT) to 17:00 New York after the early close on the last
    assert (first["start"], first["end"]) == ("2024-11-01T08:00:00+00:00", "2024-11-29T22:00:00+00:00")
    assert all(r.query.get("page_token") for r in fake.log[1:])


@pytest.mark.chaos("vendor faults", faults="503-persistent")
def test_keeps_failing_fails_every_symbol_day_with_vendor_symbol_date_status(fake) -> None:
    fake.inject("503", times=None)
    result = adapter(fake).fetch_minute_bars(SYMBOLS, START, END)
    days = calendar.sessions(START, END)
    assert result.bars.is_empty()
    assert set(result.failures) == {(s, d) for s in SYMBOLS for d in days}
    message = result.failures[("MSFT", date(2024, 11, 21))]
    assert message.startswith("alpaca: GET /v2/stocks/bars for AAPL,MSFT,SPY 2024-11-18..2024-11-29")
    assert "failed after 4 attempt(s) (HTTP 503)" in message
    assert message.endswith("[no bars for MSFT on 2024-11-21]")


@pytest.mark.chaos("vendor faults", faults="500-mid-pagination")
def test_failure_midway_keeps_pages_before_it(market, fake) -> None:
    fake.inject("500", times=None, match=lambda r: "page_token" in r.query)  # page 1 only succeeds
    result = adapter(fake, page_limit=3_000).fetch_minute_bars(SYMBOLS, START, END)
    days = calendar.sessions(START, END)
    served = set(
        result.bars.select("symbol", date=pl.col("ts").dt.convert_time_zone("America/New_York").dt.date())
        .unique()
        .iter_rows()
    )
    # AAPL comes first; 3,000 bars cover six full AAPL days and part of the seventh
    assert served == {("AAPL", d) for d in days[:6]}
    assert set(result.failures) == {(s, d) for s in SYMBOLS for d in days} - served
    assert result.bars.equals(truth_frame(market, ["AAPL"], days[:6], "alpaca:sip"))


def test_utc_at_dst_and_early_close_boundaries(fake) -> None:
    result = adapter(fake, feed="iex").fetch_minute_bars(["SPY"], date(2024, 3, 8), date(2024, 3, 11))
    assert fake.log[0].query["feed"] == "iex"
    late = adapter(fake).fetch_minute_bars(["SPY"], date(2024, 11, 29), date(2024, 11, 29))
    valid, invalid = validate_bars(pl.concat([result.bars, late.bars]))
    assert invalid.is_empty()
    assert valid.schema["ts"] == pl.Datetime("us", "UTC")
    bounds = valid.filter("regular").group_by("date").agg(first=pl.col("ts").min(), last=pl.col("ts").max())
    assert dict(zip(bounds["date"], zip(bounds["first"], bounds["last"], strict=True), strict=True)) == {
        date(2024, 3, 8): (
            datetime(2024, 3, 8, 14, 30, tzinfo=UTC),
            datetime(2024, 3, 8, 20, 59, tzinfo=UTC),
        ),  # EST
        date(2024, 3, 11): (
            datetime(2024, 3, 11, 13, 30, tzinfo=UTC),
            datetime(2024, 3, 11, 19, 59, tzinfo=UTC),
        ),  # EDT
        date(2024, 11, 29): (
            datetime(2024, 11, 29, 14, 30, tzinfo=UTC),
            datetime(2024, 11, 29, 17, 59, tzinfo=UTC),
        ),
    }
    assert (~valid["regular"]).sum() > 0  # pre/post-market bars kept


def test_wrong_credentials_fail_without_leaking_them(fake) -> None:
    bad = AlpacaBars(
        "AKWRONG", "sk-wrong-secret", base_url=fake.url, policy=RetryPolicy(sleep=lambda s: None)
    )
    result = bad.fetch_minute_bars(["SPY"], START, START)
    (message,) = result.failures.values()
    assert "HTTP 403" in message and "after 1 attempt(s)" in message  # not retried
    assert "AKWRONG" not in message and "sk-wrong-secret" not in message


def test_missing_credentials_name_the_variable() -> None:
    resource = AlpacaResource(api_key="AK", secret_key="")
    with pytest.raises(ValueError, match="ALPACA_SECRET_KEY") as raised:
        resource.setup_for_execution(dg.build_init_resource_context())
    assert "AK" not in str(raised.value).replace("ALPACA", "")


class FlatStartMarket:
    """The simulated market, except that ``symbol`` trades at a whole-number ``flat`` price for the
    first ``minutes`` bars of each day, then at ``then``."""

    def __init__(self, market, symbol: str, minutes: int, flat: float, then: float) -> None:
        self.market, self.symbol, self.minutes, self.flat, self.then = market, symbol, minutes, flat, then

    def true_minute_bars(self, symbol: str, day: date) -> dict[str, np.ndarray]:
        truth = self.market.true_minute_bars(symbol, day)
        if symbol != self.symbol:
            return truth
        truth = {k: v.copy() for k, v in truth.items()}
        prices = np.where(np.arange(truth["ts"].size) < self.minutes, self.flat, self.then)
        for name in ("open", "high", "low", "close", "vwap"):
            truth[name] = prices.astype(float)
        return truth

    def __getattr__(self, name: str):
        return getattr(self.market, name)


def test_whole_number_prices_sent_as_json_integers_are_not_truncated(market) -> None:
    flat = FlatStartMarket(market, "SPY", minutes=150, flat=174.0, then=174.37)
    with FakeAlpaca(flat, KEY, SECRET) as server:
        result = adapter(server).fetch_minute_bars(["SPY", "AAPL"], START, START)
        page = server.serve(server.log[0], None)
    first = json.loads(page.body)["bars"]["SPY"][0]
    assert first["o"] == 174 and isinstance(first["o"], int)  # on the wire like Alpaca: "o": 174
    assert result.failures == {}
    assert result.bars.equals(truth_frame(flat, ["AAPL", "SPY"], [START], "alpaca:sip"))
    spy = result.bars.filter(symbol="SPY")
    assert spy["close"].to_list()[149:151] == [174.0, 174.37]
    assert spy.schema["close"] == pl.Float64 and spy.schema["volume"] == pl.Int64


def test_feed_is_part_of_every_bars_source(market, fake) -> None:
    sip = adapter(fake).fetch_minute_bars(["SPY"], START, START)
    iex = adapter(fake, feed="iex").fetch_minute_bars(["SPY"], START, START)
    assert [r.query["feed"] for r in fake.log] == ["sip", "iex"]
    assert sip.bars["source"].unique().to_list() == ["alpaca:sip"]
    assert iex.bars["source"].unique().to_list() == ["alpaca:iex"]
    assert AlpacaBars(KEY, SECRET).feed.value == "sip"
    assert AlpacaResource.model_fields["feed"].default == "sip"


@pytest.mark.chaos("vendor faults", faults="429-ratelimit-reset")
def test_429_without_retry_after_waits_until_x_ratelimit_reset(market, fake) -> None:
    now = 1_732_900_000.0  # the adapter's wall clock, frozen
    fake.inject("429_reset", reset_at=str(int(now) + 17))
    sleeps: list[float] = []
    result = adapter(fake, sleeps, wall_clock=lambda: now).fetch_minute_bars(["SPY"], START, START)
    assert result.failures == {}
    assert result.bars.equals(truth_frame(market, ["SPY"], [START], "alpaca:sip"))
    assert fake.faults_served["429_reset"] == 1 and fake.total(BARS_PATH) == 2
    assert sleeps == [17.0]  # reset - now, not the short exponential backoff

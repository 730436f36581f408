"""IbDaily through the real ib_async client against the loopback fake IB Gateway."""

from collections.abc import Iterator
from datetime import UTC, date, datetime

import numpy as np
import polars as pl
import pytest

from finance_dag.core import calendar
from finance_dag.core.http import RateLimiter
from finance_dag.market_data.daily import DAILY_PRICE_SCHEMA
from finance_dag.market_data.vendors.ib import SOURCE, IbDaily
from finance_dag.testing.ib_gateway import FakeIbGateway

pytestmark = pytest.mark.vendors

TODAY = date(2024, 6, 28)
START, END = date(2024, 2, 1), date(2024, 4, 30)
# Corporate actions: (symbol, date, split_ratio, dividend per share then outstanding).
SPLITS = {("TQQQ", date(2024, 3, 15)): 2.0, ("TQQQ", date(2024, 5, 15)): 3.0, ("AGG", date(2024, 6, 3)): 4.0}
DIVIDENDS = {
    ("SPY", date(2024, 3, 15)): 1.5953,
    ("AGG", date(2024, 2, 1)): 0.2689,
    ("AGG", date(2024, 3, 1)): 0.2751,
    ("AGG", date(2024, 4, 1)): 0.2812,
    ("TQQQ", date(2024, 3, 20)): 0.0412,
}


def raw_truth(symbol: str) -> pl.DataFrame:
    """Raw sessions 2024-01-02..TODAY: a random walk that drops by each split ratio and dividend."""
    days = calendar.sessions(date(2024, 1, 2), TODAY)
    rng = np.random.default_rng(sum(map(ord, symbol)))
    price, rows = 100.0 + len(symbol), []
    for day in days:
        ratio, dividend = SPLITS.get((symbol, day), 1.0), DIVIDENDS.get((symbol, day), 0.0)
        price = price / ratio - dividend
        open_ = price * (1 + rng.normal(0, 0.004))
        price *= 1 + rng.normal(0, 0.01)
        high, low = max(open_, price) * 1.004, min(open_, price) * 0.996
        rows.append(
            (day, symbol, open_, high, low, price, int(rng.integers(1e5, 1e6)), ratio, dividend, "truth")
        )
    return pl.DataFrame(rows, schema=DAILY_PRICE_SCHEMA, orient="row")


TRUTH = {s: raw_truth(s) for s in ("SPY", "AGG", "TQQQ")}


def prices(symbol: str, start: date, end: date) -> pl.DataFrame:
    frame = TRUTH.get(symbol, pl.DataFrame(schema=DAILY_PRICE_SCHEMA))
    return frame.filter(pl.col("date").is_between(start, end))


def split_adjusted_truth(symbol: str) -> pl.DataFrame:
    """What IbDaily should return: prices divided (volume multiplied) by the splits up to TODAY."""
    later = pl.col("split_ratio").reverse().cum_prod().reverse().shift(-1, fill_value=1.0)
    frame = TRUTH[symbol].with_columns(later=later)
    return frame.select(
        "date",
        "symbol",
        *(pl.col(c) / pl.col("later") for c in ("open", "high", "low", "close")),
        (pl.col("volume") * pl.col("later")).round().cast(pl.Int64),
        split_ratio=pl.lit(1.0),
        dividend=pl.col("dividend") / pl.col("later"),
        source=pl.lit(SOURCE),
    ).filter(pl.col("date").is_between(START, END))


@pytest.fixture
def fake() -> Iterator[FakeIbGateway]:
    with FakeIbGateway(prices, clock=lambda: datetime(2024, 6, 28, 21, 0, tzinfo=UTC)) as gateway:
        yield gateway


def vendor(fake: FakeIbGateway, **kwargs) -> IbDaily:
    limiter = kwargs.pop("limiter", RateLimiter([(10_000, 1.0)]))
    return IbDaily(port=fake.port, client_id=31, timeout=3.0, limiter=limiter, today=lambda: TODAY, **kwargs)


def test_rows_are_the_split_adjusted_truth_with_dividends_recovered(fake) -> None:
    fetched = vendor(fake).fetch_daily(["TQQQ", "SPY", "AGG", "SPY"], START, END)
    assert fetched.failures == {}
    assert fetched.prices.schema == DAILY_PRICE_SCHEMA
    expected = pl.concat([split_adjusted_truth(s) for s in ("AGG", "SPY", "TQQQ")])
    got = fetched.prices
    assert got.select("date", "symbol", "volume", "split_ratio", "source").equals(
        expected.select("date", "symbol", "volume", "split_ratio", "source")
    )
    for column in ("open", "high", "low", "close"):
        assert np.allclose(got[column], expected[column], rtol=1e-12)
    assert (got["dividend"] - expected["dividend"]).abs().max() < 0.01
    paid = got.filter(pl.col("dividend") > 0).select("symbol", "date").rows()
    assert paid == [("AGG", date(2024, 2, 1)), ("AGG", date(2024, 3, 1)), ("AGG", date(2024, 4, 1)),
                    ("SPY", date(2024, 3, 15)), ("TQQQ", date(2024, 3, 20))]  # fmt: skip
    tqqq = got.filter(pl.col("symbol") == "TQQQ", pl.col("date") == date(2024, 3, 20))
    assert tqqq["dividend"][0] == pytest.approx(0.0412 / 3, abs=1e-6)  # per share of today (3:1 on 05-15)

    requests = {(r.symbol, r.what_to_show): r for r in fake.history_requests}
    kinds = {(s, w) for s in ("AGG", "SPY", "TQQQ") for w in ("TRADES", "ADJUSTED_LAST")}
    assert len(fake.history_requests) == 6 and set(requests) == kinds
    assert requests["SPY", "TRADES"].end_date_time == "20240501 03:59:59 UTC"  # 23:59:59 New York of END
    assert requests["SPY", "TRADES"].duration == "91 D"  # from the session before START (2024-01-31)
    assert requests["SPY", "ADJUSTED_LAST"].end_date_time == ""  # IB allows no end date here


def test_a_failing_symbol_lands_in_failures_while_others_are_served(fake) -> None:
    fake.fail_history("AGG")
    fetched = vendor(fake).fetch_daily(["SPY", "AGG", "NOPE", "TQQQ"], START, END)
    assert set(fetched.failures) == {"AGG", "NOPE"}
    assert (
        "IB error 162" in fetched.failures["AGG"] and "HMDS query returned no data" in fetched.failures["AGG"]
    )
    assert fetched.failures["NOPE"].startswith("ib: historical TRADES bars for NOPE")
    assert set(fetched.prices["symbol"]) == {"SPY", "TQQQ"}
    assert fetched.prices.filter(pl.col("symbol") == "SPY").equals(
        vendor(fake).fetch_daily(["SPY"], START, END).prices
    )


@pytest.mark.chaos("vendor faults", faults="dropped-connection")
def test_a_dropped_connection_fails_one_symbol_and_the_next_reconnects(fake) -> None:
    fake.disconnect_after(request="reqHistoricalData")
    fetched = vendor(fake).fetch_daily(["AGG", "SPY"], START, END)
    assert list(fetched.failures) == ["AGG"] and "lost" in fetched.failures["AGG"]
    assert set(fetched.prices["symbol"]) == {"SPY"}
    assert fake.requests["startApi"] == 2


def test_an_unreachable_gateway_fails_every_symbol_at_once(fake) -> None:
    fake.stop()
    fetched = vendor(fake).fetch_daily(["SPY", "AGG"], START, END)
    assert fetched.prices.is_empty() and set(fetched.failures) == {"AGG", "SPY"}
    assert all("cannot connect to 127.0.0.1" in reason for reason in fetched.failures.values())


def test_requests_are_paced_by_the_limiter(fake) -> None:
    clock = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock[0] += seconds

    limiter = RateLimiter([(3, 600.0)], clock=lambda: clock[0], sleep=sleep)
    fetched = vendor(fake, limiter=limiter).fetch_daily(["SPY", "AGG"], START, END)
    assert fetched.failures == {}
    assert sleeps == [600.0]  # the fourth historical request waits out the 10-minute window


def test_no_sessions_no_requests(fake) -> None:
    fetched = vendor(fake).fetch_daily(["SPY"], date(2024, 3, 30), date(2024, 3, 31))
    assert fetched.prices.is_empty() and fetched.failures == {}
    assert fake.requests["startApi"] == 0

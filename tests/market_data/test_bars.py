from datetime import UTC, date, datetime

import polars as pl
import pytest

from finance_dag.core import calendar
from finance_dag.market_data.bars import (
    BAR_SCHEMA,
    FetchResult,
    VendorError,
    compact_for_storage,
    conform,
    daily_from_minutes,
    gap_fill,
    validate_bars,
)

DAY = date(2024, 11, 29)  # early close: 09:30-13:00 New York = 14:30-18:00 UTC


def bar(minute: int, price: float = 10.0, symbol: str = "SPY", **changes) -> dict:
    """A valid regular-session bar ``minute`` minutes after the open of DAY."""
    ts = datetime(2024, 11, 29, 14, 30, tzinfo=UTC).timestamp() + 60 * minute
    row = dict(symbol=symbol, ts=datetime.fromtimestamp(ts, UTC), open=price, high=price + 0.05)
    row.update(low=price - 0.05, close=price + 0.01, volume=100, vwap=None, trade_count=None, source="x")
    row.update(changes)
    return row


def frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=BAR_SCHEMA)


class FakeVendor:
    """Serves fixed bars and records what it was asked."""

    def __init__(self, name: str, rows: list[dict], failures=None):
        self.name, self.rows, self.calls, self.failures = name, rows, [], failures or {}

    def fetch_minute_bars(self, symbols, start, end):
        self.calls.append((tuple(symbols), start, end))
        rows = [dict(r, source=self.name) for r in self.rows if r["symbol"] in symbols]
        return FetchResult(frame(rows), dict(self.failures))


def test_validation_names_each_broken_rule():
    rows = [
        bar(0),
        bar(1, high=9.0),
        bar(2, low=10.5),
        bar(3, volume=-1),
        bar(4, open=0.0, low=0.0),
        bar(5, close=None),
        bar(0),  # the same minute again
        bar(-400),  # 03:50 New York: before the pre-market
    ]
    valid, invalid = validate_bars(frame(rows))
    assert valid.height == 1 and valid["regular"].to_list() == [True]
    assert valid["date"].to_list() == [DAY]
    assert sorted(invalid["problem"].to_list()) == sorted(
        [
            "high below open/close",
            "low above open/close",
            "negative volume",
            "non-positive price",
            "missing value",
            "duplicate ts",
            "outside session",
        ]  # fmt: skip
    )


def test_extended_hours_bars_are_kept_and_flagged():
    valid, invalid = validate_bars(frame([bar(-1), bar(0), bar(209), bar(210), bar(449)]))
    assert invalid.is_empty()
    assert valid["regular"].to_list() == [False, True, True, False, False]


def test_gap_fill_asks_fallbacks_only_for_missing_minutes():
    minutes = calendar.expected_minutes(DAY)
    primary = FakeVendor(
        "primary", [bar(m) for m in range(minutes) if m not in (5, 6)] + [bar(0, symbol="QQQ")]
    )
    fallback = FakeVendor(
        "fallback",
        [bar(m, price=99.0) for m in range(minutes)] + [bar(m, symbol="QQQ") for m in range(minutes)],
    )
    last = FakeVendor("last", [])
    result = gap_fill(["SPY", "QQQ"], [DAY], [primary, fallback, last])
    spy = result.bars.filter(pl.col("symbol") == "SPY")
    assert spy.height == minutes and spy["ts"].is_unique().all() and spy["ts"].is_sorted()
    assert spy.filter(pl.col("source") == "fallback")["ts"].dt.minute().to_list() == [35, 36]
    assert spy.filter(pl.col("source") == "fallback")["open"].to_list() == [99.0, 99.0]
    qqq = result.bars.filter(pl.col("symbol") == "QQQ")
    assert qqq.height == minutes and qqq["source"].value_counts().height == 2
    assert result.requests == {"primary": 2, "fallback": 2}  # SPY and QQQ were both incomplete
    assert last.calls == []  # everything was complete after the first fallback


def test_invalid_primary_rows_are_dropped_and_refilled():
    primary = FakeVendor("primary", [bar(0), bar(1, high=1.0)])
    fallback = FakeVendor("fallback", [bar(1)])
    result = gap_fill(["SPY"], [DAY], [primary, fallback])
    assert result.bars["source"].to_list() == ["primary", "fallback"]
    assert result.invalid["problem"].to_list() == ["high below open/close"]


def test_a_symbol_day_every_vendor_failed_is_reported_not_written():
    failing = {("SPY", DAY): "primary: GET /bars SPY 2024-11-29 -> HTTP 503"}
    primary = FakeVendor("primary", [bar(0, symbol="QQQ")], failures=failing)
    fallback = FakeVendor("fallback", [], failures={("SPY", DAY): "fallback: SPY 2024-11-29 -> HTTP 500"})
    result = gap_fill(["SPY", "QQQ"], [DAY], [primary, fallback])
    assert result.failures == {
        ("SPY", DAY): [
            "primary: GET /bars SPY 2024-11-29 -> HTTP 503",
            "fallback: SPY 2024-11-29 -> HTTP 500",
        ]
    }
    assert set(result.bars["symbol"]) == {"QQQ"}


def test_conform_converts_to_utc_and_names_missing_columns():
    naive_ny = pl.DataFrame({"symbol": ["SPY"], "ts": [datetime(2024, 11, 29, 9, 30)], "open": [1.0],
                             "high": [1.0], "low": [1.0], "close": [1.0], "volume": [5]})  # fmt: skip
    ny = naive_ny.with_columns(pl.col("ts").dt.replace_time_zone("America/New_York"))
    out = conform(ny, "v")
    assert out["ts"].to_list() == [datetime(2024, 11, 29, 14, 30, tzinfo=UTC)]
    assert out.schema == BAR_SCHEMA and out["source"].to_list() == ["v"]
    with pytest.raises(VendorError, match="must be tz-aware"):
        conform(naive_ny, "v")
    with pytest.raises(VendorError, match="v: response lacks column\\(s\\) volume"):
        conform(ny.drop("volume"), "v")


def test_daily_bars_from_regular_minutes_only():
    valid, _ = validate_bars(frame([bar(-5, price=50.0), bar(0, price=10.0), bar(1, price=12.0, volume=300)]))
    daily = daily_from_minutes(valid).row(0, named=True)
    assert (daily["open"], daily["high"], daily["low"], daily["close"]) == (10.0, 12.05, 9.95, 12.01)
    assert daily["volume"] == 400 and daily["bars"] == 2
    # vwap falls back to the typical price (h + l + c) / 3 when the vendor has none
    expected = ((10.05 + 9.95 + 10.01) / 3 * 100 + (12.05 + 11.95 + 12.01) / 3 * 300) / 400
    assert daily["vwap"] == pytest.approx(expected, abs=1e-4)


def test_storage_keeps_cents_exact_and_sub_penny_prices_at_four_decimals():
    valid, _ = validate_bars(frame([bar(0, price=10.12)]))
    assert str(compact_for_storage(valid.drop("date"))["open"].dtype) == "Decimal(precision=9, scale=2)"
    penny, _ = validate_bars(frame([bar(0, price=0.1234, high=0.13, low=0.12, close=0.1251)]))
    stored = compact_for_storage(penny.drop("date"))
    assert stored["open"].dtype.scale == 4 and float(stored["open"][0]) == 0.1234


def test_a_vendor_error_fails_its_symbol_days_and_the_fallback_still_serves():
    class Broken:
        name = "broken"

        def fetch_minute_bars(self, symbols, start, end):
            raise VendorError("broken: response lacks column(s) volume")

    fallback = FakeVendor("fallback", [bar(0), bar(0, symbol="QQQ")])
    result = gap_fill(["SPY", "QQQ"], [DAY], [Broken(), fallback])
    assert set(result.bars["symbol"]) == {"SPY", "QQQ"} and set(result.bars["source"]) == {"fallback"}
    assert result.failures == {}
    alone = gap_fill(["SPY"], [DAY], [Broken()])
    assert alone.failures == {("SPY", DAY): ["broken: response lacks column(s) volume"]}


def test_compacting_symbol_days_together_gives_each_file_what_compacting_it_alone_gives(market):
    from finance_dag.market_data.bars import compact_symbol_days
    from finance_dag.sim.vendors import SimulatedVendor

    days = [date(2024, 11, 27), date(2024, 11, 29)]
    result = gap_fill(["SPY", "QQQ"], days, [SimulatedVendor(market, "sim_alpaca")])
    sub_penny = result.bars.with_columns(  # QQQ on the 29th gets a sub-penny price
        close=pl.when(
            (pl.col("symbol") == "QQQ")
            & (pl.col("date") == days[1])
            & (pl.col("ts") == pl.col("ts").min().over("symbol", "date"))
        )
        .then(pl.col("close") + 0.0012)
        .otherwise(pl.col("close"))
    )
    together = compact_symbol_days(sub_penny)
    assert set(together) == {(s, d) for s in ("SPY", "QQQ") for d in days}
    for (symbol, day), frame in together.items():
        alone = compact_for_storage(
            sub_penny.filter((pl.col("symbol") == symbol) & (pl.col("date") == day)).drop("date")
        )
        assert frame.equals(alone) and frame.schema == alone.schema, (symbol, day)
    assert together[("QQQ", days[1])].schema["close"] == pl.Decimal(14, 4)
    assert together[("SPY", days[1])].schema["close"] == pl.Decimal(9, 2)

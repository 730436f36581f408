"""Canonical minute bars: schema, validation at the vendor boundary and cross-vendor gap filling.

A vendor adapter returns bars in ``BAR_SCHEMA``: ``ts`` is the minute start, tz-aware UTC;
prices are raw (unadjusted) dollars. ``gap_fill`` asks the primary vendor first and each
fallback only for the symbol-days still incomplete, keeping the first valid bar per minute.
Invalid rows are never kept: they come back with a ``problem`` naming the rule they broke.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol

import polars as pl

from finance_dag.core import calendar

UTC_MINUTE = pl.Datetime("us", "UTC")
OHLCV = {"open": pl.Float64, "high": pl.Float64, "low": pl.Float64, "close": pl.Float64, "volume": pl.Int64}
BAR_SCHEMA = pl.Schema(
    {
        "symbol": pl.String,
        "ts": UTC_MINUTE,
        **OHLCV,
        "vwap": pl.Float64,
        "trade_count": pl.Int64,
        "source": pl.String,
    }
)
# What the lake stores per symbol-day: the canonical bar plus the session flag.
MINUTE_BAR_SCHEMA = pl.Schema({**BAR_SCHEMA, "regular": pl.Boolean})
REQUIRED = ("symbol", "ts", "open", "high", "low", "close", "volume")
DAILY_BAR_SCHEMA = pl.Schema(
    {"symbol": pl.String, "date": pl.Date, **OHLCV, "vwap": pl.Float64, "bars": pl.UInt32}
)
# What each stored column means, with its unit (the assets' column schemas are built from these).
COLUMN_DESCRIPTIONS: dict[str, str] = {
    "symbol": "Ticker symbol.",
    "ts": "Minute start, UTC (the bar covers [ts, ts + 1 min)).",
    "date": "XNYS session date (New York).",
    "open": "First trade price, USD, raw (unadjusted).",
    "high": "Highest trade price, USD, raw.",
    "low": "Lowest trade price, USD, raw.",
    "close": "Last trade price, USD, raw.",
    "volume": "Shares traded.",
    "vwap": "Volume-weighted average price, USD (null when the vendor has none).",
    "trade_count": "Number of trades (null when the vendor has none).",
    "source": "Vendor that supplied the bar (e.g. sim_alpaca, alpaca:sip).",
    "regular": "True inside the regular session (09:30 to the close, New York).",
    "bars": "Regular-session minute bars aggregated, count.",
}

SymbolDay = tuple[str, date]


class VendorError(RuntimeError):
    """A vendor request failed for good; the message names vendor, symbols, dates and status."""


@dataclass
class FetchResult:
    """Bars a vendor returned, and the symbol-days it could not serve with the reason."""

    bars: pl.DataFrame
    failures: dict[SymbolDay, str] = field(default_factory=dict)


class BarSource(Protocol):
    """One vendor of minute bars. Real adapters batch symbols and days into few requests."""

    name: str

    def fetch_minute_bars(self, symbols: Sequence[str], start: date, end: date) -> FetchResult:
        """Bars for every symbol and session in [start, end] as a frame in ``BAR_SCHEMA``."""
        ...


def conform(frame: pl.DataFrame, source: str) -> pl.DataFrame:
    """Cast a vendor frame to ``BAR_SCHEMA``, naming the vendor and any missing column."""
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise VendorError(f"{source}: response lacks column(s) {', '.join(missing)}")
    if frame.schema["ts"] != UTC_MINUTE:
        dtype = frame.schema["ts"]
        if not isinstance(dtype, pl.Datetime) or dtype.time_zone is None:
            raise VendorError(f"{source}: column ts must be tz-aware, got {dtype}")
    extras = {c: pl.lit(None, BAR_SCHEMA[c]) for c in ("vwap", "trade_count") if c not in frame}
    return (
        frame.with_columns(**extras, source=pl.lit(source))
        .with_columns(pl.col("ts").dt.convert_time_zone("UTC").dt.cast_time_unit("us"))
        .select(BAR_SCHEMA.names())
        .cast(BAR_SCHEMA)
    )


def session_windows(days: Iterable[date]) -> pl.DataFrame:
    """Per session: the UTC bounds of extended hours and of the regular session."""
    rows = []
    for day in sorted(set(days)):
        if not calendar.is_session(day):
            continue
        pre, post = calendar.extended_window(day)
        opened, closed = calendar.session_open_close(day)
        rows.append((day, pre, opened, closed, post))
    schema = {"date": pl.Date, "pre": UTC_MINUTE, "open_ts": UTC_MINUTE,
              "close_ts": UTC_MINUTE, "post": UTC_MINUTE}  # fmt: skip
    return pl.DataFrame(rows, schema=schema, orient="row")


def ny_date(col: str = "ts") -> pl.Expr:
    """The New York trading date of a UTC timestamp column."""
    return pl.col(col).dt.convert_time_zone(calendar.NEW_YORK.key).dt.date()


def validate_bars(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split bars into (valid, invalid). Valid rows gain ``date`` (New York) and ``regular``.

    Rules: required values present; prices positive; high >= max(open, close);
    low <= min(open, close); volume >= 0; ``ts`` inside its session's extended hours;
    one bar per symbol and minute (the first one wins). Invalid rows carry ``problem``.
    """
    with_date = frame.with_columns(date=ny_date())
    windows = session_windows(with_date["date"].unique().drop_nulls().to_list())
    joined = with_date.join(windows, on="date", how="left")
    problem = (
        pl.when(pl.any_horizontal(pl.col(c).is_null() for c in REQUIRED))
        .then(pl.lit("missing value"))
        .when(pl.min_horizontal("open", "high", "low", "close") <= 0)
        .then(pl.lit("non-positive price"))
        .when(pl.col("high") < pl.max_horizontal("open", "close"))
        .then(pl.lit("high below open/close"))
        .when(pl.col("low") > pl.min_horizontal("open", "close"))
        .then(pl.lit("low above open/close"))
        .when(pl.col("volume") < 0)
        .then(pl.lit("negative volume"))
        .when(pl.col("pre").is_null() | (pl.col("ts") < pl.col("pre")) | (pl.col("ts") >= pl.col("post")))
        .then(pl.lit("outside session"))
        .when(pl.col("ts").is_first_distinct().over("symbol").not_())
        .then(pl.lit("duplicate ts"))
    )
    checked = joined.with_columns(problem=problem)
    valid = (
        checked.filter(pl.col("problem").is_null())
        .with_columns(regular=(pl.col("ts") >= pl.col("open_ts")) & (pl.col("ts") < pl.col("close_ts")))
        .select(*BAR_SCHEMA.names(), "regular", "date")
    )
    invalid = checked.filter(pl.col("problem").is_not_null()).select(*BAR_SCHEMA.names(), "problem")
    return valid, invalid


def regular_counts(bars: pl.DataFrame) -> pl.DataFrame:
    """Distinct regular-session minutes per (symbol, date)."""
    return bars.filter("regular").group_by("symbol", "date").agg(bars=pl.col("ts").n_unique())


def _fetch(vendor: BarSource, todo: pl.DataFrame) -> FetchResult:
    """Ask ``vendor`` for the ``todo`` symbol-days; a vendor error fails them, not the batch."""
    symbols = todo["symbol"].unique(maintain_order=True).to_list()
    try:
        return vendor.fetch_minute_bars(symbols, todo["date"].min(), todo["date"].max())
    except VendorError as error:
        return FetchResult(pl.DataFrame(schema=BAR_SCHEMA), {key: str(error) for key in todo.iter_rows()})


@dataclass
class GapFillResult:
    """Merged bars (sorted, one per symbol-minute), rejected rows and unserved symbol-days."""

    bars: pl.DataFrame
    invalid: pl.DataFrame
    failures: dict[SymbolDay, list[str]]
    requests: dict[str, int]  # symbol-days asked of each vendor


def gap_fill(symbols: Sequence[str], days: Sequence[date], vendors: Sequence[BarSource]) -> GapFillResult:
    """Fill every symbol-day from the first vendor, then ask each fallback for what is missing.

    A symbol-day is complete once every regular minute has a bar. Fallbacks are asked only for
    incomplete symbol-days and contribute only minutes not already present, so each bar's
    ``source`` names the vendor that supplied it. A symbol-day no vendor served and at least
    one vendor failed is reported in ``failures`` with every vendor's message.
    """
    days = sorted(days)
    expected = pl.DataFrame(
        {"date": days, "expected": [calendar.expected_minutes(d) for d in days]},
        schema={"date": pl.Date, "expected": pl.Int64},
    )
    wanted = pl.DataFrame(
        [(s, d) for d in days for s in symbols],
        schema={"symbol": pl.String, "date": pl.Date},
        orient="row",
    )
    merged = pl.DataFrame(schema={**MINUTE_BAR_SCHEMA, "date": pl.Date})
    rejected: list[pl.DataFrame] = []
    errors: dict[SymbolDay, list[str]] = {}
    requests: dict[str, int] = {}
    todo = wanted
    for vendor in vendors:
        if todo.is_empty():
            break
        requests[vendor.name] = todo.height
        result = _fetch(vendor, todo)
        for key, message in result.failures.items():
            errors.setdefault(key, []).append(message)
        valid, invalid = validate_bars(result.bars)
        rejected.append(invalid)
        fresh = valid.join(todo, on=["symbol", "date"], how="semi").join(
            merged.select("symbol", "ts"), on=["symbol", "ts"], how="anti"
        )
        merged = pl.concat([merged, fresh.select(merged.columns)])
        todo = (
            todo.join(regular_counts(merged), on=["symbol", "date"], how="left")
            .join(expected, on="date")
            .filter(pl.col("bars").fill_null(0) < pl.col("expected"))
            .select("symbol", "date")
        )
    served = set(merged.select("symbol", "date").unique().iter_rows())
    failures = {key: msgs for key, msgs in errors.items() if key not in served}
    return GapFillResult(
        bars=merged.sort("symbol", "ts"),
        invalid=pl.concat(rejected) if rejected else pl.DataFrame(),
        failures=failures,
        requests=requests,
    )


def session_summary(result: GapFillResult, day: date, symbols: Sequence[str]) -> pl.DataFrame:
    """Per symbol of one session: bars kept, regular bars, invalid vendor rows dropped and the
    vendors that served it (what a person checks first after a gap fill)."""
    grid = pl.DataFrame({"symbol": list(symbols)}, schema={"symbol": pl.String})
    bars = (
        result.bars.filter(pl.col("date") == day)
        .group_by("symbol")
        .agg(
            bars=pl.len().cast(pl.Int64),
            regular_bars=pl.col("regular").sum().cast(pl.Int64),
            sources=pl.col("source").unique().sort().str.join(","),
        )
    )
    invalid = (
        result.invalid.filter(ny_date() == day).group_by("symbol").agg(invalid_rows=pl.len().cast(pl.Int64))
        if result.invalid.height
        else pl.DataFrame(schema={"symbol": pl.String, "invalid_rows": pl.Int64})
    )
    return (
        grid.join(bars, on="symbol", how="left")
        .join(invalid, on="symbol", how="left")
        .with_columns(
            pl.col("bars", "regular_bars", "invalid_rows").fill_null(0), pl.col("sources").fill_null("")
        )
        .select("symbol", "bars", "regular_bars", "invalid_rows", "sources")
    )


def daily_from_minutes(bars: pl.DataFrame) -> pl.DataFrame:
    """Daily OHLCV per symbol and date from regular-session minute bars (sorted by ``ts``)."""
    regular = bars.filter("regular").sort("symbol", "ts")
    if "date" not in regular.columns:
        regular = regular.with_columns(date=ny_date())
    return (
        regular.group_by("symbol", "date", maintain_order=True)
        .agg(
            open=pl.col("open").first(),
            high=pl.col("high").max(),
            low=pl.col("low").min(),
            close=pl.col("close").last(),
            volume=pl.col("volume").sum(),
            vwap=(
                (
                    pl.coalesce("vwap", (pl.col("high") + pl.col("low") + pl.col("close")) / 3)
                    * pl.col("volume")
                ).sum()
                / pl.col("volume").sum()
            ).round(4),
            bars=pl.len(),
        )
        .cast(DAILY_BAR_SCHEMA)
    )


PRICE_COLUMNS = ("open", "high", "low", "close")
_DELTA = "DELTA_BINARY_PACKED"
BAR_ENCODINGS = {
    "ts": _DELTA,
    **{c: _DELTA for c in PRICE_COLUMNS},
    "vwap": _DELTA,
    "volume": "BYTE_STREAM_SPLIT",
    "trade_count": "BYTE_STREAM_SPLIT",
}


ON_CENTS = pl.all_horizontal(
    (pl.col(c) * 100 - (pl.col(c) * 100).round()).abs().max() < 1e-6 for c in PRICE_COLUMNS
)  # every price a whole number of cents (per frame, or per group in an aggregation)


def _compacted(bars: pl.DataFrame, on_cents: bool | None) -> pl.DataFrame:
    price_type = pl.Decimal(9, 2) if on_cents in (True, None) else pl.Decimal(14, 4)
    return bars.with_columns(
        *(pl.col(c).round(price_type.scale).cast(price_type) for c in PRICE_COLUMNS),
        pl.col("vwap").round(4).cast(pl.Decimal(14, 4)),
        pl.col("ts").dt.cast_time_unit("ms"),
    )


def compact_for_storage(bars: pl.DataFrame) -> pl.DataFrame:
    """Exact decimal prices (cents, or 1/10000 when any price is sub-penny) and ms timestamps.

    Integers delta-encode to about a byte per price where floats would cost eight; the lake
    reads them back as ``Float64`` (see ``finance_dag.core.lake.canonical_types``).
    """
    return _compacted(bars, bars.select(ON_CENTS).item())


def compact_symbol_days(bars: pl.DataFrame) -> dict[tuple[str, date], pl.DataFrame]:
    """``compact_for_storage`` of every (symbol, date) group of ``bars`` (which carry ``date``),
    without ``date``: the same frames, computed once per price scale instead of once per file."""
    scales = bars.group_by("symbol", "date").agg(on_cents=ON_CENTS)
    out: dict[tuple[str, date], pl.DataFrame] = {}
    for on_cents, keys in scales.partition_by("on_cents", as_dict=True, include_key=False).items():
        group = bars.join(keys, on=["symbol", "date"], how="semi")
        out |= _compacted(group, on_cents[0]).partition_by("symbol", "date", as_dict=True)
    return {key: frame.drop("date") for key, frame in out.items()}

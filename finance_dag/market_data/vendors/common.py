"""Frame helpers every bar adapter shares: canonical output, day filtering, failed symbol-days."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date

import polars as pl

from finance_dag.market_data.bars import BAR_SCHEMA, FetchResult, SymbolDay, conform, ny_date


def symbol_days(symbols: Iterable[str], days: Iterable[date]) -> list[SymbolDay]:
    return [(symbol, day) for day in days for symbol in symbols]


def fetch_result(
    frames: Sequence[pl.DataFrame],
    source: str,
    symbols: Sequence[str],
    days: Sequence[date],
    failures: dict[SymbolDay, str],
) -> FetchResult:
    """Canonical bars of the requested symbols and days, minus failed symbol-days, sorted.

    Bars of other days (a vendor month, a wider page) are dropped here; bars of a requested
    day are kept even outside its session so validation can reject them by rule.
    """
    parts = [conform(f, source) for f in frames if f.height]
    bars = pl.concat(parts) if parts else pl.DataFrame(schema=BAR_SCHEMA)
    wanted = pl.DataFrame(
        [(s, d) for s, d in symbol_days(symbols, days) if (s, d) not in failures],
        schema={"symbol": pl.String, "date": pl.Date},
        orient="row",
    )
    bars = (
        bars.with_columns(date=ny_date())
        .join(wanted, on=["symbol", "date"], how="semi")
        .drop("date")
        .sort("symbol", "ts")
    )
    return FetchResult(bars=bars, failures=failures)

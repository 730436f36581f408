"""The research layout of ETF prices: one parquet file per calendar year holding every ETF's raw
daily rows, so 2,000 ETFs × 5 years load in one read of five files.

``etf_prices`` stores one file per session (all ETFs); ``rebuild_years`` concatenates a year's
session files into ``{root}/year=YYYY.parquet`` (atomically, sorted by date and symbol), and
``load_history`` reads the years covering a window and keeps the rows in it. Rows are raw
prices with split and dividend events (``DAILY_PRICE_SCHEMA``), so a year file never changes
when later years arrive: only the current year is rewritten by daily runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date

import polars as pl

from finance_dag.core.lake import Lake
from finance_dag.market_data.daily import DAILY_PRICE_SCHEMA


def year_path(root: str, year: int) -> str:
    return f"{root}/year={year}.parquet"


def rebuild_years(lake: Lake, root: str, session_files: Mapping[int, Sequence[str]]) -> dict[int, int]:
    """Rewrite the year files of ``session_files`` (year -> that year's session files in the
    lake); returns the rows written per year."""
    written = {}
    for year, files in sorted(session_files.items()):
        rows = lake.read_many(files) if files else pl.DataFrame(schema=DAILY_PRICE_SCHEMA)
        rows = rows.select(DAILY_PRICE_SCHEMA.names()).sort("date", "symbol")
        lake.write_parquet(year_path(root, year), rows)
        written[year] = rows.height
    return written


def load_history(
    lake: Lake, root: str, start: date, end: date, symbols: Iterable[str] | None = None
) -> pl.DataFrame:
    """Raw daily rows of every ETF (or of ``symbols``) from ``start`` to ``end``, in one read."""
    paths = [year_path(root, y) for y in range(start.year, end.year + 1) if lake.exists(year_path(root, y))]
    if not paths:
        return pl.DataFrame(schema=DAILY_PRICE_SCHEMA)
    frame = lake.read_many(paths).filter(pl.col("date").is_between(start, end))
    return frame if symbols is None else frame.filter(pl.col("symbol").is_in(list(symbols)))

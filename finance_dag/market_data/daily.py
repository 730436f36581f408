"""Daily ETF/stock prices from vendors: the raw-price schema, validation and the vendor chain.

A vendor adapter returns ``DAILY_PRICE_SCHEMA`` rows: raw (unadjusted) session prices, with the
corporate actions of that session recorded beside them — ``split_ratio`` (new shares per old
share effective that session, 1.0 when none) and ``dividend`` (cash per share going ex that
session, 0.0 when none). Nothing is back-adjusted, so a stored row never changes when later
history arrives; ``total_returns`` turns rows into point-in-time total returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol

import polars as pl

DAILY_PRICE_SCHEMA = pl.Schema(
    {
        "date": pl.Date,
        "symbol": pl.String,
        "open": pl.Float64,
        "high": pl.Float64,
        "low": pl.Float64,
        "close": pl.Float64,
        "volume": pl.Int64,
        "split_ratio": pl.Float64,
        "dividend": pl.Float64,
        "source": pl.String,
    }
)
DAILY_PRICE_COLUMNS: dict[str, str] = {
    "date": "XNYS session date (New York).",
    "symbol": "Ticker symbol.",
    "open": "Opening price, USD, raw (unadjusted).",
    "high": "High, USD, raw.",
    "low": "Low, USD, raw.",
    "close": "Closing price, USD, raw.",
    "volume": "Shares traded.",
    "split_ratio": "New shares per old share effective this session (1.0: no split).",
    "dividend": "Cash dividend per share going ex this session, USD (0.0: none).",
    "source": "Vendor that supplied the row (e.g. sim_daily, ib, alpaca, yahoo).",
}


@dataclass
class DailyFetch:
    """Rows a vendor returned, and the symbols it could not serve with the reason."""

    prices: pl.DataFrame
    failures: dict[str, str] = field(default_factory=dict)


class DailyPriceSource(Protocol):
    """One vendor of daily prices; real adapters batch symbols into as few requests as they allow."""

    name: str

    def fetch_daily(self, symbols: Sequence[str], start: date, end: date) -> DailyFetch:
        """Rows for every symbol and session in [start, end] in ``DAILY_PRICE_SCHEMA``."""
        ...

"""Company fundamentals and classification: the frame every fundamentals source returns.

The risk model reads size (market cap), value (book-to-price) and its sector and country
terms from one row per stock. A source (the simulated default, Alpha Vantage's company
overview) returns those rows in ``FUNDAMENTALS_SCHEMA`` plus, per symbol it could not serve,
the reason: a missing or invalid figure is a recorded failure, never a zero. Pure: no
vendor SDK, no Dagster.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import polars as pl

# The eleven GICS sectors, the classification every source's sectors are expressed in.
GICS_SECTORS: tuple[str, ...] = (
    "Communication Services", "Consumer Discretionary", "Consumer Staples", "Energy", "Financials",
    "Health Care", "Industrials", "Information Technology", "Materials", "Real Estate", "Utilities",
)  # fmt: skip
FUNDAMENTALS_SCHEMA = pl.Schema(
    {
        "symbol": pl.String,
        "book_value": pl.Float64,
        "shares_outstanding": pl.Float64,
        "market_cap": pl.Float64,
        "sector": pl.String,
        "country": pl.String,
        "as_of": pl.Date,
        "source": pl.String,
    }
)

FUNDAMENTALS_COLUMNS: dict[str, str] = {
    "symbol": "Ticker symbol.",
    "book_value": "Total book value (shareholders' equity), USD: book value per share x shares outstanding.",
    "shares_outstanding": "Shares outstanding.",
    "market_cap": "Market capitalisation, USD, as the source states it (price x shares on its day).",
    "sector": "GICS sector name (a source's own sector scheme mapped to the nearest GICS sector).",
    "country": "Country of the company as the source names it (Alpha Vantage: 'USA').",
    "as_of": "End of the fiscal quarter the balance-sheet figures come from.",
    "source": "Source that supplied the row (e.g. alphavantage).",
}


@dataclass
class FundamentalsFetch:
    """Rows a source returned (``FUNDAMENTALS_SCHEMA``), and the symbols it could not serve with the reason."""

    frame: pl.DataFrame
    failures: dict[str, str] = field(default_factory=dict)


class FundamentalsSource(Protocol):
    """One source of fundamentals; a symbol it cannot serve is a failure, never a guessed row."""

    name: str

    def fetch_fundamentals(self, symbols: Sequence[str]) -> FundamentalsFetch:
        """One row per served symbol in ``FUNDAMENTALS_SCHEMA``; every other symbol in ``failures``."""
        ...


def fundamentals_frame(rows: Sequence[Mapping[str, Any]]) -> pl.DataFrame:
    """Rows (dicts keyed by the schema's columns) as a frame in ``FUNDAMENTALS_SCHEMA``, by symbol."""
    columns = {name: [row[name] for row in rows] for name in FUNDAMENTALS_SCHEMA}
    return pl.DataFrame(columns, schema=FUNDAMENTALS_SCHEMA).sort("symbol")

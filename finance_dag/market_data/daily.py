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

from finance_dag.market_data.bars import VendorError

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


# Boundary rules for vendor rows: (what is wrong, a true-when-broken expression on one row).
_PRICES = ("open", "high", "low", "close")
_DAILY_RULES: tuple[tuple[str, pl.Expr], ...] = (
    (
        "price not a positive number",
        pl.any_horizontal(
            *(pl.col(c).is_null() | ~pl.col(c).is_finite() | (pl.col(c) <= 0) for c in _PRICES)
        ),
    ),
    ("high below low", pl.col("high") < pl.col("low")),
    ("volume missing or negative", pl.col("volume").is_null() | (pl.col("volume") < 0)),
    ("split_ratio not a positive number", ~pl.col("split_ratio").is_finite() | (pl.col("split_ratio") <= 0)),
    ("dividend negative or not a number", ~pl.col("dividend").is_finite() | (pl.col("dividend") < 0)),
    ("date repeated", pl.struct("symbol", "date").is_duplicated()),
)


def conform_daily(frame: pl.DataFrame, source: str) -> tuple[pl.DataFrame, dict[str, str]]:
    """A vendor's daily rows in ``DAILY_PRICE_SCHEMA`` and the symbols refused at the boundary.

    ``frame`` holds ``date``, ``symbol``, ``open``, ``high``, ``low``, ``close``, ``volume`` and,
    when the vendor reports them, ``split_ratio`` and ``dividend`` (missing or null: no event,
    1.0 and 0.0); ``source`` names the vendor. A symbol with any row breaking a rule (a price
    that is not a positive number, high below low, a missing or negative volume, a split ratio
    that is not positive, a negative dividend, a date given twice) is dropped whole and named
    in the failures: ``{symbol: "<source>: <symbol> failed validation: <rule> on <dates>; ..."}``.
    Keeping part of a symbol whose vendor answer is wrong would store a history nobody checked.
    Shared by every daily adapter so a rule is stated once; the rows come back sorted by
    symbol and date.
    """
    if not frame.width:  # no rows and no columns: a vendor that answered nothing
        return pl.DataFrame(schema=DAILY_PRICE_SCHEMA), {}
    events = {"split_ratio": 1.0, "dividend": 0.0}
    frame = frame.with_columns(
        pl.col(name).fill_null(default) if name in frame.columns else pl.lit(default).alias(name)
        for name, default in events.items()
    ).with_columns(source=pl.lit(source))
    frame = frame.select(DAILY_PRICE_SCHEMA.names()).cast(DAILY_PRICE_SCHEMA).sort("symbol", "date")
    broken = frame.select(
        "symbol", "date", *(expr.fill_null(False).alias(rule) for rule, expr in _DAILY_RULES)
    )
    failures: dict[str, str] = {}
    for (symbol,), rows in broken.group_by("symbol", maintain_order=True):
        problems = [
            f"{rule} on {', '.join(str(d) for d in rows.filter(rule)['date'].unique(maintain_order=True))}"
            for rule, _ in _DAILY_RULES
            if rows[rule].any()
        ]
        if problems:
            failures[symbol] = f"{source}: {symbol} failed validation: {'; '.join(problems)}"
    return frame.filter(~pl.col("symbol").is_in(list(failures))), failures


# ---- the vendor chain -------------------------------------------------------------------------
# The primary serves what it can, each fallback only the symbols still missing; a symbol no vendor
# serves keeps every vendor's reason. Fallback is per symbol (a vendor that returns no row for a
# symbol over the window, or an error for it, hands the whole symbol on): vendors disagree on raw
# prices by rounding and on corporate actions, so one symbol's history comes from one vendor,
# never mixed within a window. Used by the ETF and the risk domains.


def collect_prices(
    sources: Sequence[DailyPriceSource], symbols: Sequence[str], start: date, end: date
) -> DailyFetch:
    """Rows for ``symbols`` over [start, end] from the first vendor that serves each symbol."""
    frames: list[pl.DataFrame] = []
    reasons: dict[str, list[str]] = {}
    missing = list(symbols)
    for source in sources:
        if not missing:
            break
        try:
            fetched = source.fetch_daily(missing, start, end)
        except VendorError as error:  # a vendor down for the whole request hands every symbol on
            fetched = DailyFetch(
                pl.DataFrame(schema=DAILY_PRICE_SCHEMA), {s: f"{source.name}: {error}" for s in missing}
            )
        served = set(fetched.prices["symbol"].unique()) - set(fetched.failures)
        frames.append(fetched.prices.filter(pl.col("symbol").is_in(list(served))))
        for symbol in missing:
            if symbol not in served:
                reasons.setdefault(symbol, []).append(
                    fetched.failures.get(symbol, f"{source.name}: no rows from {start} to {end}")
                )
        missing = [s for s in missing if s not in served]
    prices = pl.concat(frames) if frames else pl.DataFrame(schema=DAILY_PRICE_SCHEMA)
    return DailyFetch(prices.sort("date", "symbol"), {s: "; ".join(reasons[s]) for s in missing})

"""Daily ETF prices through a vendor chain: the primary serves what it can, each fallback only
the symbols still missing; a symbol no vendor serves keeps every vendor's reason.

Fallback is per symbol (a vendor that returns no row for a symbol over the window, or an error
for it, hands the whole symbol on): vendors disagree on raw prices by rounding and on corporate
actions, so one symbol's history comes from one vendor, never mixed within a window.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import polars as pl

from finance_dag.market_data.bars import VendorError
from finance_dag.market_data.daily import DAILY_PRICE_SCHEMA, DailyFetch, DailyPriceSource


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

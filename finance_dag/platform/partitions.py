"""Partitions: XNYS trading days, the symbol universe, and their date x symbol product.

Trading days are a daily time-window partitioning on weekdays with every XNYS holiday and
one-off closure excluded, so a partition key is always a session; early closes are ordinary
partitions. The universe comes from ``FINANCE_DAG_UNIVERSE`` (see ``finance_dag.core.universe``).
"""

from __future__ import annotations

from datetime import date, datetime

import dagster as dg

from finance_dag.core.calendar import NEW_YORK, closed_weekdays
from finance_dag.core.settings import load_settings
from finance_dag.core.universe import resolve_universe

SETTINGS = load_settings()
SYMBOLS: tuple[str, ...] = resolve_universe(SETTINGS.universe)
DATE_FORMAT = "%Y-%m-%d"


def trading_day_partitions(start: date, today: date | None = None) -> dg.TimeWindowPartitionsDefinition:
    """One partition per XNYS session from ``start``; today's session appears at midnight."""
    today = today or datetime.now(NEW_YORK).date()
    holidays = [datetime(d.year, d.month, d.day, tzinfo=NEW_YORK) for d in closed_weekdays(start, today)]
    return dg.TimeWindowPartitionsDefinition(
        start=start.strftime(DATE_FORMAT),
        fmt=DATE_FORMAT,
        cron_schedule="0 0 * * 1-5",
        timezone=NEW_YORK.key,
        end_offset=1,
        exclusions=holidays,
    )


trading_days = trading_day_partitions(SETTINGS.start_date)
symbols = dg.StaticPartitionsDefinition(list(SYMBOLS))
date_symbol = dg.MultiPartitionsDefinition({"date": trading_days, "symbol": symbols})


def split_key(key: str | dg.MultiPartitionKey) -> tuple[date, str]:
    """``'2024-11-29|SPY'`` (or the key object) to ``(date(2024, 11, 29), 'SPY')``."""
    if isinstance(key, dg.MultiPartitionKey):
        dims = key.keys_by_dimension
        return date.fromisoformat(dims["date"]), dims["symbol"]
    day, symbol = key.split("|")
    return date.fromisoformat(day), symbol


def date_symbol_key(day: date, symbol: str) -> str:
    return f"{day.isoformat()}|{symbol}"


def range_tags(first: str, last: str) -> dict[str, str]:
    """Run tags that make one run cover the partition range ``first...last`` (a rectangle for
    date x symbol keys), as ``dagster asset materialize --partition-range`` does."""
    from dagster._core.storage.tags import (
        ASSET_PARTITION_RANGE_END_TAG,
        ASSET_PARTITION_RANGE_START_TAG,
    )

    return {ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last}


def session_rectangle_tags(first_day: date, last_day: date) -> dict[str, str]:
    """Range tags for every symbol on every session from ``first_day`` to ``last_day``."""
    return range_tags(date_symbol_key(first_day, SYMBOLS[0]), date_symbol_key(last_day, SYMBOLS[-1]))

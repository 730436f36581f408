"""Partition factories: XNYS trading days, symbol universes, and their date x symbol product.

Built from settings, never from module globals. A trading-day partition is a daily window on
weekdays starting at 20:00 New York (when post-market ends) with every XNYS holiday and
one-off closure the calendar knows excluded (exchange_calendars lists them about a year ahead),
so a key is always a session, a session appears as a partition only once it has traded, and
early closes are ordinary partitions. Keys are the session's date (``2024-11-29``).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import dagster as dg

from finance_dag.core.calendar import NEW_YORK, closed_weekdays
from finance_dag.core.settings import DomainSettings

DATE_FORMAT = "%Y-%m-%d"
SESSION_DONE = time(20, 0)  # post-market ends: the session's data is complete
DATE, SYMBOL = "date", "symbol"


def _at_close(day: date) -> datetime:
    return datetime.combine(day, SESSION_DONE, NEW_YORK)


def _next_weekday(day: date) -> date:
    return day + timedelta(days={4: 3, 5: 2}.get(day.weekday(), 1))


def trading_day_partitions(start: date, end: date | None = None) -> dg.TimeWindowPartitionsDefinition:
    """One partition per XNYS session from ``start`` (through ``end`` when given); the session
    of the day appears at 20:00 New York, after post-market."""
    return dg.TimeWindowPartitionsDefinition(
        start=_at_close(start),
        end=_at_close(_next_weekday(end)) if end else None,  # exclusive: the last window's end
        fmt=DATE_FORMAT,
        cron_schedule=f"{SESSION_DONE.minute} {SESSION_DONE.hour} * * 1-5",
        timezone=NEW_YORK.key,
        end_offset=1,
        exclusions=[_at_close(d) for d in closed_weekdays(start)],
    )


class DomainPartitions:
    """The partitions of one domain, built from its settings: days, symbols, date x symbol."""

    def __init__(self, settings: DomainSettings) -> None:
        self.symbols: tuple[str, ...] = settings.universe
        self.trading_days = trading_day_partitions(settings.start_date, settings.end_date)
        self.symbol = dg.StaticPartitionsDefinition(list(self.symbols))
        self.date_symbol = dg.MultiPartitionsDefinition({DATE: self.trading_days, SYMBOL: self.symbol})

    def session_rectangle_tags(self, first_day: date, last_day: date) -> dict[str, str]:
        """Range tags for every symbol on every session from ``first_day`` to ``last_day``."""
        return range_tags(
            date_symbol_key(first_day, self.symbols[0]), date_symbol_key(last_day, self.symbols[-1])
        )


def split_key(key: str | dg.MultiPartitionKey) -> tuple[date, str]:
    """``'2024-11-29|SPY'`` (or the key object) to ``(date(2024, 11, 29), 'SPY')``."""
    if isinstance(key, dg.MultiPartitionKey):
        dims = key.keys_by_dimension
        return date.fromisoformat(dims[DATE]), dims[SYMBOL]
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

"""Partition factories: XNYS trading days and symbol universes.

Built from settings, never from module globals. A trading-day partition is a daily window on
weekdays starting at 20:00 New York (when post-market ends) with every XNYS holiday and
one-off closure the calendar knows excluded (exchange_calendars lists them about a year ahead),
so a key is always a session, a session appears as a partition only once it has traded, and
early closes are ordinary partitions. Keys are the session's date (``2024-11-29``).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import dagster as dg
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
)

from finance_dag.core.calendar import NEW_YORK, closed_weekdays
from finance_dag.core.settings import DomainSettings

DATE_FORMAT = "%Y-%m-%d"
SESSION_DONE = time(20, 0)  # post-market ends: the session's data is complete


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
    """The partitions of one domain, built from its settings: trading days and symbols."""

    def __init__(self, settings: DomainSettings) -> None:
        self.symbols: tuple[str, ...] = settings.universe
        self.trading_days = trading_day_partitions(settings.start_date, settings.end_date)
        self.symbol = dg.StaticPartitionsDefinition(list(self.symbols))


def session_range_tags(first_day: date, last_day: date) -> dict[str, str]:
    """Run tags that make one run cover the sessions ``first_day`` to ``last_day``."""
    return range_tags(first_day.isoformat(), last_day.isoformat())


def range_tags(first: str, last: str) -> dict[str, str]:
    """Run tags that make one run cover the partition range ``first...last``, as
    ``dagster asset materialize --partition-range`` does."""
    return {ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last}


def run_partition_keys(run: dg.DagsterRun, partitions_def: dg.PartitionsDefinition) -> list[str]:
    """The partitions of ``partitions_def`` a run targeted, from its range or partition tag."""
    start, end = run.tags.get(ASSET_PARTITION_RANGE_START_TAG), run.tags.get(ASSET_PARTITION_RANGE_END_TAG)
    if start and end:
        keys = partitions_def.get_partition_keys_in_range(dg.PartitionKeyRange(start, end))
        return [str(k) for k in keys]
    key = run.tags.get(PARTITION_NAME_TAG)
    return [key] if key else []

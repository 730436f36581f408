"""The XNYS trading calendar: sessions, regular-session minutes and extended-hours windows.

Backed by ``exchange_calendars``. Minutes are labelled by their start and held as UTC
timestamps; a full session has 390 minutes (09:30-15:59 New York), an early close 210.
Extended hours run from 04:00 New York to four hours after the close.
"""

from __future__ import annotations

import bisect
import json
import os
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from importlib.metadata import version
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

NEW_YORK = ZoneInfo("America/New_York")
CALENDAR_START = date(2010, 1, 4)
PRE_MARKET_OPEN = time(4, 0)
POST_MARKET_HOURS = 4


@lru_cache(maxsize=1)
def xnys():
    """The exchange_calendars XNYS calendar from 2010 to a year ahead (library default end)."""
    import exchange_calendars as xc

    return xc.get_calendar("XNYS", start=CALENDAR_START.isoformat())


@lru_cache(maxsize=1)
def _session_table() -> dict[date, tuple[datetime, datetime]]:
    cal = xnys()
    opens = cal.schedule["open"].dt.tz_convert("UTC")
    closes = cal.schedule["close"].dt.tz_convert("UTC")
    return {
        day.date(): (o.to_pydatetime(), c.to_pydatetime())
        for day, o, c in zip(cal.schedule.index, opens, closes, strict=True)
    }


def sessions(start: date, end: date) -> list[date]:
    """Trading sessions from ``start`` to ``end`` inclusive, in order."""
    return [d for d in _session_table() if start <= d <= end]


def sessions_before(day: date, count: int) -> list[date]:
    """The ``count`` sessions before ``day`` and ``day`` itself (``day`` a session), in order:
    the lookback window of a computation as of ``day``."""
    table = list(_session_table())
    end = bisect.bisect_right(table, day)
    return table[max(0, end - count - 1) : end]


def is_session(day: date) -> bool:
    return day in _session_table()


def session_open_close(day: date) -> tuple[datetime, datetime]:
    """UTC open and close of the regular session; raises ``ValueError`` on a non-session."""
    try:
        return _session_table()[day]
    except KeyError:
        raise ValueError(f"{day.isoformat()} is not an XNYS trading session") from None


def expected_minutes(day: date) -> int:
    """Regular-session minutes of ``day``: 390 on a full day, 210 on an early close."""
    opened, closed = session_open_close(day)
    return int((closed - opened).total_seconds() // 60)


def regular_minutes(day: date) -> np.ndarray:
    """The regular-session minute starts of ``day`` as ``datetime64[us]`` UTC values."""
    opened, _ = session_open_close(day)
    start = np.datetime64(opened.replace(tzinfo=None), "us")
    return start + np.arange(expected_minutes(day)).astype("timedelta64[m]")


def extended_window(day: date) -> tuple[datetime, datetime]:
    """UTC bounds [04:00 New York, close + 4 h) of every bar that may belong to ``day``."""
    _, closed = session_open_close(day)
    pre = datetime.combine(day, PRE_MARKET_OPEN, NEW_YORK).astimezone(ZoneInfo("UTC"))
    return pre, closed + timedelta(hours=POST_MARKET_HOURS)


def _cache_file(start: date, today: date) -> Path:
    """The calendar's horizon moves with the day, so the cache is per day and library version."""
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    tag = f"xnys-closed-{start.isoformat()}-{today.isoformat()}-xc{version('exchange_calendars')}.json"
    return root / "finance_dag" / tag


def closed_weekdays(start: date, through: date | None = None) -> list[date]:
    """Every weekday from ``start`` that is not an XNYS session, as far ahead as the calendar
    knows (holidays and one-off closures, about a year ahead) or up to ``through``.

    Used to build the partitions when definitions load; the answer is cached on disk per
    exchange_calendars version and day (importing the library costs most of a second).
    """
    today = datetime.now(NEW_YORK).date()
    cache = _cache_file(start, today)
    try:
        closed = [date.fromisoformat(d) for d in json.loads(cache.read_text())]
    except (OSError, ValueError):
        closed = _closed_weekdays(start)
        _save(cache, closed)
    return [d for d in closed if through is None or d <= through]


def _closed_weekdays(start: date) -> list[date]:
    table = _session_table()
    closed = []
    day = start
    while day <= max(table):
        if day.weekday() < 5 and day not in table:
            closed.append(day)
        day += timedelta(days=1)
    return closed


def _save(cache: Path, closed: list[date]) -> None:
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps([d.isoformat() for d in closed]))
        tmp.replace(cache)
    except OSError:
        pass  # a read-only home only costs the next load the same computation

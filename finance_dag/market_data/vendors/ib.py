"""Interactive Brokers daily bars through ib_async (``IbDaily``), over the broker's ``IbConnection``.

Per symbol two historical requests, ``1 day`` bars, regular hours, ``formatDate=1``:

- ``TRADES`` ending at 23:59:59 New York of ``end``, reaching back to the session before
  ``start`` (so the first row's dividend can be recovered);
- ``ADJUSTED_LAST`` over the same first day up to today: IB refuses an ``endDateTime`` with
  ``ADJUSTED_LAST``, so it always ends now.

IB serves no raw history: its ``TRADES`` daily bars are adjusted for every split up to the day
of the request (prices divided, volume multiplied), and ``ADJUSTED_LAST`` for splits and
dividends. So ``open``/``high``/``low``/``close``/``volume`` here are split-adjusted as of the
request, not raw, ``split_ratio`` is always 1.0 (a split cannot be seen in either series), and
every row's ``source`` says so: ``ib:split_adjusted``. A later split changes these prices; a
consumer mixing them with raw rows must rescale. Dividends are recovered honestly: with
``close`` split-adjusted and ``adj`` the ADJUSTED_LAST close, IB's dividend factor for session
t is ``(adj[t-1] / close[t-1]) / (adj[t] / close[t])``; that factor being the usual
``1 - dividend / close[t-1]``, the cash dividend going ex at t, per split-adjusted share, is
``close[t-1] - adj[t-1] * close[t] / adj[t]`` (exact, not a one-day approximation); below
``dividend_tolerance`` (rounding in IB's prices) it is 0.0.

A symbol that IB answers with an error (e.g. 162 "HMDS query returned no data"), with no
bars, or with an incomplete pair of series lands in ``failures`` with IB's message; the other
symbols are served. A dropped connection fails the symbol in flight, and the next symbol
reconnects; a gateway that cannot be reached fails every symbol not yet served, at once.

Pacing: IB allows 60 historical requests in any 10 minutes (and no six for one contract and
type within 2 s); ``limiter`` defaults to one shared ``RateLimiter`` of 60 per 600 s, so a
symbol costs 20 s of budget. ib_async itself throttles all messages to 45 a second (IB's
limit is 50).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import date, datetime, time, timedelta

import polars as pl
from ib_async import IB, BarData, Stock

from finance_dag.brokers.base import BrokerError
from finance_dag.brokers.ib import DEFAULT_PORT, IbConnection, IbUnreachable
from finance_dag.core import calendar
from finance_dag.core.http import RateLimiter, shared_limiter
from finance_dag.market_data.daily import DAILY_PRICE_SCHEMA, DailyFetch, conform_daily

NAME = "ib"
SOURCE = "ib:split_adjusted"
HISTORICAL_LIMITS = ((60, 600.0),)  # historical data requests per 10 minutes
DIVIDEND_TOLERANCE = 0.005  # USD per share


class IbDaily:
    """``DailyPriceSource`` for IB: split-adjusted daily bars, dividends recovered from ADJUSTED_LAST."""

    name = NAME

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        client_id: int = 17,
        *,
        timeout: float = 60.0,
        limiter: RateLimiter | None = None,
        today: Callable[[], date] = lambda: datetime.now(calendar.NEW_YORK).date(),
        dividend_tolerance: float = DIVIDEND_TOLERANCE,
    ) -> None:
        self.connection = IbConnection(host, port, client_id, readonly=True, timeout=timeout)
        self.limiter = limiter or shared_limiter(NAME, HISTORICAL_LIMITS)
        self.today = today
        self.dividend_tolerance = dividend_tolerance

    def fetch_daily(self, symbols: Sequence[str], start: date, end: date) -> DailyFetch:
        days = calendar.sessions(start, end)
        frames: list[pl.DataFrame] = []
        failures: dict[str, str] = {}
        if days:
            before = calendar.sessions(days[0] - timedelta(days=14), days[0] - timedelta(days=1))
            first = before[-1] if before else days[0]
            ordered = sorted(set(symbols))
            try:
                for i, symbol in enumerate(ordered):
                    try:
                        frames.append(self._symbol(symbol, first, days[0], days[-1]))
                    except IbUnreachable as error:  # no gateway: the rest would wait in vain too
                        failures.update(dict.fromkeys(ordered[i:], str(error)))
                        break
                    except BrokerError as error:
                        failures[symbol] = str(error)
            finally:
                self.connection.close()
        prices, refused = conform_daily(
            pl.concat(frames) if frames else pl.DataFrame(schema=DAILY_PRICE_SCHEMA), SOURCE
        )
        return DailyFetch(prices, {**failures, **refused})

    def _symbol(self, symbol: str, first: date, start: date, end: date) -> pl.DataFrame:
        """Rows of ``symbol`` in [start, end]; ``first`` is the session before ``start``."""
        end_of_day = datetime.combine(end, time(23, 59, 59), calendar.NEW_YORK)
        trades = self._bars(symbol, "TRADES", end_of_day, _duration(first, end))
        adjusted = self._bars(symbol, "ADJUSTED_LAST", "", _duration(first, self.today()))
        adj_close = {bar.date: bar.close for bar in adjusted}
        bars = [bar for bar in trades if first <= bar.date <= end]
        missing = [bar.date.isoformat() for bar in bars if bar.date not in adj_close]
        if missing:
            raise BrokerError(f"{NAME}: ADJUSTED_LAST bars for {symbol} lack {', '.join(missing)}")
        rows = []
        for prev, bar in zip([None, *bars], bars, strict=False):
            if bar.date < start:
                continue
            dividend = 0.0
            if prev is not None:
                cash = prev.close - adj_close[prev.date] * bar.close / adj_close[bar.date]
                dividend = round(cash, 6) if cash > self.dividend_tolerance else 0.0
            rows.append((bar.date, symbol, bar.open, bar.high, bar.low, bar.close, int(bar.volume), 1.0,
                         dividend, SOURCE))  # fmt: skip
        if not rows:
            raise BrokerError(f"{NAME}: TRADES bars for {symbol}: none in {start}..{end}")
        return pl.DataFrame(rows, schema=DAILY_PRICE_SCHEMA, orient="row")

    def _bars(self, symbol: str, what: str, end: datetime | str, duration: str) -> list[BarData]:
        async def work(ib: IB) -> list[BarData]:
            contract = Stock(symbol, "SMART", "USD")
            return list(
                await ib.reqHistoricalDataAsync(
                    contract, end, duration, "1 day", what, useRTH=True, formatDate=1, timeout=0
                )
            )

        self.limiter.acquire()
        bars = self.connection.call(
            f"historical {what} bars for {symbol} ({duration} to {end or 'now'})", work
        )
        if not bars:
            raise BrokerError(f"{NAME}: {what} bars for {symbol}: IB answered no bars")
        return bars


def _duration(first: date, last: date) -> str:
    """IB's ``durationStr`` covering ``first``..``last``: days up to a year, then whole years."""
    days = (last - first).days + 1
    return f"{days} D" if days <= 365 else f"{math.ceil(days / 365)} Y"

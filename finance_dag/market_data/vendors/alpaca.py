"""Alpaca minute bars through alpaca-py's ``StockHistoricalDataClient``.

One backfill is one request sequence: a multi-symbol ``GET /v2/stocks/bars`` over the whole
date range (04:00 New York of the first session to the end of the last session's post-market),
``limit`` 10,000 bars a page across symbols and days, following ``next_page_token``. Bars are
raw (``adjustment=raw``), UTC, labelled by minute start, pre/post-market included (validation
downstream flags the regular session). Each page is retried on its own, so a fault costs one
extra request, not the whole sequence; a 429 waits for ``Retry-After`` or, without it, until
``X-RateLimit-Reset`` (epoch seconds).

The feed defaults to ``sip`` (consolidated volume; the free plan serves SIP history older than
15 minutes). IEX carries about 2 % of the volume, so the feed is part of every bar's ``source``
(``alpaca:sip`` / ``alpaca:iex``): a day gap-filled across feeds is visible, never silent.

Alpaca sends whole-number prices as JSON integers (``"o": 174``), so page frames are built
with an explicit schema, never by inference (which would truncate the page's later prices).

Alpaca orders a multi-symbol answer by symbol, then time. When a page fails for good, the
symbol-days from the last bar received onwards are reported as failures (with their partial
bars dropped) and everything before stays served.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

import polars as pl
from alpaca.common.enums import Sort
from alpaca.common.exceptions import APIError
from alpaca.data.enums import Adjustment, DataFeed
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.requests import StockBarsRequest
from alpaca.data.timeframe import TimeFrame

from finance_dag.core import calendar
from finance_dag.core.http import (
    RateLimiter,
    RequestFailed,
    RetryPolicy,
    RoutedSession,
    TransientError,
    VendorClient,
    describe_request,
    failures_for,
    shared_limiter,
    status_error,
)
from finance_dag.market_data.bars import FetchResult, SymbolDay
from finance_dag.market_data.vendors.common import fetch_result, ny_date, symbol_days

NAME = "alpaca"
PAGE_LIMIT = 10_000  # Alpaca's maximum bars per page
FREE_PLAN_LIMITS = ((200, 60.0),)  # historical data calls per minute
DEFAULT_FEED = "sip"
_COLUMNS = {"t": "ts", "o": "open", "h": "high", "l": "low", "c": "close", "v": "volume",
            "vw": "vwap", "n": "trade_count"}  # fmt: skip
# Wire types of a bar: never inferred (whole-number prices arrive as JSON integers).
_WIRE_SCHEMA = pl.Schema({"t": pl.String, "o": pl.Float64, "h": pl.Float64, "l": pl.Float64,
                          "c": pl.Float64, "v": pl.Int64, "vw": pl.Float64, "n": pl.Int64})  # fmt: skip


class AlpacaBars:
    """``BarSource`` for Alpaca: batched multi-symbol, multi-day pages; raw prices; UTC."""

    name = NAME

    def __init__(
        self,
        api_key: str,
        secret_key: str,
        *,
        feed: str = DEFAULT_FEED,
        base_url: str | None = None,
        policy: RetryPolicy | None = None,
        limiter: RateLimiter | None = None,
        page_limit: int = PAGE_LIMIT,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.feed = DataFeed(feed)
        self.source = f"{NAME}:{self.feed.value}"  # the ``source`` of every bar: vendor and feed
        self.wall_clock = wall_clock  # for X-RateLimit-Reset, an epoch
        self.page_limit = page_limit
        policy = policy or RetryPolicy()
        self.client = StockHistoricalDataClient(api_key, secret_key, url_override=base_url)
        # Retries belong to VendorClient (backoff, Retry-After); the SDK's own retry sleeps a
        # fixed 3 s and its session has no timeout, so both are replaced.
        self.client._retry = 0
        self.client._session = RoutedSession(timeout=policy.timeout)
        self.http = VendorClient(
            NAME, limiter or shared_limiter(NAME, FREE_PLAN_LIMITS), policy, (api_key, secret_key)
        )

    def fetch_minute_bars(self, symbols: Sequence[str], start: date, end: date) -> FetchResult:
        days = calendar.sessions(start, end)
        ordered = sorted(set(symbols))
        if not days or not ordered:
            return fetch_result([], self.source, ordered, days, {})
        request = StockBarsRequest(
            symbol_or_symbols=ordered,
            timeframe=TimeFrame.Minute,
            start=calendar.extended_window(days[0])[0],
            end=calendar.extended_window(days[-1])[1],
            limit=self.page_limit,
            adjustment=Adjustment.RAW,
            feed=self.feed,
            sort=Sort.ASC,
        )
        params = request.to_request_fields()
        described = describe_request(ordered, days[0], days[-1])
        pages: list[pl.DataFrame] = []
        failures: dict[SymbolDay, str] = {}
        token: str | None = None
        seen: set[str] = set()
        while True:
            what = f"GET /v2/stocks/bars for {described} (feed {self.feed.value}, page {len(pages) + 1})"
            query = {**params, "page_token": token} if token else params
            try:
                body = self.http.call(what, lambda q=query: self._page(q))
            except RequestFailed as error:
                failures = failures_for(_unserved(ordered, days, pages), error)
                break
            pages.append(_frame(body["bars"] or {}))
            token = body.get("next_page_token")
            if not token:
                break
            if token in seen:  # a vendor bug; following it would loop forever
                error = f"{NAME}: {what} returned an already-used next_page_token (HTTP 200)"
                failures = failures_for(_unserved(ordered, days, pages), error)
                break
            seen.add(token)
        return fetch_result(pages, self.source, ordered, days, failures)

    def _page(self, query: dict[str, Any]) -> dict[str, Any]:
        try:
            body = self.client.get("/stocks/bars", dict(query))
        except APIError as error:
            response = error.response
            raise status_error(
                error.status_code or 0,
                str(error),
                response.headers if response is not None else None,
                now=self.wall_clock(),
            ) from None
        if not isinstance(body, dict) or "bars" not in body:
            raise TransientError("malformed page: no 'bars' object", 200)
        return body


def _frame(bars: dict[str, list[dict[str, Any]]]) -> pl.DataFrame:
    """One page's ``{symbol: [{t, o, h, l, c, v, n, vw}]}`` as a frame with a UTC ``ts``."""
    parts = [
        pl.DataFrame(rows, schema=_WIRE_SCHEMA).with_columns(symbol=pl.lit(symbol, pl.String))
        for symbol, rows in bars.items()
        if rows
    ]
    if not parts:
        return pl.DataFrame()
    frame = pl.concat(parts).rename(_COLUMNS)
    return frame.with_columns(pl.col("ts").str.to_datetime(time_unit="us", time_zone="UTC"))


def _unserved(symbols: list[str], days: list[date], pages: list[pl.DataFrame]) -> list[SymbolDay]:
    """Symbol-days at or after the last bar received, in Alpaca's (symbol, time) order."""
    received = [p for p in pages if p.height]
    if not received:
        return symbol_days(symbols, days)
    last = received[-1].sort("symbol", "ts").select("symbol", ny_date()).row(-1)
    return [(s, d) for s, d in symbol_days(symbols, days) if (s, d) >= last]

"""Alpaca minute and daily bars through alpaca-py's ``StockHistoricalDataClient``.

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

Daily prices (``fetch_daily``) are the same multi-symbol request with ``timeframe=1Day``, raw;
a daily bar is stamped 00:00 New York of its session, so its session is the New York date of
its timestamp. The splits and cash dividends beside each row come from Alpaca's corporate
actions (``GET /v1/corporate-actions``, the API behind alpaca-py's ``CorporateActionsClient``),
asked once for all symbols through the same client, pages and retries: the actions are
Alpaca's own records of the events, where deriving them from split- and dividend-adjusted bars
would cost two more bar sequences and recover ratios only to rounding. Rows go through
``conform_daily``, the validation every daily vendor shares.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from typing import Any

import polars as pl
from alpaca.common.enums import Sort
from alpaca.common.exceptions import APIError
from alpaca.data.enums import Adjustment, DataFeed
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.requests import CorporateActionsRequest, StockBarsRequest
from alpaca.data.timeframe import TimeFrame

from finance_dag.core import calendar
from finance_dag.core.http import (
    PermanentError,
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
from finance_dag.market_data.bars import FetchResult, SymbolDay, VendorError
from finance_dag.market_data.daily import DAILY_PRICE_SCHEMA, DailyFetch, conform_daily
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
# Corporate actions recorded beside daily bars: request type -> key of its list in the answer.
_ACTION_TYPES = {"forward_split": "forward_splits", "reverse_split": "reverse_splits",
                 "cash_dividend": "cash_dividends"}  # fmt: skip
_EVENT_SCHEMA = pl.Schema(
    {"symbol": pl.String, "date": pl.Date, "split_ratio": pl.Float64, "dividend": pl.Float64}
)
ACTIONS_PAGE_LIMIT = 1_000  # Alpaca's maximum corporate actions per page
DIVIDEND_PROCESS_LAG = timedelta(days=90)  # ex-date to payable (process) date, at most


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
        described = describe_request(ordered, days[0], days[-1])
        bodies, error = self._pages(
            "/stocks/bars", request.to_request_fields(), "bars", described, f"feed {self.feed.value}"
        )
        pages = [_frame(body["bars"] or {}) for body in bodies]
        failures = failures_for(_unserved(ordered, days, pages), error) if error else {}
        return fetch_result(pages, self.source, ordered, days, failures)

    def fetch_daily(self, symbols: Sequence[str], start: date, end: date) -> DailyFetch:
        """``DailyPriceSource`` for Alpaca: raw daily bars of every session in [start, end] with the
        splits and cash dividends going ex that session; one corporate-actions request sequence,
        then one multi-symbol bars request sequence.

        A symbol fails, naming why, when the corporate actions cannot be read (its rows could not
        record their events), when the bars sequence breaks off before its last bar, when
        Alpaca has no bar for it, when an event's ex-date has no bar, or when ``conform_daily``
        refuses its rows.
        """
        days = calendar.sessions(start, end)
        ordered = sorted(set(symbols))
        if not days or not ordered:
            return DailyFetch(pl.DataFrame(schema=DAILY_PRICE_SCHEMA))
        described = describe_request(ordered, days[0], days[-1])
        events, error = self._corporate_actions(ordered, days[0], days[-1], described)
        if error:
            reason = f"{error}; without the split and dividend events the daily rows cannot record them"
            return DailyFetch(pl.DataFrame(schema=DAILY_PRICE_SCHEMA), dict.fromkeys(ordered, reason))
        midnight = datetime.combine(days[0], datetime.min.time(), calendar.NEW_YORK)  # a daily bar's stamp
        request = StockBarsRequest(
            symbol_or_symbols=ordered,
            timeframe=TimeFrame.Day,
            start=midnight,
            end=calendar.extended_window(days[-1])[1],
            limit=self.page_limit,
            adjustment=Adjustment.RAW,
            feed=self.feed,
            sort=Sort.ASC,
        )
        bodies, error = self._pages(
            "/stocks/bars", request.to_request_fields(), "bars", described, f"daily, feed {self.feed.value}"
        )
        pages = [page for page in (_frame(body["bars"] or {}) for body in bodies) if page.height]
        bars = (
            pl.concat(pages)
            .select(pl.exclude("ts"), date=ny_date())
            .filter(pl.col("date").is_between(start, end))
            if pages
            else pl.DataFrame(schema=DAILY_PRICE_SCHEMA).drop("split_ratio", "dividend", "source")
        )
        failures: dict[str, str] = {}
        if error:  # Alpaca answers symbol by symbol: the last one received may be cut short
            cut = bars["symbol"].max() if bars.height else ordered[0]
            failures |= {s: f"{error} [no daily bars for {s}]" for s in ordered if s >= cut}
        served = set(bars["symbol"])
        failures |= {
            s: f"{NAME}: GET /v2/stocks/bars for {described} (daily, feed {self.feed.value}) answered no bars for {s}"
            for s in ordered
            if s not in served and s not in failures
        }
        orphans = events.join(bars, on=["symbol", "date"], how="anti")
        for symbol, day in orphans.select("symbol", "date").iter_rows():
            failures.setdefault(
                symbol,
                f"{NAME}: {symbol} has a split or dividend going ex on {day} but no daily bar that day",
            )
        bars = bars.filter(~pl.col("symbol").is_in(list(failures))).join(
            events, on=["symbol", "date"], how="left"
        )
        prices, refused = conform_daily(bars, self.source)
        return DailyFetch(prices, failures | refused)

    def _corporate_actions(
        self, symbols: list[str], start: date, end: date, described: str
    ) -> tuple[pl.DataFrame, VendorError | str | None]:
        """``symbol``, ``date`` (ex-date in [start, end]), ``split_ratio``, ``dividend`` of the
        splits and cash dividends of ``symbols``, and the error that broke the sequence, if any.

        Alpaca filters corporate actions by process date, which for a cash dividend is its
        payable date, weeks after the ex-date; the window reaches ``DIVIDEND_PROCESS_LAG`` past
        ``end`` (not beyond today) and the ex-dates are filtered here. A dividend going ex in the
        last days before today that Alpaca has not processed yet is not listed: a limit of the
        API that a later refetch of those sessions corrects.
        """
        today = datetime.fromtimestamp(self.wall_clock(), calendar.NEW_YORK).date()
        request = CorporateActionsRequest(
            symbols=symbols,
            types=list(_ACTION_TYPES),
            start=start,
            end=max(end, min(end + DIVIDEND_PROCESS_LAG, today)),
            limit=ACTIONS_PAGE_LIMIT,
        )
        params = {
            **request.to_request_fields(),
            "symbols": ",".join(symbols),
            "types": ",".join(_ACTION_TYPES),
        }
        detail = "splits, cash dividends"
        bodies, error = self._pages(
            "/corporate-actions", params, "corporate_actions", described, detail, "v1"
        )
        try:
            rows = [
                (action["symbol"], date.fromisoformat(action["ex_date"]), *_event(kind, action))
                for body in bodies
                for kind in _ACTION_TYPES.values()
                for action in (body["corporate_actions"] or {}).get(kind) or []
            ]
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
            what = f"GET /v1/corporate-actions for {described} ({detail})"
            rows, error = [], f"{NAME}: {what} answered a malformed action ({type(exc).__name__}: {exc})"
        events = (
            pl.DataFrame(rows, schema=_EVENT_SCHEMA, orient="row")
            .filter(pl.col("date").is_between(start, end))
            .group_by("symbol", "date")
            .agg(pl.col("split_ratio").product(), pl.col("dividend").sum())
        )
        return events, error

    def _pages(
        self,
        path: str,
        params: dict[str, Any],
        key: str,
        described: str,
        detail: str,
        version: str = "v2",
    ) -> tuple[list[dict[str, Any]], VendorError | str | None]:
        """The bodies of a paged ``GET /{version}{path}`` following ``next_page_token``, each page
        retried on its own, and the error of the page that failed for good (``None``: all came).

        Errors name the request: ``GET /v2/stocks/bars for <symbols> <dates> (<detail>, page n)``.
        """
        bodies: list[dict[str, Any]] = []
        seen: set[str] = set()
        token: str | None = None
        while True:
            what = f"GET /{version}{path} for {described} ({detail}, page {len(bodies) + 1})"
            query = {**params, "page_token": token} if token else params
            try:
                body = self.http.call(what, lambda q=query: self._page(path, q, key, version))
            except RequestFailed as error:
                return bodies, error
            bodies.append(body)
            token = body.get("next_page_token")
            if not token:
                return bodies, None
            if token in seen:  # a vendor bug; following it would loop forever
                return bodies, f"{NAME}: {what} returned an already-used next_page_token (HTTP 200)"
            seen.add(token)

    def _page(self, path: str, query: dict[str, Any], key: str, version: str) -> dict[str, Any]:
        try:
            body = self.client.get(path, dict(query), api_version=version)
        except APIError as error:
            raise api_error(error, self.wall_clock()) from None
        if not isinstance(body, dict) or key not in body:
            raise TransientError(f"malformed page: no '{key}' object", 200)
        return body


def _event(kind: str, action: dict[str, Any]) -> tuple[float, float]:
    """``(split_ratio, dividend)`` of one corporate action: new shares per old share for a split
    (a 1-for-10 reverse split is 0.1), cash per share for a dividend."""
    if kind == "cash_dividends":
        return 1.0, float(action["rate"])
    return float(action["new_rate"]) / float(action["old_rate"]), 0.0


def api_error(error: APIError, now: float | None = None) -> TransientError | PermanentError:
    """alpaca-py's ``APIError`` classified by its HTTP status (a 429 waits as its headers ask)."""
    response = error.response
    return status_error(
        error.status_code or 0, str(error), response.headers if response is not None else None, now=now
    )


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

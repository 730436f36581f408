"""Yahoo minute bars through ``yfinance.Ticker.history(interval="1m")``.

Yahoo serves 1-minute bars only for the last 30 days and at most 7 days per request. Days
older than that are refused here, before any request, with a failure naming vendor, symbol,
date and the limit (never a silently empty answer); the rest is fetched per symbol in chunks
of at most 7 calendar days. ``prepost=True`` keeps pre/post-market bars like the other
vendors (validation flags the regular session) and spares yfinance an extra request for
trading periods. Prices are raw (``auto_adjust=False``); Yahoo has no vwap or trade count.

yfinance returns its index in the exchange's zone (older versions returned naive exchange
times); either way ``ts`` is converted to UTC here. yfinance logs and swallows most errors,
so its requests go through a session of ours (curl_cffi, yfinance's own backend) that also
sends every Yahoo host to ``base_url`` when set, applies the timeout, and records a failed
chart request so the adapter can raise and retry it. yfinance memoises chart answers for
past ranges process-wide; that memo is cleared before each request so a retry asks again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
import yfinance as yf
from curl_cffi import requests as curl_requests
from yfinance.data import YfData

from finance_dag.core import calendar
from finance_dag.core.http import (
    PermanentError,
    RateLimiter,
    RequestFailed,
    RetryPolicy,
    RoutedSessionMixin,
    TransientError,
    VendorClient,
    check_response,
    classify,
    describe_request,
    failures_for,
    parse_json,
    shared_limiter,
)
from finance_dag.market_data.bars import FetchResult, SymbolDay
from finance_dag.market_data.vendors.common import fetch_result

NAME = "yahoo"
HISTORY_DAYS = 30  # 1-minute bars exist for this many days back
MAX_SPAN_DAYS = 7  # per request
LIMITS = ((60, 60.0),)  # unpublished; Yahoo throttles bursts, so stay gentle
_CHART_PATH = "/v8/finance/chart/"


class _YahooSession(RoutedSessionMixin, curl_requests.Session):
    """yfinance's session type with routing, a timeout and capture of chart failures."""

    def __init__(self, base_url: str | None, timeout: float) -> None:
        super().__init__(impersonate="chrome")
        self.base_url = base_url
        self.default_timeout = timeout
        self.error: TransientError | PermanentError | None = None

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        chart = _CHART_PATH in url
        try:
            response = super().request(method, url, *args, **kwargs)
            if chart:
                check_response(response)
                parse_json(response.text)
        except Exception as exc:
            if chart:
                self.error = classify(exc) or TransientError(f"{type(exc).__name__}")
            raise
        return response


class YahooBars:
    """``BarSource`` for Yahoo 1-minute bars: last 30 days only, 7-day chunks per symbol."""

    name = NAME

    def __init__(
        self,
        *,
        base_url: str | None = None,
        now: datetime | None = None,
        policy: RetryPolicy | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        policy = policy or RetryPolicy()
        self.now = now
        self.timeout = policy.timeout
        self.session = _YahooSession(base_url, policy.timeout)
        self.http = VendorClient(NAME, limiter or shared_limiter(NAME, LIMITS), policy)

    def fetch_minute_bars(self, symbols: Sequence[str], start: date, end: date) -> FetchResult:
        days = calendar.sessions(start, end)
        symbols = list(dict.fromkeys(symbols))
        now = self.now or datetime.now(UTC)
        oldest = now - timedelta(days=HISTORY_DAYS)
        servable = [d for d in days if calendar.extended_window(d)[0] >= oldest]
        refused = [d for d in days if d not in servable]
        failures: dict[SymbolDay, str] = {}
        if refused:
            reason = (
                f"{NAME}: refused {describe_request(symbols, refused[0], refused[-1])} without a request "
                f"(no HTTP status): Yahoo serves 1-minute bars only for the last {HISTORY_DAYS} days "
                f"(now {now:%Y-%m-%d %H:%M}Z, oldest {oldest:%Y-%m-%d %H:%M}Z)"
            )
            failures |= failures_for([(s, d) for s in symbols for d in refused], reason)
        frames = []
        for symbol in symbols:
            for chunk in _chunks(servable):
                try:
                    frames.append(self._history(symbol, chunk))
                except RequestFailed as error:
                    failures |= failures_for([(symbol, d) for d in chunk], error)
        return fetch_result(frames, NAME, symbols, days, failures)

    def _history(self, symbol: str, chunk: list[date]) -> pl.DataFrame:
        begin = calendar.extended_window(chunk[0])[0]
        finish = calendar.extended_window(chunk[-1])[1]
        what = f"GET /v8/finance/chart 1m for {describe_request([symbol], chunk[0], chunk[-1])}"

        def fetch() -> tuple[Any, str]:
            YfData.cache_get.cache_clear()
            self.session.error = None
            ticker = yf.Ticker(symbol, session=self.session)
            frame = ticker.history(
                start=begin,
                end=finish,
                interval="1m",
                prepost=True,
                auto_adjust=False,
                actions=False,
                timeout=self.timeout,
            )
            if self.session.error is not None:  # yfinance logged and swallowed it
                raise self.session.error
            return frame, ticker.history_metadata.get("exchangeTimezoneName") or "America/New_York"

        frame, zone = self.http.call(what, fetch)
        return _frame(symbol, frame, zone)


def _chunks(days: list[date]) -> list[list[date]]:
    """Consecutive sessions grouped so that each group spans fewer than 7 calendar days."""
    out: list[list[date]] = []
    for day in days:
        if out and (day - out[-1][0]).days < MAX_SPAN_DAYS:
            out[-1].append(day)
        else:
            out.append([day])
    return out


def _frame(symbol: str, history: Any, zone: str) -> pl.DataFrame:
    """yfinance's OHLCV frame (exchange-zone or naive index) as UTC rows."""
    if history.empty:
        return pl.DataFrame()
    index = history.index
    if index.tz is None:
        index = index.tz_localize(zone)
    stamps = index.tz_convert("UTC").tz_localize(None).to_numpy().astype("datetime64[us]")
    return pl.DataFrame(
        {
            "ts": stamps,
            "open": np.asarray(history["Open"], dtype=float),
            "high": np.asarray(history["High"], dtype=float),
            "low": np.asarray(history["Low"], dtype=float),
            "close": np.asarray(history["Close"], dtype=float),
            "volume": np.asarray(history["Volume"], dtype=np.int64),
        }
    ).with_columns(pl.col("ts").dt.replace_time_zone("UTC"), symbol=pl.lit(symbol))

"""Yahoo minute bars through ``yfinance.Ticker.history(interval="1m")``.

Yahoo serves 1-minute bars only for the last 30 days (on Yahoo's clock) and at most 7 days per
request. A session is planned only when its extended window starts at least ``LIMIT_MARGIN``
inside that limit (a request starting minutes inside it would be refused whole by the time it
is sent, taking the chunk's other sessions with it), and no chunk starts earlier than that.
Older days are refused here, before any request, with a failure naming vendor, symbol, date and
the limit (never a silently empty answer); the rest is fetched per symbol in chunks of at most
7 calendar days. ``prepost=True`` keeps pre/post-market bars like the other vendors
(validation flags the regular session) and spares yfinance an extra request for trading
periods. Yahoo has no vwap or trade count.

Yahoo's 1-minute OHLC and volume are split-adjusted even with ``auto_adjust=False``: every bar
before a split that happened by now is divided by its ratio (volume multiplied). The adapter
stores raw prices, so per symbol it first asks for the split events from a week before its
first session to now (one daily chart request, ``actions=True``: yfinance's ``Stock Splits``
column), adds any split a 1-minute answer reports, and multiplies each bar's prices by the
ratios of the splits after the bar's day (volume divided). When the split events cannot be
obtained the symbol's days fail naming why, rather than risk mixing adjusted and raw bars.

``fetch_daily`` reads a symbol's daily rows and events (``Dividends`` and ``Stock Splits``,
``actions=True``) in one daily chart request from the first day to now. With
``auto_adjust=False`` Yahoo's daily ``Close`` carries no dividend adjustment (``Adj Close`` does)
but the OHLC, the volume and the dividend amounts are split-adjusted all the same, so they are
unadjusted like the 1-minute bars, with the splits of the same answer, which reaches to now
for the splits after the last day.

``daily_closes`` reads an index's daily closes (CBOE SKEW is ``^SKEW``) by New York date in
one daily chart request up to the day after ``end`` (yfinance's ``end`` is exclusive); indices
have no splits, so nothing is unadjusted. yfinance keeps NaN rows (else it would drop a zero
close too, an index's volume being 0); NaN closes (holidays) are dropped here, and a close that
is not positive or a repeated date fails naming the dates.

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
from finance_dag.market_data.bars import FetchResult, SymbolDay, VendorError, ny_date
from finance_dag.market_data.daily import DAILY_PRICE_SCHEMA, DailyFetch, conform_daily
from finance_dag.market_data.vendors.common import fetch_result

NAME = "yahoo"
HISTORY_DAYS = 30  # 1-minute bars exist for this many days back
LIMIT_MARGIN = timedelta(hours=1)  # plan requests at least this far inside the 30-day limit
SPLIT_LOOKBACK = timedelta(days=7)  # the split lookup starts this long before the first session
MAX_SPAN_DAYS = 7  # per request
LIMITS = ((60, 60.0),)  # unpublished; Yahoo throttles bursts, so stay gentle
_CHART_PATH = "/v8/finance/chart/"
_PRICES = ("open", "high", "low", "close")
CLOSES_SCHEMA = pl.Schema({"date": pl.Date, "close": pl.Float64})


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
        earliest = oldest + LIMIT_MARGIN  # the oldest moment a request may start from
        servable = [d for d in days if calendar.extended_window(d)[0] >= earliest]
        refused = [d for d in days if d not in servable]
        failures: dict[SymbolDay, str] = {}
        if refused:
            reason = (
                f"{NAME}: refused {describe_request(symbols, refused[0], refused[-1])} without a request "
                f"(no HTTP status): Yahoo serves 1-minute bars only for the last {HISTORY_DAYS} days "
                f"(now {now:%Y-%m-%d %H:%M}Z, oldest {oldest:%Y-%m-%d %H:%M}Z; a session must start "
                f"{LIMIT_MARGIN.total_seconds() / 3600:g} h inside that limit)"
            )
            failures |= failures_for([(s, d) for s in symbols for d in refused], reason)
        frames = []
        for symbol in symbols:
            if not servable:
                break
            try:
                splits = self._splits(symbol, servable[0], now)
            except RequestFailed as error:
                reason = (
                    f"{error}; without the split events the 1-minute bars (split-adjusted by Yahoo) "
                    "cannot be made raw"
                )
                failures |= failures_for([(symbol, d) for d in servable], reason)
                continue
            for chunk in _chunks(servable):
                try:
                    frame, reported = self._history(symbol, chunk, earliest)
                except RequestFailed as error:
                    failures |= failures_for([(symbol, d) for d in chunk], error)
                    continue
                frames.append(unadjust(frame, {**reported, **splits}))
        return fetch_result(frames, NAME, symbols, days, failures)

    def daily_closes(self, symbol: str, start: date, end: date) -> pl.DataFrame:
        """Daily closes of ``symbol`` (an index such as ``^SKEW``) in [start, end]: ``date`` (New
        York session date), ``close``, sorted; one retried request, the answer checked."""
        what = f"GET /v8/finance/chart 1d closes for {symbol} {start.isoformat()}..{end.isoformat()}"
        after = end + timedelta(days=1)  # yfinance's end is exclusive
        frame, _ = self.http.call(  # keepna: yfinance would drop a zero close silently (volume is 0)
            what, lambda: self._ticker_history(symbol, start=start, end=after, interval="1d", keepna=True)
        )
        return _closes(what, frame, start, end)

    def fetch_daily(self, symbols: Sequence[str], start: date, end: date) -> DailyFetch:
        """``DailyPriceSource`` for Yahoo: raw daily rows of every session in [start, end] with the
        splits and dividends going ex that session; one daily chart request per symbol (Yahoo has
        no multi-symbol chart), retried on its own.

        The request reaches from ``start`` to now, not to ``end``: Yahoo adjusts every row (prices,
        volume and dividend amounts) for all splits up to now, so the splits after ``end`` are
        needed to undo that (``unadjust``). A symbol fails on its own, naming why, when its
        request fails for good (an unknown symbol is Yahoo's 404), when it has no row in the
        range, or when ``conform_daily`` refuses its rows.
        """
        symbols = list(dict.fromkeys(symbols))
        if not calendar.sessions(start, end) or not symbols:
            return DailyFetch(pl.DataFrame(schema=DAILY_PRICE_SCHEMA))
        now = self.now or datetime.now(UTC)
        frames, failures = [], {}
        for symbol in symbols:
            what = (
                f"GET /v8/finance/chart 1d prices and events for {symbol} {start.isoformat()}..{now:%Y-%m-%d}"
            )
            try:
                history, _ = self.http.call(
                    what, lambda s=symbol: self._ticker_history(s, start=start, end=now, interval="1d")
                )
            except VendorError as error:
                failures[symbol] = str(error)
                continue
            raw = unadjust(
                _daily_frame(symbol, history), split_events(history), pl.col("date"), (*_PRICES, "dividend")
            )
            rows = raw.filter(pl.col("date").is_between(start, end)) if raw.height else raw
            if rows.is_empty():
                failures[symbol] = (
                    f"{NAME}: {what} answered no rows in {start.isoformat()}..{end.isoformat()}"
                )
                continue
            frames.append(rows)
        prices, refused = conform_daily(pl.concat(frames) if frames else pl.DataFrame(), NAME)
        return DailyFetch(prices, failures | refused)

    def _ticker_history(self, symbol: str, **kwargs: Any) -> tuple[Any, Any]:
        """``yf.Ticker(symbol).history(**kwargs)``, raising what yfinance logged and swallowed.

        A failed chart request is raised even when yfinance then failed otherwise: a symbol whose
        timezone probe fails sends yfinance to ``.info``, whose own failure would hide the cause."""
        YfData.cache_get.cache_clear()
        self.session.error = None
        ticker = yf.Ticker(symbol, session=self.session)
        try:
            frame = ticker.history(auto_adjust=False, actions=True, timeout=self.timeout, **kwargs)
        except Exception:
            if self.session.error is None:
                raise
            raise self.session.error from None  # the cause; yfinance's own failure only follows it
        if self.session.error is not None:
            raise self.session.error
        return frame, ticker

    def _splits(self, symbol: str, first: date, now: datetime) -> dict[date, float]:
        """Split ratios by New York ex-date, from a week before ``first`` up to ``now``."""
        begin = calendar.extended_window(first)[0] - SPLIT_LOOKBACK
        what = f"GET /v8/finance/chart 1d split events for {symbol} {first.isoformat()}..{now:%Y-%m-%d}"
        frame, _ = self.http.call(
            what, lambda: self._ticker_history(symbol, start=begin, end=now, interval="1d")
        )
        return split_events(frame)

    def _history(
        self, symbol: str, chunk: list[date], earliest: datetime
    ) -> tuple[pl.DataFrame, dict[date, float]]:
        begin = max(calendar.extended_window(chunk[0])[0], earliest)
        finish = calendar.extended_window(chunk[-1])[1]
        what = f"GET /v8/finance/chart 1m for {describe_request([symbol], chunk[0], chunk[-1])}"

        def fetch() -> tuple[Any, str]:
            frame, ticker = self._ticker_history(symbol, start=begin, end=finish, interval="1m", prepost=True)
            return frame, ticker.history_metadata.get("exchangeTimezoneName") or "America/New_York"

        frame, zone = self.http.call(what, fetch)
        return _frame(symbol, frame, zone), split_events(frame)


def _chunks(days: list[date]) -> list[list[date]]:
    """Consecutive sessions grouped so that each group spans fewer than 7 calendar days."""
    out: list[list[date]] = []
    for day in days:
        if out and (day - out[-1][0]).days < MAX_SPAN_DAYS:
            out[-1].append(day)
        else:
            out.append([day])
    return out


def split_events(history: Any) -> dict[date, float]:
    """``{ex_date: ratio}`` (New York dates; 4:1 is 4.0) from yfinance's ``Stock Splits`` column."""
    if history.empty or "Stock Splits" not in history:
        return {}
    column = history["Stock Splits"]
    events = column[column.fillna(0.0) != 0.0]
    index = events.index if events.index.tz is not None else events.index.tz_localize(calendar.NEW_YORK)
    return {
        stamp.tz_convert(calendar.NEW_YORK).date(): float(ratio)
        for stamp, ratio in zip(index, events, strict=True)
    }


def _closes(what: str, history: Any, start: date, end: date) -> pl.DataFrame:
    """yfinance's daily frame (New York or naive index) as ``date``, ``close`` in [start, end];
    NaN closes (holidays) dropped, a non-positive or non-finite close or a repeated date raised."""
    if history.empty:
        return pl.DataFrame(schema=CLOSES_SCHEMA)
    index = history.index if history.index.tz is not None else history.index.tz_localize(calendar.NEW_YORK)
    frame = (
        pl.DataFrame(
            {
                "date": [stamp.date() for stamp in index.tz_convert(calendar.NEW_YORK)],
                "close": np.asarray(history["Close"], dtype=float),
            },
            schema=CLOSES_SCHEMA,
        )
        .filter(pl.col("date").is_between(start, end), ~pl.col("close").is_nan())
        .sort("date")
    )
    bad = frame.filter(~pl.col("close").is_finite() | (pl.col("close") <= 0))["date"]
    repeated = frame.filter(pl.col("date").is_duplicated())["date"].unique(maintain_order=True)
    problems = [
        f"{label} on {', '.join(d.isoformat() for d in dates)}"
        for label, dates in (("close not a positive number", bad), ("date repeated", repeated))
        if len(dates)
    ]
    if problems:
        raise VendorError(f"{NAME}: {what} answered {'; '.join(problems)}")
    return frame


def unadjust(
    frame: pl.DataFrame,
    splits: dict[date, float],
    day: pl.Expr | None = None,
    prices: Sequence[str] = _PRICES,
) -> pl.DataFrame:
    """Raw rows from Yahoo's split-adjusted ones: each row's ``prices`` times the ratios of the
    splits after its New York day (``day``; by default that of the UTC ``ts``), its volume
    divided by them."""
    if frame.is_empty() or not splits:
        return frame
    day = ny_date() if day is None else day
    factor = pl.lit(1.0)
    for ex_date, ratio in splits.items():
        factor = factor * pl.when(day < ex_date).then(pl.lit(ratio)).otherwise(pl.lit(1.0))
    return (
        frame.with_columns(_factor=factor)
        .with_columns(
            *(pl.col(c) * pl.col("_factor") for c in prices),
            (pl.col("volume") / pl.col("_factor")).round().cast(pl.Int64),
        )
        .drop("_factor")
    )


def _daily_frame(symbol: str, history: Any) -> pl.DataFrame:
    """yfinance's daily frame with actions (New York or naive index) as ``date`` (New York),
    prices and volume as served, ``split_ratio`` (1.0: none) and ``dividend`` (0.0: none)."""
    if history.empty:
        return pl.DataFrame()
    index = history.index if history.index.tz is not None else history.index.tz_localize(calendar.NEW_YORK)

    def values(name: str) -> np.ndarray:
        return np.asarray(history[name], dtype=float) if name in history else np.zeros(len(history))

    splits = values("Stock Splits")
    return pl.DataFrame(
        {
            "date": [stamp.date() for stamp in index.tz_convert(calendar.NEW_YORK)],
            "symbol": symbol,
            **{name: values(name.capitalize()) for name in _PRICES},
            "volume": pl.Series(values("Volume")).fill_nan(None).round().cast(pl.Int64),
            "split_ratio": np.where(np.nan_to_num(splits) > 0, splits, 1.0),
            "dividend": np.nan_to_num(values("Dividends")),
        }
    )


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

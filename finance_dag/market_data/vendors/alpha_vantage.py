"""Alpha Vantage minute bars through ``alpha_vantage.timeseries.TimeSeries.get_intraday``.

One ``TIME_SERIES_INTRADAY`` request per symbol-month (``interval=1min``, ``month=YYYY-MM``,
``outputsize=full``, ``adjusted=false``, ``extended_hours`` default true), cached in the
adapter for the month's other days. Throttling, the daily quota and premium-only endpoints all
arrive as HTTP 200 with a ``Note`` or ``Information`` body, never read as data. Only the
per-minute/per-second burst message is retried (after ``throttle_wait`` seconds); the daily
quota ("... 25 requests per day ..."), a premium-only endpoint and any other information body
are permanent for the day: the request fails at once naming the reason, and the adapter sends
no further request in this fetch (the remaining symbol-days fail with the same reason, so the
fallbacks serve them; the next fetch asks again). An ``Error Message`` body is permanent. A client-side limiter whose wait
would exceed its ``max_wait`` (a per-day limit) fails the request at once the same way.

Timestamps are naive US/Eastern (the zone named in ``Meta Data``). Alpha Vantage labels an
intraday bar by the START of its interval: an extended-hours 1-minute series runs from
04:00:00 to 19:59:00 (a 5-minute one ends at 19:55:00), so "2024-11-29 09:30:00" is the bar
covering 09:30-09:31 and maps to 14:30 UTC. Should the vendor ever label by interval end,
``labels_mark_end=True`` shifts every label back one minute to keep ``ts`` the minute start.

The SDK builds the URL and parses the answer; the request itself goes through a session of
ours (``_handle_api_call`` is overridden) for a timeout, the HTTP status and the base URL,
which the SDK only has as a process-wide class attribute. That transport and the request
rules above (``AlphaVantageTransport``, ``AlphaVantageAdapter``) are shared with the company
overview adapter (``alpha_vantage_fundamentals``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from typing import Any, TypeVar

import polars as pl
from alpha_vantage.alphavantage import AlphaVantage
from alpha_vantage.timeseries import TimeSeries

from finance_dag.core import calendar
from finance_dag.core.http import (
    PermanentError,
    RateLimiter,
    RateLimitExceeded,
    RequestFailed,
    RetryPolicy,
    RoutedSession,
    TransientError,
    VendorClient,
    check_response,
    describe_request,
    failures_for,
    parse_json,
    shared_limiter,
)
from finance_dag.market_data.bars import FetchResult, SymbolDay
from finance_dag.market_data.vendors.common import fetch_result

NAME = "alphavantage"
PREMIUM_75 = ((75, 60.0),)  # plan with 75 requests per minute
FREE_PLAN = ((5, 60.0), (25, 86_400.0))
T = TypeVar("T")
_FIELDS = {"1. open": "open", "2. high": "high", "3. low": "low", "4. close": "close", "5. volume": "volume"}


# The per-minute/per-second burst is the only information body worth waiting out. Checked first:
# the real burst text also mentions the daily limit ("... (25 requests per day) ...") and
# "premium endpoints".
_BURST = re.compile(r"(?i)per\s+(second|minute)|spreading out")
_DAILY = re.compile(r"(?i)per\s+day|daily")
_PREMIUM = re.compile(r"(?i)premium\s+(endpoint|feature)")


class QuotaExhausted(PermanentError):
    """An information body that no retry today can fix: daily quota, premium-only endpoint."""


def information_error(text: str, throttle_wait: float) -> TransientError | PermanentError:
    """The error for an HTTP 200 ``Note``/``Information`` body: transient only for the burst."""
    text = " ".join(text.split())
    if _BURST.search(text):
        return TransientError(f"throttled (per-minute burst): {text}", 200, throttle_wait)
    if _DAILY.search(text):
        return QuotaExhausted(f"daily request quota exhausted, not retried today: {text}", 200)
    if _PREMIUM.search(text):
        return QuotaExhausted(f"premium-only endpoint for this key, not retried: {text}", 200)
    return QuotaExhausted(f"API information instead of data, not retried: {text}", 200)


class AlphaVantageTransport(AlphaVantage):
    """The SDK's request hook with our transport: timeout, base URL, status and refusal bodies.

    Mixed in before an SDK class (``TimeSeries``, ``FundamentalData``), which builds the URL and
    calls ``_handle_api_call``; this sends it through our session and turns AV's HTTP 200
    ``Note``/``Information``/``Error Message`` bodies into our errors. ``check_data`` tells the
    function's data from anything else.
    """

    def __init__(self, key: str, session: RoutedSession, throttle_wait: float) -> None:
        super().__init__(key=key, output_format="json")
        self._transport = session
        self._throttle_wait = throttle_wait

    def _handle_api_call(self, url: str) -> dict[str, Any]:
        response = self._transport.get(url)
        check_response(response)
        body = parse_json(response.text)
        if not isinstance(body, dict):
            raise TransientError(f"JSON body is a {type(body).__name__}, not an object", 200)
        for key in ("Note", "Information"):
            if key in body:
                raise information_error(str(body[key]), self._throttle_wait)
        if "Error Message" in body:
            raise PermanentError(f"API error: {body['Error Message']}", 200)
        self.check_data(body)
        return body

    def check_data(self, body: dict[str, Any]) -> None:
        """Raise ``TransientError``/``PermanentError`` unless ``body`` is this function's data."""
        raise NotImplementedError


class _TimeSeries(AlphaVantageTransport, TimeSeries):
    """``TimeSeries`` answers must carry ``Meta Data`` and a ``Time Series (...)`` object."""

    def check_data(self, body: dict[str, Any]) -> None:
        if not body:
            raise TransientError("empty JSON body", 200)
        if not any(k.startswith("Time Series") for k in body) or "Meta Data" not in body:
            raise TransientError(f"malformed body: keys {sorted(body)[:5]}", 200)


class AlphaVantageAdapter:
    """What every Alpha Vantage adapter shares: one SDK client on our transport, the vendor's
    limiter and retries (``VendorClient``), and the rule that a quota/premium refusal or a
    refused limiter wait ends the current fetch (later requests fail "not sent")."""

    name = NAME

    def __init__(
        self,
        api_key: str,
        sdk: type[AlphaVantageTransport],
        *,
        base_url: str | None,
        limits: tuple[tuple[int, float], ...],
        throttle_wait: float,
        policy: RetryPolicy | None,
        limiter: RateLimiter | None,
    ) -> None:
        policy = policy or RetryPolicy()
        self.client = sdk(api_key, RoutedSession(base_url, policy.timeout), throttle_wait)
        self.http = VendorClient(NAME, limiter or shared_limiter(NAME, limits), policy, (api_key,))
        self._exhausted: RequestFailed | None = None  # a quota/premium refusal ends this fetch

    def new_fetch(self) -> None:
        """Start a fetch: requests are sent again after an earlier fetch ran out of quota."""
        self._exhausted = None

    def request(self, what: str, fn: Callable[[], T]) -> T:
        """``fn()`` through the ``VendorClient``; not sent once this fetch has run out of quota."""
        if self._exhausted is not None:
            raise RequestFailed(
                f"{NAME}: {what} not sent (no HTTP status): an earlier request of this fetch ended "
                f"with: {self._exhausted}",
                None,
            )
        try:
            return self.http.call(what, fn)
        except RateLimitExceeded as error:
            self._exhausted = error
            raise
        except RequestFailed as error:
            if isinstance(error.cause, QuotaExhausted):
                self._exhausted = error
            raise


class AlphaVantageBars(AlphaVantageAdapter):
    """``BarSource`` for Alpha Vantage: one request per symbol-month, cached per instance."""

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str | None = None,
        extended_hours: bool = True,
        limits: tuple[tuple[int, float], ...] = PREMIUM_75,
        throttle_wait: float = 60.0,
        labels_mark_end: bool = False,
        policy: RetryPolicy | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        super().__init__(
            api_key,
            _TimeSeries,
            base_url=base_url,
            limits=limits,
            throttle_wait=throttle_wait,
            policy=policy,
            limiter=limiter,
        )
        self.extended_hours = extended_hours
        self.label_shift = timedelta(minutes=1 if labels_mark_end else 0)
        self._months: dict[tuple[str, str], pl.DataFrame] = {}

    def fetch_minute_bars(self, symbols: Sequence[str], start: date, end: date) -> FetchResult:
        days = calendar.sessions(start, end)
        by_month: dict[str, list[date]] = {}
        for day in days:
            by_month.setdefault(f"{day:%Y-%m}", []).append(day)
        frames: list[pl.DataFrame] = []
        failures: dict[SymbolDay, str] = {}
        self.new_fetch()
        for symbol in dict.fromkeys(symbols):
            for month, month_days in by_month.items():
                try:
                    frames.append(self._month(symbol, month, month_days))
                except RequestFailed as error:
                    failures |= failures_for([(symbol, d) for d in month_days], error)
        return fetch_result(frames, NAME, list(dict.fromkeys(symbols)), days, failures)

    def _month(self, symbol: str, month: str, days: list[date]) -> pl.DataFrame:
        if (symbol, month) not in self._months:
            what = (
                f"TIME_SERIES_INTRADAY 1min month={month} for {describe_request([symbol], days[0], days[-1])}"
            )
            data, meta = self.request(
                what,
                lambda: self.client.get_intraday(
                    symbol,
                    interval="1min",
                    outputsize="full",
                    month=month,
                    extended_hours="true" if self.extended_hours else "false",
                    adjusted="false",
                ),
            )
            self._months[(symbol, month)] = self._frame(symbol, data, meta.get("6. Time Zone", "US/Eastern"))
        return self._months[(symbol, month)]

    def _frame(self, symbol: str, data: dict[str, dict[str, str]], zone: str) -> pl.DataFrame:
        """``{"2024-11-29 09:30:00": {"1. open": "...", ...}}`` (naive ``zone``) to UTC rows."""
        if not data:
            return pl.DataFrame()
        rows = list(data.values())
        frame = pl.DataFrame(
            {"ts": list(data), **{name: [r[key] for r in rows] for key, name in _FIELDS.items()}}
        )
        return frame.with_columns(
            pl.col("ts").str.to_datetime("%Y-%m-%d %H:%M:%S", time_unit="us", time_zone=zone)
            - self.label_shift,
            *(pl.col(c).cast(pl.Float64) for c in ("open", "high", "low", "close")),
            pl.col("volume").cast(pl.Int64),
            symbol=pl.lit(symbol),
        ).with_columns(pl.col("ts").dt.convert_time_zone("UTC"))

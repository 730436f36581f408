"""Shared HTTP plumbing for the vendor adapters: rate limits, retries, timeouts, redaction.

Every adapter sends each HTTP request through ``VendorClient.call``, which waits for a token
from the vendor's ``RateLimiter`` and retries transient failures (429, 5xx, timeouts, broken
connections, malformed JSON, throttle notes) with exponential backoff and jitter, honouring a
``Retry-After`` header (or, without one, an ``X-RateLimit-Reset`` epoch). Errors end as
``RequestFailed`` whose text names the vendor, what was asked, the attempts and the last HTTP
status, with API keys redacted. A limiter may refuse a wait longer than its ``max_wait``
(``RateLimitExceeded``) rather than stall a run. No Dagster here.
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from email.utils import parsedate_to_datetime
from functools import cache
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import requests
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from finance_dag.market_data.bars import SymbolDay, VendorError

T = TypeVar("T")
Clock = Callable[[], float]
Sleep = Callable[[float], None]

# Query parameters and headers that carry credentials in the vendors' APIs.
_SECRET_PARAM = re.compile(r"(?i)\b(apikey|api_key|token|secret|key|crumb)=([^&\s'\"]+)")
_SECRET_HEADER = re.compile(r"(?i)(APCA-API-(?:KEY-ID|SECRET-KEY)['\"]?\s*[:=]\s*['\"]?)([^'\"\s,}]+)")
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with credential query parameters, auth headers and the given secret values masked."""
    text = _SECRET_PARAM.sub(r"\1=***", text)
    text = _SECRET_HEADER.sub(r"\1***", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


class _RedactRequestLog(logging.Filter):
    """Masks credentials in urllib3's DEBUG request lines, which carry the full query string."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage()), None
        return True


logging.getLogger("urllib3.connectionpool").addFilter(_RedactRequestLog())


# ---- rate limiting ------------------------------------------------------------------------
class RateLimiter:
    """Client-side limiter: at most ``calls`` requests in any ``period`` seconds, per limit.

    A token bucket of ``calls`` tokens per limit in which each spent token comes back exactly
    one ``period`` after it was spent. Bursts up to the bucket size are allowed, and no
    window of ``period`` seconds ever holds more than ``calls`` requests, which is what the
    vendors enforce (e.g. Alpaca 200/min; Alpha Vantage free 5/min and 25/day). Thread-safe;
    the clock and sleep are injectable so tests run on a fake clock.

    With ``max_wait`` (seconds), ``acquire`` raises ``RateLimitExceeded`` naming ``vendor``,
    the binding limit and the wait instead of sleeping longer than that (a per-day quota must
    fail a run at once, not stall it for hours).
    """

    def __init__(
        self,
        limits: Sequence[tuple[int, float]],
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
        *,
        max_wait: float | None = None,
        vendor: str = "vendor",
    ) -> None:
        if any(calls < 1 or period <= 0 for calls, period in limits):
            raise ValueError(f"rate limits must be positive (calls, seconds) pairs, got {list(limits)}")
        if max_wait is not None and max_wait < 0:
            raise ValueError(f"max_wait must be >= 0 seconds, got {max_wait}")
        self.limits = tuple(limits)
        self.max_wait = max_wait
        self.vendor = vendor
        self._spent = [deque[float]() for _ in self.limits]
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Block until every limit has a token, take them, and return the seconds waited.

        Raises ``RateLimitExceeded`` (nothing taken) when the wait would exceed ``max_wait``.
        """
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                wait, binding = 0.0, self.limits[0]
                for limit, spent in zip(self.limits, self._spent, strict=True):
                    calls, period = limit
                    while spent and spent[0] <= now - period:
                        spent.popleft()
                    if len(spent) >= calls and spent[0] + period - now > wait:
                        wait, binding = spent[0] + period - now, limit
                if wait <= 0:
                    for spent in self._spent:
                        spent.append(now)
                    return waited
                if self.max_wait is not None and waited + wait > self.max_wait:
                    raise RateLimitExceeded(self.vendor, binding, waited + wait, self.max_wait)
            self._sleep(wait)
            waited += wait


@cache
def shared_limiter(
    vendor: str, limits: tuple[tuple[int, float], ...], max_wait: float | None = None
) -> RateLimiter:
    """One limiter per vendor and plan in this process, shared by every adapter instance."""
    return RateLimiter(limits, max_wait=max_wait, vendor=vendor)


# ---- failures -----------------------------------------------------------------------------
class TransientError(Exception):
    """A failure worth retrying: 429/5xx, timeout, dropped connection, malformed body, throttle note."""

    def __init__(self, detail: str, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status
        self.retry_after = retry_after


class PermanentError(Exception):
    """A failure that retrying cannot fix (4xx other than 408/425/429, an API error message)."""

    def __init__(self, detail: str, status: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status


class RequestFailed(VendorError):
    """A request failed for good; ``str()`` names vendor, request, attempts and status (redacted)."""

    def __init__(
        self, message: str, status: int | None, cause: TransientError | PermanentError | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.cause = cause  # the last classified error, for callers that act on its kind


class RateLimitExceeded(RequestFailed):
    """The client-side rate limit would make a request wait longer than allowed: fail now."""

    def __init__(
        self, vendor: str, limit: tuple[int, float], wait: float, max_wait: float, what: str | None = None
    ) -> None:
        calls, period = limit
        request = f"{what} not sent" if what else "request not sent"
        super().__init__(
            f"{vendor}: {request} (no HTTP status): rate limit of {calls} requests per {period:g} s "
            f"reached; it would have to wait {wait:.0f} s ({wait / 3600:.1f} h), longer than the "
            f"{max_wait:g} s allowed",
            None,
        )
        self.vendor, self.limit, self.wait, self.max_wait = vendor, limit, wait, max_wait


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds asked by a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - (time.time() if now is None else now))
    except (TypeError, ValueError):
        return None


def rate_limit_reset_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds until an ``X-RateLimit-Reset`` header's moment (unix epoch seconds, as Alpaca sends)."""
    if not value:
        return None
    try:
        reset = float(value)
    except ValueError:
        return None
    return max(0.0, reset - (time.time() if now is None else now))


def status_error(
    status: int, body: str, headers: Any = None, now: float | None = None
) -> TransientError | PermanentError:
    """The error for an HTTP status ``status`` with response ``body`` (first 300 characters kept).

    A retryable status waits what ``Retry-After`` asks or, without it, until ``X-RateLimit-Reset``
    (epoch seconds; ``now`` is the wall clock, ``time.time()`` by default).
    """
    detail = " ".join(body.split())[:300] or "(empty body)"
    if status in RETRYABLE_STATUS:
        retry_after = None
        if headers is not None:
            retry_after = retry_after_seconds(headers.get("Retry-After"), now)
            if retry_after is None:
                retry_after = rate_limit_reset_seconds(headers.get("X-RateLimit-Reset"), now)
        return TransientError(detail, status, retry_after)
    return PermanentError(detail, status)


def check_response(response: Any, now: float | None = None) -> None:
    """Raise ``TransientError``/``PermanentError`` unless ``response`` has a 2xx status."""
    if not 200 <= response.status_code < 300:
        raise status_error(response.status_code, response.text, response.headers, now)


def parse_json(text: str) -> Any:
    """JSON from a response body; a truncated or non-JSON body is a ``TransientError``."""
    try:
        return json.loads(text)
    except ValueError as exc:
        raise TransientError(f"malformed JSON ({len(text)} bytes): {exc}", 200) from None


def classify(exc: BaseException) -> TransientError | PermanentError | None:
    """Map a transport exception (requests or curl_cffi) to ours; ``None`` when it is not one."""
    if isinstance(exc, TransientError | PermanentError):
        return exc
    name = type(exc).__name__
    if isinstance(exc, requests.Timeout) or "Timeout" in name:
        return TransientError(f"timed out ({name})")
    if isinstance(exc, requests.ConnectionError | ConnectionError) or name == "ConnectionError":
        return TransientError(f"connection failed ({name})")
    if isinstance(exc, ValueError) and "JSON" in name:
        return TransientError(f"malformed JSON ({name})", 200)
    return None


# ---- retries ------------------------------------------------------------------------------
@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: attempts per request, backoff bounds (s), request timeout (s).

    A ``Retry-After`` longer than ``max_wait`` ends the retries at once rather than stalling a
    run; ``sleep`` is injectable so tests never really wait.
    """

    attempts: int = 5
    initial_wait: float = 1.0
    max_wait: float = 60.0
    jitter: float = 1.0
    timeout: float = 30.0
    sleep: Sleep = field(default=time.sleep, compare=False)

    def wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, TransientError) and error.retry_after is not None:
            return error.retry_after
        backoff = self.initial_wait * 2 ** (state.attempt_number - 1) + random.uniform(0, self.jitter)
        return min(self.max_wait, backoff)

    def should_retry(self, error: BaseException) -> bool:
        return isinstance(error, TransientError) and (error.retry_after or 0.0) <= self.max_wait


@dataclass
class VendorClient:
    """Rate-limited, retried calls to one vendor; counts attempts for metadata and benchmarks."""

    vendor: str
    limiter: RateLimiter
    policy: RetryPolicy = RetryPolicy()
    secrets: tuple[str, ...] = ()
    attempts: int = 0

    def call(self, what: str, fn: Callable[[], T]) -> T:
        """``fn()`` under the rate limit, retried while transient; ``what`` names the request."""

        def attempt() -> T:
            self.limiter.acquire()
            self.attempts += 1
            try:
                return fn()
            except Exception as exc:
                mapped = classify(exc)
                if mapped is None or mapped is exc:
                    raise
                raise mapped from exc

        retrying = Retrying(
            stop=stop_after_attempt(self.policy.attempts),
            wait=self.policy.wait,
            retry=retry_if_exception(self.policy.should_retry),
            sleep=self.policy.sleep,
            reraise=True,
        )
        try:
            return retrying(attempt)
        except RateLimitExceeded as exc:
            raise RateLimitExceeded(exc.vendor, exc.limit, exc.wait, exc.max_wait, what) from None
        except (TransientError, PermanentError) as exc:
            tries = retrying.statistics.get("attempt_number", 1)
            status = f"HTTP {exc.status}" if exc.status else "no HTTP response"
            waited = f", Retry-After {exc.retry_after:g}s" if getattr(exc, "retry_after", None) else ""
            message = (
                f"{self.vendor}: {what} failed after {tries} attempt(s) ({status}{waited}): {exc.detail}"
            )
            raise RequestFailed(redact(message, self.secrets), exc.status, exc) from None


def describe_request(symbols: Sequence[str], start: date, end: date) -> str:
    """``'SPY,QQQ 2024-11-01..2024-11-29'``: the symbols and dates a request covers."""
    span = start.isoformat() if start == end else f"{start.isoformat()}..{end.isoformat()}"
    return f"{','.join(symbols)} {span}"


def failures_for(keys: Iterable[SymbolDay], error: VendorError | str) -> dict[SymbolDay, str]:
    """One message per symbol-day: the request's error (naming vendor, request and status), then
    the symbol and date it left unserved."""
    detail = str(error)
    return {(symbol, day): f"{detail} [no bars for {symbol} on {day.isoformat()}]" for symbol, day in keys}


# ---- sessions ------------------------------------------------------------------------------
def reroute(url: str, base_url: str | None) -> str:
    """``url`` with its scheme and host replaced by ``base_url``'s (path and query kept)."""
    if not base_url:
        return url
    target = urlsplit(base_url)
    parts = urlsplit(url)
    path = target.path.rstrip("/") + parts.path
    return urlunsplit((target.scheme, target.netloc, path, parts.query, parts.fragment))


class RoutedSessionMixin:
    """A session that applies a default timeout and sends every request to ``base_url``'s host.

    Used where an SDK hard-codes its hosts (yfinance's cookie, crumb and chart hosts; Alpha
    Vantage's class-level URL): pointing one adapter at a fake then changes no global state.
    """

    base_url: str | None = None
    default_timeout: float = 30.0

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        kwargs["timeout"] = kwargs.get("timeout") or self.default_timeout
        return super().request(method, reroute(url, self.base_url), *args, **kwargs)  # type: ignore[misc]


class RoutedSession(RoutedSessionMixin, requests.Session):
    """``requests`` flavour of ``RoutedSessionMixin``."""

    def __init__(self, base_url: str | None = None, timeout: float = 30.0) -> None:
        super().__init__()
        self.base_url = base_url
        self.default_timeout = timeout

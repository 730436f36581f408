"""The shared vendor HTTP layer: rate limiter, retries with backoff and Retry-After, redaction."""

import random

import pytest
import requests

from finance_dag.core.http import (
    PermanentError,
    RateLimiter,
    RateLimitExceeded,
    RequestFailed,
    RetryPolicy,
    TransientError,
    VendorClient,
    classify,
    redact,
    reroute,
    retry_after_seconds,
    status_error,
)


class FakeClock:
    """A monotonic clock that only moves when someone sleeps on it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def max_in_window(times: list[float], period: float) -> int:
    """Most calls in any half-open window (t - period, t]."""
    return max(sum(1 for s in times if t - period < s <= t) for t in times)


@pytest.mark.parametrize("seed", range(5))
def test_rate_limiter_never_exceeds_calls_per_window(seed: int) -> None:
    clock = FakeClock()
    limiter = RateLimiter([(5, 10.0)], clock=clock, sleep=clock.sleep)
    rng = random.Random(seed)
    times = []
    for _ in range(200):
        clock.now += rng.choice([0.0, 0.0, 0.5, 1.7, 4.0])  # bursts and gaps between calls
        limiter.acquire()
        times.append(clock.now)
    assert max_in_window(times, 10.0) <= 5
    assert max_in_window(times, 10.0) == 5  # and it does use the whole allowance


def test_rate_limiter_allows_a_burst_then_waits_for_the_oldest_token() -> None:
    clock = FakeClock()
    limiter = RateLimiter([(3, 60.0)], clock=clock, sleep=clock.sleep)
    assert [limiter.acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    clock.now += 20.0
    assert limiter.acquire() == pytest.approx(40.0)  # first token returns 60 s after it was spent
    assert clock.now == pytest.approx(1060.0)


def test_rate_limiter_enforces_every_limit_of_a_plan() -> None:
    clock = FakeClock()  # Alpha Vantage free plan: 5 a minute and 25 a day
    limiter = RateLimiter([(5, 60.0), (25, 86_400.0)], clock=clock, sleep=clock.sleep)
    times = []
    for _ in range(30):
        limiter.acquire()
        times.append(clock.now)
    assert max_in_window(times, 60.0) == 5
    assert max_in_window(times, 86_400.0) == 25
    assert times[25] - times[0] >= 86_400.0  # the 26th call waits for the day to roll


def test_rate_limiter_rejects_nonsense_limits() -> None:
    with pytest.raises(ValueError, match="positive"):
        RateLimiter([(0, 60.0)])


def client(**policy) -> tuple[VendorClient, list[float]]:
    sleeps: list[float] = []
    settings = {"initial_wait": 0.5, "max_wait": 30.0, "jitter": 0.0, "sleep": sleeps.append, **policy}
    return (
        VendorClient("acme", RateLimiter([(1000, 1.0)]), RetryPolicy(**settings), secrets=("s3cr3t",)),
        sleeps,
    )


def flaky(errors: list[Exception], value: str = "ok"):
    def fn() -> str:
        if errors:
            raise errors.pop(0)
        return value

    return fn


def test_retry_honours_retry_after_then_backs_off_exponentially() -> None:
    http, sleeps = client()
    errors = [
        TransientError("HTTP 429", 429, retry_after=7.0),
        TransientError("HTTP 503", 503),
        TransientError("HTTP 503", 503),
    ]
    assert http.call("GET /x", flaky(errors)) == "ok"
    assert sleeps == [7.0, 1.0, 2.0]  # Retry-After, then 0.5 * 2**n without jitter
    assert http.attempts == 4


def test_jitter_stays_within_bounds() -> None:
    http, sleeps = client(jitter=0.25, max_wait=1.0, attempts=6)
    http.call("GET /x", flaky([TransientError("HTTP 500", 500) for _ in range(5)]))
    assert all(0.5 <= s <= 1.0 for s in sleeps)  # capped at max_wait


def test_gives_up_with_vendor_request_attempts_and_status() -> None:
    http, sleeps = client(attempts=3)
    with pytest.raises(RequestFailed) as failed:
        http.call("GET /bars SPY 2024-11-29", flaky([TransientError("busy", 503) for _ in range(9)]))
    assert str(failed.value) == "acme: GET /bars SPY 2024-11-29 failed after 3 attempt(s) (HTTP 503): busy"
    assert failed.value.status == 503
    assert len(sleeps) == 2


def test_permanent_errors_are_not_retried() -> None:
    http, sleeps = client()
    with pytest.raises(RequestFailed, match=r"after 1 attempt\(s\) \(HTTP 403\)"):
        http.call("GET /x", flaky([PermanentError("forbidden", 403)]))
    assert sleeps == []


def test_retry_after_beyond_max_wait_ends_retries() -> None:
    http, sleeps = client(max_wait=30.0)
    with pytest.raises(RequestFailed, match="Retry-After 3600s"):
        http.call("GET /x", flaky([TransientError("HTTP 429", 429, retry_after=3600.0)]))
    assert sleeps == []


def test_transport_errors_are_classified_and_secrets_redacted() -> None:
    http, _ = client(attempts=2)
    timeout = requests.ReadTimeout("HTTPSConnectionPool: Read timed out (url=/q?apikey=s3cr3t)")
    with pytest.raises(RequestFailed) as failed:
        http.call("GET /query?apikey=s3cr3t&symbol=SPY", flaky([timeout, timeout]))
    text = str(failed.value)
    assert "s3cr3t" not in text
    assert "apikey=***" in text and "no HTTP response" in text and "timed out" in text


def test_classify() -> None:
    assert isinstance(classify(requests.ConnectTimeout()), TransientError)
    assert isinstance(classify(requests.ConnectionError()), TransientError)
    assert isinstance(classify(requests.JSONDecodeError("Expecting value", "", 0)), TransientError)
    assert classify(KeyError("x")) is None


def test_redact_masks_query_keys_headers_and_known_values() -> None:
    text = "GET /q?function=X&apikey=ABC123&symbol=SPY api_key=zz {'APCA-API-SECRET-KEY': 'sk_9'} tok9"
    assert redact(text, ["tok9"]) == (
        "GET /q?function=X&apikey=***&symbol=SPY api_key=*** {'APCA-API-SECRET-KEY': '***'} ***"
    )


def test_retry_after_header_forms() -> None:
    assert retry_after_seconds("12") == 12.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0


def test_reroute_keeps_path_and_query() -> None:
    assert (
        reroute("https://query2.finance.yahoo.com/v8/finance/chart/SPY?interval=1m", "http://127.0.0.1:9")
        == "http://127.0.0.1:9/v8/finance/chart/SPY?interval=1m"
    )
    assert reroute("https://x.org/a", None) == "https://x.org/a"


def test_429_without_retry_after_waits_until_x_ratelimit_reset() -> None:
    now = 1_732_900_000.0
    only_reset = status_error(429, "too many", {"X-RateLimit-Reset": str(int(now) + 42)}, now=now)
    assert isinstance(only_reset, TransientError) and only_reset.retry_after == 42.0
    both = status_error(429, "", {"Retry-After": "3", "X-RateLimit-Reset": str(int(now) + 42)}, now=now)
    assert both.retry_after == 3.0  # Retry-After wins when given
    assert status_error(429, "", {"X-RateLimit-Reset": str(int(now) - 5)}, now=now).retry_after == 0.0
    assert status_error(429, "", {"X-RateLimit-Reset": "soon"}, now=now).retry_after is None
    assert status_error(429, "", {}, now=now).retry_after is None
    http, sleeps = client()
    error = status_error(429, "", {"X-RateLimit-Reset": str(int(now) + 12)}, now=now)
    assert http.call("GET /x", flaky([error])) == "ok" and sleeps == [12.0]


def test_rate_limiter_max_wait_fails_at_once_naming_vendor_limit_and_wait() -> None:
    clock = FakeClock()
    limiter = RateLimiter(
        [(5, 60.0), (25, 86_400.0)], clock=clock, sleep=clock.sleep, max_wait=300.0, vendor="alphavantage"
    )
    for _ in range(25):
        limiter.acquire()  # the per-minute waits (<= 60 s) are fine
    assert max(clock.sleeps) <= 60.0
    spent_at = clock.now
    with pytest.raises(RateLimitExceeded) as refused:
        limiter.acquire()
    assert clock.now == spent_at  # refused without sleeping
    wait = 1000.0 + 86_400.0 - clock.now  # the day's first token comes back a day after it was spent
    assert refused.value.wait == pytest.approx(wait) and refused.value.limit == (25, 86_400.0)
    assert str(refused.value) == (
        f"alphavantage: request not sent (no HTTP status): rate limit of 25 requests per 86400 s "
        f"reached; it would have to wait {wait:.0f} s ({wait / 3600:.1f} h), longer than the 300 s allowed"
    )
    http = VendorClient("alphavantage", limiter, RetryPolicy(sleep=clock.sleep))
    with pytest.raises(RateLimitExceeded, match=r"^alphavantage: GET /query SPY 2024-11 not sent"):
        http.call("GET /query SPY 2024-11", lambda: "never")
    assert http.attempts == 0
    clock.now += 86_400.0
    assert limiter.acquire() == 0.0  # a new day: tokens again

"""Vendor request efficiency, counted by the loopback fakes (run from the repo root).

    .venv/bin/python -m benchmarks.bench_vendor_requests

P2: Alpaca requests per 10,000 bars for a 20-session x 20-symbol backfill (target <= 1.1);
Alpha Vantage requests for a 3-month one-symbol backfill (target <= 3). Exits 1 when a target
is missed. No floor: the targets are request counts.
"""

import sys
import time
from datetime import date

from benchmarks.common import verdict
from finance_dag.core import calendar
from finance_dag.core.http import RateLimiter, RetryPolicy
from finance_dag.core.universe import FULL_SYMBOLS
from finance_dag.market_data.vendors.alpaca import AlpacaBars
from finance_dag.market_data.vendors.alpha_vantage import AlphaVantageBars
from finance_dag.sim import SimulatedMarket
from finance_dag.testing.alpaca import BARS_PATH, FakeAlpaca
from finance_dag.testing.alpha_vantage import FakeAlphaVantage

P2_TARGET = 1.1
AV_TARGET = 3
LAST_DAY = date(2024, 11, 29)
ISSUE = "issue 3"


def alpaca_requests_per_10k(market: SimulatedMarket) -> tuple[float, int, int, float]:
    days = calendar.sessions(date(2024, 10, 1), LAST_DAY)[-20:]
    symbols = list(FULL_SYMBOLS[:20])
    with FakeAlpaca(market, "bench-key", "bench-secret") as fake:
        source = AlpacaBars(
            "bench-key", "bench-secret", base_url=fake.url, limiter=RateLimiter([(200, 60.0)])
        )
        started = time.perf_counter()
        result = source.fetch_minute_bars(symbols, days[0], days[-1])
        elapsed = time.perf_counter() - started
        requests = fake.total(BARS_PATH)
    if result.failures:
        raise SystemExit(f"alpaca backfill failed: {next(iter(result.failures.values()))}")
    bars = result.bars.height
    return requests / (bars / 10_000), requests, bars, elapsed


def alpha_vantage_requests(market: SimulatedMarket) -> tuple[int, int]:
    with FakeAlphaVantage(market, "bench-key") as fake:
        source = AlphaVantageBars(
            "bench-key", base_url=fake.url, policy=RetryPolicy(), limiter=RateLimiter([(75, 60.0)])
        )
        result = source.fetch_minute_bars(["SPY"], date(2024, 9, 1), LAST_DAY)
        requests = fake.total("/query")
    if result.failures:
        raise SystemExit(f"alpha vantage backfill failed: {next(iter(result.failures.values()))}")
    return requests, result.bars.height


def main() -> int:
    market = SimulatedMarket(7)
    p2, requests, bars, elapsed = alpaca_requests_per_10k(market)
    av_requests, av_bars = alpha_vantage_requests(market)
    print(f"alpaca backfill 20 sessions x 20 symbols: {requests} requests, {bars} bars, {elapsed:.2f} s")
    ok = verdict(
        "P2 alpaca requests per 10,000 bars, 20 sessions x 20 symbols",
        p2,
        P2_TARGET,
        "requests",
        issue=ISSUE,
    )
    ok &= verdict(
        "alphavantage requests for 3 months x 1 symbol",
        av_requests,
        AV_TARGET,
        "requests",
        f"({av_bars} bars)",
        issue=ISSUE,
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

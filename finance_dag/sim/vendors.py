"""The simulated bar vendors, and one shared simulated market per seed and process.

Each simulated vendor (``sim_alpaca``, ``sim_alphavantage``, ``sim_yahoo``) is a ``BarSource``
with its own outages and bad ticks, so gap filling has real work with no keys and no network.
Failures can be injected per vendor and symbol-day to exercise the fault paths.
"""

from collections.abc import Sequence
from datetime import date
from functools import lru_cache

import polars as pl

from finance_dag.market_data.bars import FetchResult, ny_date
from finance_dag.market_data.daily import DailyFetch
from finance_dag.sim import SIM_VENDORS, SimulatedMarket
from finance_dag.sim.alt_data import SimulatedAltData
from finance_dag.sim.equities import SimulatedEquityMarket
from finance_dag.sim.etf import SimulatedEtfMarket
from finance_dag.sim.macro import SimulatedMacro


@lru_cache(maxsize=4)
def shared_market(seed: int) -> SimulatedMarket:
    """One simulator per seed and process: its caches then serve every asset and request."""
    return SimulatedMarket(seed)


@lru_cache(maxsize=4)
def shared_macro(seed: int) -> SimulatedMacro:
    """The macro series (FRED's and CBOE SKEW) of ``shared_market(seed)``."""
    return SimulatedMacro(shared_market(seed))


@lru_cache(maxsize=4)
def shared_alt_data(seed: int) -> SimulatedAltData:
    """The simulated ETF-shares, ESG and social-mention drops for ``seed``."""
    return SimulatedAltData(seed)


def simulated_drop(seed: int, dataset: str, symbols: Sequence[str], day: date) -> pl.DataFrame | None:
    """The file the simulated vendor of ``dataset`` (``lending`` or a ``SimulatedAltData``
    drop) delivers for ``day``, or None when it delivers none that day."""
    if dataset == "lending":
        return shared_market(seed).lending.feed(list(symbols), day)
    return shared_alt_data(seed).drop(dataset, list(symbols), day)


class SimulatedVendor:
    """A ``BarSource`` backed by the simulated market, with optional forced failures."""

    def __init__(
        self, market: SimulatedMarket, name: str, failing: frozenset[tuple[str, date]] = frozenset()
    ):
        if name not in SIM_VENDORS:
            raise ValueError(f"unknown simulated vendor {name!r}; known: {', '.join(SIM_VENDORS)}")
        self.market = market
        self.name = name
        self.failing = failing

    def fetch_minute_bars(self, symbols: Sequence[str], start: date, end: date) -> FetchResult:
        bars, _absent = self.market.vendor_frame(self.name, list(symbols), start, end)
        failures = {
            (
                symbol,
                day,
            ): f"{self.name}: request for {symbol} on {day.isoformat()} failed (HTTP 503, injected)"
            for symbol, day in self.failing
            if symbol in symbols and start <= day <= end
        }
        if failures:
            failed = pl.DataFrame(list(failures), schema={"symbol": pl.String, "date": pl.Date}, orient="row")
            bars = (
                bars.with_columns(date=ny_date()).join(failed, on=["symbol", "date"], how="anti").drop("date")
            )
        return FetchResult(bars=bars, failures=failures)


def parse_failures(specs: Sequence[str]) -> dict[str, frozenset[tuple[str, date]]]:
    """``['sim_alpaca:SPY:2024-11-29']`` to ``{'sim_alpaca': {('SPY', date(2024, 11, 29))}}``."""
    out: dict[str, set[tuple[str, date]]] = {}
    for spec in specs:
        try:
            vendor, symbol, day = spec.split(":")
            out.setdefault(vendor, set()).add((symbol, date.fromisoformat(day)))
        except ValueError:
            raise ValueError(f"fail_symbol_days entry {spec!r} is not 'vendor:SYMBOL:YYYY-MM-DD'") from None
    return {k: frozenset(v) for k, v in out.items()}


@lru_cache(maxsize=4)
def shared_etf_market(seed: int) -> SimulatedEtfMarket:
    """One simulated ETF market per seed and process."""
    return SimulatedEtfMarket(seed)


class SimulatedDaily:
    """A ``DailyPriceSource`` backed by the simulated ETF market; ``failing`` symbols answer
    with a vendor error, and ETFs without simulated data are reported as unserved."""

    name = "sim_daily"

    def __init__(self, market: SimulatedEtfMarket, failing: frozenset[str] = frozenset()) -> None:
        self.market = market
        self.failing = failing

    def fetch_daily(self, symbols: Sequence[str], start: date, end: date) -> DailyFetch:
        asked = [s for s in symbols if s not in self.failing]
        prices = self.market.daily_prices(asked, start, end)
        served = set(prices["symbol"].unique())
        failures = {s: "sim_daily: HTTP 503 (injected failure)" for s in symbols if s in self.failing}
        failures |= {s: f"sim_daily: no data for {s} from {start} to {end}" for s in asked if s not in served}
        return DailyFetch(prices, failures)


@lru_cache(maxsize=2)
def shared_equity_market(seed: int) -> SimulatedEquityMarket:
    """One simulated equity universe per seed and process: it is generated once (seconds, a few
    hundred MB), then serves every risk asset and request."""
    return SimulatedEquityMarket(seed)

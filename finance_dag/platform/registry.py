"""The vendor registry: every data vendor and broker in one table.

Each entry names the vendor, its kind of data, its Dagster concurrency pool, the environment
variables holding its credentials, and how to build its resource. The registry drives the
default vendor chain per environment, the resource set per environment, the pools, the error
messages for unknown or unconfigured vendors, and the vendor table in docs/vendors.md (a test
keeps that table equal to ``vendor_table()``). Adding a vendor is one entry plus its adapter.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import dagster as dg
from pydantic import PrivateAttr

from finance_dag.core.settings import SettingError, Settings
from finance_dag.market_data.bars import BarSource
from finance_dag.platform.vendors import (  # noqa: F401 - re-exported with the registry
    AlpacaResource,
    AlpacaTradingResource,
    AlphaVantageResource,
    FredResource,
    IbResource,
    VendorResource,
    YahooResource,
)
from finance_dag.sim import SIM_VENDORS, SimulatedMarket

SIMULATED_POOL = "simulated_market"


@dataclass(frozen=True)
class Vendor:
    name: str
    kind: str  # "bars" (minute), "daily" (prices), "macro" (series), "fundamentals", "broker"
    environment: str  # "sim" or "prod": the environment whose default chain includes it
    pool: str
    credentials: tuple[str, ...] = ()
    build: Callable[[], dg.ConfigurableResource] | None = None  # None: served by the simulated market
    what: str = ""


def alpaca_data() -> AlpacaResource:
    """Alpaca market data with its keys read through EnvVar (minute bars and daily bars)."""
    return AlpacaResource(api_key=dg.EnvVar("ALPACA_API_KEY"), secret_key=dg.EnvVar("ALPACA_SECRET_KEY"))


def alpha_vantage() -> AlphaVantageResource:
    """Alpha Vantage with its key read through EnvVar (intraday bars and company fundamentals)."""
    return AlphaVantageResource(api_key=dg.EnvVar("ALPHAVANTAGE_API_KEY"))


VENDORS: tuple[Vendor, ...] = (
    *(
        Vendor(name, "bars", "sim", SIMULATED_POOL, what=f"simulated {name.removeprefix('sim_')} outages")
        for name in SIM_VENDORS
    ),
    Vendor(
        "alpaca", "bars", "prod", "alpaca_api", ("ALPACA_API_KEY", "ALPACA_SECRET_KEY"),
        alpaca_data,
        "Alpaca market data (alpaca-py), primary",
    ),
    Vendor(
        "alphavantage", "bars", "prod", "alphavantage_api", ("ALPHAVANTAGE_API_KEY",),
        alpha_vantage,
        "Alpha Vantage intraday (alpha_vantage), fallback",
    ),
    Vendor("yahoo", "bars", "prod", "yahoo_api", (), YahooResource, "Yahoo 1-minute (yfinance), fallback"),
    Vendor(
        "fred", "macro", "prod", "fred_api", ("FRED_API_KEY",),
        lambda: FredResource(api_key=dg.EnvVar("FRED_API_KEY")),
        "FRED macro series (fredapi)",
    ),
    Vendor(
        "alphavantage", "fundamentals", "prod", "alphavantage_api", ("ALPHAVANTAGE_API_KEY",),
        alpha_vantage,
        "Alpha Vantage company overview (alpha_vantage), fundamentals and classification",
    ),
    Vendor("sim_daily", "daily", "sim", SIMULATED_POOL, what="simulated ETF daily prices (no data for some ETFs)"),
    Vendor("ib", "daily", "prod", "ib_api", (), IbResource, "IB historical daily bars (ib_async), primary"),
    Vendor(
        "alpaca", "daily", "prod", "alpaca_api", ("ALPACA_API_KEY", "ALPACA_SECRET_KEY"),
        alpaca_data,
        "Alpaca daily bars and corporate actions (alpaca-py), fallback",
    ),
    Vendor("yahoo", "daily", "prod", "yahoo_api", (), YahooResource, "Yahoo daily bars and actions (yfinance), fallback"),
    Vendor("simulated", "broker", "sim", "simulated_broker", what="simulated broker, account kept in the lake"),
    Vendor("ib", "broker", "prod", "ib_api", (), IbResource, "Interactive Brokers via IB Gateway (ib_async)"),
    Vendor(
        "alpaca", "broker", "prod", "alpaca_trading", ("ALPACA_API_KEY", "ALPACA_SECRET_KEY"),
        lambda: AlpacaTradingResource(
            api_key=dg.EnvVar("ALPACA_API_KEY"), secret_key=dg.EnvVar("ALPACA_SECRET_KEY")
        ),
        "Alpaca trading (alpaca-py TradingClient), paper by default",
    ),
)  # fmt: skip
BY_KIND: dict[tuple[str, str], Vendor] = {(v.kind, v.name): v for v in VENDORS}


def vendor(name: str, kind: str, setting: str = "FINANCE_DAG_BAR_VENDORS") -> Vendor:
    """The registry entry ``name`` of ``kind``; an unknown name fails naming the setting."""
    entry = BY_KIND.get((kind, name))
    if entry is None:
        known = ", ".join(v.name for v in VENDORS if v.kind == kind)
        raise SettingError(f"{setting} names unknown {kind} vendor {name!r}; known: {known}")
    return entry


def configured(holder: dg.ConfigurableResource, entry: Vendor) -> dg.ConfigurableResource:
    """The nested resource of a real vendor or broker, or an error naming what to configure."""
    resource = getattr(holder, entry.name, None)
    if resource is None:
        raise dg.Failure(
            f"{type(holder).__name__} names {entry.name!r} but its {entry.name} resource is not configured "
            f"(credentials from {', '.join(entry.credentials) or 'none'})"
        )
    return resource


def default_chain(environment: str, kind: str = "bars") -> tuple[str, ...]:
    return tuple(v.name for v in VENDORS if v.kind == kind and v.environment == environment)


def bar_chain(settings: Settings) -> tuple[Vendor, ...]:
    """The configured bar vendors (primary first), or the environment's default chain."""
    names = settings.bar_vendors or default_chain(settings.environment)
    return tuple(vendor(name, "bars") for name in names)


def daily_chain(settings: Settings) -> tuple[Vendor, ...]:
    """The configured daily-price vendors (primary first), or the environment's default chain."""
    names = settings.etf_price_vendors or default_chain(settings.environment, "daily")
    return tuple(vendor(name, "daily", "FINANCE_DAG_ETF_PRICE_VENDORS") for name in names)


def pools() -> list[str]:
    """Every concurrency pool a vendor uses (deploy/dagster.yaml limits each to one step)."""
    return sorted({v.pool for v in VENDORS})


def vendor_table() -> str:
    """The markdown table of docs/vendors.md."""
    rows = ["| vendor | kind | environment | pool | credentials | what |", "|---|---|---|---|---|---|"]
    for v in VENDORS:
        creds = ", ".join(f"`{c}`" for c in v.credentials) or "none"
        rows.append(f"| `{v.name}` | {v.kind} | {v.environment} | `{v.pool}` | {creds} | {v.what} |")
    return "\n".join(rows)


# ---- resources ---------------------------------------------------------------------------
class SimulatedMarketResource(dg.ConfigurableResource):
    """The deterministic simulated market (seeded): prices, minute bars, factor structure."""

    seed: int = 7

    @property
    def market(self) -> SimulatedMarket:
        from finance_dag.sim.vendors import shared_market

        return shared_market(self.seed)


class BarVendorsResource(dg.ConfigurableResource):
    """The ordered vendor chain for minute bars: the first is primary, the rest fill gaps.

    ``vendors`` names registry entries of kind ``bars``; a real one needs its nested resource
    set (``bar_vendors_for`` does that from settings). ``fail_symbol_days`` injects failures
    into simulated vendors (``vendor:SYMBOL:YYYY-MM-DD``) to exercise fault handling.
    """

    vendors: list[str] = list(default_chain("sim"))
    market: SimulatedMarketResource
    fail_symbol_days: list[str] = []
    alpaca: AlpacaResource | None = None
    alphavantage: AlphaVantageResource | None = None
    yahoo: YahooResource | None = None

    _sources: list[BarSource] | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._sources = self._build()  # a misconfigured chain fails the run at start-up

    def sources(self) -> list[BarSource]:
        if self._sources is None:  # used outside a run
            self._sources = self._build()
        return self._sources

    def _build(self) -> list[BarSource]:
        from finance_dag.sim.vendors import SimulatedVendor, parse_failures

        if not self.vendors:
            raise ValueError("BarVendorsResource.vendors is empty: name at least one vendor")
        failing = parse_failures(self.fail_symbol_days)
        sources: list[BarSource] = []
        for name in self.vendors:
            entry = vendor(name, "bars", "BarVendorsResource.vendors")
            if entry.build is None:
                sources.append(SimulatedVendor(self.market.market, name, failing.get(name, frozenset())))
                continue
            resource = getattr(self, name, None)
            if resource is None:
                raise ValueError(
                    f"BarVendorsResource.vendors names {name!r} but the {name} resource is not configured: "
                    f"set {name}=... (credentials from {', '.join(entry.credentials) or 'none'})"
                )
            sources.append(resource.bars())
        return sources


def bar_vendors_for(settings: Settings) -> BarVendorsResource:
    """The chain named by the settings; real vendors read their secrets through EnvVar."""
    chain = bar_chain(settings)
    nested = {v.name: v.build() for v in chain if v.build is not None}
    return BarVendorsResource(vendors=[v.name for v in chain], market=SimulatedMarketResource(), **nested)


def vendor_resources(settings: Settings, kinds: Sequence[str] = ("macro",)) -> dict[str, object]:
    """Resources of the environment's vendors of ``kinds`` (e.g. ``fred`` in prod)."""
    return {
        v.name: v.build()
        for v in VENDORS
        if v.kind in kinds and v.environment == settings.environment and v.build is not None
    }

"""Which bar vendors are active, in which fallback order: one resource for the whole chain."""

import dagster as dg
from pydantic import PrivateAttr

from finance_dag.market_data.bars import BarSource
from finance_dag.platform.market import SimulatedMarketResource, SimulatedVendor, parse_failures
from finance_dag.platform.vendors import AlpacaResource, AlphaVantageResource, YahooResource
from finance_dag.sim import SIM_VENDORS

# Real vendors by name, with what configuring each takes (for the error when it is missing).
REAL_VENDORS: dict[str, str] = {
    "alpaca": 'alpaca=AlpacaResource(api_key=dg.EnvVar("ALPACA_API_KEY"), '
    'secret_key=dg.EnvVar("ALPACA_SECRET_KEY"))',
    "alphavantage": 'alphavantage=AlphaVantageResource(api_key=dg.EnvVar("ALPHAVANTAGE_API_KEY"))',
    "yahoo": "yahoo=YahooResource()",
}


class BarVendorsResource(dg.ConfigurableResource):
    """The ordered vendor chain for minute bars: the first is primary, the rest fill gaps.

    ``vendors`` names simulated vendors (``sim_alpaca``, ``sim_alphavantage``, ``sim_yahoo``)
    or real ones (``alpaca``, ``alphavantage``, ``yahoo``); a real one needs its nested
    resource set. ``fail_symbol_days`` injects failures into simulated vendors
    (``vendor:SYMBOL:YYYY-MM-DD``) to exercise fault handling.
    """

    vendors: list[str] = ["sim_alpaca", "sim_alphavantage", "sim_yahoo"]
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
        if not self.vendors:
            raise ValueError("BarVendorsResource.vendors is empty: name at least one vendor")
        failing = parse_failures(self.fail_symbol_days)
        sources: list[BarSource] = []
        for name in self.vendors:
            if name in SIM_VENDORS:
                sources.append(SimulatedVendor(self.market.market, name, failing.get(name, frozenset())))
            elif name in REAL_VENDORS:
                resource = getattr(self, name)
                if resource is None:
                    raise ValueError(
                        f"BarVendorsResource.vendors names {name!r} but the {name} resource is not "
                        f"configured: set {REAL_VENDORS[name]}"
                    )
                sources.append(resource.bars())
            else:
                known = ", ".join([*SIM_VENDORS, *REAL_VENDORS])
                raise ValueError(f"unknown bar vendor {name!r}; known: {known}")
        return sources

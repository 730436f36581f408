"""Which bar vendors are active, in which fallback order: one resource for the whole chain."""

import dagster as dg

from finance_dag.bars import BarSource
from finance_dag.resources.market import SimulatedMarketResource, SimulatedVendor, parse_failures


class BarVendorsResource(dg.ConfigurableResource):
    """The ordered vendor chain for minute bars: the first is primary, the rest fill gaps.

    ``vendors`` names entries such as ``sim_alpaca`` (simulated). ``fail_symbol_days`` injects
    failures into simulated vendors (``vendor:SYMBOL:YYYY-MM-DD``) to exercise fault handling.
    """

    vendors: list[str] = ["sim_alpaca", "sim_alphavantage", "sim_yahoo"]
    market: SimulatedMarketResource
    fail_symbol_days: list[str] = []

    def sources(self) -> list[BarSource]:
        if not self.vendors:
            raise ValueError("BarVendorsResource.vendors is empty: name at least one vendor")
        failing = parse_failures(self.fail_symbol_days)
        return [
            SimulatedVendor(self.market.market, name, failing.get(name, frozenset())) for name in self.vendors
        ]

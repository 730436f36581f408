"""A deterministic simulated market: the embedded default that needs no keys and no network."""

from finance_dag.sim.market import FACTORS, SIM_VENDORS, SimulatedMarket, VendorProfile

__all__ = ["FACTORS", "SIM_VENDORS", "SimulatedMarket", "VendorProfile"]

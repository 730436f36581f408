"""The risk domain's inputs: stock prices, the market proxy and fundamentals.

``equity_data`` serves them from the simulated equity universe (``source`` ``sim``: 3,000 stocks
drawn from a known six-factor model, so the estimates can be checked against the truth) or from
the vendors (``vendors``): daily prices through the registry's daily chain, fundamentals and
classification through its fundamentals source (Alpha Vantage company overview).
"""

from __future__ import annotations

from datetime import date

import dagster as dg
import polars as pl

from finance_dag.core.settings import Settings
from finance_dag.market_data.daily import collect_prices
from finance_dag.platform.registry import daily_chain, default_chain, vendor

PRICE_SCHEMA = pl.Schema(
    {
        "date": pl.Date,
        "symbol": pl.String,
        "close": pl.Float64,
        "volume": pl.Int64,
        "shares_outstanding": pl.Float64,
    }
)
FUNDAMENTAL_COLUMNS = ("symbol", "book_value", "shares_outstanding", "sector", "country")


class EquityDataResource(dg.ConfigurableResource):
    """Stock prices, the market proxy and fundamentals for the risk model."""

    source: str = "sim"  # "sim" or "vendors"
    universe: list[str] = []  # empty: the simulated universe
    seed: int = 7
    market_symbol: str = "SPY"  # the market proxy with the vendors
    price_vendors: list[str] = []  # daily chain with the vendors; empty: the environment's default
    fundamentals_vendor: str = "alphavantage"

    def symbols(self) -> list[str]:
        if self.universe:
            return list(self.universe)
        return list(self._sim().symbols)

    def prices(self, start: date, end: date) -> pl.DataFrame:
        """``date, symbol, close, volume, shares_outstanding`` of every stock from start to end."""
        if self.source == "sim":
            return self._sim().daily(start, end, self.universe or None).cast(dict(PRICE_SCHEMA))
        rows = collect_prices(self._daily_sources(), self.symbols(), start, end).prices
        shares = self.fundamentals(end).select("symbol", "shares_outstanding")
        return (
            rows.join(shares, on="symbol", how="inner").select(PRICE_SCHEMA.names()).cast(dict(PRICE_SCHEMA))
        )

    def market(self, start: date, end: date) -> pl.DataFrame:
        """``date, close`` of the market proxy (the simulated cap-weighted index, or SPY)."""
        if self.source == "sim":
            return self._sim().market_proxy(start, end)
        rows = collect_prices(self._daily_sources(), [self.market_symbol], start, end).prices
        if rows.is_empty():
            raise dg.Failure(f"no vendor served the market proxy {self.market_symbol} from {start} to {end}")
        return rows.select("date", "close")

    def fundamentals(self, day: date) -> pl.DataFrame:
        """``symbol, book_value, shares_outstanding, sector, country`` as known on ``day``."""
        if self.source == "sim":
            return self._sim().fundamentals(day, self.universe or None).select(FUNDAMENTAL_COLUMNS)
        entry = vendor(self.fundamentals_vendor, "fundamentals", "EquityDataResource.fundamentals_vendor")
        fetched = entry.build().fundamentals().fetch_fundamentals(self.symbols())
        return fetched.frame.select(FUNDAMENTAL_COLUMNS)

    def _sim(self):
        from finance_dag.sim.vendors import shared_equity_market

        return shared_equity_market(self.seed)

    def _daily_sources(self) -> list:
        names = self.price_vendors or list(default_chain("prod", "daily"))
        return [vendor(name, "daily", "EquityDataResource.price_vendors").build().daily() for name in names]


def build_resources(settings: Settings) -> dict[str, object]:
    chain = [v.name for v in daily_chain(settings)] if settings.risk_source == "vendors" else []
    return {
        "equity_data": EquityDataResource(
            source=settings.risk_source, universe=list(settings.risk.universe), price_vendors=chain
        )
    }

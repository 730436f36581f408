"""The risk domain's inputs: stock prices, the market proxy and fundamentals.

``equity_data`` serves them from the simulated equity universe (``source`` ``sim``: 3,000 stocks
drawn from a known six-factor model, so the estimates can be checked against the truth) or from
the vendors (``vendors``): daily prices through the registry's daily chain, fundamentals and
classification through its fundamentals source (Alpha Vantage company overview). Each vendor
named is served by the nested resource of that name (``ib``, ``alpaca``, ``yahoo``,
``alphavantage``); ``build_resources`` builds them from the registry (credentials through
EnvVar), tests point them at the loopback fakes.
"""

from __future__ import annotations

from datetime import date

import dagster as dg
import polars as pl

from finance_dag.core.settings import Settings
from finance_dag.market_data.daily import collect_prices
from finance_dag.platform.registry import configured, daily_chain, default_chain, vendor
from finance_dag.platform.vendors import AlpacaResource, AlphaVantageResource, IbResource, YahooResource

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
FUNDAMENTALS_VENDOR = "alphavantage"


class EquityDataResource(dg.ConfigurableResource):
    """Stock prices, the market proxy and fundamentals for the risk model."""

    source: str = "sim"  # "sim" or "vendors"
    universe: list[str] = []  # empty: the simulated universe
    seed: int = 7
    market_symbol: str = "SPY"  # the market proxy with the vendors
    price_vendors: list[str] = []  # daily chain with the vendors; empty: the environment's default
    fundamentals_vendor: str = FUNDAMENTALS_VENDOR
    ib: IbResource | None = None
    alpaca: AlpacaResource | None = None
    yahoo: YahooResource | None = None
    alphavantage: AlphaVantageResource | None = None

    def symbols(self) -> list[str]:
        if self.universe:
            return list(self.universe)
        return list(self._sim().symbols)

    def prices(self, start: date, end: date) -> pl.DataFrame:
        """``date, symbol, close, volume, shares_outstanding`` of every stock from start to end.

        With the vendors, a stock without fundamentals keeps its rows with shares outstanding
        null, so the model records why its exposures are missing instead of losing the name."""
        if self.source == "sim":
            return self._sim().daily(start, end, self.universe or None).cast(dict(PRICE_SCHEMA))
        rows = collect_prices(self._daily_sources(), self.symbols(), start, end).prices
        shares = self.fundamentals(end).select("symbol", "shares_outstanding")
        return (
            rows.join(shares, on="symbol", how="left").select(PRICE_SCHEMA.names()).cast(dict(PRICE_SCHEMA))
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
        fetched = configured(self, entry).fundamentals().fetch_fundamentals(self.symbols())
        if fetched.failures:
            dg.get_dagster_logger().warning(
                f"{entry.name}: no fundamentals for {len(fetched.failures)} stock(s), their exposures stay "
                f"missing: {'; '.join(list(fetched.failures.values())[:5])}"
            )
        return fetched.frame.select(FUNDAMENTAL_COLUMNS)

    def _sim(self):
        from finance_dag.sim.vendors import shared_equity_market

        return shared_equity_market(self.seed)

    def _daily_sources(self) -> list:
        names = self.price_vendors or list(default_chain("prod", "daily"))
        entries = [vendor(name, "daily", "EquityDataResource.price_vendors") for name in names]
        simulated = [e.name for e in entries if e.build is None]
        if simulated:
            raise dg.Failure(
                f"EquityDataResource.price_vendors names {', '.join(simulated)}: simulated ETF prices, not stocks; "
                "the vendors source needs real daily vendors (ib, alpaca, yahoo), or use source sim"
            )
        return [configured(self, entry).daily() for entry in entries]


def build_resources(settings: Settings) -> dict[str, object]:
    """``equity_data``; with the vendors source, the daily chain's and the fundamentals vendor's
    resources are built from the registry (their credentials read through EnvVar)."""
    universe = list(settings.risk.universe)
    if settings.risk_source != "vendors":
        return {"equity_data": EquityDataResource(source=settings.risk_source, universe=universe)}
    chain = daily_chain(settings)
    entries = (*chain, vendor(FUNDAMENTALS_VENDOR, "fundamentals", "EquityDataResource.fundamentals_vendor"))
    nested = {v.name: v.build() for v in entries if v.build is not None}
    return {
        "equity_data": EquityDataResource(
            source="vendors", universe=universe, price_vendors=[v.name for v in chain], **nested
        )
    }

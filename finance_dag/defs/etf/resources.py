"""The ETF domain's inputs as resources, each with a simulated default and a real path.

- ``etf_files``: the NASDAQ Trader directory files and the curated category file, from an inbox
  (folder or s3:// prefix). With source ``sim`` the simulated market drops the day's files into
  the inbox first, then they are read like any delivery.
- ``etf_price_vendors``: the daily-price vendor chain (registry kind ``daily``).
- ``broker``: the broker the plan is built against and orders go to (registry kind ``broker``).
"""

from __future__ import annotations

from datetime import date

import dagster as dg
from pydantic import PrivateAttr

from finance_dag.brokers import Broker, BrokerError
from finance_dag.core.lake import Lake
from finance_dag.core.settings import Settings
from finance_dag.market_data.daily import DailyFetch, DailyPriceSource, collect_prices
from finance_dag.platform.registry import configured, daily_chain, vendor
from finance_dag.platform.vendors import AlpacaResource, AlpacaTradingResource, IbResource, YahooResource

DIRECTORY_FILES = ("nasdaqlisted.txt", "otherlisted.txt")
CATEGORY_FILE = "etf_categories.csv"
# The simulated account's starting book: long SPY, TLT and GLD, short XLE (see starting_account).
SIMULATED_START = ("SPY", "TLT", "GLD", "XLE")


class EtfFilesResource(dg.ConfigurableResource):
    """Where the symbol-directory files and the curated category file land."""

    source: str = "sim"  # "sim": the simulated market drops the files first; "files": only read
    inbox: str = "./data/_inbox/etf"
    seed: int = 7

    def files(self, day: date) -> dict[str, tuple[str, str]]:
        """``{file name: (text, uri)}`` of the two directory files and the category file."""
        inbox = Lake(self.inbox)
        if self.source == "sim":
            from finance_dag.sim.vendors import shared_etf_market

            market = shared_etf_market(self.seed)
            for name, text in market.directory_files(day).items():
                inbox.write_bytes(name, text.encode())
            if not inbox.exists(CATEGORY_FILE):
                inbox.write_bytes(CATEGORY_FILE, market.category_file().encode())
        found = {}
        for name in (*DIRECTORY_FILES, CATEGORY_FILE):
            if not inbox.exists(name):
                raise FileNotFoundError(
                    f"{inbox.uri(name)} is missing: the ETF universe needs {', '.join((*DIRECTORY_FILES, CATEGORY_FILE))}"
                )
            found[name] = (inbox.read_bytes(name).decode("utf-8", errors="replace"), inbox.uri(name))
        return found


class EtfPriceVendorsResource(dg.ConfigurableResource):
    """The daily-price vendor chain: the first is primary, the rest serve only missing symbols.

    ``fail_symbols`` injects failures into the simulated vendor (``SYMBOL``) for tests.
    """

    vendors: list[str] = ["sim_daily"]
    seed: int = 7
    fail_symbols: list[str] = []
    ib: IbResource | None = None
    alpaca: AlpacaResource | None = None
    yahoo: YahooResource | None = None

    _sources: list[DailyPriceSource] | None = PrivateAttr(default=None)

    def sources(self) -> list[DailyPriceSource]:
        if self._sources is None:
            self._sources = [self._source(name) for name in self.vendors]
        return self._sources

    def _source(self, name: str) -> DailyPriceSource:
        entry = vendor(name, "daily", "EtfPriceVendorsResource.vendors")
        if entry.build is None:
            from finance_dag.sim.vendors import SimulatedDaily, shared_etf_market

            return SimulatedDaily(shared_etf_market(self.seed), frozenset(self.fail_symbols))
        return configured(self, entry).daily()

    def fetch(self, symbols: list[str], start: date, end: date) -> DailyFetch:
        return collect_prices(self.sources(), symbols, start, end)


class BrokerResource(dg.ConfigurableResource):
    """The broker named by ``broker`` (registry kind ``broker``). The simulated one keeps its
    account in the lake under ``storage`` and prices at the closes it is given."""

    broker: str = "simulated"
    storage: str = "./data"
    ib: IbResource | None = None
    alpaca: AlpacaTradingResource | None = None

    def connect(self, purpose: str, prices: dict[str, float] | None = None) -> Broker:
        """A connection for ``purpose`` ("plan": read-only; "trade": may cancel and place)."""
        entry = vendor(self.broker, "broker", "BrokerResource.broker")
        if entry.build is None:
            from finance_dag.brokers.simulated import SimulatedBroker, starting_account

            quotes = dict(prices or {})

            def price(symbol: str) -> float:
                if symbol not in quotes:
                    raise BrokerError(f"simulated broker: no price for {symbol}")
                return quotes[symbol]

            start = starting_account([s for s in SIMULATED_START if s in quotes], price)
            return SimulatedBroker(Lake(self.storage), price, start)
        return configured(self, entry).broker(purpose)


def build_resources(settings: Settings) -> dict[str, object]:
    chain = daily_chain(settings)
    broker = vendor(settings.broker, "broker", "FINANCE_DAG_BROKER")
    return {
        "etf_files": EtfFilesResource(source=settings.etf_source, inbox=settings.etf_inbox),
        "etf_price_vendors": EtfPriceVendorsResource(
            vendors=[v.name for v in chain], **{v.name: v.build() for v in chain if v.build is not None}
        ),
        "broker": BrokerResource(
            broker=broker.name,
            storage=settings.storage,
            **({broker.name: broker.build()} if broker.build is not None else {}),
        ),
    }

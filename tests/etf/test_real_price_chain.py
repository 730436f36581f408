"""The ETF daily-price chain through the real vendor resources (IB primary over ib_async, Yahoo
fallback over yfinance) against their loopback fakes: a symbol IB fails comes from Yahoo whole,
the others from IB, and a symbol both fail keeps both vendors' reasons."""

from collections.abc import Iterator
from datetime import UTC, date, datetime

import polars as pl
import pytest

from finance_dag.defs.etf.resources import EtfPriceVendorsResource
from finance_dag.market_data.daily import DAILY_PRICE_SCHEMA
from finance_dag.market_data.vendors.ib import SOURCE as IB_SOURCE
from finance_dag.platform.vendors import IbResource, YahooResource
from finance_dag.sim.etf import SimulatedEtfMarket
from finance_dag.testing.ib_gateway import FakeIbGateway
from finance_dag.testing.yahoo import FakeYahoo, isolate_yfinance_cache

pytestmark = [
    pytest.mark.vendors,
    pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning"),
]
NOW = datetime(2024, 12, 20, 22, 0, tzinfo=UTC)  # both fakes' "today"; no split in these ETFs since
START, END = date(2024, 10, 1), date(2024, 10, 31)
FROM_IB = ["EFA", "GLD", "QQQ", "SPY"]
FROM_YAHOO = ["AGG", "TLT"]  # IB has no history for them
NOWHERE = "IWM"  # neither vendor serves it
SYMBOLS = sorted([*FROM_IB, *FROM_YAHOO, NOWHERE])


@pytest.fixture(scope="module")
def etf() -> SimulatedEtfMarket:
    return SimulatedEtfMarket(7)


@pytest.fixture(scope="module", autouse=True)
def yfinance_cache(tmp_path_factory) -> None:
    isolate_yfinance_cache(str(tmp_path_factory.mktemp("yfinance")))


@pytest.fixture
def fakes(market, etf) -> Iterator[tuple[FakeIbGateway, FakeYahoo]]:
    def one(symbol: str, first: date, last: date) -> pl.DataFrame:
        return etf.daily_prices([symbol], first, last)

    with (
        FakeIbGateway(one, clock=lambda: NOW) as ib,
        FakeYahoo(market, NOW, daily=etf.daily_prices) as yahoo,
    ):
        yield ib, yahoo


def chain(ib: FakeIbGateway, yahoo: FakeYahoo) -> EtfPriceVendorsResource:
    return EtfPriceVendorsResource(
        vendors=["ib", "yahoo"],
        ib=IbResource(host=ib.host, port=ib.port, data_client_id=31, timeout_s=5.0),
        yahoo=YahooResource(
            base_url=yahoo.url, now=NOW.isoformat(), timeout_s=3.0, max_attempts=2, backoff_initial_s=0.0
        ),
    )


@pytest.mark.chaos("vendor faults", faults="ib-no-data 503-persistent")
def test_symbols_ib_fails_come_from_yahoo_and_one_both_fail_keeps_both_reasons(fakes, etf) -> None:
    ib, yahoo = fakes
    for symbol in [*FROM_YAHOO, NOWHERE]:
        ib.fail_history(symbol)
    yahoo.inject("503", times=None, match=lambda r: r.path.endswith(f"/{NOWHERE}"))

    fetched = chain(ib, yahoo).fetch(SYMBOLS, START, END)

    assert fetched.prices.schema == DAILY_PRICE_SCHEMA
    sources = dict(fetched.prices.group_by("symbol").agg(pl.col("source").unique()).iter_rows())
    assert sources == {**dict.fromkeys(FROM_IB, [IB_SOURCE]), **dict.fromkeys(FROM_YAHOO, ["yahoo"])}
    truth = etf.daily_prices([*FROM_IB, *FROM_YAHOO], START, END).sort("symbol", "date")
    got = fetched.prices.sort("symbol", "date")
    assert got.select("symbol", "date", "volume").equals(truth.select("symbol", "date", "volume"))
    for column in ("open", "high", "low", "close", "dividend"):
        assert (got[column] - truth[column]).abs().max() < 1e-6, column  # one history per symbol

    assert list(fetched.failures) == [NOWHERE]
    ib_reason, yahoo_reason = fetched.failures[NOWHERE].split("; ", 1)
    assert ib_reason.startswith("ib: historical TRADES bars for IWM") and "IB error 162" in ib_reason
    assert "HMDS query returned no data" in ib_reason
    assert yahoo_reason.startswith("yahoo: GET /v8/finance/chart 1d prices and events for IWM")
    assert "failed after 2 attempt(s) (HTTP 503)" in yahoo_reason

    asked_ib = {r.symbol for r in ib.history_requests}
    asked_yahoo = {r.path.rsplit("/", 1)[-1] for r in yahoo.chart_requests("1d")}
    assert asked_ib == set(SYMBOLS)
    assert asked_yahoo == {*FROM_YAHOO, NOWHERE}  # Yahoo only for what IB did not serve


@pytest.mark.chaos("vendor faults", faults="gateway-down")
def test_an_unreachable_gateway_hands_every_symbol_to_yahoo(fakes) -> None:
    ib, yahoo = fakes
    ib.stop()  # nothing listens on its port any more
    symbols = [*FROM_IB, *FROM_YAHOO]
    fetched = chain(ib, yahoo).fetch(symbols, START, END)
    assert fetched.failures == {}
    assert set(fetched.prices["source"]) == {"yahoo"}
    assert set(fetched.prices["symbol"]) == set(symbols)

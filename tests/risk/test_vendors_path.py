"""The risk domain's vendors path against the loopback fakes: ``EquityDataResource(source="vendors")``
with a Yahoo daily chain serving simulated equity closes (and the simulated market proxy as SPY)
and an Alpha Vantage overview serving the simulated fundamentals gives the simulated data back,
so the model's exposures equal those computed on the simulated data directly; a stock the
overview does not know keeps its rows, its value exposure null with the reason."""

from collections.abc import Iterator
from datetime import UTC, date, datetime

import dagster as dg
import polars as pl
import pytest

from finance_dag.core import calendar
from finance_dag.core.http import RateLimiter
from finance_dag.defs.risk.resources import EquityDataResource, build_resources
from finance_dag.market_data.daily import DAILY_PRICE_SCHEMA
from finance_dag.platform.vendors import AlphaVantageResource, YahooResource
from finance_dag.risk.model import FACTORS, exposures_range
from finance_dag.sim.equities import SimulatedEquityMarket
from finance_dag.testing.alpha_vantage import FakeAlphaVantage
from finance_dag.testing.yahoo import FakeYahoo, isolate_yfinance_cache
from tests.support import settings_for

pytestmark = [
    pytest.mark.vendors,
    pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning"),
]
NOW = datetime(2024, 7, 1, 22, 0, tzinfo=UTC)  # both fakes' "today"
DAY = date(2024, 6, 28)  # the session whose exposures are compared
START = calendar.sessions(date(2023, 1, 1), DAY)[-300]  # 300 sessions: beta needs 252
SPY = "SPY"
KEY = "test"


@pytest.fixture(scope="module")
def equities() -> SimulatedEquityMarket:
    return SimulatedEquityMarket(7, n_stocks=60, end=NOW.date())


@pytest.fixture(scope="module", autouse=True)
def yfinance_cache(tmp_path_factory) -> None:
    isolate_yfinance_cache(str(tmp_path_factory.mktemp("yfinance")))


def daily_truth(equities: SimulatedEquityMarket):
    """The simulated closes (and SPY, the market proxy) as raw daily rows: no splits, no dividends."""

    def rows(symbols: list[str], first: date, last: date) -> pl.DataFrame:
        frames = []
        stocks = [s for s in symbols if s in equities.symbols]
        if stocks:
            frames.append(equities.daily(first, last, stocks).select("date", "symbol", "close", "volume"))
        if SPY in symbols:
            proxy = equities.market_proxy(first, last)
            frames.append(proxy.with_columns(symbol=pl.lit(SPY), volume=pl.lit(0, pl.Int64)))
        if not frames:
            return pl.DataFrame(schema=DAILY_PRICE_SCHEMA)
        return (
            pl.concat(frames, how="diagonal")
            .with_columns(
                open=pl.col("close"),
                high=pl.col("close"),
                low=pl.col("close"),
                split_ratio=pl.lit(1.0),
                dividend=pl.lit(0.0),
                source=pl.lit("sim"),
            )
            .select(DAILY_PRICE_SCHEMA.names())
            .cast(dict(DAILY_PRICE_SCHEMA))
        )

    return rows


@pytest.fixture(scope="module")
def unknown() -> set[str]:
    """Symbols the Alpha Vantage fake answers ``{}`` for (a test adds to it)."""
    return set()


@pytest.fixture(scope="module")
def fakes(market, equities, unknown) -> Iterator[tuple[FakeYahoo, FakeAlphaVantage]]:
    known = equities.fundamentals(DAY).join(equities.daily(DAY, DAY).select("symbol", "close"), on="symbol")
    overviews = {
        row["symbol"]: {
            "AssetType": "Common Stock",
            "Currency": "USD",
            "Country": row["country"],
            "Sector": row["sector"],
            "LatestQuarter": "2024-03-31",
            "MarketCapitalization": row["close"] * row["shares_outstanding"],
            "BookValue": row["book_value"] / row["shares_outstanding"],
            "SharesOutstanding": row["shares_outstanding"],
        }
        for row in known.iter_rows(named=True)
    }

    def overview(symbol: str) -> dict | None:
        return None if symbol in unknown else overviews.get(symbol)

    with (
        FakeYahoo(market, NOW, daily=daily_truth(equities)) as yahoo,
        FakeAlphaVantage(market, KEY, fundamentals=overview) as av,
    ):
        yield yahoo, av


def resource(fakes: tuple[FakeYahoo, FakeAlphaVantage], symbols: list[str]) -> EquityDataResource:
    yahoo, av = fakes
    data = EquityDataResource(
        source="vendors",
        universe=symbols,
        price_vendors=["yahoo"],
        yahoo=YahooResource(
            base_url=yahoo.url, now=NOW.isoformat(), timeout_s=3.0, max_attempts=2, backoff_initial_s=0.0
        ),
        alphavantage=AlphaVantageResource(
            api_key=KEY, base_url=av.url, requests_per_minute=100_000, timeout_s=3.0, backoff_initial_s=0.0
        ),
    )
    # Yahoo's adapter allows 60 requests a minute: the 61st (60 stocks and SPY) would wait a minute.
    data.yahoo.daily().http.limiter = RateLimiter([(100_000, 60.0)])
    return data


def test_vendor_path_serves_the_simulated_data_and_gives_the_same_exposures(fakes, equities) -> None:
    symbols = list(equities.symbols)
    data = resource(fakes, symbols)

    prices = data.prices(START, DAY).sort("date", "symbol")
    truth = equities.daily(START, DAY).sort("date", "symbol")
    assert prices.select("date", "symbol", "volume").equals(truth.select("date", "symbol", "volume"))
    assert ((prices["close"] / truth["close"]) - 1).abs().max() < 1e-12
    assert (prices["shares_outstanding"] == truth["shares_outstanding"].cast(pl.Float64)).all()

    market = data.market(START, DAY).sort("date")
    proxy = equities.market_proxy(START, DAY)
    assert market["date"].equals(proxy["date"])
    assert ((market["close"] / proxy["close"]) - 1).abs().max() < 1e-12

    fundamentals = data.fundamentals(DAY).sort("symbol")
    simulated = equities.fundamentals(DAY).sort("symbol")
    assert fundamentals.select("symbol", "sector", "country").equals(
        simulated.select("symbol", "sector", "country")
    )
    assert ((fundamentals["book_value"] / simulated["book_value"]) - 1).abs().max() < 1e-12

    got = exposures_range(prices, market, fundamentals.drop("country"), [DAY]).sort("symbol")
    want = exposures_range(truth, proxy, simulated.drop("country"), [DAY]).sort("symbol")
    assert got["symbol"].equals(want["symbol"]) and got.height == len(symbols)
    assert got.drop_nulls(list(FACTORS)).height == len(symbols)  # a full history for every stock
    for factor in FACTORS:
        assert (got[factor] - want[factor]).abs().max() < 1e-6, factor
    assert got["sector"].equals(want["sector"])


def test_a_stock_the_overview_does_not_know_keeps_its_rows_with_value_null_and_the_reason(
    fakes, equities, unknown
) -> None:
    missing = equities.symbols[6]
    unknown.add(missing)
    symbols = list(equities.symbols)
    data = resource(fakes, symbols)

    fundamentals = data.fundamentals(DAY)
    assert missing not in fundamentals["symbol"].to_list() and fundamentals.height == len(symbols) - 1
    prices = data.prices(START, DAY)
    assert (
        prices.filter(symbol=missing)["shares_outstanding"].null_count()
        == prices.filter(symbol=missing).height
        > 0
    )

    exposures = exposures_range(prices, data.market(START, DAY), fundamentals.drop("country"), [DAY])
    row = exposures.filter(symbol=missing).to_dicts()
    assert len(row) == 1 and row[0]["value"] is None
    assert f"no fundamentals for {missing}" in row[0]["missing_reason"]
    others = exposures.filter(pl.col("symbol") != missing)
    assert others.height == len(symbols) - 1 and others["value"].null_count() == 0


def test_build_resources_nests_the_chain_and_the_fundamentals_vendor_and_a_missing_one_is_named() -> None:
    data = build_resources(settings_for(RISK_SOURCE="vendors", ETF_PRICE_VENDORS="yahoo,alpaca"))[
        "equity_data"
    ]
    assert data.source == "vendors" and data.price_vendors == ["yahoo", "alpaca"]
    assert data.yahoo is not None and data.alpaca is not None and data.ib is None
    assert isinstance(data.alphavantage, AlphaVantageResource)
    sim = build_resources(settings_for())["equity_data"]
    assert sim.source == "sim" and sim.yahoo is None and sim.alphavantage is None

    bare = EquityDataResource(source="vendors", universe=["EQ0001"], price_vendors=["ib"])
    with pytest.raises(dg.Failure, match="names 'ib' but its ib resource is not configured"):
        bare.market(START, DAY)
    with pytest.raises(
        dg.Failure, match=r"alphavantage resource is not configured \(credentials from ALPHAVANTAGE"
    ):
        bare.fundamentals(DAY)
    with pytest.raises(dg.Failure, match="sim_daily: simulated ETF prices"):
        EquityDataResource(source="vendors", price_vendors=["sim_daily"]).market(START, DAY)

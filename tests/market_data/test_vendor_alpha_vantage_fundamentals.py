"""Alpha Vantage company overview (fundamentals) through the SDK against the loopback fake."""

from datetime import date

import polars as pl
import pytest
import requests

from finance_dag.core.http import RateLimiter, RetryPolicy
from finance_dag.market_data.fundamentals import FUNDAMENTALS_SCHEMA, GICS_SECTORS
from finance_dag.market_data.vendors.alpha_vantage_fundamentals import (
    SECTOR_TO_GICS,
    AlphaVantageFundamentals,
    gics_sector,
)
from finance_dag.platform.registry import vendor
from finance_dag.platform.vendors import AlphaVantageResource
from finance_dag.testing.alpha_vantage import FakeAlphaVantage

pytestmark = pytest.mark.vendors

KEY = "AVSECRETKEY789"
COMPANIES = {
    "AAPL": {
        "Name": "Apple Inc",
        "AssetType": "Common Stock",
        "Currency": "USD",
        "Country": "USA",
        "Sector": "TECHNOLOGY",
        "Industry": "ELECTRONIC COMPUTERS",
        "LatestQuarter": "2024-09-30",
        "MarketCapitalization": 3424937738000,
        "BookValue": 3.767,
        "SharesOutstanding": 15115800000,
    },
    "JPM": {
        "Name": "JPMorgan Chase & Co",
        "Currency": "USD",
        "Country": "USA",
        "Sector": "FINANCE",
        "LatestQuarter": "2024-09-30",
        "MarketCapitalization": 672900000000,
        "BookValue": 116.07,
        "SharesOutstanding": 2815300000,
    },
    "AMZN": {
        "Name": "Amazon.com Inc",
        "Currency": "USD",
        "Country": "USA",
        "Sector": "TRADE & SERVICES",
        "LatestQuarter": "2024-09-30",
        "MarketCapitalization": 2180000000000,
        "BookValue": 24.66,
        "SharesOutstanding": 10510000000,
    },
}


def companies(symbol: str) -> dict | None:
    return COMPANIES.get(symbol)


@pytest.fixture
def fake(market):
    with FakeAlphaVantage(market, KEY, fundamentals=companies) as server:
        yield server


def adapter(url: str, sleeps: list[float] | None = None, attempts: int = 4) -> AlphaVantageFundamentals:
    sleeps = [] if sleeps is None else sleeps
    policy = RetryPolicy(attempts=attempts, initial_wait=0.01, jitter=0.0, timeout=3.0, sleep=sleeps.append)
    return AlphaVantageFundamentals(
        KEY, base_url=url, throttle_wait=42.0, policy=policy, limiter=RateLimiter([(1000, 60.0)])
    )


def with_company(symbol: str, **fields: object):
    """The fake's fundamentals with ``symbol`` answering ``fields`` over AAPL's figures."""
    return lambda s: COMPANIES["AAPL"] | fields if s == symbol else companies(s)


def test_overview_round_trip_gives_total_book_value_gics_sectors_and_quarter_dates(fake) -> None:
    av = adapter(fake.url)
    result = av.fetch_fundamentals(["JPM", "AAPL", "AMZN", "AAPL"])
    assert result.failures == {}
    expected = pl.DataFrame(
        {
            "symbol": ["AAPL", "AMZN", "JPM"],
            "book_value": [3.767 * 15115800000, 24.66 * 10510000000, 116.07 * 2815300000],
            "shares_outstanding": [15115800000.0, 10510000000.0, 2815300000.0],
            "market_cap": [3424937738000.0, 2180000000000.0, 672900000000.0],
            "sector": ["Information Technology", "Consumer Discretionary", "Financials"],
            "country": ["USA", "USA", "USA"],
            "as_of": [date(2024, 9, 30)] * 3,
            "source": ["alphavantage"] * 3,
        },
        schema=FUNDAMENTALS_SCHEMA,
    )
    assert result.frame.equals(expected)
    assert [r.query["symbol"] for r in fake.log] == ["JPM", "AAPL", "AMZN"]  # one request per symbol
    assert {k: fake.log[0].query[k] for k in ("function", "apikey")} == {
        "function": "OVERVIEW",
        "apikey": KEY,
    }
    again = av.fetch_fundamentals(["AAPL"])
    assert fake.total() == 3 and again.frame.equals(expected.head(1))  # served from the adapter's cache


def test_the_fake_answers_like_av_strings_none_and_empty_object(fake) -> None:
    known = requests.get(f"{fake.url}/query", params={"function": "OVERVIEW", "symbol": "JPM", "apikey": KEY})
    body = known.json()
    assert body["Symbol"] == "JPM" and body["SharesOutstanding"] == "2815300000" and body["EBITDA"] == "None"
    assert list(body)[:3] == ["Symbol", "AssetType", "Name"]
    unknown = requests.get(
        f"{fake.url}/query", params={"function": "OVERVIEW", "symbol": "ZZZZ", "apikey": KEY}
    )
    assert unknown.status_code == 200 and unknown.json() == {}


def test_unknown_symbol_and_unusable_fields_fail_only_their_symbol(market) -> None:
    def answers(symbol: str) -> dict | None:
        broken = {
            "HOLE": {"SharesOutstanding": None, "Sector": "None"},
            "TEXT": {"BookValue": "n/a", "LatestQuarter": "Q3 2024"},
            "NEG": {"BookValue": "-12.85"},
        }
        if symbol in broken:
            return COMPANIES["AAPL"] | broken[symbol]
        return companies(symbol)

    with FakeAlphaVantage(market, KEY, fundamentals=answers) as fake:
        result = adapter(fake.url).fetch_fundamentals(["AAPL", "SPY", "HOLE", "TEXT", "NEG", "JPM"])
    assert result.frame["symbol"].to_list() == ["AAPL", "JPM"]
    assert set(result.failures) == {"SPY", "HOLE", "TEXT", "NEG"}
    assert result.failures["SPY"] == (
        "alphavantage: OVERVIEW for SPY failed after 1 attempt(s) (HTTP 200): no company overview: Alpha "
        "Vantage answers {} for a symbol it does not know (OVERVIEW covers companies, not ETFs)"
    )  # permanent: not retried
    assert result.failures["HOLE"] == (
        "alphavantage: OVERVIEW for HOLE unusable: SharesOutstanding missing ('None'); Sector missing ('None')"
    )
    assert result.failures["TEXT"] == (
        "alphavantage: OVERVIEW for TEXT unusable: BookValue 'n/a' is not a number; "
        "LatestQuarter 'Q3 2024' is not a date"
    )
    assert result.failures["NEG"].endswith("BookValue '-12.85' is not positive")


def test_a_non_usd_overview_fails_rather_than_mix_currencies(market) -> None:
    with FakeAlphaVantage(market, KEY, fundamentals=with_company("TSM", Currency="TWD")) as fake:
        result = adapter(fake.url).fetch_fundamentals(["TSM"])
    assert result.frame.is_empty() and result.frame.schema == FUNDAMENTALS_SCHEMA
    assert "Currency 'TWD' is not USD" in result.failures["TSM"]


@pytest.mark.parametrize("kind", ["note", "burst"])
def test_throttle_note_is_waited_out_then_served(fake, kind) -> None:
    fake.inject(kind, times=2)
    sleeps: list[float] = []
    result = adapter(fake.url, sleeps).fetch_fundamentals(["AAPL"])
    assert result.failures == {} and result.frame["symbol"].to_list() == ["AAPL"]
    assert sleeps == [42.0, 42.0] and fake.total() == 3


def test_endless_throttling_fails_the_symbol_after_its_retries(fake) -> None:
    fake.inject("note", times=None, match=lambda r: r.query.get("symbol") == "JPM")
    result = adapter(fake.url, attempts=3).fetch_fundamentals(["JPM", "AAPL"])
    assert result.frame["symbol"].to_list() == ["AAPL"]
    assert result.failures["JPM"].startswith(
        "alphavantage: OVERVIEW for JPM failed after 3 attempt(s) (HTTP 200, Retry-After 42s): throttled"
    )


def test_daily_quota_ends_the_fetch_and_names_no_key(fake) -> None:
    fake.inject("daily_quota", times=None)
    result = adapter(fake.url, attempts=10).fetch_fundamentals(["AAPL", "JPM"])
    assert fake.total() == 1 and result.frame.is_empty()
    assert "daily request quota exhausted" in result.failures["AAPL"] and KEY not in result.failures["AAPL"]
    assert result.failures["JPM"].startswith("alphavantage: OVERVIEW for JPM not sent (no HTTP status)")


def test_api_key_never_appears_in_failures(fake) -> None:
    fake.inject("echo", times=None)  # a 400 whose body repeats the query string, apikey included
    result = adapter(fake.url).fetch_fundamentals(["AAPL", "NOPE"])
    assert set(result.failures) == {"AAPL", "NOPE"}
    for message in result.failures.values():
        assert KEY not in message and "apikey=***" in message and "HTTP 400" in message


def test_resource_serves_fundamentals_on_the_bars_key_limiter_and_policy(fake) -> None:
    resource = AlphaVantageResource(
        api_key=KEY, base_url=fake.url, requests_per_minute=7, requests_per_day=30
    )
    fundamentals = resource.fundamentals()
    assert fundamentals is resource.fundamentals()  # one adapter (and cache) per resource
    assert fundamentals.http.limiter is resource.bars().http.limiter
    assert fundamentals.http.policy == resource.bars().http.policy
    assert fundamentals.fetch_fundamentals(["JPM"]).frame["book_value"].to_list() == [116.07 * 2815300000]
    entry = vendor("alphavantage", "fundamentals")
    assert entry.pool == "alphavantage_api" and isinstance(entry.build(), AlphaVantageResource)
    with pytest.raises(ValueError, match="ALPHAVANTAGE_API_KEY"):
        AlphaVantageResource().fundamentals()


def test_sector_labels_map_to_gics_names() -> None:
    assert set(SECTOR_TO_GICS.values()) <= set(GICS_SECTORS)
    assert (
        gics_sector("LIFE SCIENCES") == "Health Care"
        and gics_sector("Consumer Defensive") == "Consumer Staples"
    )
    assert gics_sector("utilities") == "Utilities"  # GICS names pass in any case
    assert gics_sector("SPACE MINING") == "SPACE MINING"  # an unknown label is kept, not guessed

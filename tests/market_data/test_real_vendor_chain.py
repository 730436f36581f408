"""minute_bars materialised through the real vendor chain (alpaca, alphavantage, yahoo) on fakes.

Each fake serves the simulated market's true bars, so whichever vendor ends up serving, the
lake must hold exactly those bars (through the lake's storage encoding), tagged with it.
"""

from datetime import date

import dagster as dg
import polars as pl
import pytest
from dagster import DagsterInstance
from polars.testing import assert_frame_equal

from finance_dag.core.lake import Lake, canonical_types, partition_path
from finance_dag.market_data.bars import compact_for_storage, validate_bars
from finance_dag.platform.registry import BarVendorsResource, SimulatedMarketResource
from finance_dag.platform.storage import LakeResource
from finance_dag.platform.vendors import AlpacaResource, AlphaVantageResource, YahooResource
from finance_dag.sim.vendors import shared_market
from finance_dag.testing import truth_frame
from finance_dag.testing.alpaca import FakeAlpaca
from finance_dag.testing.alpha_vantage import FakeAlphaVantage
from finance_dag.testing.yahoo import FakeYahoo, isolate_yfinance_cache
from tests.support import market_data_asset

pytestmark = [
    pytest.mark.vendors,
    pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning"),
]
DAY, SYMBOL = date(2024, 11, 29), "SPY"
NOW = "2024-12-02T21:00:00+00:00"  # Yahoo's and the adapter's "today": 2024-11-29 is 3 days old
SECRETS = {
    "ALPACA_API_KEY": "AKCHAIN001",
    "ALPACA_SECRET_KEY": "sk-chain-002",
    "ALPHAVANTAGE_API_KEY": "AVCHAIN003",
}
FAST = {"timeout_s": 3.0, "max_attempts": 6, "backoff_initial_s": 0.01, "backoff_max_s": 1.0}


@pytest.fixture(scope="module", autouse=True)
def yfinance_cache(tmp_path_factory) -> None:
    isolate_yfinance_cache(str(tmp_path_factory.mktemp("yfinance")))


@pytest.fixture
def fakes(monkeypatch):
    from datetime import datetime

    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    market = shared_market(7)
    with (
        FakeAlpaca(market, SECRETS["ALPACA_API_KEY"], SECRETS["ALPACA_SECRET_KEY"]) as alpaca,
        FakeAlphaVantage(market, SECRETS["ALPHAVANTAGE_API_KEY"]) as alphavantage,
        FakeYahoo(market, datetime.fromisoformat(NOW)) as yahoo,
    ):
        yield {"alpaca": alpaca, "alphavantage": alphavantage, "yahoo": yahoo}


def bar_vendors(fakes) -> BarVendorsResource:
    return BarVendorsResource(
        vendors=["alpaca", "alphavantage", "yahoo"],
        market=SimulatedMarketResource(seed=7),
        alpaca=AlpacaResource(
            api_key=dg.EnvVar("ALPACA_API_KEY"),
            secret_key=dg.EnvVar("ALPACA_SECRET_KEY"),
            base_url=fakes["alpaca"].url,
            **FAST,
        ),
        alphavantage=AlphaVantageResource(
            api_key=dg.EnvVar("ALPHAVANTAGE_API_KEY"),
            base_url=fakes["alphavantage"].url,
            throttle_wait_s=0.01,
            **FAST,
        ),
        yahoo=YahooResource(base_url=fakes["yahoo"].url, now=NOW, **FAST),
    )


def materialize(fakes, tmp_path) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [market_data_asset("minute_bars")],
        resources={"lake": LakeResource(root=str(tmp_path)), "bar_vendors": bar_vendors(fakes)},
        partition_key=DAY.isoformat(),
        run_config={"ops": {"minute_bars": {"config": {"symbols": [SYMBOL]}}}},
        instance=DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def served(source: str) -> pl.DataFrame:
    """What the fakes serve for SPY on the day, as the lake stores it."""
    truth = truth_frame(shared_market(7), [SYMBOL], [DAY], source, with_vwap=source.startswith("alpaca"))
    valid, invalid = validate_bars(truth)
    assert invalid.is_empty()
    return canonical_types(compact_for_storage(valid.drop("date")))


@pytest.mark.chaos("vendor faults", faults="429 5xx timeout truncated throttle-note malformed vendor-down")
@pytest.mark.parametrize(
    ("dead", "faults", "source"),
    [
        ((), {"alpaca": ["429", "503", "truncated", "empty_page"]}, "alpaca:sip"),  # feed in source
        (("alpaca",), {"alphavantage": ["note", "500", "malformed"]}, "alphavantage"),
        (("alpaca", "alphavantage"), {"yahoo": ["429", "slow", "truncated"]}, "yahoo"),
    ],
)
def test_written_bars_equal_what_the_serving_fake_served(fakes, tmp_path, dead, faults, source) -> None:
    fakes["yahoo"].slow_seconds = 4.0
    for name in dead:
        fakes[name].inject("503", times=None)
    for name, kinds in faults.items():
        for kind in kinds:  # on Yahoo, the bar requests rather than yfinance's timezone probe
            fakes[name].inject(
                kind, match=(lambda r: r.query.get("interval") == "1m") if name == "yahoo" else None
            )
    result = materialize(fakes, tmp_path)
    assert result.success
    written = Lake(str(tmp_path)).read_parquet(
        partition_path("minute_bars", symbol=SYMBOL, date=DAY.isoformat())
    )
    assert_frame_equal(written, served(source), check_exact=True)
    for name in faults:
        assert sum(fakes[name].faults_served.values()) == len(faults[name])  # every fault was hit
    for name in dead:
        assert fakes[name].total() > 0


@pytest.mark.chaos("vendor faults", faults="503-every-vendor")
def test_every_vendor_down_fails_the_partition_naming_each_and_no_secret(fakes, tmp_path) -> None:
    for fake in fakes.values():
        fake.inject("503", times=None)
    result = materialize(fakes, tmp_path)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    text = str(failure.event_specific_data.error.to_string())
    for vendor in ("alpaca:", "alphavantage:", "yahoo:"):
        assert vendor in text
    assert "HTTP 503" in text and "[no bars for SPY on 2024-11-29]" in text
    assert not any(secret in text for secret in SECRETS.values())


def test_missing_credentials_fail_at_resource_setup_naming_the_variable(fakes, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ALPHAVANTAGE_API_KEY", "")
    result = materialize(fakes, tmp_path)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_failure)
    assert "ALPHAVANTAGE_API_KEY" in failure.event_specific_data.error.to_string()
    assert sum(fake.total() for fake in fakes.values()) == 0  # nothing was asked of any vendor

"""Resources per environment, from the vendor registry: the sim default needs nothing; prod
names what it misses."""

import subprocess
import sys
from pathlib import Path

import pytest

from finance_dag.core.settings import SettingError
from finance_dag.definitions import build_definitions, platform_resources
from finance_dag.defs.market_data.resources import build_resources
from finance_dag.platform.registry import AlpacaResource, bar_chain, pools, vendor_table
from tests.support import THANKSGIVING_WEEK, session_range_tags, settings_for

PROD = settings_for(ENV="prod")
CREDENTIALS = ("ALPACA_API_KEY", "ALPACA_SECRET_KEY", "ALPHAVANTAGE_API_KEY", "FRED_API_KEY")


def chain(settings) -> list[str]:
    return [v.name for v in bar_chain(settings)]


def test_vendor_order_comes_from_settings_and_the_registry():
    assert chain(settings_for()) == ["sim_alpaca", "sim_alphavantage", "sim_yahoo"]
    assert chain(PROD) == ["alpaca", "alphavantage", "yahoo"]
    assert chain(settings_for(ENV="prod", BAR_VENDORS="yahoo, alpaca")) == ["yahoo", "alpaca"]
    with pytest.raises(SettingError, match="FINANCE_DAG_BAR_VENDORS"):
        settings_for(BAR_VENDORS="alpaca,,yahoo")
    with pytest.raises(SettingError, match="FINANCE_DAG_BAR_VENDORS names unknown bars vendor 'polygon'"):
        bar_chain(settings_for(BAR_VENDORS="polygon"))


def test_prod_resources_are_real_vendors_reading_secrets_from_the_environment():
    resources = build_resources(PROD)
    vendors = resources["bar_vendors"]
    assert vendors.vendors == ["alpaca", "alphavantage", "yahoo"]
    assert isinstance(vendors.alpaca, AlpacaResource) and "fred" in platform_resources(PROD)
    assert "fred" not in platform_resources(settings_for())


def test_prod_settings_reach_every_part_of_the_code_location(tmp_path):
    """A prod Settings gets the vendor pool and the universe it names, not the sim defaults."""
    defs = build_definitions(settings_for(str(tmp_path), ENV="prod", UNIVERSE="AAPL,MSFT"))
    minute_bars = defs.resolve_assets_def("minute_bars")
    assert minute_bars.op.pool == "alpaca_api"
    assert defs.resolve_assets_def("consolidated_bars").partitions_def.get_partition_keys() == [
        "AAPL",
        "MSFT",
    ]


def test_prod_without_credentials_fails_naming_the_variable(tmp_path, instance, monkeypatch):
    for name in CREDENTIALS:
        monkeypatch.delenv(name, raising=False)
    defs = build_definitions(settings_for(str(tmp_path), ENV="prod"))
    day = THANKSGIVING_WEEK[1]
    with pytest.raises(Exception, match="ALPACA_API_KEY"):
        defs.resolve_job_def("minute_bars_job").execute_in_process(
            instance=instance, tags=session_range_tags(day, day)
        )


def test_an_empty_credential_fails_at_setup_naming_the_variable(tmp_path, instance, monkeypatch):
    monkeypatch.setenv("ALPACA_API_KEY", "")
    monkeypatch.setenv("ALPACA_SECRET_KEY", "secret-value-never-shown")
    defs = build_definitions(settings_for(str(tmp_path), ENV="prod", BAR_VENDORS="alpaca"))
    day = THANKSGIVING_WEEK[1]
    result = defs.resolve_job_def("minute_bars_job").execute_in_process(
        instance=instance, tags=session_range_tags(day, day), raise_on_error=False
    )
    messages = " ".join(str(e.event_specific_data) for e in result.all_events if e.is_failure)
    assert "ALPACA_API_KEY" in messages and "secret-value-never-shown" not in messages


def test_the_vendor_table_in_the_docs_is_the_registry():
    docs = Path(__file__).parents[2] / "docs" / "vendors.md"
    assert vendor_table() in docs.read_text(), (
        "regenerate: python -c 'from finance_dag.platform.registry import vendor_table; print(vendor_table())'"
    )


def test_every_vendor_pool_is_limited_in_the_instance_settings():
    deploy = (Path(__file__).parents[2] / "deploy" / "dagster.yaml").read_text()
    assert "default_limit: 1" in deploy and len(pools()) >= 5


@pytest.mark.cli
def test_loading_the_code_location_imports_no_vendor_sdk():
    """Every run and UI reload imports definitions: the SDKs load only when an adapter is built."""
    probe = "import sys, finance_dag.definitions; print(sorted({'alpaca', 'yfinance', 'alpha_vantage', 'fredapi', 's3fs'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

"""Resources per environment: the sim default needs nothing; prod names what it misses."""

import subprocess
import sys
from dataclasses import replace

import pytest

from finance_dag.core.settings import SettingError, load_settings
from finance_dag.definitions import build_definitions, resources_for
from finance_dag.platform.partitions import SETTINGS, session_rectangle_tags
from finance_dag.platform.vendors import AlpacaResource
from tests.support import THANKSGIVING_WEEK

PROD = replace(SETTINGS, environment="prod", bar_vendors=("alpaca", "alphavantage", "yahoo"))
CREDENTIALS = ("ALPACA_API_KEY", "ALPACA_SECRET_KEY", "ALPHAVANTAGE_API_KEY", "FRED_API_KEY")


def test_vendor_order_comes_from_settings():
    assert load_settings({}).bar_vendors == ("sim_alpaca", "sim_alphavantage", "sim_yahoo")
    prod = load_settings({"FINANCE_DAG_ENV": "prod"})
    assert prod.bar_vendors == ("alpaca", "alphavantage", "yahoo")
    assert load_settings(
        {"FINANCE_DAG_ENV": "prod", "FINANCE_DAG_BAR_VENDORS": "yahoo, alpaca"}
    ).bar_vendors == ("yahoo", "alpaca")
    with pytest.raises(SettingError, match="FINANCE_DAG_BAR_VENDORS"):
        load_settings({"FINANCE_DAG_BAR_VENDORS": "alpaca,,yahoo"})


def test_prod_resources_are_real_vendors_reading_secrets_from_the_environment():
    resources = resources_for(PROD)
    chain = resources["bar_vendors"]
    assert chain.vendors == ["alpaca", "alphavantage", "yahoo"]
    assert isinstance(chain.alpaca, AlpacaResource) and "fred" in resources
    assert "fred" not in resources_for(SETTINGS)


def test_prod_without_credentials_fails_naming_the_variable(tmp_path, instance, monkeypatch):
    for name in CREDENTIALS:
        monkeypatch.delenv(name, raising=False)
    defs = build_definitions(replace(PROD, storage=str(tmp_path)))
    day = THANKSGIVING_WEEK[1]
    with pytest.raises(Exception, match="ALPACA_API_KEY"):
        defs.resolve_job_def("minute_bars_job").execute_in_process(
            instance=instance, tags=session_rectangle_tags(day, day)
        )


def test_an_empty_credential_fails_at_setup_naming_the_variable(tmp_path, instance, monkeypatch):
    monkeypatch.setenv("ALPACA_API_KEY", "")
    monkeypatch.setenv("ALPACA_SECRET_KEY", "secret-value-never-shown")
    defs = build_definitions(replace(PROD, storage=str(tmp_path), bar_vendors=("alpaca",)))
    day = THANKSGIVING_WEEK[1]
    result = defs.resolve_job_def("minute_bars_job").execute_in_process(
        instance=instance, tags=session_rectangle_tags(day, day), raise_on_error=False
    )
    messages = " ".join(str(e.event_specific_data) for e in result.all_events if e.is_failure)
    assert "ALPACA_API_KEY" in messages and "secret-value-never-shown" not in messages


def test_loading_the_code_location_imports_no_vendor_sdk():
    """Every run and UI reload imports definitions: the SDKs load only when an adapter is built."""
    probe = "import sys, finance_dag.definitions; print(sorted({'alpaca', 'yfinance', 'alpha_vantage', 'fredapi', 's3fs'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

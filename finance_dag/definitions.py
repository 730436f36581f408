"""The finance_dag code location: assets, checks, jobs, schedules, sensors and resources.

``FINANCE_DAG_ENV`` picks the resource set in one place (``resources_for``): ``sim`` (default)
runs on the simulated market with no keys and no network.
"""

import dagster as dg

from finance_dag.core.settings import Settings
from finance_dag.defs.market_data import assets as market_data
from finance_dag.defs.market_data import automation
from finance_dag.platform.bar_vendors import BarVendorsResource
from finance_dag.platform.market import SimulatedMarketResource
from finance_dag.platform.partitions import SETTINGS
from finance_dag.platform.storage import LakeIOManager, LakeResource
from finance_dag.platform.vendors import AlpacaResource, AlphaVantageResource, FredResource, YahooResource


def bar_vendors_for(settings: Settings) -> BarVendorsResource:
    """The vendor chain named by ``FINANCE_DAG_BAR_VENDORS``; real vendors read secrets via EnvVar."""
    real = {
        "alpaca": lambda: AlpacaResource(
            api_key=dg.EnvVar("ALPACA_API_KEY"), secret_key=dg.EnvVar("ALPACA_SECRET_KEY")
        ),
        "alphavantage": lambda: AlphaVantageResource(api_key=dg.EnvVar("ALPHAVANTAGE_API_KEY")),
        "yahoo": YahooResource,
    }
    nested = {name: real[name]() for name in settings.bar_vendors if name in real}
    return BarVendorsResource(vendors=list(settings.bar_vendors), market=SimulatedMarketResource(), **nested)


def resources_for(settings: Settings) -> dict[str, object]:
    """The resources of one environment: the lake always, vendors by ``settings.environment``."""
    lake = LakeResource(root=settings.storage)
    resources: dict[str, object] = {
        "lake": lake,
        "io_manager": LakeIOManager(lake=lake),
        "bar_vendors": bar_vendors_for(settings),
    }
    if settings.environment == "prod":
        resources["fred"] = FredResource(api_key=dg.EnvVar("FRED_API_KEY"))
    return resources


def build_definitions(settings: Settings, **resource_overrides: object) -> dg.Definitions:
    """The code location for ``settings``; tests and notebooks may override single resources."""
    return dg.Definitions(
        assets=dg.load_assets_from_modules([market_data]),
        asset_checks=dg.load_asset_checks_from_modules([market_data]),
        jobs=[
            automation.minute_bars_job,
            automation.daily_market_data_job,
            automation.coverage_report_job,
            automation.consolidate_job,
        ],
        schedules=[automation.after_close_schedule],
        sensors=[automation.low_coverage_refill, automation.market_data_automation],
        resources={**resources_for(settings), **resource_overrides},
    )


defs = build_definitions(SETTINGS)

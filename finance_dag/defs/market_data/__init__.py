"""Dagster wiring of the market-data domain (pure logic lives in ``finance_dag.market_data``)."""

import dagster as dg

from finance_dag.core.settings import Settings
from finance_dag.defs.market_data.assets import build_assets
from finance_dag.defs.market_data.automation import (
    build_after_close_schedule,
    build_automation_sensor,
    build_jobs,
    build_refill_sensor,
)
from finance_dag.defs.market_data.checks import build_checks
from finance_dag.defs.market_data.resources import build_resources
from finance_dag.platform.partitions import DomainPartitions


def build_defs(settings: Settings) -> dg.Definitions:
    """Every market-data asset, check, job, schedule, sensor and resource for ``settings``."""
    parts = DomainPartitions(settings.market_data)
    return dg.Definitions(
        assets=build_assets(settings, parts),
        asset_checks=build_checks(settings, parts),
        jobs=build_jobs(),
        schedules=[build_after_close_schedule()],
        sensors=[build_refill_sensor(settings), build_automation_sensor()],
        resources=build_resources(settings),
    )

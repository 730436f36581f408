"""Dagster wiring of the securities-lending domain (pure logic lives in ``finance_dag.lending``)."""

import dagster as dg

from finance_dag.core.settings import Settings
from finance_dag.defs.lending.assets import build_assets
from finance_dag.defs.lending.automation import build_inbox_sensor, build_jobs, build_schedule
from finance_dag.defs.lending.checks import build_checks
from finance_dag.defs.lending.resources import build_resources
from finance_dag.platform.partitions import DomainPartitions


def build_defs(settings: Settings) -> dg.Definitions:
    """The lending assets, checks, job, schedule, inbox sensor and resources for ``settings``."""
    parts = DomainPartitions(settings.lending)
    return dg.Definitions(
        assets=build_assets(settings, parts),
        asset_checks=build_checks(parts),
        jobs=build_jobs(),
        schedules=[build_schedule()],
        sensors=[build_inbox_sensor(settings)],
        resources=build_resources(settings),
    )

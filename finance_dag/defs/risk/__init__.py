"""Dagster wiring of the risk domain (pure logic lives in ``finance_dag.risk``)."""

import dagster as dg

from finance_dag.core.settings import Settings
from finance_dag.defs.risk.assets import build_assets
from finance_dag.defs.risk.automation import build_jobs, build_schedules
from finance_dag.defs.risk.checks import build_checks
from finance_dag.defs.risk.resources import build_resources
from finance_dag.platform.partitions import DomainPartitions


def build_defs(settings: Settings) -> dg.Definitions:
    """The risk assets, checks, jobs, schedule and resources for ``settings``."""
    parts = DomainPartitions(settings.risk)
    return dg.Definitions(
        assets=build_assets(settings, parts),
        asset_checks=build_checks(parts),
        jobs=build_jobs(),
        schedules=build_schedules(),
        resources=build_resources(settings),
    )

"""Dagster wiring of strategy research (pure logic lives in ``finance_dag.strategies``)."""

import dagster as dg

from finance_dag.core.settings import Settings
from finance_dag.defs.strategies.assets import build_assets
from finance_dag.defs.strategies.automation import build_jobs
from finance_dag.defs.strategies.checks import build_checks
from finance_dag.platform.partitions import DomainPartitions


def build_defs(settings: Settings) -> dg.Definitions:
    """The strategy backtests and report over the market-data domain's lake and window."""
    return dg.Definitions(
        assets=build_assets(settings, DomainPartitions(settings.market_data)),
        asset_checks=build_checks(),
        jobs=build_jobs(),
    )

"""Dagster wiring of the ETF domain (pure logic lives in ``finance_dag.etf``, ``finance_dag.backtest``
and ``finance_dag.brokers``)."""

import dagster as dg

from finance_dag.core.settings import Settings
from finance_dag.defs.etf.assets import build_assets
from finance_dag.defs.etf.automation import build_jobs, build_schedules
from finance_dag.defs.etf.checks import build_checks
from finance_dag.defs.etf.execution import execute_trades
from finance_dag.defs.etf.portfolio import build_portfolio_assets
from finance_dag.defs.etf.resources import build_resources
from finance_dag.platform.partitions import DomainPartitions


def build_defs(settings: Settings) -> dg.Definitions:
    """The ETF assets, checks, jobs, schedule and resources for ``settings``."""
    parts = DomainPartitions(settings.etf)
    upstream = build_assets(settings, parts)
    return dg.Definitions(
        assets=[*upstream, *build_portfolio_assets(settings, parts, upstream)],
        asset_checks=build_checks(parts),
        jobs=[*build_jobs(), execute_trades],
        schedules=build_schedules(),
        resources=build_resources(settings),
    )

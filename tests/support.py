"""Helpers shared by tests: the real code location on a temporary lake, and running its jobs."""

from dataclasses import replace
from datetime import date

import dagster as dg

from finance_dag.definitions import build_definitions
from finance_dag.platform.bar_vendors import BarVendorsResource
from finance_dag.platform.market import SimulatedMarketResource
from finance_dag.platform.partitions import SETTINGS

THANKSGIVING_WEEK = (date(2024, 11, 27), date(2024, 11, 29))  # a full day, a holiday, an early close


def make_defs(root: str, fail_symbol_days: list[str] | None = None, **overrides) -> dg.Definitions:
    """The real code location on a lake at ``root``, optionally with injected vendor failures."""
    vendors = BarVendorsResource(market=SimulatedMarketResource(), fail_symbol_days=fail_symbol_days or [])
    return build_definitions(replace(SETTINGS, storage=str(root)), bar_vendors=vendors, **overrides)


def run_job(defs: dg.Definitions, instance, job: str, tags: dict[str, str] | None = None, ok: bool = True):
    result = defs.resolve_job_def(job).execute_in_process(
        instance=instance, tags=tags or {}, raise_on_error=False
    )
    assert result.success is ok, [e.message for e in result.all_events if e.is_failure]
    return result

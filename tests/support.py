"""Helpers shared by tests: pinned settings, the real code location on a temporary lake, jobs.

Tests never read the developer's ``FINANCE_DAG_*`` variables: ``SETTINGS`` is built from an
empty environment, and ``make_defs`` changes only the lake root (and injected faults).
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

import dagster as dg

from finance_dag.core import calendar
from finance_dag.core.settings import Settings, load_settings
from finance_dag.definitions import build_definitions
from finance_dag.defs.market_data.assets import build_assets
from finance_dag.platform.partitions import DomainPartitions, range_tags, session_range_tags
from finance_dag.platform.registry import BarVendorsResource, SimulatedMarketResource

THANKSGIVING_WEEK = (date(2024, 11, 27), date(2024, 11, 29))  # a full day, a holiday, an early close


def settings_for(root: str = "./data", **env: str) -> Settings:
    """Settings from nothing but ``env`` (``FINANCE_DAG_`` prefix added) and the lake root."""
    return load_settings(
        {"FINANCE_DAG_STORAGE": str(root), **{f"FINANCE_DAG_{k}": v for k, v in env.items()}}
    )


SETTINGS = settings_for()
SYMBOLS = SETTINGS.market_data.universe
PARTS = DomainPartitions(SETTINGS.market_data)


def market_data_asset(name: str) -> dg.AssetsDefinition:
    """One market-data asset built from the pinned settings (for ``dg.materialize``)."""
    return next(a for a in build_assets(SETTINGS, PARTS) if a.key.to_user_string() == name)


# A short ETF history for tests: a year of lookback before the backtest's first rebalance.
ETF_WINDOW = {"ETF_START_DATE": "2023-09-01", "ETF_END_DATE": "2024-11-29"}
# A short risk window: exposures read their price history from the resource; 70 sessions of
# factor returns give ETFs their returns-based exposures (60 at least).
RISK_WINDOW = {"RISK_START_DATE": "2024-08-20", "RISK_END_DATE": "2024-11-29"}


def make_defs(
    root: str, fail_symbol_days: list[str] | None = None, env: dict[str, str] | None = None, **overrides
) -> dg.Definitions:
    """The real code location on a lake at ``root`` (settings from ``env``, ``FINANCE_DAG_``
    prefix added), optionally with injected vendor failures."""
    vendors = BarVendorsResource(market=SimulatedMarketResource(), fail_symbol_days=fail_symbol_days or [])
    return build_definitions(settings_for(root, **(env or {})), bar_vendors=vendors, **overrides)


def materialise_etf(defs: dg.Definitions, instance, day: date) -> None:
    """The ETF domain on a fresh lake as a user runs it: the day's universe, the price history of
    ``ETF_WINDOW`` in one run, the day's pipeline, then its trade plan."""
    first = date.fromisoformat(ETF_WINDOW["ETF_START_DATE"])
    run_universe(defs, instance, day)
    run_job(defs, instance, "etf_history_job", session_range_tags(first, day))
    run_job(defs, instance, "etf_job", {"dagster/partition": day.isoformat()})
    run_job(defs, instance, "trade_plan_job", {"dagster/partition": day.isoformat()})


def materialise_risk(defs: dg.Definitions, instance, day: date) -> None:
    """The risk domain after the ETF domain's session: the factor history of ``RISK_WINDOW`` in
    one run, then the session's group."""
    first = date.fromisoformat(RISK_WINDOW["RISK_START_DATE"])
    previous = calendar.sessions(first, day)[-2]
    run_job(defs, instance, "risk_history_job", session_range_tags(first, previous))
    run_job(defs, instance, "risk_job", {"dagster/partition": day.isoformat()})


def materialise_market_data(defs: dg.Definitions, instance, first: date, last: date) -> None:
    """Minute bars, daily bars, the consolidated lake and the coverage report of ``first..last``
    (each ranged job in one run), as the strategies read them."""
    run_job(defs, instance, "minute_bars_job", session_range_tags(first, last))
    run_job(defs, instance, "daily_market_data_job", session_range_tags(first, last))
    keys = defs.resolve_assets_def("consolidated_bars").partitions_def.get_partition_keys()
    run_job(defs, instance, "consolidate_job", range_tags(keys[0], keys[-1]))
    run_job(defs, instance, "coverage_report_job")


def strategy_config(train: int = 20, test: int = 5, **extra: object) -> dict:
    """Run config of ``strategy_backtests`` with short walk-forward windows (and ``extra`` fields)."""
    return {
        "ops": {"strategy_backtests": {"config": {"train_sessions": train, "test_sessions": test, **extra}}}
    }


def materialise_strategies(defs: dg.Definitions, instance, run_config: dict | None = None, ok: bool = True):
    """Every strategy's backtest and the report in one run (the static partitions as one range)."""
    keys = defs.resolve_assets_def("strategy_backtests").partitions_def.get_partition_keys()
    return run_job(
        defs, instance, "strategies_job", range_tags(keys[0], keys[-1]), ok, run_config or strategy_config()
    )


def run_universe(defs: dg.Definitions, instance, day: date, ok: bool = True):
    """Materialise ``etf_universe`` alone for ``day``."""
    return run_job(defs, instance, "etf_universe_job", {"dagster/partition": day.isoformat()}, ok=ok)


def run_job(
    defs: dg.Definitions,
    instance,
    job: str,
    tags: dict[str, str] | None = None,
    ok: bool = True,
    run_config: dict | None = None,
):
    result = defs.resolve_job_def(job).execute_in_process(
        instance=instance, tags=tags or {}, raise_on_error=False, run_config=run_config
    )
    assert result.success is ok, failure_messages(result)
    return result


def failure_messages(result) -> list[str]:
    """Each failure event's message, with the error a failed step raised."""
    return [
        f"{e.message} {e.event_specific_data.error.message}" if e.is_step_failure else e.message
        for e in result.all_events
        if e.is_failure
    ]


@contextmanager
def ui_workspace(tmp_path, monkeypatch, **env: str) -> Iterator[tuple[object, dg.DagsterInstance]]:
    """A code server on the real code location (as ``dagster dev`` starts it) with ``env``
    (``FINANCE_DAG_`` prefix added, the lake under ``tmp_path``) and an instance that launches
    runs at once: for ``platform.ui_backfill``."""
    from dagster._core.test_utils import create_test_daemon_workspace_context
    from dagster._core.workspace.load_target import ModuleTarget

    from finance_dag.platform.ui_backfill import INSTANCE_OVERRIDES

    for name, value in {"STORAGE": str(tmp_path / "lake"), **env}.items():
        monkeypatch.setenv(f"FINANCE_DAG_{name}", value)  # the code server inherits them
    os.makedirs(tmp_path / "home")
    target = ModuleTarget("finance_dag.definitions", None, os.getcwd(), "finance_dag")
    with (
        dg.instance_for_test(temp_dir=str(tmp_path / "home"), overrides=INSTANCE_OVERRIDES) as instance,
        create_test_daemon_workspace_context(target, instance) as workspace,
    ):
        assert workspace.create_request_context().get_code_location_error("finance_dag") is None
        yield workspace, instance

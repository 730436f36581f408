"""A run that dies without cleanup: its pool slot is freed and what it wrote is recorded.

The first test kills a real run worker (launched as the daemon launches queued runs, through a
code server, on an instance configured by ``deploy/dagster.yaml``); the others drive the
``recover_killed_runs`` sensor in-process on made-up failed runs.
"""

import os
import shutil
import signal
import time
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from dagster._core.events import DagsterEvent, DagsterEventType

from finance_dag.core.lake import Lake, partition_path
from finance_dag.definitions import build_definitions
from finance_dag.platform.partitions import run_partition_keys
from finance_dag.platform.recovery import writes_own_partitions
from finance_dag.platform.storage import LakeResource
from tests.support import SYMBOLS, make_defs, session_range_tags, settings_for

REPO = Path(__file__).parents[2]
MINUTE_BARS = dg.AssetKey("minute_bars")


def evaluate(defs: dg.Definitions, instance, lake_root: str, cursor: str | None = None) -> dg.SensorResult:
    """One tick of ``recover_killed_runs``, recording its asset events as the sensor daemon does."""
    sensor = defs.resolve_sensor_def("recover_killed_runs")
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"lake": LakeResource(root=lake_root)}, definitions=defs
    )
    result = sensor(context)
    for event in result.asset_events:
        instance.report_runless_asset_event(event)
    return result


def recovered(result: dg.SensorResult) -> dict[str, str]:
    return {e.partition: e.metadata["recovered_from_run"].value for e in result.asset_events}


def started_run(defs: dg.Definitions, instance, tags: dict[str, str]) -> dg.DagsterRun:
    """A minute_bars run record that has started (its worker will never report again)."""
    run = instance.create_run_for_job(defs.resolve_job_def("minute_bars_job"), tags=tags)
    instance.report_dagster_event(
        DagsterEvent(DagsterEventType.RUN_START.value, job_name=run.job_name), run_id=run.run_id
    )
    return instance.get_run_by_id(run.run_id)


def write_files(lake: Lake, day: date, symbols, age_seconds: float = 0) -> None:
    """minute_bars files of ``symbols`` on ``day`` (written ``age_seconds`` ago)."""
    for symbol in symbols:
        path = partition_path("minute_bars", symbol=symbol, date=day.isoformat())
        lake.write_parquet(path, pl.DataFrame({"x": [1]}))
        if age_seconds:
            then = time.time() - age_seconds
            os.utime(lake.uri(path), (then, then))


D1, D2, D3, D4 = date(2024, 11, 25), date(2024, 11, 26), date(2024, 11, 27), date(2024, 11, 29)


@pytest.mark.chaos("run worker SIGKILL", faults="killed-mid-session")
def test_the_sensor_records_the_sessions_a_failed_run_wrote_whole_once(tmp_path, instance):
    root = str(tmp_path / "lake")
    defs, lake = make_defs(root), Lake(root)
    write_files(lake, D4, SYMBOLS, age_seconds=3600)  # an earlier run's files
    run = started_run(defs, instance, session_range_tags(D1, D4))
    write_files(lake, D1, SYMBOLS)
    write_files(lake, D2, SYMBOLS)
    write_files(lake, D3, SYMBOLS[:5])  # killed while writing this session
    instance.report_runless_asset_event(dg.AssetMaterialization(MINUTE_BARS, partition=str(D2)))
    instance.report_run_failed(run)
    ok = started_run(defs, instance, session_range_tags(D4, D4))  # succeeded: never looked at
    write_files(lake, D4, SYMBOLS)
    instance.report_dagster_event(
        DagsterEvent(DagsterEventType.RUN_SUCCESS.value, job_name=ok.job_name), run_id=ok.run_id
    )

    first = evaluate(defs, instance, root)
    assert recovered(first) == {str(D1): run.run_id}
    (event,) = first.asset_events
    assert event.metadata["path"].value == lake.uri(f"minute_bars/symbol=*/date={D1}.parquet")
    assert instance.get_materialized_partitions(MINUTE_BARS) == {str(D1), str(D2)}

    again = evaluate(defs, instance, root, cursor=first.cursor)
    assert not again.asset_events and again.cursor in (None, first.cursor)
    from_scratch = evaluate(defs, instance, root)  # even without the cursor: never twice
    assert not from_scratch.asset_events


def test_single_file_partitions_and_single_partition_runs(tmp_path, instance):
    root = str(tmp_path / "lake")
    defs, lake = make_defs(root), Lake(root)
    job = defs.resolve_job_def("daily_market_data_job")
    run = instance.create_run_for_job(job, tags=session_range_tags(D1, D3))
    instance.report_dagster_event(
        DagsterEvent(DagsterEventType.RUN_START.value, job_name=run.job_name), run.run_id
    )
    for asset, day in [("daily_bars", D1), ("daily_bars", D2), ("bar_coverage", D1)]:
        lake.write_parquet(partition_path(asset, date=day.isoformat()), pl.DataFrame({"x": [1]}))
    instance.report_run_failed(run)
    single = instance.create_run_for_job(job, tags={"dagster/partition": str(D4)})
    instance.report_dagster_event(
        DagsterEvent(DagsterEventType.RUN_START.value, job_name=job.name), single.run_id
    )
    lake.write_parquet(partition_path("bar_coverage", date=D4.isoformat()), pl.DataFrame({"x": [1]}))
    instance.report_run_canceled(single)

    result = evaluate(defs, instance, root)
    by_asset = {(e.asset_key.to_user_string(), e.partition) for e in result.asset_events}
    assert by_asset == {
        ("daily_bars", str(D1)), ("daily_bars", str(D2)), ("bar_coverage", str(D1)), ("bar_coverage", str(D4))
    }  # fmt: skip
    own = {a.key.to_user_string() for a in defs.assets if writes_own_partitions(a)}
    assert own == {
        "minute_bars", "daily_bars", "bar_coverage", "consolidated_bars", "lending_snapshots", "lending_factors",
        "extended_lending_factors", "lending_prices", "squeeze_scores", "daily_digest", "etf_universe",
        "etf_prices", "etf_factor_scores", "target_portfolio", "portfolio_backtest", "factor_exposures",
        "factor_returns", "factor_covariance", "strategy_backtests",
    }  # fmt: skip


def _worker_pids(instance, run_id: str) -> list[int] | None:
    """The run worker's pid and its step worker's (the multiprocess executor runs the step in a
    child process), once both have started; never the code server's or this process's."""
    pids, step_started = set(), False
    for record in instance.get_records_for_run(run_id).records:
        event = record.event_log_entry.dagster_event
        if event is None:
            continue
        if event.event_type == DagsterEventType.ENGINE_EVENT and "pid" in event.engine_event_data.metadata:
            pids.add(int(event.engine_event_data.metadata["pid"].value))  # "Started process for run"
        elif event.event_type == DagsterEventType.STEP_START:
            pids.add(event.pid)
            step_started = True
    return sorted(pids) if step_started else None


def _wait(what: str, condition, timeout: float, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.mark.chaos("run worker SIGKILL", faults="SIGKILL")
@pytest.mark.cli
def test_a_sigkilled_run_frees_its_pool_slot_and_what_it_wrote_is_recorded(tmp_path, monkeypatch):
    from dagster._cli.job import _create_run
    from dagster._core.instance.ref import InstanceRef
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import ModuleTarget
    from dagster._daemon.daemon import MonitoringDaemon
    from dagster._daemon.monitoring import concurrency as slot_monitoring
    from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon
    from dagster._time import get_current_datetime

    home, root = tmp_path / "home", str(tmp_path / "lake")
    home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    env = {"UNIVERSE": "full", "START_DATE": "2024-10-01", "END_DATE": "2024-12-31"}
    for name, value in {"STORAGE": root, **env}.items():  # the code server and run worker inherit these
        monkeypatch.setenv(f"FINANCE_DAG_{name}", value)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    settings = settings_for(root, **env)
    symbols = settings.market_data.universe
    tags = session_range_tags(date(2024, 10, 1), date(2024, 11, 27))  # 42 sessions x 96 symbols
    defs = build_definitions(settings)
    lake = Lake(root)

    with (
        dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance,
        WorkspaceProcessContext(
            instance, ModuleTarget("finance_dag.definitions", None, str(REPO), "finance_dag")
        ) as process,
    ):
        assert instance.run_monitoring_enabled
        pool = defs.resolve_assets_def("minute_bars").op.pool
        workspace = process.create_request_context()
        location = workspace.get_code_location("finance_dag")
        repo = next(iter(location.get_repositories().values()))
        remote_job = repo.get_full_job("minute_bars_job")
        run = _create_run(
            instance=instance, code_location=location, remote_repo=repo, remote_job=remote_job,
            run_config={}, tags=tags, op_selection=None, run_id=None,
        )  # fmt: skip
        instance.submit_run(run.run_id, workspace)  # queued, as from the UI or `dagster job launch`
        list(QueuedRunCoordinatorDaemon(interval_seconds=1).run_iteration(process))  # the daemon launches it

        pids = _wait("the workers' pids", lambda: _worker_pids(instance, run.run_id), 120)
        enough = 2 * len(symbols) + 10  # two sessions whole, the third begun
        _wait("the run to write files", lambda: len(lake.list_files("minute_bars")) >= enough, 120, 0.1)
        claimed = instance.event_log_storage.get_concurrency_info(pool).claimed_slots
        assert [s.run_id for s in claimed] == [run.run_id]
        for pid in pids:  # the whole run dies at once, as on OOM or a lost host: nothing cleans up
            os.kill(pid, signal.SIGKILL)

        # The code server sees its run worker gone and fails the run (the default launcher has no
        # health check); the slot stays claimed until the monitoring daemon frees it.
        _wait(
            "the run to be marked failed",
            lambda: instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE,
            timeout=30,
        )
        assert instance.event_log_storage.get_concurrency_info(pool).claimed_slots
        delay = instance.run_monitoring_settings["free_slots_after_run_end_seconds"]
        later = get_current_datetime() + timedelta(seconds=delay + 1)  # instead of waiting that long
        monkeypatch.setattr(slot_monitoring, "get_current_datetime", lambda: later)
        list(MonitoringDaemon(interval_seconds=1).run_iteration(process))
        assert not instance.event_log_storage.get_concurrency_info(pool).claimed_slots

    by_day: dict[str, list[float]] = {}
    for info in lake.list_files("minute_bars"):
        by_day.setdefault(info.path.split("date=")[1].removesuffix(".parquet"), []).append(
            lake.modified(info.path)
        )
    last = max(by_day, key=lambda d: max(by_day[d]))  # the session it was writing: maybe partial
    whole = {d for d, times in by_day.items() if len(times) == len(symbols)} - {last}
    assert len(whole) >= 1
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        assert not instance.get_materialized_partitions(MINUTE_BARS)  # the killed run recorded none
        result = evaluate(defs, instance, root)
        assert recovered(result) == {d: run.run_id for d in whole}
        targeted = set(run_partition_keys(run, defs.resolve_assets_def("minute_bars").partitions_def))
        missing = targeted - instance.get_materialized_partitions(MINUTE_BARS)
        assert len(targeted) == 42 and missing == targeted - whole

        # The pool is free again: the next minute_bars run gets its slot and completes.
        day = date(2024, 11, 15)
        done = defs.resolve_job_def("minute_bars_job").execute_in_process(
            instance=instance, tags=session_range_tags(day, day)
        )
        assert done.success and str(day) in instance.get_materialized_partitions(MINUTE_BARS)

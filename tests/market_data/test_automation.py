"""The after-close schedule, the low-coverage refill sensor and the CLI range backfill."""

import json
import os
import subprocess
import sys
from datetime import datetime

import dagster as dg
import polars as pl
import pytest

from finance_dag.core.calendar import NEW_YORK
from finance_dag.core.lake import Lake
from finance_dag.defs.market_data import automation
from finance_dag.platform.storage import LakeResource
from tests.support import SETTINGS, SYMBOLS, make_defs, run_job, session_range_tags


def evaluate_schedule(when: datetime):
    schedule = automation.build_after_close_schedule()
    repository = make_defs("unused").get_repository_def()
    context = dg.build_schedule_context(scheduled_execution_time=when, repository_def=repository)
    return schedule.evaluate_tick(context)


def test_schedule_requests_the_session_that_just_closed_for_every_symbol():
    result = evaluate_schedule(datetime(2024, 11, 29, 20, 15, tzinfo=NEW_YORK))
    (request,) = result.run_requests
    assert request.partition_key == "2024-11-29" and not request.run_config  # every symbol


def test_schedule_skips_weekday_holidays():
    result = evaluate_schedule(datetime(2024, 11, 28, 20, 15, tzinfo=NEW_YORK))
    assert not result.run_requests and "2024-11-28 is not an XNYS session" in result.skip_message


def write_coverage(root: str, day: str, coverage: dict[str, float]) -> None:
    frame = pl.DataFrame(
        {
            "date": [datetime.fromisoformat(day).date()] * len(coverage),
            "symbol": list(coverage),
            "coverage": list(coverage.values()),
        }  # fmt: skip
    )
    Lake(root).write_parquet(f"bar_coverage/date={day}.parquet", frame)


def test_refill_sensor_requests_low_partitions_at_most_twice(tmp_path):
    root = str(tmp_path)
    write_coverage(root, "2024-11-27", {"SPY": 0.99, "XLE": 0.60})
    write_coverage(root, "2024-11-29", {"SPY": 0.40, "XLE": 0.97})
    lake = LakeResource(root=root)
    cursor = None
    requested = []
    for _ in range(3):
        context = dg.build_sensor_context(cursor=cursor, resources={"lake": lake})
        result = automation.build_refill_sensor(SETTINGS)(context)
        requested.append(
            [
                (r.partition_key, r.run_config["ops"]["minute_bars"]["config"]["symbols"])
                for r in result.run_requests or []
            ]
        )
        cursor = result.cursor or cursor
    assert requested[0] == [("2024-11-27", ["XLE"]), ("2024-11-29", ["SPY"])]  # one run per session
    assert requested[1] == requested[0] and requested[2] == []
    assert json.loads(cursor) == {"2024-11-29|SPY": 2, "2024-11-27|XLE": 2}


@pytest.mark.cli
def test_cli_partition_range_materialises_sessions_for_the_named_symbols(tmp_path):
    env = dict(os.environ, DAGSTER_HOME=str(tmp_path / "home"), FINANCE_DAG_STORAGE=str(tmp_path / "lake"))
    assert not any(name.startswith("FINANCE_DAG_") and name != "FINANCE_DAG_STORAGE" for name in env)
    os.makedirs(env["DAGSTER_HOME"])
    config = {"ops": {"minute_bars": {"config": {"symbols": list(SYMBOLS[:2])}}}}
    command = [
        sys.executable, "-m", "dagster", "asset", "materialize", "-m", "finance_dag.definitions",
        "--select", "minute_bars", "--partition-range", "2024-11-27...2024-11-29",
        "--config-json", json.dumps(config),
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    files = sorted(f.path for f in Lake(env["FINANCE_DAG_STORAGE"]).list_files("minute_bars"))
    assert files == sorted(
        f"minute_bars/symbol={s}/date={d}.parquet" for s in SYMBOLS[:2] for d in ("2024-11-27", "2024-11-29")
    )


def test_new_minute_bars_trigger_the_research_layout_and_nothing_before(defs, instance):

    def requested(result, asset: str) -> set:
        return set(result.get_requested_partitions(dg.AssetKey(asset)))

    first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    assert first.total_requested == 0
    day = datetime(2024, 11, 29).date()
    run_job(defs, instance, "minute_bars_job", session_range_tags(day, day))
    second = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    assert requested(second, "consolidated_bars") == set(SYMBOLS)
    assert requested(second, "coverage_report") == set()  # waits for bar_coverage
    assert requested(second, "daily_bars") == set()  # 2024-11-29 is not the latest session

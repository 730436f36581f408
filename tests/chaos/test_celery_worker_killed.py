"""A Celery worker killed with SIGKILL while it executes a step, on the production profile:
PostgreSQL and Redis on loopback, the lake on the S3-API server, two Celery workers, and a
42-session minute_bars backfill run through ``dagster job execute`` (``FINANCE_DAG_EXECUTOR=celery``),
set up with ``tests/platform/test_production.py``'s helpers.

Once the worker that logged "received" for the step has written the first chunk of 20 sessions
(recorded as materialised) and begun the second:

- ``step-process``: the process executing the step (its prefork pool process, the pid of the
  step's STEP_START event) is killed. The worker's main process sees it die; Celery fails the
  task with ``WorkerLostError`` and, ``task_acks_late`` notwithstanding, acknowledges it
  (``task_reject_on_worker_lost`` is off): no redelivery, the run fails at once naming the signal.
- ``whole-worker``: the worker's whole process group (main process and pool: a lost node) is
  killed. Nothing acknowledges or rejects the task: Redis redelivers an unacknowledged message only
  after the transport's ``visibility_timeout`` (one hour by default), so the run waits. The test
  gives it ``HANG_SECONDS``, then terminates the CLI (the executor revokes the task and the run
  ends FAILURE) and reports the wait as an expected failure (xfail) once everything else holds.

Either way the 20 recorded sessions stay recorded, every object in the lake is a whole file,
and a re-run of the 22 missing sessions on the remaining workers makes the lake equal to the
fault-free one, row for row, with no duplicate.
"""

import json
import logging
import os
import signal
import subprocess
from datetime import date, timedelta
from pathlib import Path
from types import SimpleNamespace

import boto3
import dagster as dg
import pytest
from dagster._core.events import DagsterEventType
from dagster._core.instance.ref import InstanceRef

from finance_dag.core import calendar
from finance_dag.core.lake import Lake
from tests.chaos.support import assert_nothing_partial, compare
from tests.platform import test_production as production
from tests.platform.test_killed_runs import _wait as wait
from tests.support import make_defs, session_range_tags

pytestmark = [pytest.mark.chaos("Celery worker SIGKILL"), pytest.mark.prod, pytest.mark.s3, pytest.mark.cli]

servers = production.servers  # PostgreSQL and Redis for this module (a fixture)
SESSIONS = [d.isoformat() for d in calendar.sessions(production.FIRST, production.DAY)]  # 42
SYMBOLS = production.WINDOW["UNIVERSE"].split(",")
CHUNK = 20  # finance_dag.defs.market_data.assets.CHUNK_SESSIONS: recorded before the next starts
KILL_AFTER_FILES = (CHUNK + 2) * len(SYMBOLS)  # the first chunk recorded, the second being written
HANG_SECONDS = 30  # a step-process kill fails the run in ~5 s
CASE_TAG = "finance_dag/chaos_case"


def start_run(tags: dict[str, str], env: dict, log: Path) -> subprocess.Popen:
    """``dagster job execute`` of minute_bars_job in the background, in a process group of its own
    (``production.execute`` waits for the run and requires success)."""
    command = [str(production.REPO / ".venv/bin/dagster"), "job", "execute", "-m", "finance_dag.definitions",
               "-j", "minute_bars_job", "--tags", json.dumps(tags)]  # fmt: skip
    with open(log, "wb") as out:
        return subprocess.Popen(
            command,
            cwd=production.REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def defs_pool() -> str:
    """The concurrency pool minute_bars claims a slot of (its primary vendor's)."""
    return make_defs("unused", env=production.WINDOW).resolve_assets_def("minute_bars").op.pool


def free_slots_of_ended_runs(instance, monkeypatch) -> None:
    """One iteration of the monitoring daemon's slot monitor (``dagster-daemon run``), as if
    ``free_slots_after_run_end_seconds`` had passed since the run ended."""
    from dagster._daemon.monitoring import concurrency as slot_monitoring
    from dagster._time import get_current_datetime

    delay = instance.run_monitoring_settings["free_slots_after_run_end_seconds"]
    later = get_current_datetime() + timedelta(seconds=delay + 1)
    with monkeypatch.context() as patch:
        patch.setattr(slot_monitoring, "get_current_datetime", lambda: later)
        list(
            slot_monitoring.execute_concurrency_slots_iteration(
                SimpleNamespace(instance=instance), logging.getLogger()
            )
        )


def took_the_step(logs: list[Path]) -> tuple[int] | None:
    """``(k,)`` for the worker whose log says it received the step's task (a main process logs it)."""
    for k, log in enumerate(logs):
        if "received" in log.read_text(errors="replace"):
            return (k,)
    return None


def run_events(instance, run_id: str, kind: DagsterEventType) -> list:
    records = instance.get_records_for_run(run_id, of_type=kind).records
    return [r.event_log_entry for r in records]


def objects(s3, bucket: str) -> int:
    return s3.list_objects_v2(Bucket=bucket, Prefix="lake/minute_bars/").get("KeyCount", 0)


@pytest.mark.parametrize("kill", ["step-process", "whole-worker"])
def test_a_celery_worker_killed_mid_step_fails_the_run_or_is_redelivered_and_a_rerun_reaches_the_fault_free_lake(
    servers, s3_endpoint, fault_free, chaos, monkeypatch, kill
):
    postgres, redis, folder = servers
    work = Path(folder) / kill
    home = work / "home"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text((production.REPO / "deploy/prod/dagster.yaml").read_text())
    bucket = f"lake-chaos-{kill}"
    env = production.production_env(postgres, redis, home, bucket, s3_endpoint)
    for name in [n for n in env if n.startswith(("AWS_", "DAGSTER_PG_"))] + ["DAGSTER_HOME"]:
        monkeypatch.setenv(name, env[name])  # this process reads the same instance and lake
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket=bucket)
    expected = Lake(fault_free("minute_bars_job", production.FIRST, production.DAY, production.WINDOW))
    lake = Lake(f"s3://{bucket}/lake")
    tags = {**session_range_tags(production.FIRST, production.DAY), CASE_TAG: kill}

    workers = production.start_workers(env, work)
    cli = None
    hung = False
    try:
        cli = start_run(tags, env, work / "cli.log")
        logs = [work / f"worker{k}.log" for k in range(len(workers))]
        (victim,) = wait('a worker to log "received"', lambda: took_the_step(logs), 120, 0.2)
        with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
            (run,) = instance.get_runs(filters=dg.RunsFilter(tags={CASE_TAG: kill}))
            started = wait(
                "the step to start",
                lambda: run_events(instance, run.run_id, DagsterEventType.STEP_START),
                120,
                0.2,
            )
            pid = started[0].dagster_event.pid
            assert os.getpgid(pid) == workers[victim].pid  # the step runs in the worker that took it
            wait("the second chunk to be written", lambda: objects(s3, bucket) >= KILL_AFTER_FILES, 120, 0.05)
            assert cli.poll() is None and objects(s3, bucket) < len(SESSIONS) * len(SYMBOLS), "done too soon"
            if kill == "step-process":
                os.kill(pid, signal.SIGKILL)
                chaos.inject(f"SIGKILL to the step's process (pid {pid}) on worker w{victim}")
            else:
                os.killpg(workers[victim].pid, signal.SIGKILL)
                chaos.inject(f"SIGKILL to worker w{victim}'s process group (main process and pool)")

            try:
                code = cli.wait(timeout=HANG_SECONDS if kill == "whole-worker" else 120)
            except subprocess.TimeoutExpired:
                hung = True  # neither redelivered nor failed: end the run as an operator would
                os.killpg(cli.pid, signal.SIGTERM)
                chaos.inject("SIGTERM to the waiting `dagster job execute` after the wait")
                code = cli.wait(timeout=60)
            output = (work / "cli.log").read_text(errors="replace")
            tail = output[-3000:]
            assert code != 0, tail
            status = instance.get_run_by_id(run.run_id).status
            assert status == dg.DagsterRunStatus.FAILURE, status
            executions = [
                e for e in run_events(instance, run.run_id, DagsterEventType.ENGINE_EVENT)
                if "in celery worker" in (e.dagster_event.message or "")
            ]  # fmt: skip
            assert len(executions) == 1  # the step ran once: not redelivered
            if kill == "step-process":
                assert "WorkerLostError: Worker exited prematurely: signal 9 (SIGKILL)" in output, tail
                chaos.note = "run failed at once: WorkerLostError (signal 9), not redelivered"
            else:
                assert hung or "WorkerLostError" in output, tail
                chaos.note = (
                    f"run waited {HANG_SECONDS} s with no redelivery (Redis visibility_timeout: 1 h), "
                    "then was terminated"
                    if hung
                    else "run ended by itself"
                )

            # Nothing partial: whole objects equal to the fault-free ones; the first chunk recorded.
            assert_nothing_partial(expected, lake)
            recorded = sorted(
                {e.dagster_event.partition for e in run_events(instance, run.run_id, DagsterEventType.ASSET_MATERIALIZATION)}
            )  # fmt: skip
            assert recorded == SESSIONS[:CHUNK]
            missing = SESSIONS[CHUNK:]

            # The killed step's pool slot stays claimed (no step end was reported) until run monitoring
            # frees it, free_slots_after_run_end_seconds (30 s) after the run ended: one iteration of
            # the daemon's slot monitor, as if that time had passed.
            pool = defs_pool()
            claimed = instance.event_log_storage.get_concurrency_info(pool).claimed_slots
            assert [c.run_id for c in claimed] == [run.run_id]
            free_slots_of_ended_runs(instance, monkeypatch)
            assert not instance.event_log_storage.get_concurrency_info(pool).claimed_slots
            chaos.note += "; its pool slot was held until run monitoring freed it"

            # The re-run of the missing sessions, through the CLI on the workers still there.
            rerun = {**session_range_tags(date.fromisoformat(missing[0]), date.fromisoformat(missing[-1])),
                     CASE_TAG: f"{kill}-rerun"}  # fmt: skip
            production.execute("minute_bars_job", rerun, None, env, work)
            (again,) = instance.get_runs(filters=dg.RunsFilter(tags={CASE_TAG: f"{kill}-rerun"}))
            refilled = {
                e.dagster_event.partition
                for e in run_events(instance, again.run_id, DagsterEventType.ASSET_MATERIALIZATION)
            }
            assert sorted(refilled) == missing
    finally:
        if cli is not None and cli.poll() is None:
            os.killpg(cli.pid, signal.SIGKILL)
            cli.wait(timeout=30)
        production.stop(workers)

    final = compare(expected, lake, "minute_bars")
    chaos.partitions_recovered, chaos.rows_lost = len(missing), final.rows_lost
    assert final.rows_lost == 0 and final.equal, final
    assert final.files == len(SESSIONS) * len(SYMBOLS)
    if hung:
        pytest.xfail(
            "a step whose whole Celery worker died is redelivered only after Redis's visibility_timeout "
            f"(1 h by default): the run waited {HANG_SECONDS} s without failing or redelivering"
        )

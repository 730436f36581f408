"""A Celery worker killed with SIGKILL while it executes a step, on the production profile:
PostgreSQL, RabbitMQ (the broker) and Redis (results) on loopback, the lake on the S3-API server,
two Celery workers, and a 43-session minute_bars backfill run through ``dagster job execute``
(``FINANCE_DAG_EXECUTOR=celery``), set up with ``tests/platform/test_production.py``'s helpers.

Once the worker that logged "received" for the step has written the first chunk of 20 sessions
(recorded as materialised) and begun the second:

- ``step-process``: the process executing the step (its prefork pool process, the pid of the
  step's STEP_START event) is killed. The worker's main process sees it die; Celery fails the
  task with ``WorkerLostError`` and, ``task_acks_late`` notwithstanding, acknowledges it
  (``task_reject_on_worker_lost`` is off, so a step that kills its process is not retried for
  ever): the run fails at once naming the signal. The 20 recorded sessions stay recorded, and a
  re-run of the 23 missing sessions on the remaining worker completes the lake.
- ``whole-worker``: the worker's whole process group (main process and pool: a lost node) is
  killed. Its connection to RabbitMQ closes with the step's message unacknowledged, so the broker
  hands the message to the other worker at once, which runs the step again from its start: the
  run succeeds by itself, the step executed twice on two workers, and the step's pool slot is
  released when it ends.

Either way, once the run has ended every object in the lake is a whole file equal to the fault-free
one, and the end is the fault-free lake, row for row, with no duplicate.
"""

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

servers = production.servers  # PostgreSQL, RabbitMQ and Redis for this module (a fixture)
SESSIONS = [d.isoformat() for d in calendar.sessions(production.FIRST, production.DAY)]  # 43
SYMBOLS = production.WINDOW["UNIVERSE"].split(",")
CHUNK = 20  # finance_dag.defs.market_data.assets.CHUNK_SESSIONS: recorded before the next starts
KILL_AFTER_FILES = (CHUNK + 2) * len(SYMBOLS)  # the first chunk recorded, the second being written
CASE_TAG = "finance_dag/chaos_case"


def start_run(tags: dict[str, str], env: dict, log: Path) -> subprocess.Popen:
    """``dagster job execute`` of minute_bars_job in the background, in a process group of its own
    (``production.execute`` waits for the run and requires success)."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            production.execute_command("minute_bars_job", tags),
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


def executions(instance, run_id: str) -> list[str]:
    """The Celery workers (hostnames) that began executing the run's step, in order, once per
    execution (a worker logs the event, and the run logs it again when the task returns it)."""
    began = [
        (e.dagster_event.event_specific_data.metadata["Celery worker"].value, e.dagster_event.pid)
        for e in run_events(instance, run_id, DagsterEventType.ENGINE_EVENT)
        if "in celery worker" in (e.dagster_event.message or "")
    ]
    return [worker for worker, _pid in dict.fromkeys(began)]


def recorded(instance, run_id: str) -> list[str]:
    """The sessions the run recorded as materialised, sorted, once each."""
    events = run_events(instance, run_id, DagsterEventType.ASSET_MATERIALIZATION)
    return sorted({e.dagster_event.partition for e in events})


@pytest.mark.parametrize("kill", ["step-process", "whole-worker"])
def test_a_celery_worker_killed_mid_step_fails_the_run_or_is_redelivered_and_the_lake_reaches_the_fault_free_one(
    servers, s3_endpoint, fault_free, chaos, monkeypatch, kill
):
    work = servers.folder / kill
    home = work / "home"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text((production.REPO / "deploy/prod/dagster.yaml").read_text())
    bucket = f"lake-chaos-{kill}"
    env = production.production_env(servers, home, bucket, s3_endpoint)
    for name in [n for n in env if n.startswith(("AWS_", "DAGSTER_PG_"))] + ["DAGSTER_HOME"]:
        monkeypatch.setenv(name, env[name])  # this process reads the same instance and lake
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket=bucket)
    expected = Lake(fault_free("minute_bars_job", production.FIRST, production.DAY, production.WINDOW))
    lake = Lake(f"s3://{bucket}/lake")
    tags = {**session_range_tags(production.FIRST, production.DAY), CASE_TAG: kill}
    pool = defs_pool()

    workers = production.start_workers(env, work)
    cli = None
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
            code = cli.wait(timeout=240)
            tail = (work / "cli.log").read_text(errors="replace")[-3000:]
            status = instance.get_run_by_id(run.run_id).status
            ran_on = executions(instance, run.run_id)
            assert_nothing_partial(expected, lake)  # whole objects equal to the fault-free ones
            if kill == "step-process":
                assert code != 0 and status == dg.DagsterRunStatus.FAILURE, (status, tail)
                assert "WorkerLostError: Worker exited prematurely: signal 9 (SIGKILL)" in tail, tail
                assert len(ran_on) == 1  # failed, not redelivered
                assert recorded(instance, run.run_id) == SESSIONS[:CHUNK]
                chaos.note = "run failed at once: WorkerLostError (signal 9), not redelivered"

                # The killed step's pool slot stays claimed (no step end was reported) until run
                # monitoring frees it, free_slots_after_run_end_seconds (30 s) after the run ended:
                # one iteration of the daemon's slot monitor, as if that time had passed.
                claimed = instance.event_log_storage.get_concurrency_info(pool).claimed_slots
                assert [c.run_id for c in claimed] == [run.run_id]
                free_slots_of_ended_runs(instance, monkeypatch)
                assert not instance.event_log_storage.get_concurrency_info(pool).claimed_slots
                chaos.note += "; its pool slot was held until run monitoring freed it"

                # the re-run of the missing sessions, through the CLI on the worker still there
                missing = SESSIONS[CHUNK:]
                rerun = {**session_range_tags(date.fromisoformat(missing[0]), date.fromisoformat(missing[-1])),
                         CASE_TAG: f"{kill}-rerun"}  # fmt: skip
                production.execute("minute_bars_job", rerun, None, env, work)
                (again,) = instance.get_runs(filters=dg.RunsFilter(tags={CASE_TAG: f"{kill}-rerun"}))
                assert recorded(instance, again.run_id) == missing
            else:
                assert code == 0 and status == dg.DagsterRunStatus.SUCCESS, (status, tail)
                survivor = f"w{1 - victim}@"
                assert len(ran_on) == 2 and ran_on[1].startswith(survivor), ran_on  # redelivered once
                assert recorded(instance, run.run_id) == SESSIONS
                assert not instance.event_log_storage.get_concurrency_info(pool).claimed_slots
                missing = SESSIONS[CHUNK:]
                chaos.note = (
                    f"RabbitMQ redelivered the step to worker {survivor.rstrip('@')} at once; "
                    "the run succeeded by itself, its pool slot released"
                )
    finally:
        if cli is not None and cli.poll() is None:
            os.killpg(cli.pid, signal.SIGKILL)
            cli.wait(timeout=30)
        production.stop(workers)

    final = compare(expected, lake, "minute_bars")
    chaos.partitions_recovered, chaos.rows_lost = len(missing), final.rows_lost
    assert final.rows_lost == 0 and final.equal, final
    assert final.files == len(SESSIONS) * len(SYMBOLS)

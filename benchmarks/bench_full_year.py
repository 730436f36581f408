"""Issue 11, S0: the full universe's market data for a year, materialised as production runs it.

The full universe (``FINANCE_DAG_UNIVERSE=full``, 96 symbols) over one year of sessions
(2023-12-01..2024-11-29, 251 sessions) on the simulated vendors: ``minute_bars_job`` (the minute
bars and their checks, 24,096 symbol-sessions) and then ``daily_market_data_job`` (daily bars and
bar coverage), each one run over the whole range, as a UI or CLI backfill of the range makes it.

Each run is queued with ``dagster job launch`` (what an operator or a script does) and launched by
a ``dagster-daemon`` (the default run launcher, steps in the multiprocess executor), once on a
PostgreSQL instance configured as ``deploy/prod/dagster.yaml`` (with ``deploy/prod/env.example``'s
``DAGSTER_EVENT_BATCH_SIZE``) and once on an sqlite instance
(``deploy/dagster.yaml``, what ``make dev`` uses), each with its own lake folder. The asset daemon
and the automation sensors are off, so no automation run competes (on sqlite, the consolidation
the automation sensor requested after the minute bars ran beside the daily job); the other sensors
tick as they do in production.

Figures per job and instance: the run's time (RUN_START to its end) and its launch latency
(RUN_ENQUEUED to RUN_START: the daemon's dequeue and the launch of the run worker; the CLI's own
import of the code location comes before and is printed apart). The PostgreSQL run is compared
with the sqlite one, its floor: the ratio, and the difference per partition, which is what the
instance's bookkeeping costs more on PostgreSQL in a real run (``bench_scale``'s S2 measures the
bookkeeping of a no-op asset). Both lakes must hold the same files.

    .venv/bin/python -m benchmarks.bench_full_year
    .venv/bin/python -m benchmarks bench_full_year     # records the figures in RESULTS.md

It takes about 6-8 minutes on the 2-core machine.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import dagster as dg

from benchmarks.bench_scale import (
    BIN,
    MAIN_LOCATION,
    NO_AUTOMATION,
    REPO,
    run_markers,
    start,
    stop,
    tail,
    wait_for_daemon,
    wait_until_done,
)
from benchmarks.common import verdict
from finance_dag.core import calendar
from finance_dag.core.universe import FULL_SYMBOLS
from finance_dag.platform.partitions import session_range_tags

ISSUE = "issue 11"
FIRST, LAST = date(2023, 12, 1), date(2024, 11, 29)
JOBS = ("minute_bars_job", "daily_market_data_job")
RUN_TIMEOUT = 1800
TARGETS = {
    "minute_bars_job": 300.0,  # seconds for the year: a night's backfill many times over
    "daily_market_data_job": 120.0,
    "launch": 15.0,  # as bench_scale's S1
    "ratio": 1.25,  # PostgreSQL run time / sqlite run time
}
JOB_TAG = "finance_dag/bench_full_year"


def prepare(work: Path, kind: str, postgres_env: dict[str, str]) -> dict[str, str]:
    """The instance folder, lake and environment of one variant (``kind``: PostgreSQL or sqlite)."""
    home = work / f"home_{kind}"
    home.mkdir()
    instance_file = "deploy/prod/dagster.yaml" if kind == "PostgreSQL" else "deploy/dagster.yaml"
    (home / "dagster.yaml").write_text((REPO / instance_file).read_text() + NO_AUTOMATION)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("FINANCE_DAG_", "DAGSTER_"))}
    return {
        **clean,
        **(
            {**postgres_env, "DAGSTER_EVENT_BATCH_SIZE": "1000"} if kind == "PostgreSQL" else {}
        ),  # as env.example
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "DAGSTER_HOME": str(home),
        "FINANCE_DAG_STORAGE": str(work / f"lake_{kind}"),
        "FINANCE_DAG_UNIVERSE": "full",
        "FINANCE_DAG_START_DATE": FIRST.isoformat(),
        "FINANCE_DAG_END_DATE": LAST.isoformat(),
    }


def launch(job: str, env: dict[str, str], work: Path) -> float:
    """Queue ``job`` over the year with the CLI; returns the seconds the CLI took."""
    tags = {**session_range_tags(FIRST, LAST), JOB_TAG: job}
    command = [str(BIN / "dagster"), "job", "launch", "-w", str(work / "workspace.yaml"), "-j", job,
               "--tags", json.dumps(tags)]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"dagster job launch {job}: {done.stdout[-2000:]}{done.stderr[-2000:]}")
    return time.perf_counter() - started


def wait_for_run(instance: dg.DagsterInstance, job: str, daemon_log: Path) -> dg.DagsterRun:
    """The run ``launch`` queued for ``job`` (it exists once the CLI returns), once it succeeded."""
    (queued,) = instance.get_runs(filters=dg.RunsFilter(tags={JOB_TAG: job}))
    run = wait_until_done(instance, queued.run_id, RUN_TIMEOUT)
    if run.status != dg.DagsterRunStatus.SUCCESS:
        raise RuntimeError(f"{job} ended {run.status}; daemon log: {tail(daemon_log)}")
    return run


def materialise_year(work: Path, kind: str, env: dict[str, str]) -> dict[str, dict[str, float]]:
    """Both jobs over the year on one instance, through the queue and the daemon."""
    os.environ.update({k: v for k, v in env.items() if k.startswith(("DAGSTER_", "FINANCE_DAG_"))})
    figures = {}
    with dg.DagsterInstance.get() as instance:
        since = time.time()
        daemon = start(f"daemon_{kind}", [str(BIN / "dagster-daemon"), "run", "-w", str(work / "workspace.yaml")],
                       env, work)  # fmt: skip
        try:
            wait_for_daemon(instance, since, daemon, work / f"daemon_{kind}.log")
            for job in JOBS:
                cli = launch(job, env, work)
                run = wait_for_run(instance, job, work / f"daemon_{kind}.log")
                marks = run_markers(instance, run.run_id)
                ended = instance.get_run_record_by_id(run.run_id).end_time
                figures[job] = {
                    "cli": cli,
                    "launch": marks["start"] - marks["enqueued"],
                    "run": ended - marks["start"],
                }
                print(
                    f"{kind} {job}: run {figures[job]['run']:.1f} s, launch (queued -> RUN_START) "
                    f"{figures[job]['launch']:.2f} s, the CLI {cli:.1f} s before it"
                )
        finally:
            stop(daemon)
    return figures


def lake_files(root: Path) -> set[str]:
    return {
        str(p.relative_to(root))
        for p in root.rglob("*.parquet")
        if not p.relative_to(root).parts[0].startswith("_")
    }


def main() -> int:
    from finance_dag.testing.servers import PostgresServer

    sessions = len(calendar.sessions(FIRST, LAST))
    symbol_sessions = sessions * len(FULL_SYMBOLS)
    print(f"the full universe, {len(FULL_SYMBOLS)} symbols x {sessions} sessions ({FIRST}..{LAST})")
    work = Path(tempfile.mkdtemp(prefix="finance_dag_bench_full_year_", dir="/tmp"))
    os.chmod(work, 0o755)  # the postgres system user owns the cluster inside it when we are root
    (work / "workspace.yaml").write_text("load_from:\n" + MAIN_LOCATION)
    saved_env = dict(os.environ)
    measured: dict[str, dict[str, dict[str, float]]] = {}
    try:
        with PostgresServer(work / "postgres") as postgres:
            for kind in ("PostgreSQL", "sqlite"):
                measured[kind] = materialise_year(work, kind, prepare(work, kind, postgres.env()))
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        files = {kind: lake_files(work / f"lake_{kind}") for kind in ("PostgreSQL", "sqlite")}
        shutil.rmtree(work, ignore_errors=True)
    if files["PostgreSQL"] != files["sqlite"]:
        only = {
            kind: sorted(files[kind] - files[other])[:10]
            for kind, other in (("PostgreSQL", "sqlite"), ("sqlite", "PostgreSQL"))
        }
        raise RuntimeError(f"the two lakes differ: {only}")
    minute_files = sum(f.startswith("minute_bars/") for f in files["sqlite"])
    if minute_files != symbol_sessions:
        raise RuntimeError(f"{minute_files} minute_bars files, expected {symbol_sessions}")

    ok = True
    what = f"full universe ({len(FULL_SYMBOLS)}) x {sessions} sessions"
    for job in JOBS:
        pg, lite = measured["PostgreSQL"][job], measured["sqlite"][job]
        per_partition = (pg["run"] - lite["run"]) / sessions * 1000
        for kind, figures in measured.items():
            ok &= verdict(
                f"S0 {job} run, {what}, {kind}", figures[job]["run"], TARGETS[job], "s",
                f"(RUN_START to end; {len(files['sqlite']):,} parquet files in the lake)", issue=ISSUE,
            )  # fmt: skip
        ok &= verdict(
            f"S0 {job} PostgreSQL / sqlite run time, {what}", pg["run"] / lite["run"], TARGETS["ratio"], "x",
            f"({per_partition:+.1f} ms per session partition on PostgreSQL)", issue=ISSUE,
            floor=lite["run"], floor_unit="s", floor_note="the same run on sqlite",
        )  # fmt: skip
        ok &= verdict(
            f"S0 {job} launch, queued -> RUN_START, PostgreSQL", pg["launch"], TARGETS["launch"], "s",
            f"(sqlite {lite['launch']:.2f} s; the CLI took {pg['cli']:.1f} s before it)", issue=ISSUE,
        )  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

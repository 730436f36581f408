"""The production profile with real servers on loopback: the instance on PostgreSQL, the lake on an
S3-API server (moto), steps on two Celery workers over RabbitMQ (results in Redis). A multi-session
market-data backfill and one session of every other domain run through it (the ``dagster`` CLI, as
a person or the daemon's run worker runs them), and the lake they write equals the embedded
default's (a local folder, an sqlite instance, in-process execution) row for row.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import boto3
import dagster as dg
import pytest

from finance_dag.core.lake import Lake
from finance_dag.testing.servers import PostgresServer, RabbitMQServer, RedisServer
from tests.support import ETF_WINDOW, RISK_WINDOW, make_defs, range_tags, session_range_tags, strategy_config

pytestmark = [pytest.mark.prod, pytest.mark.s3, pytest.mark.cli]

REPO = Path(__file__).parents[2]
DAY = date(2024, 11, 29)
FIRST = date(2024, 10, 1)  # 43 sessions: the strategies' walk-forward needs train + test = 25
WINDOW = {
    "UNIVERSE": "SPY,QQQ,IWM",
    "START_DATE": FIRST.isoformat(),
    "END_DATE": DAY.isoformat(),
    "LENDING_UNIVERSE": "SPY,QQQ,IWM,TLT,NVDA,AAPL,MSFT,AMZN,GOOGL,META,TSLA,BAC",
    "LENDING_START_DATE": DAY.isoformat(),
    "LENDING_END_DATE": DAY.isoformat(),
    **ETF_WINDOW,
    **RISK_WINDOW,
}
WORKERS = 2


def steps() -> list[tuple[str, dict[str, str], dict | None]]:
    """The runs both profiles make: (job, tags, run config)."""
    from finance_dag.strategies import STRATEGIES

    day = DAY.isoformat()
    risk_first = date.fromisoformat(RISK_WINDOW["RISK_START_DATE"])
    names = list(STRATEGIES)
    return [
        ("minute_bars_job", session_range_tags(FIRST, DAY), None),
        ("daily_market_data_job", session_range_tags(FIRST, DAY), None),
        ("consolidate_job", range_tags("SPY", "IWM"), None),
        ("coverage_report_job", {}, None),
        ("lending_job", {"dagster/partition": day}, None),
        ("etf_universe_job", {"dagster/partition": day}, None),
        ("etf_history_job", session_range_tags(date.fromisoformat(ETF_WINDOW["ETF_START_DATE"]), DAY), None),
        ("etf_job", {"dagster/partition": day}, None),
        ("trade_plan_job", {"dagster/partition": day}, None),
        ("risk_history_job", session_range_tags(risk_first, date(2024, 11, 27)), None),
        ("risk_job", {"dagster/partition": day}, None),
        ("strategies_job", range_tags(names[0], names[-1]), strategy_config()),
    ]


@dataclass
class Servers:
    """The production profile's servers on loopback, and a folder for the module's files."""

    postgres: PostgresServer
    broker: RabbitMQServer
    results: RedisServer
    folder: Path


@pytest.fixture(scope="module")
def servers(s3_endpoint):
    """PostgreSQL, RabbitMQ and Redis on loopback (in a folder under /tmp the postgres user can
    reach), for the module."""
    folder = Path(tempfile.mkdtemp(prefix="finance_dag_prod_"))
    os.chmod(folder, 0o755)
    try:
        with (
            PostgresServer(folder / "pg") as postgres,
            RabbitMQServer(folder / "rabbitmq") as broker,
            RedisServer(folder / "redis") as results,
        ):
            yield Servers(postgres, broker, results, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # the clusters' data: tens of MB a run


def production_env(servers: Servers, home: Path, bucket: str, endpoint: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINANCE_DAG_")}
    env.update({f"FINANCE_DAG_{k}": v for k, v in WINDOW.items()})
    env.update(servers.postgres.env())
    env.update(
        PATH=f"{REPO / '.venv/bin'}{os.pathsep}{env.get('PATH', '')}",  # dagster-celery starts `celery`
        DAGSTER_HOME=str(home),
        DAGSTER_EVENT_BATCH_SIZE="1000",  # as deploy/prod/env.example
        FINANCE_DAG_STORAGE=f"s3://{bucket}/lake",
        FINANCE_DAG_EXECUTOR="celery",
        FINANCE_DAG_CELERY_BROKER=servers.broker.url,
        FINANCE_DAG_CELERY_BACKEND=servers.results.url(0),
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    return env


def start_workers(env: dict, folder: Path) -> list[subprocess.Popen]:
    """The Celery workers, once the instance's schema exists: processes that create it at once on a
    fresh database race (docs/production.md, "Start order"), so it is migrated first, as
    ``make prod-up`` does."""
    subprocess.run(
        [str(REPO / ".venv/bin/dagster"), "instance", "migrate"],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
    )
    workers = []
    for k in range(WORKERS):
        log = open(folder / f"worker{k}.log", "wb")  # noqa: SIM115 - the worker writes it until killed
        workers.append(
            subprocess.Popen(
                [
                    str(REPO / ".venv/bin/dagster-celery"),
                    "worker",
                    "start",
                    "-A",
                    "dagster_celery.app",
                    "-y",
                    str(REPO / "deploy/prod/celery.yaml"),
                    "--name",
                    f"w{k}@%h",
                    "--",
                    "--concurrency",
                    "1",
                ],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        )
    deadline = time.monotonic() + 60
    try:
        for k, worker in enumerate(workers):  # each worker says "ready" once it listens to the queue
            log = folder / f"worker{k}.log"
            while "ready" not in log.read_text(errors="replace"):
                assert worker.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.5)
    except BaseException:
        stop(workers)
        raise
    return workers


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def execute_command(job: str, tags: dict[str, str]) -> list[str]:
    """``dagster job execute`` of ``job`` with run ``tags`` on the code location."""
    command = [str(REPO / ".venv/bin/dagster"), "job", "execute", "-m", "finance_dag.definitions", "-j", job]
    return command + ["--tags", json.dumps(tags)] if tags else command


def execute(job: str, tags: dict[str, str], config: dict | None, env: dict, folder: Path) -> None:
    """One run through the CLI on the production instance (its job's executor: Celery)."""
    command = execute_command(job, tags)
    if config:
        path = folder / f"{job}.json"
        path.write_text(json.dumps(config))
        command += ["-c", str(path)]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{job} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    print(f"  {job}: {time.perf_counter() - started:.1f} s")


def lake_files(lake: Lake) -> dict[str, str]:
    """Every file of the lake but scratch space, by path relative to the root."""
    prefix = lake.root.rstrip("/") + "/"
    paths = (
        lake.fs.find(lake._abs(""))
        if lake.is_s3
        else [str(p) for p in Path(lake.root).rglob("*") if p.is_file()]
    )
    out = {}
    for path in paths:
        rel = (
            path.split(prefix.removeprefix("s3://"), 1)[-1]
            if lake.is_s3
            else str(Path(path).relative_to(lake.root))
        )
        if not rel.startswith(("_tmp/", "_probe")):
            out[rel] = path
    return out


def test_the_production_profile_writes_the_embedded_defaults_lake(
    servers, s3_endpoint, tmp_path, monkeypatch
):
    folder = servers.folder
    # the embedded default: local lake, sqlite instance, in-process
    local = tmp_path / "embedded"
    defs = make_defs(str(local), env=WINDOW)
    with dg.instance_for_test() as instance:
        for job, tags, config in steps():
            result = defs.resolve_job_def(job).execute_in_process(
                instance=instance, tags=tags, run_config=config, raise_on_error=False
            )
            assert result.success, job

    # the production profile
    bucket = "lake-production"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1",
                 aws_access_key_id="testing", aws_secret_access_key="testing").create_bucket(Bucket=bucket)  # fmt: skip
    home = folder / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "deploy/prod/dagster.yaml").read_text())
    env = production_env(servers, home, bucket, s3_endpoint)
    workers = start_workers(env, folder)
    started = time.perf_counter()
    try:
        for job, tags, config in steps():
            execute(job, tags, config, env, folder)
    finally:
        stop(workers)
    print(f"production profile: {len(steps())} runs in {time.perf_counter() - started:.0f} s")

    # both workers took steps
    logs = [(folder / f"worker{k}.log").read_text(errors="replace") for k in range(WORKERS)]
    assert all("succeeded" in log for log in logs), [log[-2000:] for log in logs]

    # the runs are in PostgreSQL
    for name, value in {**servers.postgres.env(), "DAGSTER_HOME": str(home)}.items():
        monkeypatch.setenv(name, value)
    with dg.DagsterInstance.get() as instance:
        assert "Postgres" in type(instance.run_storage).__name__
        runs = instance.get_runs()
        assert len(runs) == len(steps()) and all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)

    # the same lake, row for row
    for name, value in {k: env[k] for k in env if k.startswith("AWS_")}.items():
        monkeypatch.setenv(name, value)
    embedded, production = Lake(str(local)), Lake(f"s3://{bucket}/lake")
    mine, theirs = lake_files(embedded), lake_files(production)
    assert sorted(mine) == sorted(theirs)
    compared = 0
    for rel in sorted(mine):
        if rel.endswith(".parquet"):
            left, right = embedded.read_parquet(rel), production.read_parquet(rel)
            assert left.equals(right), rel
            compared += 1
        elif rel.endswith(".csv"):
            assert embedded.read_bytes(rel) == production.read_bytes(rel), rel
    assert compared > 100
    print(f"{compared} parquet files equal row for row; {len(mine)} files in each lake")


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-s"]))

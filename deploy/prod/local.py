"""`make prod-up` / `make prod-down`: the production profile on this machine, for a person who wants
to try it (docs/production.md). Everything lives in ``.prod/`` and listens on 127.0.0.1 only:

- PostgreSQL (the Dagster instance), RabbitMQ (the Celery broker) and Redis (Celery's results)
  from the machine's packages, a moto S3 server standing in for the lake's bucket;
- two Celery workers, the Dagster daemon (queued runs, backfills, schedules, sensors, run
  monitoring) and the webserver on http://127.0.0.1:3001, all with ``.prod/env``.

``prod-up`` is idempotent (what runs stays); ``prod-down`` stops everything and keeps the data, so
the next ``prod-up`` finds the runs and the lake again (``make clean`` removes ``.prod``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from finance_dag.testing.servers import PostgresServer, RabbitMQServer, RedisServer, free_port

REPO = Path(__file__).resolve().parents[2]
STATE = REPO / ".prod"
BIN = REPO / ".venv" / "bin"
UI_PORT = 3001
BUCKET = "finance-dag-lake"
WORKERS = 2


def _spawn(name: str, command: list[str], env: dict[str, str]) -> int:
    log = open(STATE / f"{name}.log", "ab")  # noqa: SIM115 - the process writes it until stopped
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True).pid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def up() -> None:
    STATE.mkdir(exist_ok=True)
    os.chmod(STATE, 0o755)  # the postgres system user owns the cluster inside it when we are root
    pids_file = STATE / "pids.json"
    pids = json.loads(pids_file.read_text()) if pids_file.exists() else {}
    if pids.get("processes") and all(_alive(p) for p in pids["processes"].values()):
        print(f"already up: UI http://127.0.0.1:{UI_PORT}, settings in {STATE / 'env'}")
        return
    ports = pids.get("ports") or {}
    for name in ("postgres", "rabbitmq", "redis", "s3"):
        ports.setdefault(name, free_port())
    postgres = PostgresServer(STATE / "postgres", port=ports["postgres"]).start()
    broker = RabbitMQServer(STATE / "rabbitmq", port=ports["rabbitmq"]).start()
    redis = RedisServer(STATE / "redis", port=ports["redis"]).start()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("FINANCE_DAG_", "DAGSTER_"))},
        **postgres.env(),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "DAGSTER_HOME": str(STATE / "home"),
        "DAGSTER_EVENT_BATCH_SIZE": "1000",  # as deploy/prod/env.example
        "FINANCE_DAG_EXECUTOR": "celery",
        "FINANCE_DAG_CELERY_BROKER": broker.url,
        "FINANCE_DAG_CELERY_BACKEND": redis.url(0),
        "FINANCE_DAG_STORAGE": f"s3://{BUCKET}/lake",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{ports['s3']}",
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": "us-east-1",
        # the demo's windows: a person tries the same data as `make demo`
        "FINANCE_DAG_START_DATE": "2024-11-15",
        "FINANCE_DAG_END_DATE": "2024-11-29",
    }
    home = STATE / "home"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text((REPO / "deploy/prod/dagster.yaml").read_text())
    (STATE / "env").write_text(
        "".join(f"export {k}={v}\n" for k, v in env.items() if k.startswith(("FINANCE_DAG_", "DAGSTER_", "AWS_")))
    )
    processes = {"rabbitmq": broker.process.pid, "redis": redis.process.pid}
    processes["s3"] = _spawn("s3", [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(ports["s3"])], env)
    _wait_http(env["AWS_ENDPOINT_URL"])
    import boto3

    s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                      aws_access_key_id="local", aws_secret_access_key="local")  # fmt: skip
    if BUCKET not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
        s3.create_bucket(Bucket=BUCKET)
    subprocess.run([str(BIN / "dagster"), "instance", "migrate"], cwd=REPO, env=env, check=True, capture_output=True)
    for k in range(WORKERS):
        processes[f"worker{k}"] = _spawn(
            f"worker{k}",
            [str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app", "-y",
             str(REPO / "deploy/prod/celery.yaml"), "--name", f"w{k}", "--", "--concurrency", "1"],
            env,
        )  # fmt: skip
    processes["daemon"] = _spawn("daemon", [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"], env)
    processes["webserver"] = _spawn(
        "webserver", [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(UI_PORT), "-w", "workspace.yaml"], env
    )
    pids_file.write_text(json.dumps({"ports": ports, "processes": processes}, indent=2))
    _wait_http(f"http://127.0.0.1:{UI_PORT}/server_info", timeout=120)
    print(
        f"production profile up: UI http://127.0.0.1:{UI_PORT}; PostgreSQL 127.0.0.1:{ports['postgres']}, "
        f"RabbitMQ 127.0.0.1:{ports['rabbitmq']}, Redis 127.0.0.1:{ports['redis']}, S3 {env['AWS_ENDPOINT_URL']}, {WORKERS} Celery workers\n"
        f"CLI against it:  source {STATE / 'env'} && .venv/bin/dagster job execute -m finance_dag.definitions "
        f"-j minute_bars_job --tags '{{\"dagster/partition\": \"2024-11-29\"}}'\nlogs: {STATE}/*.log; stop: make prod-down"
    )


def _wait_http(url: str, timeout: float = 60) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer within {timeout:.0f} s; see {STATE}/*.log") from None
            time.sleep(0.5)


def down() -> None:
    pids_file = STATE / "pids.json"
    if pids_file.exists():
        state = json.loads(pids_file.read_text())
        for name, pid in state["processes"].items():
            if not _alive(pid):
                continue
            if name == "rabbitmq":  # a graceful stop through its control tool
                RabbitMQServer(STATE / "rabbitmq", port=state["ports"]["rabbitmq"]).stop()
            else:
                os.killpg(pid, signal.SIGTERM)
            print(f"stopped {name}")
        pids_file.write_text(json.dumps({"ports": state["ports"], "processes": {}}))
    if (STATE / "postgres" / "data" / "postmaster.pid").exists():
        PostgresServer(STATE / "postgres").stop()
        print("stopped postgres")


if __name__ == "__main__":
    {"up": up, "down": down}[sys.argv[1]]()

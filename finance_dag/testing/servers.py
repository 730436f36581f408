"""Real servers on loopback for the production profile: PostgreSQL, RabbitMQ and Redis from the
machine's Debian packages (``.ci/run`` installs them when missing), each in its own folder and on a
free port.

Used by the production-profile tests, the chaos suite and ``make prod-up``. PostgreSQL refuses to
run as root, so when this process is root the cluster belongs to the ``postgres`` system user and
its commands run through ``runuser``. Authentication is ``trust`` on 127.0.0.1 only, and RabbitMQ
admits its ``guest`` user from loopback only: a local profile for one person, never an exposed server.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

__all__ = ["PostgresServer", "RabbitMQServer", "RedisServer", "free_port"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_port(port: int, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


def _postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    if not found:
        raise RuntimeError("no PostgreSQL server: apt-get install postgresql (.ci/run does)")
    return Path(found[-1]).parent


class PostgresServer:
    """A PostgreSQL cluster in ``folder`` on ``port`` with database ``db`` owned by ``user``."""

    def __init__(
        self, folder: str | Path, port: int | None = None, user: str = "dagster", db: str = "dagster"
    ):
        self.folder = Path(folder)
        self.data = self.folder / "data"
        self.port = port or free_port()
        self.user, self.db = user, db
        self.bin = _postgres_bin()
        self._as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{self.db}"

    def env(self) -> dict[str, str]:
        """The DAGSTER_PG_* variables deploy/prod/dagster.yaml reads."""
        return {
            "DAGSTER_PG_HOST": "127.0.0.1",
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_USER": self.user,
            "DAGSTER_PG_PASSWORD": "unused-trust-auth",
            "DAGSTER_PG_DB": self.db,
        }

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as_postgres, *args], check=True, capture_output=True, text=True)

    def start(self) -> PostgresServer:
        self.folder.mkdir(parents=True, exist_ok=True)
        if self._as_postgres:
            shutil.chown(self.folder, "postgres", "postgres")
        if not (self.data / "PG_VERSION").exists():
            self._run(
                str(self.bin / "initdb"), "-D", str(self.data), "-U", self.user, "--auth=trust", "-E", "UTF8"
            )
            created = False
        else:
            created = True
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.folder / "postgres.log"), "-w",
            "-o", f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start",
        )  # fmt: skip
        _wait_for_port(self.port, 30, "PostgreSQL")
        if not created:
            self._run(
                str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, self.db
            )
        return self

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RedisServer:
    """A Redis server on ``port`` keeping nothing on disk (a Celery broker and result backend)."""

    def __init__(self, folder: str | Path, port: int | None = None):
        self.folder = Path(folder)
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("no redis-server: apt-get install redis-server (.ci/run does)")
        self.folder.mkdir(parents=True, exist_ok=True)
        log = open(self.folder / "redis.log", "ab")  # noqa: SIM115 - the server writes it until stopped
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.folder)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        _wait_for_port(self.port, 15, "Redis")
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=15)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
# A step is acknowledged when it ends (task_acks_late), so the broker must not give up on a consumer
# that holds a message for as long as the longest step runs (RabbitMQ's default: 30 minutes).
RABBITMQ_CONSUMER_TIMEOUT_MS = 24 * 3600 * 1000


class RabbitMQServer:
    """A RabbitMQ node (the Celery broker) on ``port``, its state in ``folder``, no plugins.

    Each node has its own name, distribution port and Erlang cookie (``HOME`` is ``folder``), so
    several run side by side; they share the machine's ``epmd`` name server."""

    def __init__(self, folder: str | Path, port: int | None = None):
        self.folder = Path(folder)
        self.port = port or free_port()
        self.node = f"finance-dag-{self.port}@localhost"
        self.distribution_port = free_port()  # Erlang's node-to-node port (rabbitmqctl talks on it)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "HOME": str(self.folder),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.distribution_port),
            "RABBITMQ_MNESIA_BASE": str(self.folder / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.folder / "log"),
            "RABBITMQ_CONFIG_FILE": str(self.folder / "rabbitmq"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.folder / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(self.folder / "rabbitmq.pid"),
        }

    def start(self) -> RabbitMQServer:
        if not (RABBITMQ_BIN / "rabbitmq-server").exists():
            raise RuntimeError("no RabbitMQ: apt-get install rabbitmq-server (.ci/run does)")
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "enabled_plugins").write_text("[].\n")
        (self.folder / "rabbitmq.conf").write_text(
            f"consumer_timeout = {RABBITMQ_CONSUMER_TIMEOUT_MS}\nloopback_users.guest = true\n"
        )
        log = open(self.folder / "rabbitmq.log", "ab")  # noqa: SIM115 - the server writes it until stopped
        self.process = subprocess.Popen(
            [str(RABBITMQ_BIN / "rabbitmq-server")],
            env=self._env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        _wait_for_port(self.port, 60, "RabbitMQ")
        return self

    def stop(self) -> None:
        """Stop the node (also one this object did not start: ``make prod-down``)."""
        if self.process is not None and self.process.poll() is not None:
            return
        subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.node, "stop"],
            env=self._env(), capture_output=True, timeout=60,
        )  # fmt: skip
        if self.process is None:
            return
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, 9)
            self.process.wait(timeout=15)

    def __enter__(self) -> RabbitMQServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

"""A real Dagster deployment on loopback for the end-to-end tests: ``dagster-webserver`` (and
``dagster-daemon run``) as subprocesses on a temporary ``DAGSTER_HOME`` whose ``dagster.yaml`` is
``deploy/dagster.yaml``, serving ``workspace.yaml`` on a temporary lake.

Each server is started in its own process group (``start_new_session``): its code server and the
run workers it launches stay in that group, so teardown ends exactly the processes a test
started (SIGTERM, then SIGKILL) and nothing else on the machine.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support import ETF_WINDOW, RISK_WINDOW

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # the venv's console scripts
LOCATION = "finance_dag"  # workspace.yaml's location_name

# The market-data window of the e2e tests and the other domains pinned as tests.support pins them
# (lending as the Makefile does), so partitions never depend on today's date.
WINDOW = {
    "START_DATE": "2024-11-25",
    "END_DATE": "2024-11-29",
    "UNIVERSE": "SPY,QQQ,IWM",
    "LENDING_START_DATE": "2024-10-01",
    "LENDING_END_DATE": "2024-11-29",
    **ETF_WINDOW,
    **RISK_WINDOW,
}
SESSIONS = ["2024-11-25", "2024-11-26", "2024-11-27", "2024-11-29"]  # the window's (Thanksgiving off)

LOCATION_QUERY = """
query {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError { __typename ... on PythonError { message } }
      }
    }
    ... on PythonError { message }
  }
}"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check: Callable[[], Any], timeout: float, what: str, every: float = 0.5) -> Any:
    """Poll ``check`` until it returns something truthy (returned) or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


@dataclass
class Server:
    name: str
    process: subprocess.Popen
    log: Path

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.tail()}")

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the process group (server, code server, run workers), SIGKILL what is left."""
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        with suppress(subprocess.TimeoutExpired):
            self.process.wait(grace)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and _group_alive(self.process.pid):
            time.sleep(0.2)
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(5)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@dataclass
class Deployment:
    """A running webserver (and maybe daemon) on ``home`` and ``lake``."""

    port: int
    home: Path
    lake: Path
    logs: Path
    servers: list[Server] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self):
        from dagster_graphql import DagsterGraphQLClient

        return DagsterGraphQLClient("127.0.0.1", port_number=self.port, timeout=60)

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        """A plain GraphQL request (for what ``DagsterGraphQLClient`` has no call for)."""
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(
            f"{self.url}/graphql", body, {"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())
        if answer.get("errors"):
            raise RuntimeError(f"GraphQL errors: {answer['errors']}")
        return answer["data"]

    def check_alive(self) -> None:
        for server in self.servers:
            server.check_alive()

    def _server_info(self) -> bool:
        self.check_alive()
        try:
            with urllib.request.urlopen(f"{self.url}/server_info", timeout=5) as response:
                return response.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def _location_loaded(self) -> bool:
        self.check_alive()
        workspace = self.graphql(LOCATION_QUERY)["workspaceOrError"]
        if workspace["__typename"] != "Workspace":
            raise RuntimeError(f"workspace: {workspace}")
        entry = next(e for e in workspace["locationEntries"] if e["name"] == LOCATION)
        if entry["loadStatus"] != "LOADED":
            return False
        loaded = entry["locationOrLoadError"]
        if loaded["__typename"] != "RepositoryLocation":
            raise RuntimeError(f"code location {LOCATION} failed to load: {loaded}")
        return True

    def wait_ready(self, timeout: float = 120) -> None:
        wait_until(self._server_info, timeout, f"{self.url}/server_info")
        wait_until(self._location_loaded, timeout, f"code location {LOCATION} to load")


def e2e_environment(home: Path, lake: Path, window: dict[str, str]) -> dict[str, str]:
    """This process's environment without the developer's ``FINANCE_DAG_*`` and ``DAGSTER_*``
    variables, plus the test's instance, lake and ``window`` (``FINANCE_DAG_`` prefix added)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FINANCE_DAG_", "DAGSTER_"))}
    env.update({f"FINANCE_DAG_{k}": v for k, v in window.items()})
    env.update(
        {
            "FINANCE_DAG_STORAGE": str(lake),
            "DAGSTER_HOME": str(home),
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def make_home(root: Path):
    """A fresh DAGSTER_HOME under ``root`` with the deployment's ``dagster.yaml`` and its storage
    created (the webserver and the daemon creating the SQLite schemas at once race on the alembic
    version table); returns the instance, to close or to materialise into."""
    import dagster as dg

    home = root / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    # seen "Join the Dagster community" already (dagster._core.nux): no modal over the checked pages
    (home / ".nux").mkdir(exist_ok=True)
    (home / ".nux" / "nux.yaml").write_text("seen: 1\n")
    instance = dg.DagsterInstance.from_config(str(home))
    instance.get_runs(limit=1)  # run storage
    instance.get_latest_materialization_event(dg.AssetKey("none"))  # event log storage
    instance.all_instigator_state()  # schedule storage
    return instance


@contextmanager
def deployment(root: Path, window: dict[str, str] = WINDOW, daemon: bool = True) -> Iterator[Deployment]:
    """``dagster-webserver`` (and ``dagster-daemon run``) on ``workspace.yaml``, the instance at
    ``root/dagster_home`` (made from deploy/dagster.yaml when absent) and the lake ``root/lake``;
    ready when the yielded value is. Every process started is ended on exit."""
    home = root / "dagster_home"
    if not (home / "dagster.yaml").exists():
        make_home(root).dispose()
    lake, logs = root / "lake", root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = e2e_environment(home, lake, window)
    port = free_port()
    commands = {
        "webserver": [
            str(BIN / "dagster-webserver"),
            "-w",
            "workspace.yaml",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
    }
    if daemon:
        commands["daemon"] = [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"]
    found = Deployment(port, home, lake, logs)
    with ExitStack() as stack:
        for name, command in commands.items():
            log = logs / f"{name}.log"
            handle = stack.enter_context(open(log, "wb"))
            process = subprocess.Popen(
                command,
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: teardown ends only what we started
            )
            server = Server(name, process, log)
            found.servers.append(server)
            stack.callback(server.stop)
        try:
            found.wait_ready()
            yield found
        except BaseException:
            for server in found.servers:  # pytest shows a failed test's output
                print(f"--- {server.name} ({server.log}) ---\n{server.tail()}", file=sys.stderr)
            raise

"""The chaos suite's shared parts: the collector every chaos test reports to, the fault-free
reference lakes the re-runs are compared with, and an S3 server a test may stop and restart.

**The collector.** With ``CHAOS_REPORT=path`` set, every test carrying the ``chaos`` marker (in
this folder or anywhere under ``tests/``) appends one JSON line to ``path`` when it ends: its case
(the marker's first argument), the faults injected, the partitions a re-run recovered, the rows
lost, its outcome and its duration. Tests here fill the numbers through the ``chaos`` fixture;
marked tests elsewhere contribute their case, the fault kinds named by the marker
(``@pytest.mark.chaos("vendor faults", faults="429 5xx timeout")``) and their outcome.
``python tests/chaos/report.py path`` prints the table. The collector is registered when this
conftest is loaded, which a run over ``tests/`` (``pytest -m chaos``) always does; each xdist
worker appends its own lines (one ``write`` per line, ``O_APPEND``).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime

import dagster as dg
import pytest

from finance_dag.testing.servers import free_port
from tests.support import make_defs, session_range_tags

REPORT_ENV = "CHAOS_REPORT"
RECORD = pytest.StashKey["ChaosRecord"]()


@dataclass
class ChaosRecord:
    """What one chaos test did: filled by the test, written by the collector."""

    faults: list[str] = field(default_factory=list)
    partitions_recovered: int | None = None
    rows_lost: int | None = None
    note: str = ""

    def inject(self, fault: str) -> None:
        self.faults.append(fault)


@pytest.fixture
def chaos(request) -> ChaosRecord:
    """This test's record for the collector (see the module docstring)."""
    record = ChaosRecord()
    request.node.stash[RECORD] = record
    return record


class Collector:
    """Appends one JSON line per chaos-marked test to ``path`` (see the module docstring)."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self.state: dict[str, dict] = {}

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call):
        report = yield
        marker = item.get_closest_marker("chaos")
        if marker is None:
            return report
        state = self.state.setdefault(item.nodeid, {"outcome": "passed", "seconds": 0.0})
        state["seconds"] += report.duration
        if report.failed:
            state["outcome"] = "failed" if report.when == "call" else "error"
        elif report.skipped and state["outcome"] == "passed":
            state["outcome"] = "xfailed" if hasattr(report, "wasxfail") else "skipped"
        if report.when == "teardown":
            self.write(item, marker, self.state.pop(item.nodeid))
        return report

    def write(self, item: pytest.Item, marker: pytest.Mark, state: dict) -> None:
        record = item.stash.get(RECORD, None) or ChaosRecord(faults=marker.kwargs.get("faults", "").split())
        line = {
            "test": item.nodeid,
            "case": marker.args[0] if marker.args else item.module.__name__.rsplit(".", 1)[-1],
            **asdict(record),
            "outcome": state["outcome"],
            "seconds": round(state["seconds"], 1),
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        data = (json.dumps(line) + "\n").encode()
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(descriptor, data)  # one write: lines of parallel workers never interleave
        finally:
            os.close(descriptor)


def pytest_configure(config: pytest.Config) -> None:
    path = os.environ.get(REPORT_ENV)
    if path and not config.pluginmanager.has_plugin("finance_dag_chaos_collector"):
        config.pluginmanager.register(Collector(path), "finance_dag_chaos_collector")


# ---- fault-free references --------------------------------------------------------------------


@pytest.fixture(scope="session")
def fault_free(tmp_path_factory) -> Callable[..., str]:
    """``fault_free(job, first, last, env)``: the root of a local lake where ``job`` ran over
    ``first..last`` in one run on the embedded default with no fault (built once per session)."""
    built: dict[tuple, str] = {}

    def build(job: str, first: date, last: date, env: dict[str, str] | None = None) -> str:
        key = (job, first, last, tuple(sorted((env or {}).items())))
        if key not in built:
            root = str(tmp_path_factory.mktemp("fault_free") / "lake")
            with dg.instance_for_test() as instance:
                result = (
                    make_defs(root, env=env)
                    .resolve_job_def(job)
                    .execute_in_process(instance=instance, tags=session_range_tags(first, last))
                )
                assert result.success
            built[key] = root
        return built[key]

    return build


# ---- an S3 server a test may stop -------------------------------------------------------------


class StoppableS3:
    """moto's S3 server on a loopback port of its own (never the session's ``s3_endpoint``,
    which other tests share). ``stop()`` closes the port as a crashed server would; ``start()``
    listens again on the same port with the same buckets (moto keeps them in this process)."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.running = False
        self.stopped_at: float | None = None

    def start(self) -> None:
        self._server.start()
        self.running = True

    def stop(self) -> None:
        self._server.stop()
        self.running = False
        self.stopped_at = time.monotonic()


@pytest.fixture
def stoppable_s3(monkeypatch) -> Iterator[StoppableS3]:
    """A ``StoppableS3`` with the AWS variables pointing at it; stopped at the end whatever happens."""
    server = StoppableS3()
    quiet = logging.getLogger("werkzeug")
    level = quiet.level
    quiet.setLevel(logging.WARNING)  # one INFO line per request otherwise
    server.start()
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": server.endpoint,
    }.items():
        monkeypatch.setenv(name, value)
    try:
        yield server
    finally:
        if server.running:
            server.stop()
        quiet.setLevel(level)

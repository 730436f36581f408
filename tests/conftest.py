"""Shared fixtures: a temporary lake, Dagster instances, and a real S3-API server on loopback.

The developer's ``FINANCE_DAG_*`` variables are dropped before any test (and any subprocess a
test starts) runs: tests pin their own settings (``tests.support``).
"""

import os
import socket
from collections.abc import Iterator

import boto3
import dagster as dg
import pytest

from finance_dag.sim import SimulatedMarket
from tests.support import make_defs

for _name in [n for n in os.environ if n.startswith("FINANCE_DAG_")]:
    del os.environ[_name]


# Tests that start whole stacks (the production profile's servers, the webserver and daemon): a
# minute or more each. ``make test`` runs them first and lets idle workers steal the short tests
# behind them (``--dist worksteal``), so the run never ends waiting on one long test started last.
LONG_RUNNING = ("prod", "e2e")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: not any(item.get_closest_marker(m) for m in LONG_RUNNING))


@pytest.fixture(scope="session")
def market() -> SimulatedMarket:
    return SimulatedMarket(7)


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as inst:
        yield inst


@pytest.fixture
def defs(tmp_path) -> dg.Definitions:
    """The code location on an empty lake in a temporary folder."""
    return make_defs(str(tmp_path / "lake"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server in server mode on loopback, for the whole session."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint, monkeypatch, request) -> str:
    """A fresh bucket on the loopback server; AWS_ENDPOINT_URL and dummy credentials set."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    name = "lake-" + request.node.name.lower().replace("_", "-")[:40]
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=name)
    return name

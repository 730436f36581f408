"""Shared fixtures: a temporary lake, Dagster instances, and a real S3-API server on loopback."""

import socket
from collections.abc import Iterator
from dataclasses import replace
from datetime import date

import boto3
import dagster as dg
import pytest

from finance_dag.definitions import build_definitions
from finance_dag.partitions import SETTINGS, SYMBOLS
from finance_dag.resources.bar_vendors import BarVendorsResource
from finance_dag.resources.market import SimulatedMarketResource
from finance_dag.sim import SimulatedMarket

THANKSGIVING_WEEK = (date(2024, 11, 27), date(2024, 11, 29))  # a full day, a holiday, an early close


@pytest.fixture(scope="session")
def market() -> SimulatedMarket:
    return SimulatedMarket(7)


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as inst:
        yield inst


def make_defs(root: str, fail_symbol_days: list[str] | None = None, **overrides) -> dg.Definitions:
    """The real code location on a lake at ``root``, optionally with injected vendor failures."""
    vendors = BarVendorsResource(market=SimulatedMarketResource(), fail_symbol_days=fail_symbol_days or [])
    return build_definitions(replace(SETTINGS, storage=str(root)), bar_vendors=vendors, **overrides)


@pytest.fixture
def defs(tmp_path) -> dg.Definitions:
    return make_defs(str(tmp_path / "lake"))


def run_job(defs: dg.Definitions, instance, job: str, tags: dict[str, str] | None = None, ok: bool = True):
    result = defs.resolve_job_def(job).execute_in_process(
        instance=instance, tags=tags or {}, raise_on_error=False
    )
    assert result.success is ok, [e.message for e in result.all_events if e.is_failure]
    return result


@pytest.fixture
def first_symbols() -> tuple[str, str, str]:
    return SYMBOLS[0], SYMBOLS[1], SYMBOLS[2]


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

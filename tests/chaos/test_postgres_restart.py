"""PostgreSQL, the production instance's storage (``deploy/prod/dagster.yaml``), goes away while a
multi-session minute_bars run on that instance is executing.

The run is in-process on a real PostgreSQL server on loopback (``finance_dag.testing.servers``),
recording each session as soon as it is written (one session per chunk, so the instance is
written to all along). At the run's 30th lake write a thread:

- ``restart``: restarts PostgreSQL (``PostgresServer.restart()``: a fast shutdown, then a start,
  well under a second). dagster-postgres retries a refused connection for ~11 s (5 retries,
  exponential backoff from 0.2 s): the run completes.
- ``down-16s``: stops it for 16 s, longer than those retries: recording a session fails, the run
  fails naming ``too many retries for DB connection`` and the refused connection, and what it
  wrote before is recorded once PostgreSQL is back (the failure is stored too: the run ends
  FAILURE, never stays STARTED, and its pool slot is freed).

Either way nothing is partial, and a re-run of the missing sessions reaches the fault-free lake.
"""

import logging
import os
import shutil
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.instance.ref import InstanceRef

from finance_dag.core import calendar
from finance_dag.core.lake import Lake
from finance_dag.defs.market_data import assets
from finance_dag.testing.servers import PostgresServer
from tests.chaos.support import assert_nothing_partial, compare, failure_text, object_keys, run_minute_bars
from tests.support import SYMBOLS, make_defs

pytestmark = [pytest.mark.chaos("PostgreSQL restart mid-run"), pytest.mark.prod]

REPO = Path(__file__).parents[2]
FIRST, LAST = date(2024, 11, 18), date(2024, 11, 29)  # 9 sessions x 20 symbols
SESSIONS = [d.isoformat() for d in calendar.sessions(FIRST, LAST)]
STRIKE_AT = 30  # the 10th file of the 2nd session
MINUTE_BARS = dg.AssetKey("minute_bars")
RETRYING = "Retrying failed database connection"  # dagster_postgres.utils.retry_pg_connection_fn


@pytest.fixture
def postgres(monkeypatch):
    """A PostgreSQL server of this test's own (in a folder the postgres user can reach) and a
    DAGSTER_HOME with the production instance file pointing at it."""
    folder = Path(tempfile.mkdtemp(prefix="finance_dag_chaos_pg_"))
    os.chmod(folder, 0o755)
    server = PostgresServer(folder / "pg")
    try:
        server.start()
        home = folder / "home"
        home.mkdir()
        shutil.copy(REPO / "deploy/prod/dagster.yaml", home / "dagster.yaml")
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        yield server, home
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("outage", ["restart", "down-16s"])
def test_postgresql_going_away_mid_run_completes_or_fails_clearly_and_a_rerun_reaches_the_fault_free_lake(
    postgres, fault_free, chaos, tmp_path, monkeypatch, caplog, outage
):
    server, home = postgres
    root = str(tmp_path / "lake")
    defs, lake = make_defs(root), Lake(root)
    expected = Lake(fault_free("minute_bars_job", FIRST, LAST))
    monkeypatch.setattr(assets, "CHUNK_SESSIONS", 1)  # each session recorded as soon as it is written

    def strike() -> None:
        if outage == "restart":
            server.restart()
            chaos.inject("PostgreSQL restarted (fast shutdown, start)")
        else:
            server.stop()
            chaos.inject("PostgreSQL stopped for 16 s")
            time.sleep(16)
            server.start()
            chaos.inject("PostgreSQL started again")

    writes, striker = [0], threading.Thread(target=strike)
    real_write = Lake.write_bytes

    def write(self, rel, data):
        if rel.startswith("minute_bars/"):
            writes[0] += 1
            if writes[0] == STRIKE_AT:
                striker.start()
        real_write(self, rel, data)

    monkeypatch.setattr(Lake, "write_bytes", write)
    caplog.set_level(logging.WARNING)
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        assert "Postgres" in type(instance.run_storage).__name__
        try:
            result = run_minute_bars(defs, instance, SESSIONS[0], SESSIONS[-1])
        finally:
            if writes[0] >= STRIKE_AT:
                striker.join(60)
        assert writes[0] >= STRIKE_AT, "the run ended before PostgreSQL went away"
        monkeypatch.setattr(Lake, "write_bytes", real_write)
        retries = sum(RETRYING in r.getMessage() for r in caplog.records)
        if result.success:
            chaos.note = f"run completed: dagster-postgres reconnected ({retries} connection retries)"
        else:
            text = failure_text(result)
            assert "psycopg2.OperationalError" in text, text  # the database's own error, named
            if outage == "down-16s":
                assert "too many retries for DB connection" in text and "Connection refused" in text, text
            chaos.note = f"run failed: DagsterPostgresException after {retries} connection retries"
        if outage == "down-16s":
            assert not result.success and retries >= 5

        # The instance kept an exact account: the run ended (never left STARTED), its pool slot is free.
        status = instance.get_run_by_id(result.run_id).status
        assert status == (dg.DagsterRunStatus.SUCCESS if result.success else dg.DagsterRunStatus.FAILURE)
        pool = defs.resolve_assets_def("minute_bars").op.pool
        assert not instance.event_log_storage.get_concurrency_info(pool).claimed_slots

        # Nothing partial: whole files equal to the fault-free ones; recorded sessions complete.
        keys = object_keys(lake)
        assert not [k for k in keys if not k.startswith("minute_bars/")], keys  # no staged file left
        assert_nothing_partial(expected, lake)
        recorded = instance.get_materialized_partitions(MINUTE_BARS)
        for day in recorded:
            assert sum(f"date={day}" in k for k in keys) == len(SYMBOLS), day
        missing = [d for d in SESSIONS if d not in recorded]
        assert bool(missing) is not result.success

        if missing:  # the "missing only" re-run
            assert missing == SESSIONS[SESSIONS.index(missing[0]) :]
            again = run_minute_bars(defs, instance, missing[0], missing[-1])
            assert again.success, failure_text(again)
            assert (
                sorted({m.partition for m in again.asset_materializations_for_node("minute_bars")}) == missing
            )
        assert instance.get_materialized_partitions(MINUTE_BARS) == set(SESSIONS)

    final = compare(expected, lake, "minute_bars")
    chaos.partitions_recovered, chaos.rows_lost = len(missing), final.rows_lost
    assert final.rows_lost == 0 and final.equal, final

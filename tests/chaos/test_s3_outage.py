"""The lake's S3 server stops in the middle of a multi-session minute_bars backfill into an
``s3://`` lake, and comes back on the same port with the same buckets.

moto's S3 server is stopped just before the run's 70th lake write (the 10th file of its 4th
session):

- ``outage-outlasts-retries``: it stays down until the run gives up (botocore retries a refused
  connection 4 times with random exponential backoff: 0-15 s, ~7 s typically): the run fails
  naming ``EndpointConnectionError``, the endpoint and the file's ``s3://`` path as written;
  the three sessions written before are recorded, the fourth is not; every object is a whole
  parquet file equal to the fault-free one, nothing is staged under ``_tmp/`` (S3 writes are single
  PUTs). After the restart, a "missing only" re-run fills exactly the six missing sessions
  without touching the recorded ones.
- ``outage-within-retries``: it comes back after 0.5 s: the client's retries carry the write
  and the run completes (the retries taking under 0.5 s in all has a chance of about 1 in 20,000).

Either way the lake ends equal to a fault-free run's lake, row for row.
"""

import threading
import time
from datetime import date

import boto3
import dagster as dg
import pytest

from finance_dag.core import calendar
from finance_dag.core.lake import Lake
from tests.chaos.support import assert_nothing_partial, compare, failure_text, run_minute_bars
from tests.support import SYMBOLS, failure_messages, make_defs

pytestmark = [pytest.mark.chaos("S3 outage mid-backfill"), pytest.mark.s3]

FIRST, LAST = date(2024, 11, 18), date(2024, 11, 29)  # 9 sessions (Thanksgiving week) x 20 symbols
SESSIONS = [d.isoformat() for d in calendar.sessions(FIRST, LAST)]
STOP_AT = 3 * len(SYMBOLS) + 10  # the 10th file of the 4th session
MINUTE_BARS = dg.AssetKey("minute_bars")


@pytest.mark.parametrize("outage", ["outage-outlasts-retries", "outage-within-retries"])
def test_an_s3_outage_mid_backfill_loses_nothing_and_a_rerun_fills_exactly_the_rest(
    stoppable_s3, fault_free, chaos, monkeypatch, outage
):
    bucket = f"chaos-{outage}"
    boto3.client("s3", endpoint_url=stoppable_s3.endpoint).create_bucket(Bucket=bucket)
    root = f"s3://{bucket}/lake"
    defs, lake = make_defs(root), Lake(root)
    expected = Lake(fault_free("minute_bars_job", FIRST, LAST))

    writes, restarted, struck = [0], threading.Event(), {}
    real_write = Lake.write_bytes

    def write(self, rel, data):
        if rel.startswith("minute_bars/"):
            writes[0] += 1
            if writes[0] == STOP_AT:
                stoppable_s3.stop()
                chaos.inject(f"S3 server stopped before lake write {STOP_AT}")
                struck["path"] = rel
                if outage == "outage-within-retries":
                    threading.Timer(0.5, lambda: (stoppable_s3.start(), restarted.set())).start()
        real_write(self, rel, data)
        if writes[0] == STOP_AT and rel == struck.get("path"):
            struck["written_at"] = time.monotonic()

    monkeypatch.setattr(Lake, "write_bytes", write)
    with dg.instance_for_test() as instance:
        result = run_minute_bars(defs, instance, SESSIONS[0], SESSIONS[-1])
        assert writes[0] >= STOP_AT, "the run ended before the outage"
        if outage == "outage-within-retries":
            assert restarted.wait(10)
            assert result.success, failure_messages(result)
            assert struck["written_at"] > stoppable_s3.stopped_at + 0.5  # held by retries, then written
            chaos.note = "run completed: the S3 client's retries outlasted the outage"
        else:
            assert not result.success
            message = failure_text(result)
            assert "EndpointConnectionError" in message and stoppable_s3.endpoint in message, message
            assert f"writing {lake.uri(struck['path'])} failed" in message  # the file, not URL-encoded
            chaos.note = "run failed: EndpointConnectionError naming the endpoint and the file"
            stoppable_s3.start()
        chaos.inject("S3 server restarted on the same port")
        monkeypatch.setattr(Lake, "write_bytes", real_write)

        # Nothing partial: nothing staged, every object a whole file equal to the fault-free one,
        # and a session is recorded only when all its files are in.
        written = assert_nothing_partial(expected, lake)
        recorded = instance.get_materialized_partitions(MINUTE_BARS)
        for day in recorded:
            assert sum(f"date={day}" in k for k in written) == len(SYMBOLS), day
        missing = [d for d in SESSIONS if d not in recorded]
        if outage == "outage-outlasts-retries":
            assert sorted(recorded) == SESSIONS[:3] and missing == SESSIONS[3:]
            assert 0 < sum(f"date={SESSIONS[3]}" in k for k in written) < len(SYMBOLS)  # cut mid-session

        # The "missing only" re-run: exactly the missing sessions, the recorded files untouched.
        kept = {k: lake.modified(k) for k in written if any(f"date={d}" in k for d in recorded)}
        if missing:
            assert missing == SESSIONS[SESSIONS.index(missing[0]) :]  # one range: the tail
            again = run_minute_bars(defs, instance, missing[0], missing[-1])
            assert again.success, failure_messages(again)
            assert (
                sorted({m.partition for m in again.asset_materializations_for_node("minute_bars")}) == missing
            )
        assert {k: lake.modified(k) for k in kept} == kept
        assert instance.get_materialized_partitions(MINUTE_BARS) == set(SESSIONS)

    final = compare(expected, lake, "minute_bars")
    chaos.partitions_recovered, chaos.rows_lost = len(missing), final.rows_lost
    assert final.rows_lost == 0 and final.equal, final
    assert final.files == len(SESSIONS) * len(SYMBOLS)

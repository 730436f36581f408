"""P1: a 3-month x 50-symbol minute-bar backfill through Dagster against its floor; P6: bytes/bar.

Floor, measured in the same process on the same kind of instance (sqlite, like `dagster dev`):
a no-op asset with the same partitions run over the same range in one run (Dagster's own
bookkeeping), plus the time the vendors took to answer inside our run (the simulated vendors
generate the bars: the data has to come from somewhere), plus a raw pyarrow write of the same
bars, one file per symbol-day.
"""

import os
import shutil
import sys
import tempfile
import time
from datetime import date

import dagster as dg
import pyarrow.parquet as pq

from benchmarks.common import QUIET, bench_settings, timed, verdict
from finance_dag.core import calendar
from finance_dag.core.lake import Lake
from finance_dag.core.universe import FULL_SYMBOLS
from finance_dag.definitions import build_definitions
from finance_dag.platform.partitions import DomainPartitions, session_range_tags
from finance_dag.sim.vendors import SimulatedVendor

START, END = date(2024, 9, 3), date(2024, 11, 29)
UNIVERSE = ",".join(FULL_SYMBOLS[:50])
ISSUE = "issue 2"
PARTS = DomainPartitions(bench_settings("unused", UNIVERSE=UNIVERSE).market_data)


class VendorClock:
    """Seconds spent inside the simulated vendors' fetches."""

    seconds = 0.0

    def __init__(self) -> None:
        self.real = SimulatedVendor.fetch_minute_bars

    def __enter__(self) -> "VendorClock":
        real = self.real

        def timed_fetch(vendor, *args, **kwargs):
            started = time.perf_counter()
            try:
                return real(vendor, *args, **kwargs)
            finally:
                VendorClock.seconds += time.perf_counter() - started

        SimulatedVendor.fetch_minute_bars = timed_fetch
        return self

    def __exit__(self, *exc) -> None:
        SimulatedVendor.fetch_minute_bars = self.real


@dg.asset(partitions_def=PARTS.trading_days, backfill_policy=dg.BackfillPolicy.single_run())
def noop_minute_bars(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """Same partitions, no work: what Dagster itself costs for these materialisations."""
    for key in context.partition_keys:
        context.add_asset_metadata({"dagster/row_count": 0}, partition_key=key)
    return dg.MaterializeResult()


def run_range(defs: dg.Definitions, job: str, tags: dict[str, str], home: str) -> float:
    os.makedirs(home)
    with dg.instance_for_test(temp_dir=home) as instance:
        return timed(
            lambda: defs.resolve_job_def(job).execute_in_process(
                instance=instance, tags=tags, run_config=QUIET
            )
        )


def main() -> int:
    symbols = PARTS.symbols
    sessions = calendar.sessions(START, END)
    tags = session_range_tags(START, END)
    work = tempfile.mkdtemp(prefix="finance_dag_bench_")
    try:
        lake_root = os.path.join(work, "lake")
        defs = build_definitions(bench_settings(lake_root, UNIVERSE=UNIVERSE))
        noop = dg.Definitions(
            assets=[noop_minute_bars], jobs=[dg.define_asset_job("noop", [noop_minute_bars])]
        )
        bookkeeping = run_range(noop, "noop", tags, os.path.join(work, "home_noop"))
        with VendorClock():
            ours = run_range(defs, "minute_bars_job", tags, os.path.join(work, "home_ours"))

        lake = Lake(lake_root)
        files = lake.list_files("minute_bars")
        tables = [pq.read_table(os.path.join(lake_root, f.path)) for f in files]
        raw_dir = os.path.join(work, "raw")
        os.makedirs(raw_dir)
        raw_write = timed(
            lambda: [pq.write_table(t, os.path.join(raw_dir, f"{i}.parquet")) for i, t in enumerate(tables)]
        )
        regular = sum(int(t.column("regular").to_numpy().sum()) for t in tables)
        rows = sum(t.num_rows for t in tables)
        stored = sum(f.size for f in files)
        allocated = sum(os.stat(os.path.join(lake_root, f.path)).st_blocks * 512 for f in files)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    vendors = VendorClock.seconds
    floor = bookkeeping + vendors + raw_write
    print(
        f"P1 setup: {len(sessions)} sessions x {len(symbols)} symbols = {len(sessions)} partitions, "
        f"{len(files)} symbol-day files, {rows:,} bars"
    )
    print(
        f"P1 ours {ours:.2f} s; floor {floor:.2f} s = no-op Dagster {bookkeeping:.2f} s "
        f"+ vendors {vendors:.2f} s + raw pyarrow write {raw_write:.2f} s"
    )
    ok = verdict(
        "P1 backfill wall time / floor",
        ours / floor,
        1.25,
        "x",
        f"(ours {ours:.2f} s)",
        issue=ISSUE,
        floor=floor,
        floor_unit="s",
        floor_note="no-op Dagster + vendors + raw pyarrow write",
    )
    ok &= verdict(
        "P6 minute_bars bytes per regular-session bar", stored / regular, 12.0, "B",
        f"({stored / rows:.2f} B per bar incl. extended hours; "
        f"{allocated / regular:.2f} B/bar in allocated 4 KiB blocks)",
        issue=ISSUE,
    )  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

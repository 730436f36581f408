"""P5: one symbol x one year of minute bars from the local lake into a DataFrame; P6 for the
consolidated (research) layout. Floor: raw pyarrow read of the same file."""

import os
import shutil
import statistics
import sys
import tempfile
from datetime import date

import dagster as dg
import pyarrow.parquet as pq

from benchmarks.common import QUIET, bench_settings, timed, verdict
from finance_dag.core.lake import Lake
from finance_dag.definitions import build_definitions
from finance_dag.market_data.consolidate import load_symbol_bars, year_path
from finance_dag.platform.partitions import range_tags

SYMBOL, YEAR = "SPY", 2024
ISSUE = "issue 2"


def main() -> int:
    work = tempfile.mkdtemp(prefix="finance_dag_bench_")
    try:
        root = os.path.join(work, "lake")
        defs = build_definitions(bench_settings(root, UNIVERSE=SYMBOL))
        with dg.instance_for_test() as instance:
            for job, tags in (
                ("minute_bars_job", range_tags(f"{YEAR}-01-02", f"{YEAR}-12-31")),
                ("consolidate_job", range_tags(SYMBOL, SYMBOL)),
            ):
                defs.resolve_job_def(job).execute_in_process(instance=instance, tags=tags, run_config=QUIET)
        lake = Lake(root)
        path = os.path.join(root, year_path(SYMBOL, YEAR))
        ours = statistics.median(
            timed(lambda: load_symbol_bars(lake, SYMBOL, date(YEAR, 1, 1), date(YEAR, 12, 31)))
            for _ in range(7)
        )
        floor = statistics.median(timed(lambda: pq.read_table(path)) for _ in range(7))
        bars = load_symbol_bars(lake, SYMBOL, date(YEAR, 1, 1), date(YEAR, 12, 31))
        regular = int(bars["regular"].sum())
        size = os.path.getsize(path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"P5 {bars.height:,} bars ({regular:,} regular) of {SYMBOL} {YEAR}; "
        f"raw pyarrow read of the file {floor * 1000:.1f} ms"
    )
    ok = verdict(
        "P5 one symbol-year into a DataFrame",
        ours,
        0.3,
        "s",
        issue=ISSUE,
        floor=floor,
        floor_note="raw pyarrow read of the file",
    )
    ok &= verdict(
        "P6 consolidated_bars bytes per regular-session bar",
        size / regular,
        12.0,
        "B",
        f"({size / bars.height:.2f} B per bar incl. extended hours)",
        issue=ISSUE,
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

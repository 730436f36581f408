"""Issue 7: the whole lending group for one session over 1,000 names (target <= 2 s of
computation and writes, Dagster's fixed run start excluded).

The 31 earlier sessions its factors read are materialised first. Then one in-process run of
`lending_job` for the session is timed, and a no-op asset job with the same partitions in the
same kind of instance gives Dagster's fixed cost, which is subtracted.
"""

import os
import sys
import tempfile
from datetime import date

import dagster as dg

from benchmarks.common import QUIET, bench_settings, timed, verdict
from finance_dag.core import calendar
from finance_dag.definitions import build_definitions
from finance_dag.platform.partitions import DomainPartitions, session_range_tags

DAY = date(2024, 11, 29)
TARGET = 2.0
ISSUE = "issue 7"


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="finance_dag_bench_") as work:
        settings = bench_settings(os.path.join(work, "lake"), LENDING_START_DATE="2024-09-03")
        defs = build_definitions(settings)
        parts = DomainPartitions(settings.lending)

        @dg.asset(partitions_def=parts.trading_days, backfill_policy=dg.BackfillPolicy.single_run())
        def noop(context: dg.AssetExecutionContext) -> None:
            """Same partitions, no work: Dagster's fixed cost of a run."""

        floor_defs = dg.Definitions(assets=[noop], jobs=[dg.define_asset_job("noop", [noop])])
        history = calendar.sessions(date(2024, 10, 1), DAY)
        with dg.instance_for_test(temp_dir=work) as instance:
            job = defs.resolve_job_def("lending_job")
            job.execute_in_process(
                instance=instance, tags=session_range_tags(history[0], history[-2]), run_config=QUIET
            )
            tags = {"dagster/partition": DAY.isoformat()}
            ours = timed(lambda: job.execute_in_process(instance=instance, tags=tags, run_config=QUIET))
            floor = timed(
                lambda: floor_defs.resolve_job_def("noop").execute_in_process(
                    instance=instance, tags=tags, run_config=QUIET
                )
            )
    print(
        f"lending group, one session x {len(settings.lending.universe)} names: run {ours:.2f} s, Dagster no-op run {floor:.2f} s"
    )
    return (
        0
        if verdict(
            f"lending group for one session x {len(settings.lending.universe)} names, computation and writes",
            ours - floor,
            TARGET,
            "s",
            issue=ISSUE,
            floor=floor,
            floor_note="Dagster no-op run, subtracted",
        )
        else 1
    )


if __name__ == "__main__":
    sys.exit(main())

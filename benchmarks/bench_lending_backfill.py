"""Issue 7: a one-year backfill of the lending group through Dagster, 1,000 names, against its
floor (target: wall time <= 1.5 x the floor).

Floor: the same assets as no-ops -- same keys, partitions, dependencies (partition mappings
included) and single-run backfill policy, each recording one metadata entry per partition --
run over the same sessions in one run, on the same kind of instance (sqlite, like
`dagster dev`). That is Dagster's own bookkeeping for these materialisations; ours adds reading
the simulated feed and drops, every computation and every write.
"""

import os
import shutil
import sys
import tempfile
from datetime import date

import dagster as dg

from benchmarks.common import QUIET, bench_settings, timed, verdict
from finance_dag.core import calendar
from finance_dag.definitions import build_definitions
from finance_dag.platform.partitions import session_range_tags

START, END = date(2023, 11, 29), date(2024, 11, 29)  # 252 sessions
TARGET = 1.5
ISSUE = "issue 7"


def noop_copy(assets_def: dg.AssetsDefinition) -> dg.AssetsDefinition:
    """An asset with ``assets_def``'s key, partitions, dependencies and backfill policy that
    does nothing but record one metadata entry per partition."""
    spec = assets_def.specs_by_key[assets_def.key]
    partitioned = assets_def.partitions_def is not None

    @dg.asset(
        key=spec.key,
        partitions_def=assets_def.partitions_def,
        deps=[dg.AssetDep(dep.asset_key, partition_mapping=dep.partition_mapping) for dep in spec.deps],
        backfill_policy=assets_def.backfill_policy,
        group_name=spec.group_name,
    )
    def noop(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        if partitioned:
            for key in context.partition_keys:
                context.add_asset_metadata({"dagster/row_count": 0}, partition_key=key)
            return dg.MaterializeResult()
        return dg.MaterializeResult(metadata={"dagster/row_count": 0})

    return noop


def run(defs: dg.Definitions, home: str) -> float:
    os.makedirs(home)
    tags = session_range_tags(START, END)
    with dg.instance_for_test(temp_dir=home) as instance:
        job = defs.resolve_job_def("lending_job")
        return timed(lambda: job.execute_in_process(instance=instance, tags=tags, run_config=QUIET))


def main() -> int:
    work = tempfile.mkdtemp(prefix="finance_dag_bench_")
    try:
        settings = bench_settings(
            os.path.join(work, "lake"), LENDING_START_DATE=START.isoformat(), LENDING_END_DATE=END.isoformat()
        )
        defs = build_definitions(settings)
        group = [
            a
            for a in defs.assets
            if isinstance(a, dg.AssetsDefinition) and a.group_names_by_key[a.key] == "lending"
        ]
        floor_defs = dg.Definitions(
            assets=[noop_copy(a) for a in group],
            jobs=[dg.define_asset_job("lending_job", dg.AssetSelection.groups("lending"))],
        )
        floor = run(floor_defs, os.path.join(work, "home_floor"))
        ours = run(defs, os.path.join(work, "home_ours"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    sessions = len(calendar.sessions(START, END))
    print(
        f"lending group backfill: {sessions} sessions x {len(settings.lending.universe)} names, "
        f"{len(group)} assets, one run: ours {ours:.1f} s, no-op floor {floor:.1f} s"
    )
    ok = verdict(
        f"lending one-year backfill wall time / floor, {len(settings.lending.universe)} names",
        ours / floor,
        TARGET,
        "x",
        f"(ours {ours:.1f} s)",
        issue=ISSUE,
        floor=floor,
        floor_unit="s",
        floor_note="same assets as no-ops, one run",
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

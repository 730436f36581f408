"""Recording what a killed run wrote: the ``recover_killed_runs`` sensor.

A ranged run (``finance_dag.platform.ranged.PartitionWriter``) records its partitions when the
step ends, failed or not. A run that dies without cleanup (SIGKILL, OOM, lost host) records
none, although its lake files are whole (every write is atomic). Once such a run is marked
failed or canceled (by its code server, or by run monitoring: ``deploy/dagster.yaml``), this
sensor finds the partitions it targeted (run tags) of every asset in it that writes its own
partitions, keeps those not materialised since the run began whose lake file was written while
the run ran (after its start, before it was marked ended), and records them as materialised with ``recovered_from_run`` metadata, so a
"missing only" backfill does not fetch them again. A partition stored as several files counts
only when every one of its files was written then, and the one the run wrote last is left out (the run may have died between its files). The cursor is the last run handled; a
partition already materialised is never recorded twice.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

import dagster as dg

from finance_dag.core.lake import Lake
from finance_dag.platform.partitions import run_partition_keys
from finance_dag.platform.storage import PARTITION_FILES, LakeResource, asset_lake_path

ENDED_BADLY = [dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]
RUNS_PER_TICK = 20
FIRST_LOOKBACK = timedelta(days=7)  # without a cursor: runs that ended in the last week
CLOCK_SLACK_SECONDS = 1.0  # S3 LastModified is truncated to whole seconds


def writes_own_partitions(assets_def: dg.AssetsDefinition) -> bool:
    """Whether runs of ``assets_def`` write its partitions themselves: the storage rule says every
    partitioned asset with ``BackfillPolicy.single_run()`` does (``PartitionWriter``)."""
    if assets_def.partitions_def is None or len(assets_def.keys) != 1:
        return False
    policy = assets_def.backfill_policy
    return policy is not None and policy.max_partitions_per_run is None  # single_run()


class PartitionFiles:
    """The lake files of one asset's partitions and when each was written.

    A partition is one file (``asset_lake_path``; written atomically, so whole), a folder of
    files, or the files matching the asset's ``PARTITION_FILES`` glob (``{partition}`` standing
    for the key), listed once for all keys."""

    def __init__(self, lake: Lake, assets_def: dg.AssetsDefinition) -> None:
        self.lake, self.assets_def = lake, assets_def
        pattern = assets_def.specs_by_key[assets_def.key].metadata.get(PARTITION_FILES)
        self.pattern = str(getattr(pattern, "value", pattern)) if pattern else None
        self._by_key: dict[str, list[str]] | None = None
        if pattern := self.pattern:
            head = pattern.split("*", 1)[0].split("{partition}", 1)[0].rsplit("/", 1)[0]
            regex = re.compile(
                "".join(
                    "(?P<key>[^/]+)" if part == "{partition}" else "[^/]*" if part == "*" else re.escape(part)
                    for part in re.split(r"(\{partition\}|\*)", pattern)
                )
                + "$"
            )
            self._by_key = defaultdict(list)
            for info in lake.list_files(head, suffix=""):
                match = regex.match(info.path)
                if match:
                    self._by_key[match["key"]].append(info.path)

    def files(self, key: str) -> tuple[list[str], bool]:
        """The files of partition ``key`` and whether it is a single (atomically written) file."""
        if self._by_key is not None:
            return sorted(self._by_key.get(key, [])), False
        path = asset_lake_path(self.assets_def, key)
        if self.lake.exists(path):
            return [path], True
        return [f.path for f in self.lake.list_files(path.removesuffix(".parquet"), suffix="")], False

    def where(self, key: str, single: bool) -> str:
        """The file, folder or glob of partition ``key``, as shown in metadata."""
        if self.pattern:
            return self.pattern.replace("{partition}", key)
        path = asset_lake_path(self.assets_def, key)
        return path if single else path.removesuffix(".parquet")


def _run_asset_keys(context: dg.SensorEvaluationContext, run: dg.DagsterRun) -> set[dg.AssetKey]:
    if run.asset_selection:
        return set(run.asset_selection)
    repo = context.repository_def
    if repo is None or not repo.has_job(run.job_name):
        return set()
    return set(repo.get_job(run.job_name).asset_layer.selected_asset_keys)


def recovered_events(
    context: dg.SensorEvaluationContext,
    record: dg.RunRecord,
    assets_defs: Sequence[dg.AssetsDefinition],
    lake: Lake,
) -> list[dg.AssetMaterialization]:
    """Materialisations for the partitions ``record``'s run wrote but never recorded."""
    instance, run = context.instance, record.dagster_run
    first = instance.get_records_for_run(run.run_id, limit=1, ascending=True).records
    if not first:
        return []
    # written by the run: after its start (S3 times are whole seconds) and before it was marked ended
    started = (record.start_time or record.create_timestamp.timestamp()) - CLOCK_SLACK_SECONDS
    ended = record.end_time or datetime.now(UTC).timestamp()
    in_run = _run_asset_keys(context, run)
    events = []
    for assets_def in assets_defs:
        if assets_def.key not in in_run:
            continue
        try:
            keys = run_partition_keys(run, assets_def.partitions_def)
        except Exception as error:  # e.g. the partitions changed since the run
            context.log.warning(f"run {run.run_id}: cannot list its partitions: {error}")
            continue
        done = instance.get_materialized_partitions(assets_def.key, after_cursor=first[0].storage_id - 1)
        found = PartitionFiles(lake, assets_def)
        whole: dict[str, str] = {}  # key -> path shown
        newest: tuple[float, str] | None = None  # the multi-file partition written last
        for key in keys:
            if key in done:
                continue
            paths, single = found.files(key)
            by_run = [t for t in map(lake.modified, paths) if started <= t <= ended]
            if not by_run:
                continue
            if not single and (newest is None or max(by_run) > newest[0]):
                newest = (max(by_run), key)
            if len(by_run) == len(paths):
                whole[key] = found.where(key, single)
        if newest is not None:
            whole.pop(newest[1], None)  # the run may have died while writing its files
        events.extend(
            dg.AssetMaterialization(
                asset_key=assets_def.key,
                partition=key,
                metadata={"recovered_from_run": run.run_id, "path": dg.MetadataValue.path(lake.uri(path))},
            )
            for key, path in whole.items()
        )
    return events


def build_recovery_sensor(assets: Iterable[object]) -> dg.SensorDefinition:
    """``recover_killed_runs`` for the code location's ``assets`` (see the module docstring)."""
    ranged = [a for a in assets if isinstance(a, dg.AssetsDefinition) and writes_own_partitions(a)]

    @dg.sensor(
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Records as materialised the partitions a failed or canceled run wrote to the lake but "
            "never recorded (a run killed by SIGKILL, OOM or a lost host), so a 'missing only' "
            "backfill does not fetch them again."
        ),
    )
    def recover_killed_runs(context: dg.SensorEvaluationContext, lake: LakeResource) -> dg.SensorResult:
        since = (
            datetime.fromisoformat(context.cursor) if context.cursor else datetime.now(UTC) - FIRST_LOOKBACK
        )
        records = context.instance.get_run_records(
            filters=dg.RunsFilter(statuses=ENDED_BADLY, updated_after=since),
            limit=RUNS_PER_TICK,
            order_by="update_timestamp",
            ascending=True,
        )
        if not records:
            return dg.SensorResult(skip_reason="no run failed or was canceled since the last tick")
        events = []
        for record in records:
            found = recovered_events(context, record, ranged, lake.lake)
            if found:
                context.log.info(
                    f"run {record.dagster_run.run_id}: recording {len(found)} partitions it wrote"
                )
            events.extend(found)
        cursor = records[-1].update_timestamp.isoformat()
        if not events:
            return dg.SensorResult(skip_reason="the failed runs left no unrecorded partitions", cursor=cursor)
        return dg.SensorResult(asset_events=events, cursor=cursor)

    return recover_killed_runs

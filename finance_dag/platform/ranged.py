"""Runs over many partitions that write their own partitions: record what was written, fail
only the bad partitions.

Every domain's ranged assets (``BackfillPolicy.single_run()``) use ``PartitionWriter``: each
partition is written to its lake path (``finance_dag.platform.storage.asset_lake_path``) and
remembered with its metadata; a partition that cannot be produced is marked failed with its
reasons. At the end, ``result()`` attaches each written partition's metadata, or, when any
failed, records the written ones as materialised and fails the step naming only the failed
partitions, so a "missing only" backfill re-does just those. An exception mid-run (a vendor
outage, Ctrl-C) also keeps what was written recorded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg
import polars as pl

from finance_dag.core.lake import Lake
from finance_dag.platform.storage import asset_lake_path

FAILED_LINES_SHOWN = 50
RANGE_TAG = "finance_dag/partitions"  # shown in the runs list: what this run covers


def describe_keys(keys: Sequence[str]) -> str:
    """``'2024-11-15..2024-11-29 (10 partitions)'``: a run's coverage in one line."""
    ordered = sorted(keys)
    if not ordered:
        return "no partitions"
    span = ordered[0] if len(ordered) == 1 else f"{ordered[0]}..{ordered[-1]}"
    return f"{span} ({len(ordered)} partition{'s' if len(ordered) > 1 else ''})"


class PartitionWriter:
    """Writes and records the partitions of one ranged asset step (see the module docstring)."""

    def __init__(self, context: dg.AssetExecutionContext, lake: Lake) -> None:
        self.context = context
        self.lake = lake
        self.written: dict[str, dict[str, Any]] = {}
        self.failed: dict[str, list[str]] = {}
        self.flushed: set[str] = set()
        if RANGE_TAG not in context.run.tags:
            context.instance.add_run_tags(context.run_id, {RANGE_TAG: describe_keys(context.partition_keys)})

    def __enter__(self) -> PartitionWriter:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if error is not None:
            self.flush()  # what is in the lake stays materialised; the rest is missing

    def path(self, key: str | None) -> str:
        return asset_lake_path(self.context.assets_def, key)

    def write(
        self,
        key: str,
        frame: pl.DataFrame,
        metadata: Mapping[str, Any] | None = None,
        encodings: Mapping[str, str] | None = None,
        stored: pl.DataFrame | None = None,
    ) -> None:
        """Write ``stored`` (default ``frame``) as partition ``key``; metadata gains the row
        count, path and size."""
        path = self.path(key)
        size = self.lake.write_parquet(path, frame if stored is None else stored, encodings=encodings)
        self.record(
            key,
            {
                "dagster/row_count": frame.height,
                "path": dg.MetadataValue.path(self.lake.uri(path)),
                "bytes": size,
                **(metadata or {}),
            },
        )

    def record(self, key: str, metadata: Mapping[str, Any]) -> None:
        """Remember a partition the asset wrote by other means (e.g. a folder of files)."""
        self.written[key] = dict(metadata)

    def fail(self, key: str, reasons: Sequence[str]) -> None:
        self.failed[key] = list(reasons)

    def flush(self) -> None:
        """Record the partitions written so far as materialised now, not at the end of the step:
        called between chunks, so a run killed without cleanup (SIGKILL, OOM) loses at most the
        chunk in flight (``recover_killed_runs`` then records that chunk's complete partitions).
        The step records every partition again when it ends, which costs one extra event per
        partition of the earlier chunks."""
        for key, metadata in self.written.items():
            if key not in self.flushed:
                self.context.log_event(
                    dg.AssetMaterialization(
                        asset_key=self.context.asset_key, partition=key, metadata=metadata
                    )
                )
                self.flushed.add(key)

    def result(self, why: str, **kwargs: Any) -> dg.MaterializeResult:
        """The step's result; raises ``dg.Failure`` naming each failed partition, if any."""
        if self.failed:
            self.flush()
            lines = [f"{key}: {'; '.join(reasons)}" for key, reasons in sorted(self.failed.items())]
            total = len(self.written) + len(self.failed)
            raise dg.Failure(
                description=(
                    f"{len(self.failed)} of {total} {self.context.asset_key.to_user_string()} partitions "
                    f"{why}:\n" + "\n".join(lines[:FAILED_LINES_SHOWN])
                ),
                metadata={
                    "failed_partitions": dg.MetadataValue.json(sorted(self.failed)),
                    "written_partitions": len(self.written),
                },
                allow_retries=False,
            )
        for key, metadata in self.written.items():
            self.context.add_asset_metadata(metadata, partition_key=key)
        return dg.MaterializeResult(**kwargs)

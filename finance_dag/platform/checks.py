"""What an asset check covers: the run's partitions when it runs with a materialisation (range
or single-partition tags), or, executed on its own from the UI, the latest materialised one.
Every domain's checks name the partitions they covered, so a badge never speaks for partitions
it did not look at."""

import dagster as dg
import polars as pl

from finance_dag.core.reports import markdown_table
from finance_dag.platform.partitions import run_partition_keys

SHOWN = 20  # failing rows listed in a check's metadata


def checked_keys(
    context: dg.AssetCheckExecutionContext, asset: dg.AssetKey, partitions_def: dg.PartitionsDefinition
) -> list[str]:
    """The partitions a check covers: the run's, or the latest materialised one."""
    keys = run_partition_keys(context.run, partitions_def)
    if keys:
        return keys
    materialized = context.instance.get_materialized_partitions(asset)
    return [max(materialized)] if materialized else []


def covered(keys: list[str]) -> dict[str, object]:
    """Check metadata naming the partitions covered."""
    ordered = sorted(keys)
    return {
        "partitions_checked": len(ordered),
        "first_partition": ordered[0] if ordered else "",
        "last_partition": ordered[-1] if ordered else "",
    }


def check_result(
    keys: list[str], failing: pl.DataFrame, severity=dg.AssetCheckSeverity.ERROR, **extra: object
) -> dg.AssetCheckResult:
    """Passed when ``failing`` is empty; the metadata names the partitions covered, the number
    of failing rows and the first ``SHOWN`` of them."""
    return dg.AssetCheckResult(
        passed=failing.is_empty(),
        severity=severity,
        metadata={
            **covered(keys),
            "failing": failing.height,
            "examples": dg.MetadataValue.md(
                markdown_table(failing.head(SHOWN)) if failing.height else "_none_"
            ),
            **extra,
        },
    )

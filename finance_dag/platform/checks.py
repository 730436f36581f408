"""What an asset check covers: the run's partitions when it runs with a materialisation (range
or single-partition tags), or, executed on its own from the UI, the latest materialised one.
Every domain's checks name the partitions they covered, so a badge never speaks for partitions
it did not look at."""

import dagster as dg

from finance_dag.platform.partitions import run_partition_keys


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

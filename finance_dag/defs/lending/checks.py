"""Data-quality checks of the lending lake, runnable with their asset or on their own.

Each re-reads what the lake holds for the partitions it covers (``platform.checks``) and lists
the failing rows or days:

- ``lending_snapshots.universe_covered`` (warn): the vendor delivered every name of the lending
  universe on each day;
- ``lending_factors.values_in_range`` (error): cross-sectional z-scores within [-3, 3], UPI
  within [0, 1], no NaN or infinity (a null is allowed: it is a documented missing value);
- ``extended_lending_factors.inputs_served`` (warn): no extended factor is null for every name
  of a day (that means an input was missing; the reason is shown);
- ``squeeze_scores.contributions_add_up`` (error): each score is the sum of its components'
  contributions and counts 1 to 5 components.
"""

import dagster as dg
import polars as pl

from finance_dag.lending.quality import contribution_errors, empty_extended_factors, factor_range_violations
from finance_dag.platform.checks import check_result, checked_keys
from finance_dag.platform.partitions import DomainPartitions
from finance_dag.platform.storage import LakeResource, read_partitions

SNAPSHOTS = dg.AssetKey("lending_snapshots")
FACTORS = dg.AssetKey("lending_factors")
EXTENDED = dg.AssetKey("extended_lending_factors")
SQUEEZE = dg.AssetKey("squeeze_scores")


def build_checks(parts: DomainPartitions) -> list[dg.AssetChecksDefinition]:
    def covered_frame(context, lake: LakeResource, asset: dg.AssetKey) -> tuple[list[str], pl.DataFrame]:
        keys = checked_keys(context, asset, parts.trading_days)
        return keys, read_partitions(lake.lake, asset, parts.trading_days, keys)

    @dg.asset_check(asset=SNAPSHOTS, description="Every name of the lending universe is in each day's feed.")
    def universe_covered(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
        keys, frame = covered_frame(context, lake, SNAPSHOTS)
        universe = pl.DataFrame({"symbol": list(parts.symbols)})
        days = frame.select("date").unique() if frame.height else pl.DataFrame(schema={"date": pl.Date})
        missing = days.join(universe, how="cross").join(
            frame.select("date", "symbol"), on=["date", "symbol"], how="anti"
        )
        return check_result(
            keys, missing.sort("date", "symbol"), dg.AssetCheckSeverity.WARN, universe=len(parts.symbols)
        )

    @dg.asset_check(
        asset=FACTORS,
        description="Cross-sectional z-scores within [-3, 3], UPI within [0, 1], no NaN or infinity.",
    )
    def values_in_range(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
        keys, frame = covered_frame(context, lake, FACTORS)
        return check_result(keys, factor_range_violations(frame) if frame.height else frame)

    @dg.asset_check(
        asset=EXTENDED,
        description="No extended factor is null for every name of a day (an input was missing; the reason shows).",
    )
    def inputs_served(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
        keys, frame = covered_frame(context, lake, EXTENDED)
        return check_result(
            keys, empty_extended_factors(frame) if frame.height else frame, dg.AssetCheckSeverity.WARN
        )

    @dg.asset_check(
        asset=SQUEEZE, description="Each SSR v4 score is the sum of its contributions, 1 to 5 components."
    )
    def contributions_add_up(
        context: dg.AssetCheckExecutionContext, lake: LakeResource
    ) -> dg.AssetCheckResult:
        keys, frame = covered_frame(context, lake, SQUEEZE)
        return check_result(keys, contribution_errors(frame) if frame.height else frame)

    return [universe_covered, values_in_range, inputs_served, contributions_add_up]

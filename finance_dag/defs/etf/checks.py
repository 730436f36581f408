"""Data-quality checks of the ETF lake, runnable with their asset or on their own (rules:
``finance_dag.etf.quality``):

- ``etf_universe.one_row_per_etf`` (error): no symbol twice in a universe;
- ``etf_prices.prices_valid`` (error): positive prices, high >= low, one row per symbol and session;
- ``etf_factor_scores.scores_valid`` (error): every scored ETF has a score in (0, 1], every
  excluded one a reason;
- ``target_portfolio.weights_within_bounds`` (warn): weights within the seed's 3 %-7.5 % and
  summing to 1 (warn: a run configured with other bounds, or a documented fallback, may differ).
"""

from collections.abc import Callable

import dagster as dg
import polars as pl

from finance_dag.etf import quality
from finance_dag.platform.checks import check_result, checked_keys
from finance_dag.platform.partitions import DomainPartitions
from finance_dag.platform.storage import LakeResource, lake_path

UNIVERSE = dg.AssetKey("etf_universe")
PRICES = dg.AssetKey("etf_prices")
SCORES = dg.AssetKey("etf_factor_scores")
TARGET = dg.AssetKey("target_portfolio")


def build_checks(parts: DomainPartitions) -> list[dg.AssetChecksDefinition]:
    def per_partition(
        context, lake: LakeResource, asset: dg.AssetKey, rule: Callable[[pl.DataFrame], pl.DataFrame]
    ) -> tuple[pl.DataFrame, list[str]]:
        """``rule`` on each covered partition, failing rows tagged with their partition."""
        keys = checked_keys(context, asset, parts.trading_days)
        found = []
        for key in keys:
            path = lake_path(asset, parts.trading_days, key)
            if lake.lake.exists(path):
                failing = rule(lake.lake.read_parquet(path))
                found.append(failing.with_columns(partition=pl.lit(key)))
        failing = pl.concat(found, how="diagonal_relaxed") if found else pl.DataFrame()
        return failing, keys

    @dg.asset_check(asset=UNIVERSE, description="No ETF appears twice in a universe.")
    def one_row_per_etf(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
        failing, keys = per_partition(context, lake, UNIVERSE, quality.duplicate_symbols)
        return check_result(keys, failing)

    @dg.asset_check(asset=PRICES, description="Positive prices, high >= low, one row per symbol and session.")
    def prices_valid(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
        failing, keys = per_partition(context, lake, PRICES, quality.price_problems)
        return check_result(keys, failing)

    @dg.asset_check(
        asset=SCORES, description="Scores in (0, 1] for scored ETFs; a reason for every excluded one."
    )
    def scores_valid(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
        failing, keys = per_partition(context, lake, SCORES, quality.score_problems)
        return check_result(keys, failing)

    @dg.asset_check(
        asset=TARGET, description="Weights within 3 %-7.5 % and summing to 1 (the seed's bounds)."
    )
    def weights_within_bounds(
        context: dg.AssetCheckExecutionContext, lake: LakeResource
    ) -> dg.AssetCheckResult:
        failing, keys = per_partition(
            context, lake, TARGET, lambda w: quality.weight_problems(w, 0.03, 0.075)
        )
        return check_result(keys, failing, dg.AssetCheckSeverity.WARN)

    return [one_row_per_etf, prices_valid, scores_valid, weights_within_bounds]

"""Data-quality checks of the strategy backtests:

- ``strategy_backtests.out_of_sample_only`` (error): every stored session is a test session of its
  window, after that window's training sessions (the walk-forward never scores a window its
  parameters were chosen on), once, in order, with a finite return, turnover and cost.
"""

import dagster as dg
import polars as pl

from finance_dag.defs.strategies.assets import BACKTESTS, STRATEGY_PARTITIONS, summary_path
from finance_dag.platform.checks import check_result, checked_keys
from finance_dag.platform.storage import LakeResource, lake_path


def build_checks() -> list[dg.AssetChecksDefinition]:
    @dg.asset_check(
        asset=BACKTESTS,
        description="Out-of-sample sessions only: each after its window's training sessions, once, finite.",
    )
    def out_of_sample_only(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
        keys = checked_keys(context, BACKTESTS, STRATEGY_PARTITIONS)
        rows = []
        for key in keys:
            path = lake_path(BACKTESTS, STRATEGY_PARTITIONS, key, "strategy")
            if not lake.lake.exists(path):
                continue
            returns = lake.lake.read_parquet(path)
            windows = lake.lake.read_parquet(summary_path(key, "windows"))
            joined = returns.join(windows, on="window", how="left")
            bad = joined.filter(
                pl.col("test_start").is_null()
                | (pl.col("date") <= pl.col("train_end"))
                | (pl.col("date") < pl.col("test_start"))
                | (pl.col("date") > pl.col("test_end"))
                | ~pl.col("return").is_finite()
                | ~pl.col("turnover").is_finite()
                | ~pl.col("cost").is_finite()
            )
            rows += [(key, str(d), "outside its test window or not finite") for d in bad["date"].head(5)]
            if not returns["date"].is_sorted() or returns["date"].is_duplicated().any():
                rows.append((key, "", "sessions not strictly ascending"))
        failing = pl.DataFrame(rows, schema=["partition", "date", "problem"], orient="row")
        return check_result(keys, failing)

    return [out_of_sample_only]

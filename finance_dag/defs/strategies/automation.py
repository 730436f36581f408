"""The strategy research job: every strategy's walk-forward backtest in one run (the static
partitions as one range), then the comparison report. Research runs on demand (after a market-data
backfill), so there is no schedule; ``strategy_report`` follows new backtests on its own."""

import dagster as dg

GROUP = "strategies"
JOB = "strategies_job"


def build_jobs() -> list:
    return [
        dg.define_asset_job(
            JOB,
            selection=dg.AssetSelection.groups(GROUP),
            description=(
                "Strategy research: walk-forward backtests of the strategies in the run's partition range "
                "(all of them: the first to the last) in one run, then strategy_report."
            ),
        )
    ]

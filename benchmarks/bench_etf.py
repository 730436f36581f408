"""Issue 8, P3: the ETF chain from prices to trade plan at seed scale — 2,000 ETFs × 1,256
sessions, with a 20-rebalance walk-forward backtest — in <= 5 s on 2 cores.

Setup (not timed): the simulated universe of 2024-11-29 cut to 2,000 ETFs with full histories,
and their 1,256 sessions of prices in the lake (etf_prices and its yearly research layout).
The research-layout read of the whole window is timed too. Timed: one in-process run of etf_factor_scores, target_portfolio and portfolio_backtest for
2024-11-29 (bimonthly rebalances from 2021-09-01: 20 period starts), then the trade_plan run
against the simulated broker. Each step's own duration comes from Dagster's step stats; the
same runs of a no-op asset give Dagster's fixed cost per run, subtracted from the total.
"""

import os
import sys
import tempfile
from datetime import date

import dagster as dg
import polars as pl

from benchmarks.common import QUIET, bench_settings, timed, verdict
from finance_dag.core import calendar
from finance_dag.core.lake import Lake
from finance_dag.definitions import build_definitions
from finance_dag.defs.etf.assets import HISTORY_ROOT
from finance_dag.etf import history
from finance_dag.platform.partitions import DomainPartitions, range_tags

DAY = date(2024, 11, 29)
N_ETFS = 2_000
SESSIONS = 1_256
BACKTEST_START = "2021-09-01"
TARGET = 5.0
ISSUE = "issue 8"
CHAIN = ["etf_factor_scores", "target_portfolio", "portfolio_backtest"]


def main() -> int:
    first = calendar.sessions_before(DAY, SESSIONS - 1)[0]
    with tempfile.TemporaryDirectory(prefix="finance_dag_bench_") as work:
        root = os.path.join(work, "lake")
        settings = bench_settings(root, ETF_START_DATE=first.isoformat(), ETF_END_DATE=DAY.isoformat())
        defs = build_definitions(settings)
        parts = DomainPartitions(settings.etf)
        key = DAY.isoformat()

        @dg.asset(partitions_def=parts.trading_days)
        def noop() -> None:
            """Same partitions, no work: Dagster's fixed cost of a run."""

        floor_defs = dg.Definitions(assets=[noop], jobs=[dg.define_asset_job("noop", [noop])])
        with dg.instance_for_test(temp_dir=work) as instance:
            run = dict(instance=instance, raise_on_error=True)
            defs.resolve_job_def("etf_universe_job").execute_in_process(
                tags={"dagster/partition": key}, run_config=QUIET, **run
            )
            cut_universe(Lake(root), key, first)
            defs.resolve_job_def("etf_history_job").execute_in_process(
                tags=range_tags(first.isoformat(), key), run_config=QUIET, **run
            )
            chain = defs.resolve_job_def("etf_job").get_subset(
                asset_selection={dg.AssetKey(a) for a in CHAIN}
            )
            config = {
                **QUIET,
                "ops": {
                    "portfolio_backtest": {
                        "config": {"start": BACKTEST_START, "rebalance_frequency": "bimonthly"}
                    }
                },
            }
            tags = {"dagster/partition": key}
            results = []
            total = timed(
                lambda: results.extend(
                    [
                        chain.execute_in_process(tags=tags, run_config=config, **run),
                        defs.resolve_job_def("trade_plan_job").execute_in_process(
                            tags=tags, run_config=QUIET, **run
                        ),
                    ]
                )
            )
            noop_job = floor_defs.resolve_job_def("noop")
            floor = sum(
                timed(lambda: noop_job.execute_in_process(tags=tags, run_config=QUIET, **run))
                for _ in range(2)
            )
            steps = {
                s.step_key: s.end_time - s.start_time
                for r in results
                for s in instance.get_run_step_stats(r.run_id)
            }
            backtest = instance.get_latest_materialization_event(dg.AssetKey("portfolio_backtest"))
            rebalances = backtest.asset_materialization.metadata["rebalances"].value
            universe = pl.read_parquet(os.path.join(root, "etf_universe", f"date={key}.parquet")).height
            rows: list[pl.DataFrame] = []
            read = timed(lambda: rows.append(history.load_history(Lake(root), HISTORY_ROOT, first, DAY)))
    print(
        f"ETF chain, {universe} ETFs x {SESSIONS} sessions, {rebalances:.0f} rebalances (bimonthly from {BACKTEST_START}):"
    )
    for step, seconds in steps.items():
        print(f"  {step:<22} {seconds:6.2f} s")
    print(f"  two runs {total:.2f} s, Dagster no-op runs {floor:.2f} s")
    print(
        f"  research layout: {rows[0].height:,} rows ({universe} ETFs x {SESSIONS} sessions) in one read, {read:.2f} s"
    )
    ok = verdict(
        f"P3 ETF prices to trade plan incl. walk-forward backtest, {universe} ETFs x {SESSIONS} sessions",
        total - floor,
        TARGET,
        "s",
        issue=ISSUE,
        floor=floor,
        floor_note="two Dagster no-op runs, subtracted",
    )
    return 0 if ok else 1


def cut_universe(lake: Lake, key: str, first: date) -> None:
    """Keep the first 2,000 unlevered ETFs with a full price history (the seed's scale)."""
    from finance_dag.sim.vendors import shared_etf_market

    market = shared_etf_market(7)
    path = f"etf_universe/date={key}.parquet"
    etfs = lake.read_parquet(path)
    full = [
        s
        for s in etfs.filter(~pl.col("leveraged"))["symbol"]
        if market.profile(s).has_data and market.profile(s).inception <= first
    ]
    lake.write_parquet(path, etfs.filter(pl.col("symbol").is_in(full[:N_ETFS])))


if __name__ == "__main__":
    sys.exit(main())

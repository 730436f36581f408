"""`make demo`: materialise the demo window end to end on the embedded simulated market.

Runs go into the instance at ``DAGSTER_HOME`` so they show up in the UI (``make dev``).
"""

import sys
import time
from datetime import date

import dagster as dg

from finance_dag.core import calendar
from finance_dag.core.lake import Lake
from finance_dag.core.settings import load_settings
from finance_dag.definitions import defs
from finance_dag.platform.partitions import DomainPartitions, range_tags, session_range_tags

# Thanksgiving week 2024: a closed Thursday and an early close. `make demo` / `make dev` set
# FINANCE_DAG_START_DATE / FINANCE_DAG_END_DATE to this window, so the UI shows it as it is.
DEMO_START = date(2024, 11, 15)
DEMO_END = date(2024, 11, 29)
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}  # full logs are in the UI


def run(instance: dg.DagsterInstance, job: str, tags: dict[str, str] | None = None) -> None:
    started = time.perf_counter()
    result = defs.resolve_job_def(job).execute_in_process(
        instance=instance, tags=tags or {}, raise_on_error=False, run_config=QUIET
    )
    status = "ok" if result.success else "FAILED"
    print(f"  {job:<24} {status:<6} {time.perf_counter() - started:5.1f} s  run {result.run_id[:8]}")
    if not result.success:
        sys.exit(f"demo stopped: {job} failed; open the run in the UI (make dev) for details")


def main() -> None:
    settings = load_settings()
    parts = DomainPartitions(settings.market_data)
    symbols = parts.symbols
    sessions = calendar.sessions(DEMO_START, DEMO_END)
    print(f"finance_dag demo: {len(sessions)} sessions {DEMO_START} .. {DEMO_END} x {len(symbols)} symbols")
    print(f"  lake: {settings.storage}   environment: {settings.environment}")
    with dg.DagsterInstance.get() as instance:
        run(instance, "minute_bars_job", session_range_tags(DEMO_START, DEMO_END))
        run(instance, "daily_market_data_job", session_range_tags(DEMO_START, DEMO_END))
        run(instance, "consolidate_job", range_tags(symbols[0], symbols[-1]))
        run(instance, "coverage_report_job")
        lending = DomainPartitions(settings.lending).trading_days.get_partition_keys()
        run(instance, "lending_job", range_tags(lending[0], lending[-1]))
        factors = defs.load_asset_value("lending_factors", partition_key=lending[-1], instance=instance)
        ic = defs.load_asset_value("factor_ic_report", instance=instance)
        squeeze = defs.load_asset_value("squeeze_scores", partition_key=lending[-1], instance=instance)
        report = defs.load_asset_value("coverage_report", instance=instance)
        daily = defs.load_asset_value("daily_bars", partition_key=DEMO_END.isoformat(), instance=instance)
    lake = Lake(settings.storage)
    print("\nCoverage by tier:")
    for tier, count in report.group_by("tier").len().sort("tier").iter_rows():
        print(f"  {tier:<10} {count}")
    ready = report.filter("ready")["symbol"].to_list()
    print(f"Ready for research (>= 85 %): {len(ready)} symbols: {', '.join(ready)}")
    closes = daily.sort("symbol").head(8).select("symbol", "close").iter_rows()
    print(
        f"Closes on {DEMO_END} (synthetic, near real levels): " + ", ".join(f"{s} {c:.2f}" for s, c in closes)
    )
    print(f"Top squeeze candidates {lending[-1]} (SSR v4, {factors.height} names):")
    for symbol, score, reason in squeeze.head(5).select("symbol", "ssr_v4", "reason").iter_rows():
        print(f"  {symbol:<8} {score:+.2f}  {reason}")
    print(f"Lending factor IC over {lending[0]}..{lending[-1]}, 5-session forward returns (lake prices):")
    for row in ic.filter(ic["period"] == 5).sort("factor").iter_rows(named=True):
        print(
            f"  {row['factor']:<17} mean IC {row['mean_ic']:+.3f}  t {row['t_stat']:+6.2f}  hit {row['hit_rate']:.0%}"
        )
    print("\nOutputs:")
    for asset in (
        "minute_bars", "daily_bars", "bar_coverage", "consolidated_bars", "coverage_report",
        "lending_snapshots", "lending_factors", "extended_lending_factors", "lending_prices", "factor_ic_report", "squeeze_scores",
        "daily_digest",
    ):  # fmt: skip
        print(f"  {asset:<24} {lake.uri(asset)}")
    print(f"  {'heatmap':<24} {lake.uri('coverage_report/heatmap.png')}")
    print(f"  {'digest':<24} {lake.uri(f'daily_digest/date={lending[-1]}.html')} (and .md)")
    print("\nOpen the UI on these runs:  make dev   (then http://127.0.0.1:3000)")
    print("In a notebook:  from finance_dag.definitions import defs")
    print('                defs.load_asset_value("minute_bars", partition_key="2024-11-29")  # every symbol')


if __name__ == "__main__":
    main()

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

# Two years of minute bars ending on Thanksgiving week 2024 (a closed Thursday and an early
# close): a year to train the strategies on and a year out of sample. `make demo` / `make dev` set
# FINANCE_DAG_START_DATE / FINANCE_DAG_END_DATE to this window, so the UI shows it as it is.
DEMO_START = date(2022, 12, 1)
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


def run_etf(instance: dg.DagsterInstance, settings) -> str:
    """The ETF domain as a user runs it: the last session's universe, the price history in one
    run, the session's pipeline, the trade plan, and a dry run of the execution job."""
    keys = DomainPartitions(settings.etf).trading_days.get_partition_keys()
    last = keys[-1]
    run(instance, "etf_universe_job", {"dagster/partition": last})
    run(instance, "etf_history_job", range_tags(keys[0], last))
    run(instance, "etf_job", {"dagster/partition": last})
    run(instance, "trade_plan_job", {"dagster/partition": last})
    run(instance, "execute_trades")  # dry run: nothing is placed without live=true
    return last


def run_risk(instance: dg.DagsterInstance, settings) -> None:
    """The risk domain: a year of exposures and factor returns in one run, then the session's group."""
    keys = DomainPartitions(settings.risk).trading_days.get_partition_keys()
    run(instance, "risk_history_job", range_tags(keys[0], keys[-2]))
    run(instance, "risk_job", {"dagster/partition": keys[-1]})


def show_risk(lake_root: str, day: str) -> None:
    lake = Lake(lake_root)
    table = lake.read_parquet(f"risk_attribution/date={day}.parquet")
    figures = {(b, m): v for b, m, v in table.iter_rows()}
    print(f"\nRisk {day} (six-factor model on 3,000 simulated stocks; ETFs by returns-based exposures):")
    for book in table["book"].unique(maintain_order=True):

        def f(metric: str, book: str = book) -> float:
            return figures[(book, metric)]

        print(
            f"  {book:<17} predicted vol {f('volatility_annual'):.1%}/yr (factor {f('factor_share'):.0%}, "
            f"specific {f('specific_share'):.0%}); 1-day VaR 95 % {f('parametric_var_95_1d'):.2%} "
            f"(historical {f('historical_var_95_1d'):.2%}), 99 % {f('parametric_var_99_1d'):.2%}, "
            f"10-day 99 % {f('parametric_var_99_10d'):.2%}; CVaR 99 % {f('parametric_cvar_99_1d'):.2%}"
        )
        top = lake.read_parquet(f"risk_attribution/date={day}/{book}/positions.parquet").head(3)
        print(
            "    top risk contributors: "
            + ", ".join(f"{s} {share:.0%}" for s, share in top.select("symbol", "share").iter_rows())
        )
    signals = lake.read_parquet(f"factor_adjusted_signals/date={day}.parquet")
    counts = dict(signals.group_by("action").len().iter_rows())
    print(
        f"  factor-adjusted ETF signals: {counts.get('buy', 0)} buy, {counts.get('hold', 0)} hold, {counts.get('sell', 0)} sell"
    )


def run_strategies(instance: dg.DagsterInstance) -> None:
    """Every strategy's walk-forward backtest in one run (its static partitions as one range), then
    the comparison report, with the documented default run config."""
    keys = defs.resolve_assets_def("strategy_backtests").partitions_def.get_partition_keys()
    run(instance, "strategies_job", range_tags(keys[0], keys[-1]))


def show_strategies(instance: dg.DagsterInstance) -> None:
    report = defs.load_asset_value("strategy_report", instance=instance)
    first = defs.load_asset_value("strategy_backtests", partition_key="momentum_1d", instance=instance)
    print(
        f"\nStrategies, walk-forward out of sample {first['date'].min()}..{first['date'].max()} "
        "(252 training sessions, 63 tested at a time, net of costs; criteria reported, never tuned for):"
    )
    print(
        f"  {'strategy':<25} {'Sharpe':>6} {'IS Sh.':>6} {'Sortino':>7} {'max DD':>7} {'win':>4} "
        f"{'w/l':>5} {'turn/yr':>7} {'costs':>6} {'trials':>6} {'DSR':>5} {'PBO':>5}  Sh>1 DD<15%"
    )

    def number(value: object, spec: str) -> str:
        return "-" if value is None or value != value else format(value, spec)

    for row in report.iter_rows(named=True):
        flags = (
            ""
            if row["sharpe_above_1"] is None
            else (
                f"{'pass' if row['sharpe_above_1'] else 'fail':>4} {'pass' if row['drawdown_within_15pct'] else 'fail':>6}"
            )
        )
        print(
            f"  {row['strategy']:<25} {number(row['sharpe'], '6.2f')} {number(row['in_sample_sharpe'], '6.2f'):>6} "
            f"{number(row['sortino'], '7.2f')} {number(row['max_drawdown'], '7.1%')} {number(row['win_rate'], '4.0%')} "
            f"{number(row['win_loss'], '5.2f'):>5} {number(row['turnover'], '7.1f'):>7} {number(row['costs'], '6.2%'):>6} "
            f"{number(row['trials'], '6d'):>6} {number(row['deflated_sharpe'], '5.2f'):>5} {number(row['pbo'], '5.2f'):>5}  {flags}"
        )
    metadata = instance.get_latest_materialization_event(
        dg.AssetKey("strategy_report")
    ).asset_materialization.metadata
    verdict = "pass" if metadata["combined_sharpe_above_1_5"].value else "fail"
    print(f"  equal-risk combination Sharpe > 1.5: {verdict}")


def instance_metadata(day: str) -> dict[str, dict]:
    """The latest materialisation metadata of the ETF assets shown in the summary."""
    with dg.DagsterInstance.get() as instance:
        return {
            asset: {
                k: getattr(v, "value", v)
                for k, v in instance.get_latest_materialization_event(
                    dg.AssetKey(asset)
                ).asset_materialization.metadata.items()
            }
            for asset in (
                "etf_universe",
                "etf_factor_scores",
                "target_portfolio",
                "portfolio_backtest",
                "trade_plan",
            )
        }


def show_etf(seen: dict[str, dict], day: str) -> None:
    universe, scores, target, backtest, plan = (seen[a] for a in seen)
    print(
        f"\nETF universe {day}: {universe['etfs']} ETFs, {universe['categorised']} categorised, "
        f"{universe['leveraged_or_inverse']} leveraged/inverse; scored {scores['scored']} ({scores['weights']})"
    )
    portfolio = defs.load_asset_value("target_portfolio", partition_key=day)
    print(
        f"Target portfolio ({target['optimizer']}, {target['positions']} positions, HHI {target['hhi']:.4f}, "
        f"expected vol {target['expected_volatility']:.1%}), top 10:"
    )
    for symbol, weight, name in portfolio.head(10).select("symbol", "weight", "name").iter_rows():
        print(f"  {symbol:<6} {weight:6.1%}  {name}")
    print(
        f"Walk-forward backtest {backtest['start']}..{day} ({backtest['rebalance_frequency']}, no look-ahead): "
        f"CAGR {backtest['cagr']:.1%}  Sharpe {backtest['sharpe']:.2f}  Sortino {backtest['sortino']:.2f}  "
        f"max DD {backtest['max_drawdown']:.1%}  vol {backtest['volatility']:.1%}  total {backtest['total_return']:.1%}  "
        f"rebalances {backtest['rebalances']:.0f} (+{backtest['initial_allocations']:.0f} initial)  "
        f"stops {backtest['stop_losses']:.0f}  win rate {backtest['win_rate']:.0%}"
    )
    print(
        f"Trade plan vs the {plan['broker']} broker (account {plan['account']}, NLV ${plan['net_liquidation']:,.0f}): "
        f"{plan['trades']} trades, buys ${plan['buys_usd']:,.0f}, sells ${plan['sells_usd']:,.0f}, "
        f"cash after ${plan['cash_after']:,.0f} ({plan['mode']})"
    )
    print("  execute_trades ran dry: nothing placed. To place orders, launch execute_trades with live: true.")


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
        run_strategies(instance)
        etf_day = run_etf(instance, settings)
        run_risk(instance, settings)
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
    show_etf(instance_metadata(etf_day), etf_day)
    show_risk(lake_root=settings.storage, day=etf_day)
    with dg.DagsterInstance.get() as instance:
        show_strategies(instance)
    print("\nOutputs:")
    for asset in (
        "minute_bars", "daily_bars", "bar_coverage", "consolidated_bars", "coverage_report",
        "lending_snapshots", "lending_factors", "extended_lending_factors", "lending_prices", "factor_ic_report", "squeeze_scores",
        "daily_digest", "etf_universe", "etf_prices", "etf_price_history", "etf_factor_scores",
        "target_portfolio", "portfolio_backtest", "trade_plan", "trade_executions", "factor_exposures",
        "factor_returns", "factor_covariance", "risk_attribution", "factor_adjusted_signals",
        "strategy_backtests", "strategy_report",
    ):  # fmt: skip
        print(f"  {asset:<24} {lake.uri(asset)}")
    print(f"  {'heatmap':<24} {lake.uri('coverage_report/heatmap.png')}")
    print(f"  {'rolling Sharpe':<24} {lake.uri('strategy_report/rolling_sharpe.png')}")
    print(f"  {'digest':<24} {lake.uri(f'daily_digest/date={lending[-1]}.html')} (and .md)")
    print("\nOpen the UI on these runs:  make dev   (then http://127.0.0.1:3000)")
    print("In a notebook:  from finance_dag.definitions import defs")
    print('                defs.load_asset_value("minute_bars", partition_key="2024-11-29")  # every symbol')


if __name__ == "__main__":
    main()

"""ETF assets from scores to the trade plan: target portfolio, walk-forward backtest, trade plan.

Strategy parameters are Dagster run config (``PortfolioConfig``, ``BacktestRunConfig``,
``TradePlanConfig``) with the seed's values as defaults. The backtest re-decides at every
rebalance with ``finance_dag.etf.strategy.decide`` on prices up to that date only, the same rule
``target_portfolio`` applies today.
"""

from datetime import UTC, date, datetime
from typing import get_args

import dagster as dg
import numpy as np
import polars as pl

from finance_dag.backtest import engine
from finance_dag.brokers import BrokerError
from finance_dag.core import calendar, reports
from finance_dag.core.reports import markdown_table
from finance_dag.defs.etf.assets import GROUP, ScoringConfig, as_of
from finance_dag.defs.etf.automation import PLAN_SCHEDULE, SCHEDULE
from finance_dag.defs.etf.resources import BrokerResource
from finance_dag.etf import optimize, strategy, trades
from finance_dag.etf.scores import MIN_HISTORY
from finance_dag.platform.contract import code_version, table_metadata
from finance_dag.platform.freshness import after_schedule
from finance_dag.platform.partitions import DomainPartitions
from finance_dag.platform.ranged import PartitionWriter
from finance_dag.platform.storage import LakeResource, lake_path

SCORES = dg.AssetKey("etf_factor_scores")
PRICES = dg.AssetKey("etf_prices")
TARGET = dg.AssetKey("target_portfolio")
TARGET_SCHEMA = pl.Schema(
    {
        "symbol": pl.String,
        "weight": pl.Float64,
        "name": pl.String,
        "score": pl.Float64,
        "momentum_pct": pl.Float64,
        "quality_pct": pl.Float64,
        "value_pct": pl.Float64,
        "volatility_pct": pl.Float64,
    }
)
TARGET_COLUMNS = {
    "symbol": "Ticker symbol.",
    "weight": "Target weight of the sizing basis (sums to 1).",
    "name": "Security name.",
    "score": "Combined factor score (etf_factor_scores).",
    "momentum_pct": "Momentum percentile.",
    "quality_pct": "Quality percentile.",
    "value_pct": "Value percentile (null without an expense ratio).",
    "volatility_pct": "Low-volatility percentile.",
}


class PortfolioConfig(ScoringConfig):
    """Portfolio construction: optimiser (mvo with Ledoit-Wolf covariance, rankbased, minvar),
    number of positions and weight bounds (seed: 30 positions, 3 %-7.5 %)."""

    optimizer: str = "mvo"
    n_positions: int = 30
    min_weight: float = 0.03
    max_weight: float = 0.075

    def rules(self) -> strategy.Rules:
        methods = get_args(optimize.Method)
        if self.optimizer not in methods:
            raise dg.Failure(f"optimizer {self.optimizer!r} is not one of {', '.join(methods)}")
        return strategy.Rules(
            self.factor_weights(), self.optimizer, self.n_positions, self.min_weight, self.max_weight
        )


class BacktestRunConfig(PortfolioConfig):
    """Walk-forward backtest: from ``start`` (default: one year after the ETF history starts) to the
    as-of session, rebalancing at period starts; the seed's stop, drift, costs and capital."""

    start: str | None = None
    rebalance_frequency: str = "quarterly"  # "quarterly", "bimonthly" or "monthly"
    initial_capital: float = 1_000_000.0
    stop_loss: float = 0.12
    drift_band: float = 0.05
    commission_per_share: float = 0.005
    min_commission: float = 1.0
    slippage_bps: float = 5.0

    def engine_config(self) -> engine.BacktestConfig:
        return engine.BacktestConfig(
            self.initial_capital,
            self.stop_loss,
            self.drift_band,
            self.commission_per_share,
            self.min_commission,
            self.slippage_bps,
        )


class TradePlanConfig(dg.Config):
    """Cash deployment: ``deploy_cash`` None sizes on NLV and holds back ``reserve`` (seed
    $70,000); an amount sizes on invested + that amount and deploys exactly it."""

    deploy_cash: float | None = None
    reserve: float = trades.RESERVE


EQUITY_SCHEMA = pl.Schema(
    {
        "date": pl.Date,
        "equity": pl.Float64,
        "cash": pl.Float64,
        "invested": pl.Float64,
        "drawdown": pl.Float64,
    }
)
EQUITY_COLUMNS = {
    "date": "Session.",
    "equity": "Book value at the close, USD (cash + positions at the close).",
    "cash": "Cash, USD.",
    "invested": "Positions at the close, USD.",
    "drawdown": "Equity / running peak - 1 (the initial capital is the first peak).",
}


def build_portfolio_assets(settings, parts: DomainPartitions, upstream: list[dg.AssetsDefinition]):
    days = parts.trading_days
    scores_asset = next(a for a in upstream if a.key == SCORES)
    history_asset = next(a for a in upstream if a.key.path[-1] == "etf_price_history")
    default_start = calendar.sessions(
        settings.etf.start_date, date(settings.etf.start_date.year + 2, 12, 31)
    )[MIN_HISTORY + 1]

    @dg.asset(
        partitions_def=days,
        deps=[scores_asset, history_asset],
        group_name=GROUP,
        freshness_policy=after_schedule(settings, settings.etf, SCHEDULE),
        kinds={"polars", "parquet", "cvxpy"},
        backfill_policy=dg.BackfillPolicy.single_run(),
        code_version=code_version("target_portfolio", strategy, optimize),
        metadata=table_metadata(TARGET_SCHEMA, TARGET_COLUMNS),
        description=(
            "The target portfolio as of the session: the best-scored ETFs (30 by default) weighted by the "
            "configured optimiser — mvo (cvxpy; scores as expected returns, Ledoit-Wolf covariance of the "
            "last 252 daily returns), rankbased or minvar — within 3 %-7.5 %. An infeasible problem falls "
            "back (documented in docs/etf.md) and says so in the metadata."
        ),
    )
    def target_portfolio(
        context: dg.AssetExecutionContext, config: PortfolioConfig, lake: LakeResource
    ) -> dg.MaterializeResult:
        rules = config.rules()
        with PartitionWriter(context, lake.lake) as writer:
            for key in context.partition_keys:
                path = lake_path(SCORES, days, key)
                if not lake.lake.exists(path):
                    writer.fail(key, [f"etf_factor_scores has no {key}"])
                    continue
                table = lake.lake.read_parquet(path)
                candidates = table.filter(pl.col("status") == "scored").head(rules.n_positions)["symbol"]
                inputs = as_of(lake, parts, key, symbols=candidates.to_list())  # only the candidates' prices
                if isinstance(inputs, str):
                    writer.fail(key, [inputs])
                    continue
                allocation = strategy.allocate(table, inputs.panel, rules)
                weights = pl.DataFrame(
                    {"symbol": list(allocation.weights), "weight": list(allocation.weights.values())}
                )
                frame = (
                    weights.join(table, on="symbol", how="left")
                    .join(inputs.universe.select("symbol", "name"), on="symbol", how="left")
                    .select(TARGET_SCHEMA.names())
                )
                writer.write(
                    key,
                    frame,
                    {
                        "positions": frame.height,
                        "optimizer": allocation.method,
                        "fallback": allocation.fallback or "none",
                        "hhi": allocation.hhi,
                        "expected_volatility": allocation.expected_volatility,
                        "max_weight": float(frame["weight"].max()),
                        "min_weight": float(frame["weight"].min()),
                        "preview": dg.MetadataValue.md(markdown_table(frame)),
                    },
                )
        return writer.result("have no portfolio")

    @dg.asset(
        partitions_def=days,
        deps=[history_asset, dg.AssetDep(target_portfolio)],
        group_name=GROUP,
        freshness_policy=after_schedule(settings, settings.etf, SCHEDULE),
        kinds={"polars", "parquet"},
        backfill_policy=dg.BackfillPolicy.single_run(),
        code_version=code_version("portfolio_backtest", engine, strategy, optimize),
        metadata=table_metadata(EQUITY_SCHEMA, EQUITY_COLUMNS),
        description=(
            "Walk-forward backtest of the strategy from a start date to the as-of session: at every "
            "rebalance date (first session of each quarter, two-month period or month) scores and weights "
            "are recomputed from prices up to that date only; 12 % stop-loss, 5-point drift bands, IB-like "
            "commissions and 5 bp slippage, $1,000,000 start. Writes the equity curve, rebalance weights, "
            "trades and stop-loss events; metrics follow empyrical's conventions."
        ),
    )
    def portfolio_backtest(
        context: dg.AssetExecutionContext, config: BacktestRunConfig, lake: LakeResource
    ) -> dg.MaterializeResult:
        rules = config.rules()
        start = date.fromisoformat(config.start) if config.start else default_start
        lookback = calendar.sessions_before(start, MIN_HISTORY + 1)[0]
        with PartitionWriter(context, lake.lake) as writer:
            for key in context.partition_keys:
                inputs = as_of(lake, parts, key, first=lookback)
                if isinstance(inputs, str):
                    writer.fail(key, [inputs])
                    continue
                if inputs.day <= start:
                    writer.fail(key, [f"the backtest starts {start}: pick an as-of session after it"])
                    continue
                history = int((inputs.panel.dates <= np.datetime64(start)).sum())
                if history <= MIN_HISTORY:
                    writer.fail(
                        key,
                        [
                            f"the backtest start {start} has {history} sessions of prices up to it; the scores "
                            f"need {MIN_HISTORY + 1}: start on or after {default_start} or backfill etf_prices earlier"
                        ],
                    )
                    continue
                schedule = engine.rebalance_dates(
                    inputs.panel.dates,
                    start,
                    inputs.day,
                    config.rebalance_frequency,  # type: ignore[arg-type]
                )
                result = engine.walk_forward(
                    inputs.panel,
                    schedule,
                    strategy.decider(inputs.expense_ratios, inputs.excluded, rules),
                    config.engine_config(),
                    start=start,
                )
                folder = writer.path(key).removesuffix(".parquet")
                for name in ("weights", "trades", "stops"):
                    lake.lake.write_parquet(f"{folder}/{name}.parquet", getattr(result, name))
                plots = {
                    name: reports.line_chart_png(
                        result.equity.select("date", value=name, series=pl.lit(name)),
                        "date",
                        "value",
                        "series",
                        title,
                    )
                    for name, title in (("equity", "Equity, USD"), ("drawdown", "Drawdown"))
                }
                for name, png in plots.items():
                    lake.lake.write_bytes(f"{folder}/{name}.png", png)
                metrics = pl.DataFrame(
                    {"metric": list(result.metrics), "value": list(result.metrics.values())}
                )
                writer.write(
                    key,
                    result.equity,
                    {
                        **{k: float(v) for k, v in result.metrics.items()},
                        "start": str(start),
                        "rebalance_frequency": config.rebalance_frequency,
                        "metrics": dg.MetadataValue.md(markdown_table(metrics)),
                        "equity_curve": dg.MetadataValue.md(reports.png_markdown("equity", plots["equity"])),
                        "drawdown_plot": dg.MetadataValue.md(
                            reports.png_markdown("drawdown", plots["drawdown"])
                        ),
                        "stop_loss_events": dg.MetadataValue.md(markdown_table(result.stops.head(30))),
                        "tables": dg.MetadataValue.path(lake.lake.uri(folder)),
                        "preview": dg.MetadataValue.md(markdown_table(result.equity.tail(10))),
                    },
                )
        return writer.result("could not be backtested")

    @dg.asset(
        partitions_def=days,
        deps=[dg.AssetDep(target_portfolio), dg.AssetDep(PRICES)],
        group_name=GROUP,
        freshness_policy=after_schedule(settings, settings.etf, PLAN_SCHEDULE),
        kinds={"csv", "json"},
        pool="broker",
        code_version=code_version("trade_plan", trades),
        description=(
            "The target portfolio against the broker's live account (read-only): phase 1 a cleanup "
            "proposal (open orders to cancel, shorts to cover), phase 2 the whole-share trades (cash-"
            "reserve mode holding back $70,000, sizing on NLV; or deploy-cash mode), a transition summary "
            "(retained, exiting, new), phase 3 portfolio_state.json with trade_plan.csv beside it: the "
            "contract the execute_trades job checks before placing anything. A broker that fails while "
            "the plan is built fails the step without writing a state file."
        ),
    )
    def trade_plan(
        context: dg.AssetExecutionContext, config: TradePlanConfig, lake: LakeResource, broker: BrokerResource
    ) -> dg.MaterializeResult:
        key = context.partition_key  # one session per run: a plan is against the account as it is now
        target = lake.lake.read_parquet(lake_path(TARGET, days, key))
        closes = closing_prices(lake, parts, key)
        try:
            connection = broker.connect("plan", closes)
            try:
                account, positions, orders = (
                    connection.account(),
                    connection.positions(),
                    connection.open_orders(),
                )
            finally:
                connection.close()
            cleanup = trades.cleanup_proposal(positions, orders)
            plan = trades.build_plan(
                dict(target.select("symbol", "weight").iter_rows()),
                account,
                positions,
                closes,
                reserve=config.reserve,
                deploy_cash=config.deploy_cash,
            )
        except BrokerError as error:
            raise dg.Failure(f"trade plan for {key} not written: {error}") from error
        prices = {
            s: closes[s]
            for s in sorted({t.symbol for t in plan.trades} | {p.symbol for p in positions})
            if s in closes
        }
        state = trades.portfolio_state(
            plan, account, positions, prices, trades.plan_hash(trades.plan_csv(plan)), datetime.now(UTC)
        )
        state["as_of"] = key
        state["cleanup"] = {
            "cancel": [o.order_id for o in cleanup.cancel],
            "cover": [
                {"symbol": t.symbol, "quantity": t.quantity, "client_order_id": t.client_order_id}
                for t in cleanup.cover
            ],
        }
        folder = plan_folder(key)
        csv_path, state_path = trades.write_plan(lake.lake, folder, plan, state)
        plan_rows = pl.read_csv(trades.plan_csv(plan))
        return dg.MaterializeResult(
            metadata={
                "broker": broker.broker,
                "account": account.account_id,
                "net_liquidation": account.net_liquidation,
                "cash": account.cash,
                "mode": plan.mode,
                "trades": len(plan.trades),
                "buys_usd": plan.buys,
                "sells_usd": plan.sells,
                "cash_after": plan.cash_after,
                "cleanup": dg.MetadataValue.md(
                    f"- orders to cancel: {len(cleanup.cancel)}\n- shorts to cover: {len(cleanup.cover)}"
                ),
                "transition": dg.MetadataValue.md(
                    "\n".join(
                        f"- {k}: {len(v)} ({', '.join(v) or '-'})" for k, v in state["transition"].items()
                    )
                ),
                "dagster/row_count": plan_rows.height,
                "preview": dg.MetadataValue.md(markdown_table(plan_rows)),
                "trade_plan_csv": dg.MetadataValue.path(lake.lake.uri(csv_path)),
                "portfolio_state": dg.MetadataValue.path(lake.lake.uri(state_path)),
            }
        )

    return [target_portfolio, portfolio_backtest, trade_plan]


def plan_folder(key: str) -> str:
    """The lake folder of session ``key``'s trade plan (trade_plan.csv, portfolio_state.json)."""
    return f"trade_plan/date={key}"


def closing_prices(lake: LakeResource, parts: DomainPartitions, key: str) -> dict[str, float]:
    """Every ETF's raw close of session ``key`` (the prices a plan sizes with)."""
    path = lake_path(PRICES, parts.trading_days, key)
    if not lake.lake.exists(path):
        raise dg.Failure(f"etf_prices has no {key}: the plan sizes with that session's closes")
    rows = lake.lake.read_parquet(path)
    return dict(zip(rows["symbol"], rows["close"], strict=True))

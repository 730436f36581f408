"""Strategy research assets: ``strategy_backtests`` (one static partition per registered strategy,
a walk-forward run each) and ``strategy_report`` (every strategy compared, and combined). Formulas:
``finance_dag.strategies`` and docs/strategies.md.

Both read the market-data lake: ``daily_bars`` over the market-data window and, for a minute-bar rule,
``consolidated_bars``; the symbols are those the ``coverage_report`` marks ready, and a symbol that
cannot be tested is skipped with its reason, not the strategy.
"""

import json
from datetime import date

import dagster as dg
import numpy as np
import polars as pl

from finance_dag.analytics import PERFORMANCE_KEYS
from finance_dag.backtest import costs as cost_logic
from finance_dag.backtest import vectorised
from finance_dag.core import reports
from finance_dag.core.lake import StorageError, partition_path
from finance_dag.core.reports import line_chart_png, markdown_table, png_markdown
from finance_dag.core.settings import Settings
from finance_dag.defs.lending.resources import MacroSeriesResource
from finance_dag.defs.strategies.config import StrategyRunConfig
from finance_dag.market_data import consolidate
from finance_dag.market_data.bars import ny_date
from finance_dag.platform.contract import code_version, table_metadata
from finance_dag.platform.partitions import DomainPartitions
from finance_dag.platform.ranged import PartitionWriter
from finance_dag.platform.storage import STATIC_DIMENSION, LakeResource, lake_path, read_partitions
from finance_dag.strategies import research, signals, sizing, walkforward
from finance_dag.strategies.signals import STRATEGIES, Bars
from finance_dag.strategies.walkforward import WalkForward

GROUP = "strategies"
KINDS = {"polars", "numpy", "parquet"}
DAILY_BARS = dg.AssetKey("daily_bars")
COVERAGE_REPORT = dg.AssetKey("coverage_report")
BACKTESTS = dg.AssetKey("strategy_backtests")
STRATEGY_PARTITIONS = dg.StaticPartitionsDefinition(list(STRATEGIES))
ROLLING_WINDOW = 63  # sessions in the rolling Sharpe ratios and the combination's volatilities
RETURNS_SCHEMA = pl.Schema(
    {
        "date": pl.Date,
        "return": pl.Float64,
        "turnover": pl.Float64,
        "cost": pl.Float64,
        "window": pl.Int64,
        "params": pl.String,
    }
)
RETURNS_COLUMNS = {
    "date": "Out-of-sample session (never one its parameters were chosen on).",
    "return": "Net daily return of the strategy's book, a fraction of capital (after costs).",
    "turnover": "One-way turnover that session, a fraction of capital.",
    "cost": "Commission + half-spread + square-root impact paid that session, a fraction of capital.",
    "window": "Walk-forward window whose test slice holds the session (0-based).",
    "params": "Parameter set chosen on that window's training sessions (JSON).",
}
SUMMARY_SCHEMA = pl.Schema(
    {
        "strategy": pl.String,
        "family": pl.String,
        "sharpe": pl.Float64,
        "sortino": pl.Float64,
        "max_drawdown": pl.Float64,
        "cagr": pl.Float64,
        "win_rate": pl.Float64,
        "win_loss": pl.Float64,
        "turnover": pl.Float64,
        "costs": pl.Float64,
        "in_sample_sharpe": pl.Float64,
        "trials": pl.Int64,
        "deflated_sharpe": pl.Float64,
        "pbo": pl.Float64,
        **{column: pl.Boolean for column in research.CRITERIA},
    }
)
SUMMARY_COLUMNS = {
    "strategy": "Registered strategy (or equal_risk_combination).",
    "family": "momentum, mean_reversion, volatility (or combination).",
    "sharpe": "Out-of-sample annualised Sharpe ratio (risk-free 0).",
    "sortino": "Out-of-sample Sortino ratio (downside deviation below 0 over all sessions).",
    "max_drawdown": "Out-of-sample worst peak-to-trough of the compounded curve (negative).",
    "cagr": "Out-of-sample compound annual growth rate.",
    "win_rate": "Share of out-of-sample sessions with a positive return.",
    "win_loss": "Mean gain of the up sessions / mean loss of the down sessions.",
    "turnover": "Capital traded per year (mean daily one-way turnover x 252).",
    "costs": "Costs paid over the out-of-sample sessions, a fraction of capital.",
    "in_sample_sharpe": "Sharpe ratio of the chosen sets on their training windows.",
    "trials": "Parameter sets tried per window.",
    "deflated_sharpe": "Probability the out-of-sample Sharpe beats the best of the trials by luck (DSR).",
    "pbo": "Probability of backtest overfitting (CSCV, 8 splits).",
    "sharpe_above_1": "Seed criterion: out-of-sample Sharpe > 1 (pass/fail, never tuned for).",
    "drawdown_within_15pct": "Seed criterion: out-of-sample max drawdown above -15 % (pass/fail).",
}
REGIME_FILTER = "volatility_regime_filter"
LOGIC = (signals, walkforward, research, sizing, vectorised, cost_logic)


def summary_path(strategy: str, part: str) -> str:
    """Side files of one strategy's backtest: ``summary``, ``windows`` or ``skipped``."""
    return f"strategy_backtests/strategy={strategy}/{part}.parquet"


def load_daily_bars(lake: LakeResource, days: dg.PartitionsDefinition) -> Bars:
    """Every ``daily_bars`` partition of the market-data window that is in the lake, as Bars."""
    try:
        frame = read_partitions(lake.lake, DAILY_BARS, days, days.get_partition_keys())
    except StorageError as error:
        raise dg.Failure(
            f"strategy_backtests: {error}; re-materialize daily_bars for that session"
        ) from error
    if frame.is_empty():
        raise dg.Failure(
            "strategy_backtests: no daily_bars in the lake; materialize daily_market_data_job first"
        )
    return research.bars_from_daily(frame)


def ready_symbols(lake: LakeResource) -> list[str]:
    path = lake_path(COVERAGE_REPORT)
    if not lake.lake.exists(path):
        raise dg.Failure(
            "strategy_backtests: no coverage_report in the lake; materialize coverage_report first"
        )
    return lake.lake.read_parquet(path).filter("ready")["symbol"].to_list()


def load_minutes(lake: LakeResource, symbols: list[str], first: date, last: date) -> dict[str, pl.DataFrame]:
    """Each symbol's regular-session minute bars from the consolidated lake (absent: skipped later)."""
    out = {}
    for symbol in symbols:
        frame = consolidate.load_symbol_bars(lake.lake, symbol, first, last)
        if not frame.is_empty():
            out[symbol] = frame.filter("regular").select("ts", "high", "low", "close", "volume")
    return out


def out_of_sample_frame(result: WalkForward) -> pl.DataFrame:
    window = np.concatenate([np.full(t.stop - t.start, k) for k, (_, t) in enumerate(result.windows)])
    params = [json.dumps(result.chosen[k], sort_keys=True) for k in window]
    return pl.DataFrame(
        {
            "date": result.dates,
            "return": result.returns,
            "turnover": result.turnover,
            "cost": result.costs,
            "window": window,
            "params": params,
        },
        schema=RETURNS_SCHEMA,
    )


def windows_frame(result: WalkForward) -> pl.DataFrame:
    dates = result.sessions.astype("datetime64[D]").tolist()  # datetime.date
    return pl.DataFrame(
        [
            {
                "window": k,
                "train_start": dates[fit.start],
                "train_end": dates[fit.stop - 1],
                "test_start": dates[scored.start],
                "test_end": dates[scored.stop - 1],
                "params": json.dumps(params, sort_keys=True),
            }
            for k, ((fit, scored), params) in enumerate(zip(result.windows, result.chosen, strict=True))
        ],
        schema={
            "window": pl.Int64,
            "train_start": pl.Date,
            "train_end": pl.Date,
            "test_start": pl.Date,
            "test_end": pl.Date,
            "params": pl.String,
        },
    )


def regime_vix(bars: Bars, macro_series: MacroSeriesResource) -> tuple[np.ndarray | None, str]:
    """VIX closes on the bars' sessions for the regime filter (FRED's VIXCLS in production, the
    simulated series by default), carried forward over days FRED has none; or None and why, so the
    filter falls back to its realised-volatility proxy."""
    series_id = macro_series.series.get("vix", "VIXCLS")
    first, last = (d.astype(object) for d in (bars.dates[0], bars.dates[-1]))
    try:
        observations = macro_series.observations(first, last)
    except Exception as error:  # a failing vendor affects the regime source only, named
        return None, f"realised-volatility proxy ({series_id} unavailable: {error})"
    vix = observations.filter(pl.col("series_id") == series_id).drop_nulls("value").sort("date")
    if vix.is_empty():
        return None, f"realised-volatility proxy (no {series_id} observations {first}..{last})"
    rows = np.searchsorted(vix["date"].to_numpy().astype("datetime64[D]"), bars.dates, side="right") - 1
    values = np.where(rows >= 0, vix["value"].to_numpy()[np.maximum(rows, 0)], np.nan)
    return values, f"VIX ({series_id}, {macro_series.source})"


def run_strategy(
    name: str,
    config: StrategyRunConfig,
    lake: LakeResource,
    bars: Bars,
    ready: list[str],
    options: dict[str, object] | None = None,
) -> tuple[WalkForward, list[str], dict[str, str]]:
    """One strategy's walk-forward on the testable symbols: (result, symbols used, symbols skipped
    with reasons). A problem with the whole strategy raises ``ValueError``."""
    strategy = STRATEGIES[name]
    grid = research.grid_with(strategy, config.params.get(name, {}))
    need = config.train_sessions + config.test_sessions
    costs = config.cost_model()
    if strategy.data == "minute":
        first, last = (d.astype(object) for d in (bars.dates[0], bars.dates[-1]))
        minutes = load_minutes(lake, [s for s in ready if s in bars.symbols], first, last)
        kept, skipped = [], {}
        for symbol in sorted(set(ready) | set(bars.symbols)):
            frame = minutes.get(symbol)
            sessions = 0 if frame is None else frame.select(ny_date().n_unique()).item()
            if symbol not in ready:
                skipped[symbol] = "not ready for research in the coverage report"
            elif sessions < need:
                skipped[symbol] = (
                    f"{sessions} sessions of consolidated minute bars, needs {need} (train + test)"
                )
            else:
                kept.append(symbol)
        if not kept:
            raise ValueError(f"{name}: no symbol has {need} sessions of minute bars; skipped: {skipped}")
        result = walkforward.walk_forward_intraday(
            strategy,
            {s: minutes[s] for s in kept},
            config.train_sessions,
            config.test_sessions,
            costs=costs,
            capital=config.capital,
            grid=grid,
        )
        return result, kept, skipped
    kept, skipped = research.usable_symbols(bars, ready, need)
    minimum = 2 if name in ("pair_stat_arb", "cross_sectional_momentum", "low_volatility_tilt") else 1
    if len(kept) < minimum:
        raise ValueError(f"{name}: needs {minimum}+ testable symbols, has {len(kept)}; skipped: {skipped}")
    chosen = research.select_symbols(bars, kept)
    exposures = None
    if config.factor_limit is not None:
        exposures = factor_exposures(lake, chosen, config.train_sessions)
    result = research.evaluate(
        strategy,
        chosen,
        config.train_sessions,
        config.test_sessions,
        grid=grid,
        sizing=config.sizing(),
        costs=costs,
        capital=config.capital,
        exposures=exposures,
        options=options,
    )
    return result, kept, skipped


def factor_exposures(lake: LakeResource, bars: Bars, train: int) -> np.ndarray:
    """Returns-based exposures (``risk.attribution.returns_based_exposures``) of the symbols to the
    risk domain's factor returns over the first training window only, so no decision uses a later
    estimate; the risk domain must cover at least 60 of those sessions."""
    from finance_dag.risk.attribution import returns_based_exposures

    keys = [str(d) for d in bars.dates[:train]]
    paths = [partition_path("factor_returns", date=k) for k in keys]
    frame = lake.lake.read_many(p for p in paths if lake.lake.exists(p))
    if frame.height < 60:
        raise ValueError(
            f"factor_limit needs 60+ sessions of the risk domain's factor_returns in the first training window "
            f"{keys[0]}..{keys[-1]}; the lake has {frame.height}: run risk_history_job over that range"
        )
    frame = frame.sort("date")
    factors = [c for c in frame.columns if c not in ("date", "r2", "used", "left_out")]
    rows = np.searchsorted(bars.dates, frame["date"].to_numpy().astype("datetime64[D]"))
    returns = bars.returns
    betas, _, _ = returns_based_exposures(returns[rows], frame.select(factors).fill_null(0.0).to_numpy())
    return betas


def build_assets(settings: Settings, parts: DomainPartitions) -> list[dg.AssetsDefinition]:
    days = parts.trading_days

    @dg.asset(
        partitions_def=STRATEGY_PARTITIONS,
        deps=[  # every session's daily bars and every symbol's minute lake feed every strategy
            dg.AssetDep(DAILY_BARS, partition_mapping=dg.AllPartitionMapping()),
            COVERAGE_REPORT,
            dg.AssetDep("consolidated_bars", partition_mapping=dg.AllPartitionMapping()),
        ],
        group_name=GROUP,
        kinds=KINDS,
        backfill_policy=dg.BackfillPolicy.single_run(),
        code_version=code_version("strategy_backtests", *LOGIC),
        metadata={**table_metadata(RETURNS_SCHEMA, RETURNS_COLUMNS), STATIC_DIMENSION: "strategy"},
        description=(
            "One registered strategy per partition, walk-forward on the market-data lake: daily rules on "
            "daily_bars, the opening-range rule on consolidated minute bars, over the symbols the coverage "
            "report marks ready. Each window chooses its parameter set from the strategy's small declared grid "
            "on its training sessions and trades it on the next test sessions, net of commission, half-spread "
            "and square-root market impact. Stored: the out-of-sample daily returns, the windows, the skipped "
            "symbols with reasons, and in/out-of-sample metrics with the deflated Sharpe and PBO."
        ),
    )
    def strategy_backtests(
        context: dg.AssetExecutionContext,
        config: StrategyRunConfig,
        lake: LakeResource,
        macro_series: MacroSeriesResource,
    ) -> dg.MaterializeResult:
        config.validate_names()
        bars = load_daily_bars(lake, days)
        ready = ready_symbols(lake)
        with PartitionWriter(context, lake.lake) as writer:
            for name in context.partition_keys:
                options, notes = {}, {}
                if name == REGIME_FILTER:
                    vix, notes["regime_source"] = (
                        regime_vix(bars, macro_series)
                        if config.regime == "vix"
                        else (None, "realised-volatility proxy")
                    )
                    options = {} if vix is None else {"vix": vix}
                try:
                    result, kept, skipped = run_strategy(name, config, lake, bars, ready, options)
                except ValueError as error:
                    writer.fail(name, [str(error)])
                    continue
                row = research.comparison_table({name: result}, {name: STRATEGIES[name].family})
                skipped_frame = pl.DataFrame(
                    {"symbol": list(skipped), "reason": list(skipped.values())},
                    schema={"symbol": pl.String, "reason": pl.String},
                )
                windows = windows_frame(result)
                lake.lake.write_parquet(summary_path(name, "summary"), row.cast(SUMMARY_SCHEMA))
                lake.lake.write_parquet(summary_path(name, "windows"), windows)
                lake.lake.write_parquet(summary_path(name, "skipped"), skipped_frame)
                returns = out_of_sample_frame(result)
                curve = returns.select(
                    "date", equity=(1 + pl.col("return")).cum_prod(), series=pl.lit("out of sample")
                )
                metrics = {
                    f"oos_{k}": float(result.out_of_sample[k])
                    for k in (*PERFORMANCE_KEYS, "win_loss", "turnover", "costs")
                }
                writer.write(
                    name,
                    returns,
                    {
                        **metrics,
                        **notes,
                        "in_sample_sharpe": float(result.in_sample["sharpe"]),
                        "parameter_sets_tried": result.n_trials,
                        "deflated_sharpe": float(result.deflated_sharpe),
                        "pbo": float(result.pbo),
                        "symbols_used": len(kept),
                        "symbols_skipped": dg.MetadataValue.md(
                            markdown_table(skipped_frame) if skipped else "_none_"
                        ),
                        "windows": dg.MetadataValue.md(markdown_table(windows)),
                        "equity_curve": dg.MetadataValue.md(
                            png_markdown(
                                f"{name} out-of-sample equity",
                                line_chart_png(
                                    curve, "date", "equity", "series", f"{name}: out-of-sample growth of 1"
                                ),
                            )
                        ),
                        "comparison_row": dg.MetadataValue.md(markdown_table(row, digits=3)),
                        "preview": dg.MetadataValue.md(markdown_table(returns.head(10))),
                    },
                )
        return writer.result("could not be backtested")

    @dg.asset(
        deps=[BACKTESTS],
        group_name=GROUP,
        kinds={"polars", "parquet", "matplotlib"},
        code_version=code_version("strategy_report", research, reports),
        metadata=table_metadata(SUMMARY_SCHEMA, SUMMARY_COLUMNS),
        description=(
            "Every backtested strategy compared on its out-of-sample sessions: Sharpe, Sortino, max drawdown, "
            "win rate and win/loss, turnover, costs paid, the in-sample Sharpe beside it, trials, deflated "
            "Sharpe and PBO; rolling 63-session Sharpe ratios, the correlation of the strategies' returns, and "
            "an equal-risk combination (weights 1/sigma of each strategy's trailing returns) with its own "
            "metrics. The seed's success criteria are pass/fail columns, never tuned for."
        ),
    )
    def strategy_report(lake: LakeResource) -> dg.MaterializeResult:
        present = [
            name
            for name in STRATEGIES
            if lake.lake.exists(lake_path(BACKTESTS, STRATEGY_PARTITIONS, name, "strategy"))
        ]
        if not present:
            raise dg.Failure(
                "strategy_report: no strategy_backtests in the lake; materialize strategies_job first"
            )
        table = pl.concat([lake.lake.read_parquet(summary_path(n, "summary")) for n in present])
        returns = None
        for name in present:
            series = lake.lake.read_parquet(
                lake_path(BACKTESTS, STRATEGY_PARTITIONS, name, "strategy")
            ).select("date", pl.col("return").alias(name))
            returns = (
                series if returns is None else returns.join(series, on="date", how="full", coalesce=True)
            )
        returns = returns.sort("date")
        combination = research.equal_risk_combination(returns, ROLLING_WINDOW)
        combined = research.combined_summary(combination)
        rolling = pl.concat(
            [
                pl.DataFrame(
                    {
                        "date": returns["date"],
                        "sharpe": research.rolling_sharpe(
                            returns[n].fill_null(0.0).to_numpy(), ROLLING_WINDOW
                        ),
                        "strategy": n,
                    }
                )
                for n in present
            ]
            + [
                pl.DataFrame(
                    {
                        "date": combination["date"],
                        "sharpe": research.rolling_sharpe(combination["return"].to_numpy(), ROLLING_WINDOW),
                        "strategy": "equal_risk_combination",
                    }
                )
            ]
        )
        png = line_chart_png(
            rolling, "date", "sharpe", "strategy", f"Rolling {ROLLING_WINDOW}-session Sharpe ratio"
        )
        lake.lake.write_bytes("strategy_report/rolling_sharpe.png", png)
        correlation = returns.select(present).fill_null(0.0).corr().with_columns(strategy=pl.Series(present))
        correlation = correlation.select("strategy", *present)
        lake.lake.write_parquet("strategy_report/correlation.parquet", correlation)
        lake.lake.write_parquet("strategy_report/combination.parquet", combination)
        combined_row = pl.DataFrame(
            {
                "strategy": ["equal_risk_combination"],
                "family": ["combination"],
                **{
                    k: [float(combined[k])] for k in ("sharpe", "sortino", "max_drawdown", "cagr", "win_rate")
                },
            }
        )
        full = pl.concat([table, combined_row], how="diagonal_relaxed").cast(SUMMARY_SCHEMA)
        return dg.MaterializeResult(
            value=full,
            metadata={
                "dagster/row_count": full.height,
                "strategies": len(present),
                "preview": dg.MetadataValue.md(markdown_table(full, digits=3)),
                "combined_sharpe": float(combined["sharpe"]),
                "combined_max_drawdown": float(combined["max_drawdown"]),
                "combined_sharpe_above_1_5": bool(combined["sharpe_above_1_5"]),
                "passing_all_criteria": dg.MetadataValue.json(
                    table.filter(pl.all_horizontal(*research.CRITERIA))["strategy"].to_list()
                ),
                "rolling_sharpe": dg.MetadataValue.md(png_markdown("rolling Sharpe", png)),
                "rolling_sharpe_path": dg.MetadataValue.path(
                    lake.lake.uri("strategy_report/rolling_sharpe.png")
                ),
                "correlation": dg.MetadataValue.md(markdown_table(correlation, digits=2)),
            },
        )

    return [strategy_backtests, strategy_report]

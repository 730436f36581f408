"""Risk assets: exposures → factor returns → factor covariance → risk attribution of the books we
plan or hold, and factor-adjusted signals. Formulas: ``finance_dag.risk`` and docs/risk.md.

Every asset is partitioned by session. ``factor_exposures`` and ``factor_returns`` backfill a
history in one run (``BackfillPolicy.single_run``); the covariance reads the last
``COVARIANCE_WINDOW`` sessions of factor returns from the lake.
"""

from datetime import UTC, date, datetime

import dagster as dg
import numpy as np
import polars as pl

from finance_dag.core import calendar, reports
from finance_dag.core.reports import markdown_table
from finance_dag.core.settings import Settings
from finance_dag.defs.etf.resources import BrokerResource
from finance_dag.defs.risk.automation import SCHEDULE
from finance_dag.defs.risk.resources import EquityDataResource
from finance_dag.etf import history, scores
from finance_dag.platform.contract import code_version, table_metadata
from finance_dag.platform.freshness import after_schedule, freshness_of
from finance_dag.platform.partitions import DomainPartitions
from finance_dag.platform.ranged import PartitionWriter
from finance_dag.platform.storage import LakeResource, lake_path
from finance_dag.risk import attribution, books, model, signals
from finance_dag.risk.model import FACTORS, FactorReturns, RiskModel

GROUP = "risk"
KINDS = {"polars", "parquet"}
EXPOSURES = dg.AssetKey("factor_exposures")
RETURNS = dg.AssetKey("factor_returns")
COVARIANCE = dg.AssetKey("factor_covariance")
HISTORY_SESSIONS = model.BETA_WINDOW + 8  # price history an exposure date reads
COVARIANCE_WINDOW = 252  # sessions of factor returns the covariance and returns-based betas use
EXPOSURE_SCHEMA = pl.Schema(
    {
        "date": pl.Date,
        "symbol": pl.String,
        "cap": pl.Float64,
        "sector": pl.String,
        "country": pl.String,
        **{f: pl.Float64 for f in FACTORS},
        "missing_reason": pl.String,
    }
)
EXPOSURE_COLUMNS = {
    "date": "Session (exposures as of its close).",
    "symbol": "Stock.",
    "cap": "Market cap, USD (close x shares outstanding).",
    "sector": "GICS sector (fundamentals resource).",
    "country": "Country of listing / incorporation (fundamentals resource).",
    "market": "Beta on the market proxy, 252 sessions, >= 100 observations (raw).",
    "size": "ln market cap, winsorised and standardised (cap-weighted mean 0, std 1).",
    "value": "Book-to-price, winsorised and standardised.",
    "momentum": "Return t-68 to t-5 (63 sessions skipping a week), standardised.",
    "volatility": "21-session realised volatility (annualised), standardised.",
    "liquidity": "ln mean 21-session turnover, standardised.",
    "missing_reason": "Why a descriptor is missing ('; '-joined); null when none is.",
}
RETURN_COLUMNS = {"date": "Session whose returns were regressed.", "r2": "Weighted R² of the regression.", "used": "Stocks in the regression.", "left_out": "Stocks left out (a missing exposure)."}  # fmt: skip


def load_model(lake: LakeResource, days: dg.TimeWindowPartitionsDefinition, key: str) -> RiskModel | str:
    """The risk model of session ``key`` from the lake, or why there is none."""
    paths = {
        name: lake_path(asset, days, key)
        for name, asset in (("exposures", EXPOSURES), ("covariance", COVARIANCE))
    }
    missing = [name for name, path in paths.items() if not lake.lake.exists(path)]
    if missing:
        return f"no factor_{' / factor_'.join(missing)} for {key}"
    covariance = lake.lake.read_parquet(paths["covariance"])
    factors = tuple(covariance["factor"])
    return RiskModel(
        day=date.fromisoformat(key),
        factors=factors,
        exposures=lake.lake.read_parquet(paths["exposures"]).drop("date"),
        covariance=covariance.select(factors).to_numpy(),
        specific=lake.lake.read_parquet(specific_path(key)),
    )


def specific_path(key: str) -> str:
    return f"factor_covariance/date={key}/specific.parquet"


def window_path(key: str) -> str:
    """The factor returns the covariance of ``key`` was estimated on (read by the book assets)."""
    return f"factor_covariance/date={key}/factor_returns.parquet"


def residuals_path(key: str) -> str:
    return f"factor_returns/date={key}/residuals.parquet"


def build_assets(settings: Settings, parts: DomainPartitions) -> list[dg.AssetsDefinition]:
    days = parts.trading_days

    @dg.asset(
        partitions_def=days,
        group_name=GROUP,
        kinds=KINDS,
        backfill_policy=dg.BackfillPolicy.single_run(),
        code_version=code_version("factor_exposures", model),
        freshness_policy=after_schedule(settings, settings.risk, SCHEDULE),
        metadata=table_metadata(EXPOSURE_SCHEMA, EXPOSURE_COLUMNS),
        description=(
            "Six-factor exposures of every stock as of the session's close: market beta (252 sessions vs "
            "the market proxy), size (ln cap), value (book-to-price from fundamentals), momentum (63 sessions "
            "skipping a week), volatility (21 sessions), liquidity (21-session turnover); winsorised at 3 std "
            "and standardised (cap-weighted mean 0, unit std). A missing input leaves the exposure null with "
            "the reason, never 0."
        ),
    )
    def factor_exposures(
        context: dg.AssetExecutionContext, equity_data: EquityDataResource, lake: LakeResource
    ) -> dg.MaterializeResult:
        keys = [date.fromisoformat(k) for k in context.partition_keys]
        start = calendar.sessions_before(keys[0], HISTORY_SESSIONS)[0]
        prices = equity_data.prices(start, keys[-1])
        market = equity_data.market(start, keys[-1])
        months: dict[tuple[int, int], date] = {}
        for day in keys:
            months.setdefault((day.year, day.month), day)
        reports_on = sorted({keys[0], *months.values()})  # fundamentals as known at each month's start
        fundamentals = pl.concat(
            [equity_data.fundamentals(d).with_columns(date=pl.lit(d)) for d in reports_on]
        )
        exposures = model.exposures_range(prices, market, fundamentals.drop("country"), keys)
        countries = fundamentals.sort("date").group_by("symbol").last().select("symbol", "country")
        exposures = exposures.join(countries, on="symbol", how="left").select(EXPOSURE_SCHEMA.names())
        by_day = exposures.partition_by("date", as_dict=True)
        with PartitionWriter(context, lake.lake) as writer:
            for day in keys:
                frame = by_day.get((day,))
                if frame is None:
                    writer.fail(day.isoformat(), [f"no prices for {day}"])
                    continue
                complete = frame.drop_nulls(list(FACTORS)).height
                writer.write(
                    day.isoformat(),
                    frame,
                    {
                        "stocks": frame.height,
                        "complete": complete,
                        "missing_by_reason": dg.MetadataValue.md(
                            markdown_table(
                                frame.filter(pl.col("missing_reason").is_not_null())
                                .group_by(pl.col("missing_reason").str.split(";").list.first())
                                .len("stocks")
                                .sort("stocks", descending=True)
                                .head(10)
                            )
                        ),
                        "preview": dg.MetadataValue.md(markdown_table(frame.head(10))),
                    },
                )
        return writer.result("have no exposures")

    @dg.asset(
        partitions_def=days,
        deps=[
            dg.AssetDep(factor_exposures, partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-1))
        ],
        group_name=GROUP,
        kinds=KINDS,
        backfill_policy=dg.BackfillPolicy.single_run(),
        code_version=code_version("factor_returns", model),
        freshness_policy=after_schedule(settings, settings.risk, SCHEDULE),
        metadata=table_metadata(
            pl.Schema(
                {
                    "date": pl.Date,
                    **{f: pl.Float64 for f in FACTORS},
                    "r2": pl.Float64,
                    "used": pl.Int64,
                    "left_out": pl.Int64,
                }
            ),
            {**RETURN_COLUMNS, **{f: f"Daily return of the {f} factor." for f in FACTORS}},
        ),
        description=(
            "The session's factor returns: its stock returns regressed cross-sectionally on the exposures of "
            "the previous close plus sector dummies, weighted by sqrt(cap), sector returns constrained to a "
            "cap-weighted sum of 0 (one column per sector after the six styles). Residuals (specific returns) "
            "are kept beside each session for specific risk."
        ),
    )
    def factor_returns(
        context: dg.AssetExecutionContext, equity_data: EquityDataResource, lake: LakeResource
    ) -> dg.MaterializeResult:
        keys = [date.fromisoformat(k) for k in context.partition_keys]
        previous = calendar.sessions_before(keys[0], 1)[0]
        wanted = [previous, *keys]
        paths = [lake_path(EXPOSURES, days, d.isoformat()) for d in wanted]
        exposures = lake.lake.read_many(p for p in paths if lake.lake.exists(p))
        returns = model.daily_returns(equity_data.prices(previous, keys[-1]))
        fitted = model.factor_returns_range(returns.filter(pl.col("date").is_in(keys)), exposures)
        by_day = fitted.returns.join(fitted.stats, on="date").partition_by("date", as_dict=True)
        residuals = fitted.residuals.partition_by("date", as_dict=True)
        with PartitionWriter(context, lake.lake) as writer:
            for day in keys:
                row = by_day.get((day,))
                if row is None and day == date.fromisoformat(days.get_first_partition_key()):
                    row = pl.DataFrame({"date": [day], "used": [0], "left_out": [0]})  # nothing before it
                if row is None:
                    before = calendar.sessions_before(day, 1)[0]
                    writer.fail(
                        day.isoformat(),
                        [f"no regression for {day}: no factor_exposures of {before} or no prices"],
                    )
                    continue
                empty = pl.DataFrame(
                    schema={"date": pl.Date, "symbol": pl.String, "specific_return": pl.Float64}
                )
                lake.lake.write_parquet(residuals_path(day.isoformat()), residuals.get((day,), empty))
                writer.write(
                    day.isoformat(),
                    row,
                    {
                        "r2": float(row["r2"][0]) if "r2" in row.columns else float("nan"),
                        "stocks": int(row["used"][0]),
                        "preview": dg.MetadataValue.md(
                            markdown_table(
                                row.drop("date").unpivot(variable_name="factor", value_name="return")
                            )
                        ),
                    },
                )
        return writer.result("could not be regressed")

    @dg.asset(
        partitions_def=days,
        deps=[
            dg.AssetDep(
                factor_returns,
                partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-(COVARIANCE_WINDOW - 1)),
            ),
            factor_exposures,
        ],
        group_name=GROUP,
        kinds={"numpy", "parquet"},
        backfill_policy=dg.BackfillPolicy.single_run(),
        code_version=code_version("factor_covariance", model),
        freshness_policy=after_schedule(settings, settings.risk, SCHEDULE),
        metadata=table_metadata(
            pl.Schema({"factor": pl.String, **{f: pl.Float64 for f in FACTORS}}),
            {
                "factor": "Row factor (styles, then sectors; one column per factor).",
                **{f: f"Daily covariance with {f}." for f in FACTORS},
            },
        ),
        description=(
            "Exponentially weighted daily factor covariance (half-life a setting, 90 sessions by default) over "
            f"the last {COVARIANCE_WINDOW} sessions of factor returns, positive semi-definite by construction "
            "(eigenvalues floored at 0), with each stock's specific variance (EW mean of squared residuals, "
            "shrunk to the median for short histories) beside it."
        ),
    )
    def factor_covariance(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        with PartitionWriter(context, lake.lake) as writer:
            for key in context.partition_keys:
                day = date.fromisoformat(key)
                window = [d.isoformat() for d in calendar.sessions_before(day, COVARIANCE_WINDOW - 1)]
                present = [k for k in window if lake.lake.exists(lake_path(RETURNS, days, k))]
                exposures_path = lake_path(EXPOSURES, days, key)
                if len(present) < 2 or not lake.lake.exists(exposures_path):
                    writer.fail(
                        key,
                        [
                            f"{len(present)} sessions of factor_returns up to {key} (need 2+) or no factor_exposures"
                        ],
                    )
                    continue
                fitted = FactorReturns(
                    lake.lake.read_many(lake_path(RETURNS, days, k) for k in present).drop(
                        "r2", "used", "left_out"
                    ),
                    lake.lake.read_many(
                        residuals_path(k) for k in present if lake.lake.exists(residuals_path(k))
                    ),
                    pl.DataFrame(),
                )
                built = model.risk_model(
                    lake.lake.read_parquet(exposures_path), fitted, day, settings.risk_half_life
                )
                matrix = (
                    pl.DataFrame(built.covariance, schema=list(built.factors), orient="row")
                    .with_columns(factor=pl.Series(built.factors))
                    .select("factor", *built.factors)
                )
                lake.lake.write_parquet(specific_path(key), built.specific)
                lake.lake.write_parquet(window_path(key), fitted.returns.select("date", *built.factors))
                vols = pl.DataFrame(
                    {"factor": built.factors, "annual_volatility": np.sqrt(np.diag(built.covariance) * 252)}
                )
                writer.write(
                    key,
                    matrix,
                    {
                        "sessions": len(present),
                        "half_life": settings.risk_half_life,
                        "min_eigenvalue": float(np.linalg.eigvalsh(built.covariance).min()),
                        "factor_volatility": dg.MetadataValue.md(markdown_table(vols)),
                        "specific_variances": built.specific.height,
                        "preview": dg.MetadataValue.md(markdown_table(matrix.select("factor", *FACTORS))),
                    },
                )
        return writer.result("have no covariance")

    return [
        factor_exposures,
        factor_returns,
        factor_covariance,
        *book_assets(parts, factor_covariance, factor_returns),
    ]


def book_assets(
    parts: DomainPartitions, covariance: dg.AssetsDefinition, returns: dg.AssetsDefinition
) -> list:
    """``risk_attribution`` and ``factor_adjusted_signals``: the model applied to the ETF domain."""
    days = parts.trading_days

    def inputs(
        lake: LakeResource, key: str, symbols: list[str]
    ) -> tuple[RiskModel, pl.DataFrame, pl.DataFrame] | str:
        """The model, the factor-return history and the ETFs' daily returns for session ``key``."""
        built = load_model(lake, days, key)
        if isinstance(built, str):
            return built
        factor_history = lake.lake.read_parquet(window_path(key))
        rows = history.load_history(
            lake.lake,
            "etf_price_history",
            calendar.sessions_before(built.day, COVARIANCE_WINDOW)[0],
            built.day,
            symbols,
        )
        panel = scores.total_return_panel(rows) if rows.height else None
        etf_returns = (
            pl.DataFrame(
                {
                    "date": np.repeat(panel.dates[1:], len(panel.symbols)),
                    "symbol": np.tile(np.array(panel.symbols), len(panel.dates) - 1),
                    "ret": panel.returns()[1:].ravel(),
                }
            )
            .fill_nan(None)
            .drop_nulls()
            if panel is not None
            else pl.DataFrame(schema={"date": pl.Date, "symbol": pl.String, "ret": pl.Float64})
        )
        return built, factor_history, etf_returns

    @dg.asset(
        partitions_def=days,
        deps=[covariance, returns, dg.AssetKey("target_portfolio"), dg.AssetKey("etf_price_history")],
        group_name=GROUP,
        kinds={"polars", "parquet"},
        code_version=code_version("risk_attribution", books),
        freshness_policy=freshness_of(covariance),  # same run of risk_daily
        metadata=table_metadata(
            pl.Schema({"book": pl.String, "metric": pl.String, "value": pl.Float64}),
            {
                "book": "target_portfolio (the ETF domain's) or broker_positions.",
                "metric": "Risk figure (volatility, VaR, CVaR, shares).",
                "value": "Its value (daily fractions unless named annual).",
            },
        ),
        description=(
            "Risk of every book we plan or hold — the ETF domain's target_portfolio and the positions at the "
            "broker — under the session's risk model: predicted volatility, factor vs specific split, each "
            "factor's and each position's contribution, parametric and historical VaR/CVaR at 95 % and 99 % "
            "(1 and 10 days), diversification score, sector and geographic exposure. ETFs get returns-based "
            "exposures (their returns regressed on the model's factor returns)."
        ),
    )
    def risk_attribution(
        context: dg.AssetExecutionContext, lake: LakeResource, broker: BrokerResource
    ) -> dg.MaterializeResult:
        key = context.partition_key
        target_path = f"target_portfolio/date={key}.parquet"
        universe_path = f"etf_universe/date={key}.parquet"
        etfs = (
            lake.lake.read_parquet(universe_path)
            if lake.lake.exists(universe_path)
            else pl.DataFrame(schema={"symbol": pl.String, "category": pl.String, "region": pl.String})
        )
        closes_path = f"etf_prices/date={key}.parquet"
        closes = (
            dict(lake.lake.read_parquet(closes_path).select("symbol", "close").iter_rows())
            if lake.lake.exists(closes_path)
            else {}
        )
        wanted: dict[str, dict[str, float]] = {}
        if lake.lake.exists(target_path):
            wanted["target_portfolio"] = dict(
                lake.lake.read_parquet(target_path).select("symbol", "weight").iter_rows()
            )
        connection = broker.connect("plan", closes)
        try:
            held = {
                p.symbol: p.quantity * (closes.get(p.symbol) or p.market_price or p.avg_cost)
                for p in connection.positions()
            }
        finally:
            connection.close()
        gross = sum(abs(v) for v in held.values())
        if gross:
            wanted["broker_positions"] = {s: v / gross for s, v in held.items()}
        if not wanted:
            raise dg.Failure(f"no book for {key}: neither target_portfolio nor broker positions")
        loaded = inputs(lake, key, sorted({s for w in wanted.values() for s in w}))
        if isinstance(loaded, str):
            raise dg.Failure(f"risk_attribution for {key}: {loaded}")
        built, factor_history, etf_returns = loaded
        sectors = {**dict(etfs.select("symbol", "category").iter_rows())}
        regions = {**dict(etfs.select("symbol", "region").iter_rows())}
        results = {
            name: books.book_risk(name, w, built, etf_returns, factor_history, sectors, regions)
            for name, w in wanted.items()
        }
        rows, metadata = [], {}
        for name, risk in results.items():
            a = risk.attribution
            figures = {
                "volatility_daily": a.volatility,
                "volatility_annual": a.volatility_annual,
                "factor_share": a.factor_share,
                "specific_share": a.specific_share,
                "diversification": a.diversification,
                "excluded_weight": a.excluded_weight,
                **{
                    f"{m}_{kind}_{int(c * 100)}_{h}d": float(v)
                    for m, c, h, var, cvar in risk.var.iter_rows()
                    for kind, v in (("var", var), ("cvar", cvar))
                },
            }
            rows += [(name, metric, float(value)) for metric, value in figures.items()]
            folder = f"risk_attribution/date={key}/{name}"
            for table, frame in (
                ("positions", a.positions),
                ("factors", a.factors),
                ("var", risk.var),
                ("sectors", risk.sectors),
                ("regions", risk.regions),
                ("excluded", a.excluded),
            ):
                lake.lake.write_parquet(f"{folder}/{table}.parquet", frame)
            contributions = a.factors.filter(pl.col("contribution").is_finite())
            chart = (
                reports.png_markdown(
                    "contributions",
                    reports.stacked_bars_png(
                        contributions.sort("contribution", descending=True).with_columns(
                            pl.col("contribution") * np.sqrt(252)
                        ),
                        "factor",
                        {"contribution": "contribution to annual volatility"},
                        f"{name}: risk contributions",
                    ),
                )
                if contributions.height
                else f"no position of {name} could be attributed: see {name}_excluded"
            )
            metadata |= {
                f"{name}_volatility_annual": a.volatility_annual,
                f"{name}_var": dg.MetadataValue.md(markdown_table(risk.var)),
                f"{name}_top_contributors": dg.MetadataValue.md(markdown_table(a.positions.head(10))),
                f"{name}_factors": dg.MetadataValue.md(markdown_table(a.factors)),
                f"{name}_sectors": dg.MetadataValue.md(markdown_table(risk.sectors)),
                f"{name}_regions": dg.MetadataValue.md(markdown_table(risk.regions)),
                f"{name}_contribution_chart": dg.MetadataValue.md(chart),
                f"{name}_excluded": dg.MetadataValue.md(markdown_table(a.excluded.head(20))),
            }
        table = pl.DataFrame(
            rows, schema={"book": pl.String, "metric": pl.String, "value": pl.Float64}, orient="row"
        )
        path = lake_path(context.asset_key, days, key)
        lake.lake.write_parquet(path, table)
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": table.height,
                "path": dg.MetadataValue.path(lake.lake.uri(path)),
                "preview": dg.MetadataValue.md(
                    markdown_table(table.filter(pl.col("metric").str.contains("volatility|parametric_var_9")))
                ),
                "computed_at": datetime.now(UTC).isoformat(),
                **metadata,
            }
        )

    @dg.asset(
        partitions_def=days,
        deps=[covariance, returns, dg.AssetKey("etf_factor_scores"), dg.AssetKey("etf_price_history")],
        group_name=GROUP,
        kinds={"polars", "parquet"},
        code_version=code_version("factor_adjusted_signals", signals, books),
        freshness_policy=freshness_of(covariance),  # same run of risk_daily
        metadata=table_metadata(signals.SIGNAL_SCHEMA, signals.SIGNAL_COLUMNS),
        description=(
            "The seed's factor-adjusted confidence and buy/sell/hold tilt applied to the ETF scores: the score "
            "as confidence, lowered for above-median predicted volatility and for style exposures beyond "
            "±0.3 (returns-based), buy at >= 0.6, sell at <= 0.4; each name explained in one line."
        ),
    )
    def factor_adjusted_signals(
        context: dg.AssetExecutionContext, lake: LakeResource
    ) -> dg.MaterializeResult:
        key = context.partition_key
        scores_path = f"etf_factor_scores/date={key}.parquet"
        if not lake.lake.exists(scores_path):
            raise dg.Failure(f"no etf_factor_scores for {key}")
        scored = lake.lake.read_parquet(scores_path).filter(pl.col("status") == "scored")
        symbols = scored["symbol"].to_list()
        loaded = inputs(lake, key, symbols)
        if isinstance(loaded, str):
            raise dg.Failure(f"factor_adjusted_signals for {key}: {loaded}")
        built, factor_history, etf_returns = loaded
        exposures, specific, _ = books.book_exposures(built, symbols, etf_returns, factor_history)
        x = exposures.select(built.factors).to_numpy().astype(float)
        variance = attribution.predicted_variance(
            x, built.covariance, np.array([specific.get(s, np.nan) for s in exposures["symbol"]])
        )
        volatility = dict(zip(exposures["symbol"], np.sqrt(variance * 252), strict=True))
        table = signals.factor_adjusted_signals(
            dict(scored.select("symbol", "score").iter_rows()),
            exposures.select("symbol", *FACTORS),
            volatility,
        )
        path = lake_path(context.asset_key, days, key)
        lake.lake.write_parquet(path, table)
        counts = table.group_by("action").len().sort("action")
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": table.height,
                "path": dg.MetadataValue.path(lake.lake.uri(path)),
                "actions": dg.MetadataValue.md(markdown_table(counts)),
                "preview": dg.MetadataValue.md(
                    markdown_table(
                        table.sort("adjusted_confidence", descending=True, nulls_last=True).head(15)
                    )
                ),
            }
        )

    return [risk_attribution, factor_adjusted_signals]

"""Lending assets: the day's validated feed and the core lending factors.

``build_assets(settings, parts)`` makes them from the lending domain's settings (universe of
~1,000 names, history window). Formulas: ``finance_dag.lending.factors`` and docs/lending.md.
"""

import base64
from datetime import date

import dagster as dg
import polars as pl

from finance_dag import analytics
from finance_dag.core import reports
from finance_dag.core.reports import markdown_table
from finance_dag.core.settings import Settings
from finance_dag.defs.lending.resources import DailyPricesResource, LendingFeedResource
from finance_dag.lending import digest, factors, feed, squeeze
from finance_dag.lending.factors import FACTOR_COLUMNS, FACTOR_DESCRIPTIONS, core_factors, lookback_sessions
from finance_dag.lending.feed import COLUMN_DESCRIPTIONS, FEED_SCHEMA, LendingFeedError, LendingSourceError
from finance_dag.platform.contract import code_version, column_lineage, table_metadata
from finance_dag.platform.partitions import DomainPartitions
from finance_dag.platform.ranged import PartitionWriter
from finance_dag.platform.storage import LakeResource, lake_path, read_partitions

GROUP = "lending"
SNAPSHOTS = dg.AssetKey("lending_snapshots")
PRICES = dg.AssetKey("lending_prices")
FACTORS = dg.AssetKey("lending_factors")
SQUEEZE = dg.AssetKey("squeeze_scores")
TOP_CANDIDATES = 10
IC_WINDOW = 252  # sessions the IC report covers
PRICE_SCHEMA = pl.Schema({"date": pl.Date, "symbol": pl.String, "close": pl.Float64})
PRICE_COLUMNS = {"date": "Session.", "symbol": "Ticker symbol.", "close": "Closing price, USD, raw."}
IC_SCHEMA = pl.Schema(
    {
        "factor": pl.String,
        "period": pl.Int64,
        "mean_ic": pl.Float64,
        "ic_std": pl.Float64,
        "ir": pl.Float64,
        "t_stat": pl.Float64,
        "p_value": pl.Float64,
        "hit_rate": pl.Float64,
        "n_dates": pl.Int64,
    }
)
SQUEEZE_SCHEMA = pl.Schema(
    {
        "date": pl.Date,
        "symbol": pl.String,
        "ssr_v4": pl.Float64,
        **{f"{c}_z": pl.Float64 for c in squeeze.WEIGHTS},
        **{f"{c}_contrib": pl.Float64 for c in squeeze.WEIGHTS},
        "components": pl.Int64,
        "reason": pl.String,
    }
)
SQUEEZE_LINEAGE = dg.TableColumnLineage(
    deps_by_column={
        "sim_z": [dg.TableColumnDep(FACTORS, "sim")],
        "bcs_z": [dg.TableColumnDep(FACTORS, "bcs")],
        "upi_z": [dg.TableColumnDep(FACTORS, "upi")],
        "uptick_z": [dg.TableColumnDep(PRICES, "close")],
    }
)
SQUEEZE_COLUMNS = {
    "date": "As-of session.",
    "symbol": "Ticker symbol.",
    "ssr_v4": "SSR v4 score: weighted mean of the available component z-scores.",
    **{f"{c}_z": f"Standardised {label} (z units)." for c, label in squeeze.LABELS.items()},
    **{
        f"{c}_contrib": f"Contribution of {label} to ssr_v4 (z units)." for c, label in squeeze.LABELS.items()
    },
    "components": "How many of the five components served the name.",
    "reason": "The two largest positive contributions, in words.",
}
IC_COLUMNS = {
    "factor": "Lending factor column.",
    "period": "Forward-return horizon, sessions (from the close of t+1).",
    "mean_ic": "Mean daily Spearman IC.",
    "ic_std": "Standard deviation of the daily IC (ddof 1).",
    "ir": "mean_ic / ic_std.",
    "t_stat": "mean_ic / (ic_std / sqrt(n_dates)).",
    "p_value": "Two-sided p-value of the t-stat (n_dates - 1 degrees of freedom).",
    "hit_rate": "Share of dates with IC > 0.",
    "n_dates": "Dates with an IC.",
}
KINDS = {"polars", "parquet"}
FACTOR_SCHEMA = pl.Schema({"date": pl.Date, "symbol": pl.String, **dict.fromkeys(FACTOR_COLUMNS, pl.Float64)})
FACTOR_LINEAGE = column_lineage(
    SNAPSHOTS,
    {
        "date": ["date"],
        "symbol": ["symbol"],
        "sim": ["short_interest"],
        "bcs": ["fee_bps"],
        "upi": ["utilization_pct"],
        "ftz": ["fee_bps"],
        "dtc_z": ["short_interest", "adv"],
        "lpf": ["rerate_ratio", "b2b_loans", "on_loan_qty"],
    },
)


def build_assets(settings: Settings, parts: DomainPartitions) -> list[dg.AssetsDefinition]:
    lookback = lookback_sessions()

    def sessions_back(first: str, last: str, back: int) -> list[str]:
        """The sessions from ``back`` sessions before ``first`` through ``last``."""
        sessions = parts.trading_days.get_partition_keys()
        start, end = sessions.index(first), sessions.index(last)
        return sessions[max(0, start - back) : end + 1]

    def load(lake: LakeResource, asset: dg.AssetKey, key: str) -> pl.DataFrame | None:
        """One partition of ``asset``, or None when it is not in the lake."""
        path = lake_path(asset, parts.trading_days, key)
        return lake.lake.read_parquet(path) if lake.lake.exists(path) else None

    @dg.asset(
        partitions_def=parts.trading_days,
        group_name=GROUP,
        kinds=KINDS,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool="lending_feed",
        code_version=code_version("lending_snapshots", feed),
        metadata=table_metadata(FEED_SCHEMA, COLUMN_DESCRIPTIONS),
        description=(
            "The day's securities-lending feed for the lending universe, validated (types; fee >= 0; "
            "0 <= utilisation <= 100; one row per ticker; the file's Date equals the partition) and "
            "stored normalised in snake_case. A bad delivery fails its own day, naming the file, the "
            "column and the offending rows."
        ),
    )
    def lending_snapshots(
        context: dg.AssetExecutionContext, lending_feed: LendingFeedResource, lake: LakeResource
    ) -> dg.MaterializeResult:
        with PartitionWriter(context, lake.lake) as writer:
            for key in context.partition_keys:
                day = date.fromisoformat(key)
                try:
                    raw, source = lending_feed.snapshot(day, parts.symbols)
                    frame = feed.validate_snapshot(raw, day, source)
                except (LendingFeedError, LendingSourceError) as error:
                    writer.fail(key, [str(error)])
                    continue
                writer.write(
                    key,
                    frame,
                    {
                        "source": source,
                        "mean_fee_bps": float(frame["fee_bps"].mean() or 0.0),
                        "mean_utilization_pct": float(frame["utilization_pct"].mean() or 0.0),
                        "preview": dg.MetadataValue.md(markdown_table(frame.head(10))),
                    },
                )
        return writer.result("could not be read or validated")

    @dg.asset(
        partitions_def=parts.trading_days,
        deps=[
            dg.AssetDep(
                lending_snapshots, partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-lookback)
            )
        ],
        group_name=GROUP,
        kinds=KINDS,
        backfill_policy=dg.BackfillPolicy.single_run(),
        code_version=code_version("lending_factors", factors),
        metadata=table_metadata(
            FACTOR_SCHEMA, {**FACTOR_DESCRIPTIONS, "date": "As-of session.", "symbol": "Ticker symbol."}
        ),
        description=(
            "Core lending factors per name and session, from that session's snapshot and the "
            f"{lookback} sessions before it only: "
            + " ".join(f"{name.upper()}: {text}" for name, text in FACTOR_DESCRIPTIONS.items())
        ),
    )
    def lending_factors(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        keys = context.partition_keys
        history = read_partitions(
            lake.lake, SNAPSHOTS, parts.trading_days, sessions_back(keys[0], keys[-1], lookback)
        )
        available = set(history["date"]) if history.height else set()
        with PartitionWriter(context, lake.lake) as writer:
            for key in keys:
                day = date.fromisoformat(key)
                if day not in available:
                    writer.fail(
                        key, [f"no lending_snapshots partition {key} in the lake: materialize it first"]
                    )
                    continue
                frame = core_factors(history, day)
                export = lake.lake.write_csv_beside(writer.path(key), frame)
                writer.write(
                    key,
                    frame,
                    {
                        "names_with_all_factors": frame.drop_nulls().height,
                        "csv_export": dg.MetadataValue.path(lake.lake.uri(export)),
                        "preview": dg.MetadataValue.md(markdown_table(frame.head(10))),
                        "dagster/column_lineage": FACTOR_LINEAGE,
                    },
                )
        return writer.result("have no snapshot")

    @dg.asset(
        partitions_def=parts.trading_days,
        group_name=GROUP,
        kinds=KINDS,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool="daily_prices",
        code_version=code_version("lending_prices"),  # its logic is the asset itself
        metadata=table_metadata(PRICE_SCHEMA, PRICE_COLUMNS),
        description=(
            "Raw daily closes of every name of the lending universe, one file per session: the "
            "prices the factor IC report measures forward returns on."
        ),
    )
    def lending_prices(
        context: dg.AssetExecutionContext, daily_prices: DailyPricesResource, lake: LakeResource
    ) -> dg.MaterializeResult:
        keys = context.partition_keys
        closes = daily_prices.closes(parts.symbols, date.fromisoformat(keys[0]), date.fromisoformat(keys[-1]))
        by_day = closes.cast(PRICE_SCHEMA).partition_by("date", as_dict=True)
        with PartitionWriter(context, lake.lake) as writer:
            for key in keys:
                frame = by_day.get((date.fromisoformat(key),))
                if frame is None:
                    writer.fail(key, [f"the daily price source returned no closes for {key}"])
                    continue
                writer.write(key, frame, {"preview": dg.MetadataValue.md(markdown_table(frame.head(10)))})
        return writer.result("have no prices")

    @dg.asset(
        deps=[lending_factors, lending_prices],
        group_name=GROUP,
        kinds={"polars", "parquet", "matplotlib"},
        code_version=code_version("factor_ic_report", analytics, reports),
        metadata=table_metadata(IC_SCHEMA, IC_COLUMNS),
        description=(
            f"Information coefficient of every lending factor over the last {IC_WINDOW} materialised "
            "sessions, alphalens conventions (a factor dated t against the return from the close of "
            "t+1 to the close of t+1+k, k = 1, 5, 10), measured on the lake's own prices: mean IC, IC "
            "std, IR, t-stat, p-value, hit rate; rolling IC plot, quantile mean returns and the factor "
            "pairs correlated above 0.7."
        ),
    )
    def factor_ic_report(lake: LakeResource) -> dg.MaterializeResult:
        factor_files = lake.lake.list_files("lending_factors")[-IC_WINDOW:]
        if not factor_files:
            raise dg.Failure("factor_ic_report: no lending_factors partitions yet; materialize them first")
        first = factor_files[0].path.rsplit("date=", 1)[1].removesuffix(".parquet")
        price_files = [
            f for f in lake.lake.list_files("lending_prices") if f.path.rsplit("date=", 1)[1] >= first
        ]
        factor_frame = lake.lake.read_many(f.path for f in factor_files)
        prices = lake.lake.read_many(f.path for f in price_files)
        ic = analytics.information_coefficient(factor_frame, prices)
        summary = analytics.ic_summary(ic)
        quantiles = analytics.quantile_returns(factor_frame, prices, "bcs", 5)
        _, pairs = analytics.correlated_pairs(factor_frame, 0.7)
        png = reports.line_chart_png(
            analytics.rolling_ic(ic.filter(pl.col("period") == 5)), "date", "rolling_ic", "factor",
            "Rolling 20-session mean IC, 5-session forward returns",
        )  # fmt: skip
        lake.lake.write_bytes("factor_ic_report/rolling_ic.png", png)
        export = lake.lake.write_csv_beside("factor_ic_report/factor_ic_report.parquet", summary)
        return dg.MaterializeResult(
            value=summary,
            metadata={
                "dagster/row_count": summary.height,
                "sessions": factor_frame["date"].n_unique(),
                "csv_export": dg.MetadataValue.path(lake.lake.uri(export)),
                "preview": dg.MetadataValue.md(markdown_table(summary)),
                "quantile_returns_bcs_5d": dg.MetadataValue.md(markdown_table(quantiles)),
                "correlated_pairs": dg.MetadataValue.md(markdown_table(pairs)),
                "rolling_ic": dg.MetadataValue.md(
                    f"![rolling IC](data:image/png;base64,{base64.b64encode(png).decode()})"
                ),
            },
        )

    @dg.asset(
        partitions_def=parts.trading_days,
        deps=[
            lending_factors,
            dg.AssetDep(lending_prices, partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-1)),
        ],
        group_name=GROUP,
        kinds=KINDS,
        backfill_policy=dg.BackfillPolicy.single_run(),
        code_version=code_version("squeeze_scores", squeeze),
        metadata=table_metadata(SQUEEZE_SCHEMA, SQUEEZE_COLUMNS),
        description=(
            "SSR v4 short-squeeze score per name and session: the weighted mean of the available "
            "standardised components (SIM 0.25, BCS 0.30, UPI 0.25, price uptick 0.10, social buzz "
            "0.10; a missing component drops out and the rest are reweighted), each component's "
            "contribution, and the top candidates with the reason in words. The uptick is the "
            "session's close-to-close return from lending_prices; social buzz is absent until the "
            "mention-count file drops are wired."
        ),
    )
    def squeeze_scores(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        with PartitionWriter(context, lake.lake) as writer:
            for key in context.partition_keys:
                day_factors = load(lake, FACTORS, key)
                if day_factors is None:
                    writer.fail(
                        key, [f"no lending_factors partition {key} in the lake: materialize it first"]
                    )
                    continue
                closes = read_partitions(lake.lake, PRICES, parts.trading_days, sessions_back(key, key, 1))
                uptick = "close-to-close return of the session"
                if closes.is_empty() or closes["date"].n_unique() < 2:
                    uptick = "missing: lending_prices lacks this session or the one before"
                    closes = pl.DataFrame(schema=PRICE_SCHEMA)
                returns = (
                    closes.sort("date")
                    .group_by("symbol")
                    .agg(
                        **{
                            "return": pl.when(pl.len() == 2).then(
                                pl.col("close").last() / pl.col("close").first() - 1
                            )
                        }
                    )
                )
                scores = squeeze.squeeze_scores(day_factors, returns)
                top = scores.head(TOP_CANDIDATES).select("symbol", "ssr_v4", "components", "reason")
                export = lake.lake.write_csv_beside(writer.path(key), top)
                writer.write(
                    key,
                    scores.with_columns(date=pl.lit(date.fromisoformat(key))).select(SQUEEZE_SCHEMA.names()),
                    {
                        "uptick": uptick,
                        "csv_export": dg.MetadataValue.path(lake.lake.uri(export)),
                        "top_candidates": dg.MetadataValue.md(markdown_table(top)),
                        "preview": dg.MetadataValue.md(markdown_table(top)),
                        "dagster/column_lineage": SQUEEZE_LINEAGE,
                    },
                )
        return writer.result("have no factors or prices")

    @dg.asset(
        partitions_def=parts.trading_days,
        deps=[
            dg.AssetDep(lending_snapshots, partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-1)),
            dg.AssetDep(lending_factors, partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-1)),
            squeeze_scores,
        ],
        group_name=GROUP,
        kinds={"markdown", "html"},
        backfill_policy=dg.BackfillPolicy.single_run(),
        code_version=code_version("daily_digest", digest),
        description=(
            "The day's lending digest, markdown and HTML (daily_digest/date=D.md and .html): headlines "
            "written from the data, average fee and utilisation with the day-over-day change, the top 10 "
            "squeeze candidates and why, and the name that moved most for every factor."
        ),
    )
    def daily_digest(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        with PartitionWriter(context, lake.lake) as writer:
            for key in context.partition_keys:
                window = sessions_back(key, key, 1)
                previous = window[0] if len(window) == 2 else None
                today = [load(lake, a, key) for a in (SNAPSHOTS, FACTORS, SQUEEZE)]
                if any(frame is None for frame in today):
                    writer.fail(
                        key, [f"needs lending_snapshots, lending_factors and squeeze_scores of {key}"]
                    )
                    continue
                before = [load(lake, a, previous) for a in (SNAPSHOTS, FACTORS)] if previous else [None, None]
                result = digest.daily_digest(
                    date.fromisoformat(key),
                    digest.Day(today[0], today[1]),
                    digest.Day(before[0], before[1]) if all(f is not None for f in before) else None,
                    today[2],
                )
                folder = writer.path(key).removesuffix(".parquet")
                lake.lake.write_bytes(f"{folder}.md", result.markdown.encode())
                lake.lake.write_bytes(f"{folder}.html", result.html.encode())
                writer.record(
                    key,
                    {
                        "dagster/row_count": len(result.headlines),
                        "headlines": dg.MetadataValue.md("\n".join(f"- {h}" for h in result.headlines)),
                        "preview": dg.MetadataValue.md(result.markdown),
                        "html": dg.MetadataValue.path(lake.lake.uri(f"{folder}.html")),
                    },
                )
        return writer.result("have no inputs")

    return [
        lending_snapshots,
        lending_factors,
        lending_prices,
        factor_ic_report,
        squeeze_scores,
        daily_digest,
    ]

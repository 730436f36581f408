"""Lending assets: the day's validated feed and the core lending factors.

``build_assets(settings, parts)`` makes them from the lending domain's settings (universe of
~1,000 names, history window). Formulas: ``finance_dag.lending.factors`` and docs/lending.md.
"""

from datetime import date, timedelta

import dagster as dg
import polars as pl

from finance_dag import analytics
from finance_dag.core import reports
from finance_dag.core.reports import markdown_table
from finance_dag.core.settings import Settings
from finance_dag.defs.lending.automation import SCHEDULE
from finance_dag.defs.lending.resources import (
    DailyPricesResource,
    InboxResource,
    LendingFeedResource,
    MacroSeriesResource,
    SkewResource,
)
from finance_dag.lending import digest, extended, factors, feed, squeeze
from finance_dag.lending.extended import EXTENDED_COLUMNS, EXTENDED_DESCRIPTIONS
from finance_dag.lending.factors import (
    FACTOR_COLUMNS,
    FACTOR_DESCRIPTIONS,
    core_factors_range,
    lookback_sessions,
)
from finance_dag.lending.feed import COLUMN_DESCRIPTIONS, FEED_SCHEMA, LendingFeedError, LendingSourceError
from finance_dag.market_data.bars import VendorError
from finance_dag.platform.contract import code_version, column_lineage, table_metadata
from finance_dag.platform.freshness import after_schedule
from finance_dag.platform.partitions import DomainPartitions
from finance_dag.platform.ranged import PartitionWriter
from finance_dag.platform.storage import LakeResource, lake_path, read_partitions

GROUP = "lending"
SNAPSHOTS = dg.AssetKey("lending_snapshots")
PRICES = dg.AssetKey("lending_prices")
FACTORS = dg.AssetKey("lending_factors")
EXTENDED = dg.AssetKey("extended_lending_factors")
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
        "buzz_z": [dg.TableColumnDep(EXTENDED, "crowd_buzz")],
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
EXTENDED_SCHEMA = pl.Schema(
    {
        "date": pl.Date,
        "symbol": pl.String,
        **dict.fromkeys(EXTENDED_COLUMNS, pl.Float64),
        "null_reasons": pl.String,
    }
)
EXTENDED_LINEAGE = column_lineage(
    SNAPSHOTS,
    {
        "date": ["date"],
        "symbol": ["symbol"],
        "borrow_cds_basis": ["fee_bps"],
        "options_skew_div": ["fee_bps", "utilization_pct"],
        "etf_flow_pressure": ["on_loan_qty"],
        "macro_stress": ["utilization_pct"],
        "esg_constraint": ["lender_count"],
    },
)
MARKET_ERRORS = (VendorError, LendingSourceError, LendingFeedError, ValueError, OSError)
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
        """The sessions from ``back`` sessions before ``first`` through ``last`` (call once per
        run: listing the partitions costs ~10 ms)."""
        sessions = parts.trading_days.get_partition_keys()
        start, end = sessions.index(first), sessions.index(last)
        return sessions[max(0, start - back) : end + 1]

    def preceding(window: list[str], key: str, back: int) -> list[str]:
        """``key`` and the ``back`` sessions before it, from a window that holds them."""
        end = window.index(key)
        return window[max(0, end - back) : end + 1]

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
        freshness_policy=after_schedule(settings, settings.lending, SCHEDULE),
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
        freshness_policy=after_schedule(settings, settings.lending, SCHEDULE),
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
        days = [d for d in map(date.fromisoformat, keys) if d in available]
        by_day = by_session(core_factors_range(history, days))
        with PartitionWriter(context, lake.lake) as writer:
            for key in keys:
                frame = by_day.get(date.fromisoformat(key))
                if frame is None:
                    writer.fail(key, not_in_lake(SNAPSHOTS, key))
                    continue
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
        deps=[
            dg.AssetDep(
                lending_snapshots,
                partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-extended.LOOKBACK),
            )
        ],
        group_name=GROUP,
        kinds=KINDS,
        backfill_policy=dg.BackfillPolicy.single_run(),
        code_version=code_version("extended_lending_factors", extended),
        freshness_policy=after_schedule(settings, settings.lending, SCHEDULE),
        metadata=table_metadata(
            EXTENDED_SCHEMA,
            {
                **EXTENDED_DESCRIPTIONS,
                "date": "As-of session.",
                "symbol": "Ticker symbol.",
                "null_reasons": "For each null factor of the row, 'factor: why' ('; '-joined); null when none.",
            },
        ),
        description=(
            "Extended lending factors per name and session: the lending feed against credit (FRED HY "
            "OAS), options (CBOE SKEW), ETF flows (shares-outstanding drops), systemic stress (STLFSI4), "
            "ESG scores and social mentions. A missing input leaves its factor null with the reason in "
            "null_reasons, never 0. " + " ".join(EXTENDED_DESCRIPTIONS.values())
        ),
    )
    def extended_lending_factors(
        context: dg.AssetExecutionContext,
        lake: LakeResource,
        macro_series: MacroSeriesResource,
        cboe_skew: SkewResource,
        etf_shares: InboxResource,
        esg_scores: InboxResource,
        social_mentions: InboxResource,
    ) -> dg.MaterializeResult:
        keys = context.partition_keys
        window = sessions_back(keys[0], keys[-1], max(extended.LOOKBACK, extended.BUZZ_SESSIONS))
        history = read_partitions(lake.lake, SNAPSHOTS, parts.trading_days, window)
        available = set(history["date"]) if history.height else set()
        market = market_inputs([date.fromisoformat(k) for k in window], macro_series, cboe_skew, settings)
        days = [d for d in map(date.fromisoformat, keys) if d in available]
        buzz_days = {d: preceding(window, d.isoformat(), extended.BUZZ_SESSIONS) for d in days}
        needed = sorted({session for sessions in buzz_days.values() for session in sessions})
        mentions_by_day = {d: social_mentions.read(date.fromisoformat(d), parts.symbols) for d in needed}
        served = [f for f in mentions_by_day.values() if not isinstance(f, str)]
        all_mentions = pl.concat(served) if served else pl.DataFrame(schema=extended.SOCIAL_MENTIONS.schema)
        inputs = extended.ExtendedRangeInputs(
            history=history,
            market=market,
            etf_shares={d: etf_shares.read(d, parts.symbols) for d in days},
            esg={d: esg_scores.read(d, parts.symbols, extended.ESG_MAX_AGE_DAYS) for d in days},
            mentions={d: mentions_input(buzz_days[d], mentions_by_day, all_mentions) for d in days},
        )
        by_day = by_session(extended.extended_factors_range(inputs, days)) if days else {}
        with PartitionWriter(context, lake.lake) as writer:
            for key in keys:
                day = date.fromisoformat(key)
                frame = by_day.get(day)
                if frame is None:
                    writer.fail(key, not_in_lake(SNAPSHOTS, key))
                    continue
                mention_rows = sum(
                    f.height for f in map(mentions_by_day.get, buzz_days[day]) if not isinstance(f, str)
                )
                export = lake.lake.write_csv_beside(writer.path(key), frame)
                writer.write(
                    key,
                    frame,
                    {
                        "csv_export": dg.MetadataValue.path(lake.lake.uri(export)),
                        "inputs": dg.MetadataValue.md(
                            markdown_table(input_status(inputs, day, mention_rows))
                        ),
                        "names_with_value": dg.MetadataValue.md(
                            markdown_table(
                                frame.select(pl.col(c).is_not_null().sum() for c in EXTENDED_COLUMNS)
                            )
                        ),
                        "preview": dg.MetadataValue.md(markdown_table(frame.head(10))),
                        "dagster/column_lineage": EXTENDED_LINEAGE,
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
        freshness_policy=after_schedule(settings, settings.lending, SCHEDULE),
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
        by_day = by_session(closes.cast(PRICE_SCHEMA))
        with PartitionWriter(context, lake.lake) as writer:
            for key in keys:
                frame = by_day.get(date.fromisoformat(key))
                if frame is None:
                    writer.fail(key, [f"the daily price source returned no closes for {key}"])
                    continue
                writer.write(key, frame, {"preview": dg.MetadataValue.md(markdown_table(frame.head(10)))})
        return writer.result("have no prices")

    @dg.asset(
        deps=[lending_factors, extended_lending_factors, lending_prices],
        group_name=GROUP,
        backfill_policy=dg.BackfillPolicy.single_run(),  # lets a CLI range select the whole group
        kinds={"polars", "parquet", "matplotlib"},
        code_version=code_version("factor_ic_report", analytics, reports),
        freshness_policy=after_schedule(settings, settings.lending, SCHEDULE),
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
        extended_files = [
            f
            for f in lake.lake.list_files("extended_lending_factors")
            if f.path.rsplit("date=", 1)[1] >= first
        ]
        if extended_files:
            extended_frame = lake.lake.read_many(f.path for f in extended_files).drop("null_reasons")
            factor_frame = factor_frame.join(extended_frame, on=["date", "symbol"], how="left")
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
                "rolling_ic": dg.MetadataValue.md(reports.png_markdown("rolling IC", png)),
            },
        )

    @dg.asset(
        partitions_def=parts.trading_days,
        deps=[
            lending_factors,
            extended_lending_factors,
            dg.AssetDep(lending_prices, partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-1)),
        ],
        group_name=GROUP,
        kinds=KINDS,
        backfill_policy=dg.BackfillPolicy.single_run(),
        code_version=code_version("squeeze_scores", squeeze),
        freshness_policy=after_schedule(settings, settings.lending, SCHEDULE),
        metadata=table_metadata(SQUEEZE_SCHEMA, SQUEEZE_COLUMNS),
        description=(
            "SSR v4 short-squeeze score per name and session: the weighted mean of the available "
            "standardised components (SIM 0.25, BCS 0.30, UPI 0.25, price uptick 0.10, social buzz "
            "0.10; a missing component drops out and the rest are reweighted), each component's "
            "contribution, and the top candidates with the reason in words. The uptick is the "
            "session's close-to-close return from lending_prices; social buzz is the crowd_buzz "
            "column of extended_lending_factors."
        ),
    )
    def squeeze_scores(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        keys = context.partition_keys
        core = read_partitions(lake.lake, FACTORS, parts.trading_days, keys)
        more = read_partitions(lake.lake, EXTENDED, parts.trading_days, keys)
        window = sessions_back(keys[0], keys[-1], 1)
        returns = session_returns(read_partitions(lake.lake, PRICES, parts.trading_days, window), window)
        scores = squeeze.squeeze_scores(core, returns, more if more.height else None) if core.height else core
        by_day = by_session(scores)
        with_returns = set(returns["date"])
        with_buzz = set(more["date"]) if more.height else set()
        with PartitionWriter(context, lake.lake) as writer:
            for key in keys:
                day = date.fromisoformat(key)
                day_scores = by_day.get(day)
                if day_scores is None:
                    writer.fail(key, not_in_lake(FACTORS, key))
                    continue
                top = day_scores.head(TOP_CANDIDATES).select("symbol", "ssr_v4", "components", "reason")
                export = lake.lake.write_csv_beside(writer.path(key), top)
                writer.write(
                    key,
                    day_scores,
                    {
                        "uptick": "close-to-close return of the session"
                        if day in with_returns
                        else "missing: lending_prices lacks this session or the one before",
                        "buzz": "crowd_buzz of extended_lending_factors"
                        if day in with_buzz
                        else f"missing: no extended_lending_factors partition {key}",
                        "csv_export": dg.MetadataValue.path(lake.lake.uri(export)),
                        "top_candidates": dg.MetadataValue.md(markdown_table(top)),
                        "preview": dg.MetadataValue.md(markdown_table(day_scores.head(10))),
                        "dagster/column_lineage": SQUEEZE_LINEAGE,
                    },
                )
        return writer.result("have no factors or prices")

    def day_inputs(lake: LakeResource, key: str) -> tuple[digest.Day, pl.DataFrame] | None:
        """A session's snapshot, core factors joined with the extended ones (when stored), and
        SSR v4 scores; None when one of the three first is not in the lake."""
        snapshot, core, scores = (load(lake, a, key) for a in (SNAPSHOTS, FACTORS, SQUEEZE))
        if snapshot is None or core is None or scores is None:
            return None
        more = load(lake, EXTENDED, key)
        if more is not None:
            core = core.join(more.drop("date", "null_reasons"), on="symbol", how="left")
        return digest.Day(snapshot, core), scores

    @dg.asset(
        partitions_def=parts.trading_days,
        deps=[
            dg.AssetDep(lending_snapshots, partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-1)),
            dg.AssetDep(lending_factors, partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-1)),
            dg.AssetDep(
                extended_lending_factors, partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-1)
            ),
            squeeze_scores,
        ],
        group_name=GROUP,
        kinds={"markdown", "html", "matplotlib"},
        backfill_policy=dg.BackfillPolicy.single_run(),
        code_version=code_version("daily_digest", digest),
        freshness_policy=after_schedule(settings, settings.lending, SCHEDULE),
        description=(
            "The day's lending digest, markdown and HTML (daily_digest/date=D.md and .html): headlines "
            "written from the data, average fee and utilisation with the day-over-day change, the top 10 "
            "squeeze candidates and why, the name that moved most for every factor (core and extended), "
            "and a plot of each top candidate's SSR v4 contributions (embedded in both, and shown here)."
        ),
    )
    def daily_digest(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        keys = context.partition_keys
        window = sessions_back(keys[0], keys[-1], 1)
        loaded = {}  # each session's inputs are read once: as the day, then as the day before
        with PartitionWriter(context, lake.lake) as writer:
            for key in keys:
                day_and_before = preceding(window, key, 1)
                for session in day_and_before:
                    if session not in loaded:
                        loaded[session] = day_inputs(lake, session)
                today = loaded[key]
                if today is None:
                    writer.fail(
                        key, [f"needs lending_snapshots, lending_factors and squeeze_scores of {key}"]
                    )
                    continue
                before = loaded.pop(day_and_before[0]) if len(day_and_before) == 2 else None
                result = digest.daily_digest(
                    date.fromisoformat(key),
                    today[0],
                    before[0] if before else None,
                    today[1],
                )
                folder = writer.path(key).removesuffix(".parquet")
                lake.lake.write_bytes(f"{folder}.md", result.markdown.encode())
                lake.lake.write_bytes(f"{folder}.html", result.html.encode())
                writer.record(
                    key,
                    {
                        "dagster/row_count": len(result.headlines),
                        "headlines": dg.MetadataValue.md("\n".join(f"- {h}" for h in result.headlines)),
                        "preview": dg.MetadataValue.md(result.markdown),  # with the plot
                        "html": dg.MetadataValue.path(lake.lake.uri(f"{folder}.html")),
                    },
                )
        return writer.result("have no inputs")

    return [
        lending_snapshots,
        lending_factors,
        extended_lending_factors,
        lending_prices,
        factor_ic_report,
        squeeze_scores,
        daily_digest,
    ]


def by_session(frame: pl.DataFrame) -> dict[date, pl.DataFrame]:
    """``frame``'s rows per ``date``: what a ranged asset writes partition by partition."""
    if frame.is_empty():
        return {}
    return {day: part for (day,), part in frame.partition_by("date", as_dict=True).items()}


def not_in_lake(upstream: dg.AssetKey, key: str) -> list[str]:
    """Why partition ``key`` was not produced: ``upstream`` has no such partition in the lake."""
    return [f"no {upstream.to_user_string()} partition {key} in the lake: materialize it first"]


def market_inputs(
    sessions: list[date], macro: MacroSeriesResource, skew: SkewResource, settings: Settings
) -> extended.Market:
    """The market series as published by each of ``sessions`` (one request per source for the
    whole range); a source that fails leaves its series missing with the error as the reason."""
    series_ids = {**dict(settings.lending_macro_series), "skew": extended.MARKET_SERIES["skew"]}
    start = sessions[0] - timedelta(
        days=extended.STALE_AFTER_DAYS + max(extended.PUBLICATION_LAG_DAYS.values())
    )
    frames, missing = [], {}
    sources = ((macro, tuple(dict(settings.lending_macro_series))), (skew, ("skew",)))
    for resource, roles in sources:
        try:
            frames.append(resource.observations(start, sessions[-1]))
        except MARKET_ERRORS as error:
            for role in roles:
                missing[role] = f"{resource.source} source failed: {error}"
    observations = pl.concat(frames) if frames else pl.DataFrame(schema=extended.OBSERVATION_SCHEMA)
    return extended.Market(extended.market_as_of(observations, sessions, series_ids), missing, series_ids)


def mentions_input(
    days: list[str], by_day: dict[str, pl.DataFrame | str], rows: pl.DataFrame
) -> extended.Mentions:
    """The social mentions of the last of ``days`` (the day and the sessions before it): ``rows``,
    the files of every session of the run (one frame shared by all the days of the run, so
    their buzz is computed in one pass), and why any file of ``days`` is missing or unusable.
    The day reads the files of the last ``BUZZ_SESSIONS`` + 1 dates of ``rows`` up to it: with
    none of ``days`` missing (and a validated file never empty), exactly those of ``days``."""
    return extended.Mentions(rows, tuple(f for f in (by_day[d] for d in days) if isinstance(f, str)))


def input_status(inputs: extended.ExtendedRangeInputs, day: date, mention_rows: int) -> pl.DataFrame:
    """One row per extended input: whether it served ``day``, and what or why not
    (``mention_rows``: the rows of the day's social-mention files)."""
    market = inputs.market
    today = market.frame.filter(pl.col("date") == day)
    rows = []
    for role, series_id in market.series_ids.items():
        value = today[role][0] if today.height else None
        status = market.missing.get(role) or ("no value published" if value is None else f"{value:g}")
        rows.append((f"{role} ({series_id})", value is not None and role not in market.missing, status))
    for name, frame in (("etf_shares", inputs.etf_shares.get(day)), ("esg_scores", inputs.esg.get(day))):
        frame = f"no {name} input for {day}" if frame is None else frame
        rows.append(
            (name, not isinstance(frame, str), frame if isinstance(frame, str) else f"{frame.height} rows")
        )
    mentions = inputs.mentions.get(day, f"no social_mentions input for {day}")
    if isinstance(mentions, str):
        rows.append(("social_mentions", False, mentions))
    else:
        gaps = "; ".join(mentions.problems)
        rows.append(("social_mentions", not gaps, gaps or f"{mention_rows} rows"))
    return pl.DataFrame(rows, schema=["input", "served", "detail"], orient="row")


def session_returns(closes: pl.DataFrame, window: list[str]) -> pl.DataFrame:
    """``date``, ``symbol``, ``return``: each name's close-to-close return of every session of
    ``window`` whose previous session (in ``window``) has its close too."""
    if closes.is_empty():
        return pl.DataFrame(schema={"date": pl.Date, "symbol": pl.String, "return": pl.Float64})
    index = pl.DataFrame({"date": [date.fromisoformat(k) for k in window], "s": range(len(window))})
    ordered = closes.join(index, on="date").sort("symbol", "s")
    previous = pl.col("close").shift(1).over("symbol")
    consecutive = (pl.col("s") - pl.col("s").shift(1).over("symbol")) == 1
    return ordered.select(
        "date", "symbol", pl.when(consecutive).then(pl.col("close") / previous - 1).alias("return")
    ).drop_nulls("return")

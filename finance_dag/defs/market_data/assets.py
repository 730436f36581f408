"""Market-data assets: gap-filled minute bars, daily bars, coverage and the research layout.

``build_assets(settings, parts)`` makes them from settings: partitions, universe, pool and
coverage threshold all come from the ``Settings`` value the code location was built from.
Each asset loads, calls a pure function of ``finance_dag.market_data``, writes, and attaches
metadata; ranged runs write their partitions through ``PartitionWriter``.
"""

import base64
from collections.abc import Iterator, Sequence
from datetime import date, timedelta

import dagster as dg
import polars as pl
from pydantic import Field

from finance_dag.core import reports
from finance_dag.core.lake import StorageError
from finance_dag.core.reports import coverage_heatmap_png, markdown_table
from finance_dag.core.settings import Settings
from finance_dag.defs.market_data.automation import AFTER_CLOSE
from finance_dag.market_data import bars as bars_logic
from finance_dag.market_data import consolidate
from finance_dag.market_data import coverage as coverage_logic
from finance_dag.market_data.bars import (
    BAR_ENCODINGS,
    COLUMN_DESCRIPTIONS,
    DAILY_BAR_SCHEMA,
    MINUTE_BAR_SCHEMA,
    compact_for_storage,
    compact_symbol_days,
    daily_from_minutes,
    gap_fill,
    session_summary,
)
from finance_dag.market_data.coverage import (
    COLUMN_DESCRIPTIONS as COVERAGE_COLUMNS,
)
from finance_dag.market_data.coverage import (
    COVERAGE_SCHEMA,
    SUMMARY_SCHEMA,
    coverage_summary,
    daily_coverage,
    tier_counts,
)
from finance_dag.platform.contract import code_version, column_lineage, table_metadata
from finance_dag.platform.freshness import after_schedule
from finance_dag.platform.partitions import DomainPartitions
from finance_dag.platform.ranged import PartitionWriter
from finance_dag.platform.registry import BarVendorsResource, bar_chain
from finance_dag.platform.storage import PARTITION_FILES, STATIC_DIMENSION, LakeResource

GROUP = "market_data"
KINDS = {"polars", "parquet"}
CHUNK_SESSIONS = 20  # sessions gap-filled together in a ranged run: bounds memory, keeps batching
PREVIEW_LIMIT = 100  # ranged runs over more partitions skip per-partition previews
MINUTE_BARS = dg.AssetKey("minute_bars")

# Declarative automation for everything derived from minute bars: update once new upstream data
# lands (latest session only for per-session assets). Unlike `eager()`, a symbol-day that failed
# does not hold back the rest, and a new, still empty session is not computed before its bars.
ON_NEW_MINUTE_BARS = (
    dg.AutomationCondition.in_latest_time_window()
    & dg.AutomationCondition.any_deps_updated().since_last_handled()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
)
# The after-close schedule fills the session by 21:00 New York on weekdays.
MINUTE_BARS_FRESHNESS = dg.FreshnessPolicy.cron(
    deadline_cron="0 21 * * 1-5", lower_bound_delta=timedelta(hours=1), timezone="America/New_York"
)
DAILY_LINEAGE = column_lineage(
    MINUTE_BARS,
    {
        "symbol": ["symbol"],
        "date": ["ts"],
        "open": ["open", "ts"],
        "high": ["high"],
        "low": ["low"],
        "close": ["close", "ts"],
        "volume": ["volume"],
        "vwap": ["vwap", "high", "low", "close", "volume"],
        "bars": ["ts", "regular"],
    },
)
COVERAGE_LINEAGE = column_lineage(
    MINUTE_BARS,
    {
        "date": ["ts"],
        "symbol": ["symbol"],
        "bars": ["ts", "regular"],
        "coverage": ["ts", "regular"],
        "bars_by_source": ["source", "ts", "regular"],
    },
)


def _chunks(days: Sequence[date], size: int) -> Iterator[list[date]]:
    for i in range(0, len(days), size):
        yield list(days[i : i + size])


class MinuteBarsConfig(dg.Config):
    """Which symbols a minute_bars run fetches: the whole universe unless named (the refill
    sensor names the symbol-days to retry)."""

    symbols: list[str] = Field(default=[], description="Symbols to fetch; empty: the whole universe.")


def _session_metadata(summary: pl.DataFrame, failed: dict[str, list[str]], preview: bool) -> dict:
    """Metadata of one session's partition: totals, failed symbols and a per-symbol table."""
    metadata: dict[str, object] = {
        "dagster/row_count": int(summary["bars"].sum()),
        "regular_bars": int(summary["regular_bars"].sum()),
        "symbols_written": summary.height,
        "invalid_rows": int(summary["invalid_rows"].sum()),
        "symbols_failed": dg.MetadataValue.json(failed),
    }
    if preview:
        metadata["preview"] = dg.MetadataValue.md(markdown_table(summary))
    return metadata


def build_assets(settings: Settings, parts: DomainPartitions) -> list[dg.AssetsDefinition]:
    """The market-data assets for ``settings`` (see the module docstring)."""
    symbols = parts.symbols
    common = dict(group_name=GROUP)

    @dg.asset(
        partitions_def=parts.trading_days,
        kinds=KINDS,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=bar_chain(settings)[0].pool,
        code_version=code_version("minute_bars", bars_logic),
        # a fixed historical window (the demo's FINANCE_DAG_END_DATE) has nothing to keep current
        freshness_policy=MINUTE_BARS_FRESHNESS if settings.market_data.end_date is None else None,
        metadata={
            **table_metadata(MINUTE_BAR_SCHEMA, COLUMN_DESCRIPTIONS),
            PARTITION_FILES: consolidate.day_glob("{partition}"),
        },
        description=(
            "Gap-filled 1-minute bars of every symbol per trading day (one file per symbol-day, "
            "minute_bars/symbol=S/date=D.parquet), UTC, raw prices. The primary vendor is asked "
            "first, each fallback only for symbol-days still missing minutes; `source` names the "
            "vendor of every bar, `regular` flags the regular session. Invalid vendor rows are "
            "dropped and counted; a symbol-day no vendor serves is named in `symbols_failed` and by "
            "the `every_symbol_served` check, and refilled by the low-coverage sensor."
        ),
        **common,
    )
    def minute_bars(
        context: dg.AssetExecutionContext,
        config: MinuteBarsConfig,
        bar_vendors: BarVendorsResource,
        lake: LakeResource,
    ) -> dg.MaterializeResult:
        wanted = config.symbols or list(symbols)
        unknown = sorted(set(wanted) - set(symbols))
        if unknown:
            raise dg.Failure(f"minute_bars config names symbols outside the universe: {', '.join(unknown)}")
        days = [date.fromisoformat(key) for key in context.partition_keys]
        sources = bar_vendors.sources()
        with_preview = len(days) <= PREVIEW_LIMIT
        with PartitionWriter(context, lake.lake) as writer:
            for number, chunk in enumerate(_chunks(days, CHUNK_SESSIONS)):
                if number:
                    writer.flush()  # the previous chunk's sessions are recorded before this one starts
                result = gap_fill(wanted, chunk, sources)
                stored = compact_symbol_days(result.bars)
                empty = compact_for_storage(result.bars.clear().drop("date"))  # a day with no bars
                for day in chunk:
                    failed = {s: result.failures[(s, day)] for s in wanted if (s, day) in result.failures}
                    for symbol in wanted:
                        if symbol in failed:
                            continue
                        lake.lake.write_parquet(
                            consolidate.day_path(symbol, day),
                            stored.get((symbol, day), empty),
                            encodings=BAR_ENCODINGS,
                        )
                    for symbol, reasons in failed.items():
                        context.log.error(
                            f"minute_bars {day}|{symbol}: no vendor served it: {'; '.join(reasons)}"
                        )
                    if len(failed) == len(wanted):
                        writer.fail(day.isoformat(), [f"{s}: {'; '.join(r)}" for s, r in failed.items()])
                        continue
                    summary = session_summary(result, day, [s for s in wanted if s not in failed])
                    writer.record(day.isoformat(), _session_metadata(summary, failed, with_preview))
        return writer.result("got no data from any vendor for any symbol")

    def day_bars(
        context: dg.AssetExecutionContext, lake: LakeResource, key: str
    ) -> tuple[pl.DataFrame, dict]:
        """A session's bars for every symbol; an unreadable day file counts as missing and is
        named (its coverage drops to 0, so the refill sensor re-materialises it)."""
        bars, unreadable = consolidate.read_day_bars(lake.lake, symbols, date.fromisoformat(key))
        for path, error in unreadable.items():
            context.log.warning(f"{key}: skipping {path}: {error}")
        return bars, unreadable

    per_session = dict(
        partitions_def=parts.trading_days,
        kinds=KINDS,
        backfill_policy=dg.BackfillPolicy.single_run(),
        automation_condition=ON_NEW_MINUTE_BARS,
        deps=[minute_bars],
        **common,
    )

    @dg.asset(
        **per_session,
        code_version=code_version("daily_bars", bars_logic, consolidate),
        freshness_policy=after_schedule(settings, settings.market_data, AFTER_CLOSE, timedelta(minutes=75)),
        metadata=table_metadata(DAILY_BAR_SCHEMA, COLUMN_DESCRIPTIONS),
        description="Daily OHLCV per symbol built from each session's regular-hours minute bars.",
    )
    def daily_bars(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        with PartitionWriter(context, lake.lake) as writer:
            for key in context.partition_keys:
                bars, unreadable = day_bars(context, lake, key)
                frame = daily_from_minutes(bars)
                writer.write(
                    key,
                    frame,
                    {
                        "unreadable_files": dg.MetadataValue.json(unreadable),
                        "symbols_missing": dg.MetadataValue.json(sorted(set(symbols) - set(frame["symbol"]))),
                        "preview": dg.MetadataValue.md(markdown_table(frame.head(25))),
                        "dagster/column_lineage": DAILY_LINEAGE,
                    },
                )
        return writer.result("could not be built")

    @dg.asset(
        **per_session,
        code_version=code_version("bar_coverage", coverage_logic, bars_logic, consolidate),
        freshness_policy=after_schedule(settings, settings.market_data, AFTER_CLOSE, timedelta(minutes=75)),
        metadata=table_metadata(COVERAGE_SCHEMA, COVERAGE_COLUMNS),
        description=(
            "Per session and symbol: distinct regular-session minutes with a bar, expected minutes "
            "(390, or 210 on early closes), coverage = bars / expected (never above 1) and bars per source."
        ),
    )
    def bar_coverage(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        with PartitionWriter(context, lake.lake) as writer:
            for key in context.partition_keys:
                bars, unreadable = day_bars(context, lake, key)
                frame = daily_coverage(bars, symbols, [date.fromisoformat(key)])
                writer.write(
                    key,
                    frame,
                    {
                        "unreadable_files": dg.MetadataValue.json(unreadable),
                        "mean_coverage": float(frame["coverage"].mean() or 0.0),
                        "preview": dg.MetadataValue.md(markdown_table(frame.drop("bars_by_source"))),
                        "dagster/column_lineage": COVERAGE_LINEAGE,
                    },
                )
        return writer.result("could not be built")

    @dg.asset(
        deps=[bar_coverage],
        kinds={"polars", "parquet", "matplotlib"},
        automation_condition=ON_NEW_MINUTE_BARS,
        code_version=code_version("coverage_report", coverage_logic, reports),
        freshness_policy=after_schedule(settings, settings.market_data, AFTER_CLOSE, timedelta(minutes=75)),
        metadata=table_metadata(SUMMARY_SCHEMA, COVERAGE_COLUMNS),
        description=(
            "Coverage per symbol over every materialised session, with tiers EXCELLENT >= 95 %, "
            "GOOD 85-95 %, FAIR 70-85 %, POOR 50-70 %, VERY POOR < 50 %, NO DATA; symbols with "
            ">= 85 % are ready for research."
        ),
        **common,
    )
    def coverage_report(lake: LakeResource) -> dg.MaterializeResult:
        files = lake.lake.list_files("bar_coverage")
        daily = lake.lake.read_many(f.path for f in files)
        if daily.is_empty():
            raise dg.Failure(
                "coverage_report: no bar_coverage partitions in the lake yet; materialize bar_coverage first"
            )
        summary = coverage_summary(daily)
        ready = summary.filter("ready")["symbol"].to_list()
        png = coverage_heatmap_png(daily)
        lake.lake.write_bytes("coverage_report/heatmap.png", png)
        image = base64.b64encode(png).decode()
        return dg.MaterializeResult(
            value=summary,
            metadata={
                "dagster/row_count": summary.height,
                "sessions": daily["date"].n_unique(),
                "tiers": dg.MetadataValue.json(tier_counts(summary)),
                "ready_for_research": dg.MetadataValue.json(ready),
                "report": dg.MetadataValue.md(markdown_table(summary)),
                "heatmap": dg.MetadataValue.md(f"![coverage heatmap](data:image/png;base64,{image})"),
                "heatmap_path": dg.MetadataValue.path(lake.lake.uri("coverage_report/heatmap.png")),
                "preview": dg.MetadataValue.md(markdown_table(summary.head(10))),
            },
        )

    @dg.asset(
        partitions_def=parts.symbol,
        deps=[dg.AssetDep(minute_bars, partition_mapping=dg.AllPartitionMapping())],
        kinds=KINDS,
        backfill_policy=dg.BackfillPolicy.single_run(),
        automation_condition=ON_NEW_MINUTE_BARS,
        code_version=code_version("consolidated_bars", consolidate, bars_logic),
        freshness_policy=after_schedule(settings, settings.market_data, AFTER_CLOSE, timedelta(minutes=75)),
        metadata={**table_metadata(MINUTE_BAR_SCHEMA, COLUMN_DESCRIPTIONS), STATIC_DIMENSION: "symbol"},
        description=(
            "The lake compacted for research: one parquet file per symbol and year "
            "(consolidated_bars/symbol=S/year=Y.parquet), rebuilt only for years whose day files changed."
        ),
        **common,
    )
    def consolidated_bars(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        with PartitionWriter(context, lake.lake) as writer:
            for symbol in context.partition_keys:
                try:
                    report = consolidate.consolidate_symbol(lake.lake, symbol)
                except StorageError as error:  # a bad day file fails its symbol only, naming the file
                    writer.fail(symbol, [str(error)])
                    continue
                writer.record(
                    symbol,
                    {
                        "dagster/row_count": sum(report.rows_by_year.values()),
                        "preview": dg.MetadataValue.md(
                            markdown_table(
                                pl.DataFrame(
                                    {
                                        "year": list(report.rows_by_year),
                                        "bars": list(report.rows_by_year.values()),
                                    }
                                )
                            )
                        ),
                        "rebuilt_years": dg.MetadataValue.json(report.rebuilt_years),
                        "unchanged_years": dg.MetadataValue.json(report.unchanged_years),
                        "rows_rewritten": report.rows,
                        "bytes_written": report.bytes,
                        "path": dg.MetadataValue.path(lake.lake.uri(f"{consolidate.ASSET}/symbol={symbol}")),
                    },
                )
        return writer.result("could not be consolidated")

    return [minute_bars, daily_bars, bar_coverage, coverage_report, consolidated_bars]

"""Market-data assets: gap-filled minute bars, daily bars, coverage and the research layout."""

import base64
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import date

import dagster as dg
import polars as pl

from finance_dag.core.lake import StorageError, partition_path
from finance_dag.core.reports import coverage_heatmap_png, markdown_table
from finance_dag.market_data import consolidate
from finance_dag.market_data.bars import (
    BAR_ENCODINGS,
    BAR_SCHEMA,
    compact_for_storage,
    daily_from_minutes,
    gap_fill,
    ny_date,
    validate_bars,
)
from finance_dag.market_data.coverage import coverage_summary, daily_coverage, tier_counts
from finance_dag.platform.bar_vendors import BarVendorsResource
from finance_dag.platform.partitions import (
    SETTINGS,
    SYMBOLS,
    date_symbol,
    date_symbol_key,
    split_key,
    symbols,
    trading_days,
)
from finance_dag.platform.storage import LakeResource
from finance_dag.platform.vendors import vendor_pool

GROUP = "market_data"
KINDS = {"polars", "parquet"}
CHUNK_SESSIONS = 20  # sessions gap-filled together in a ranged run: bounds memory, keeps batching
PREVIEW_LIMIT = 100  # ranged runs over more partitions skip per-partition previews

# Which validation problems each minute_bars check guards against.
BAR_CHECKS: dict[str, tuple[str, tuple[str, ...]]] = {
    "unique_timestamps": ("One bar per symbol and minute.", ("duplicate ts",)),
    "ohlc_consistent": (
        "Prices present and positive, high >= max(open, close), low <= min(open, close), volume >= 0.",
        (
            "missing value",
            "non-positive price",
            "high below open/close",
            "low above open/close",
            "negative volume",
        ),
    ),
    "in_session": (
        "Every bar lies in its session's extended hours (04:00 NY to close + 4 h).",
        ("outside session",),
    ),
}


def _chunks(days: Sequence[date], size: int) -> Iterator[list[date]]:
    for i in range(0, len(days), size):
        yield list(days[i : i + size])


@dg.asset(
    partitions_def=date_symbol,
    group_name=GROUP,
    kinds=KINDS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    check_specs=[
        dg.AssetCheckSpec(name, asset="minute_bars", description=desc)
        for name, (desc, _) in BAR_CHECKS.items()
    ],
    pool=vendor_pool(SETTINGS.bar_vendors[0]),
    description=(
        "Gap-filled 1-minute bars per trading day and symbol, UTC, raw prices. The primary vendor "
        "is asked first, each fallback only for symbol-days still missing minutes; `source` names "
        "the vendor of every bar, `regular` flags the regular session. Invalid vendor rows are "
        "dropped and reported in metadata."
    ),
)
def minute_bars(
    context: dg.AssetExecutionContext, bar_vendors: BarVendorsResource, lake: LakeResource
) -> dg.MaterializeResult:
    requested = [split_key(k) for k in context.partition_keys]
    days = sorted({d for d, _ in requested})
    wanted_symbols = list(dict.fromkeys(s for _, s in requested))
    wanted = set(requested)
    sources = bar_vendors.sources()
    with_preview = len(requested) <= PREVIEW_LIMIT
    written: dict[str, dict] = {}
    failed: dict[str, list[str]] = {}
    problems: Counter[str] = Counter()
    try:
        for chunk in _chunks(days, CHUNK_SESSIONS):
            result = gap_fill(wanted_symbols, chunk, sources)
            _, still_bad = validate_bars(result.bars.select(BAR_SCHEMA.names()))
            problems.update(dict(still_bad["problem"].value_counts().iter_rows()))
            parts = result.bars.partition_by("symbol", "date", as_dict=True)
            rejected = result.invalid.with_columns(date=ny_date()).partition_by(
                "symbol", "date", as_dict=True
            )
            for day in chunk:
                for symbol in wanted_symbols:
                    key = date_symbol_key(day, symbol)
                    if (day, symbol) not in wanted:
                        continue
                    if (symbol, day) in result.failures:
                        failed[key] = result.failures[(symbol, day)]
                        continue
                    part = parts.get((symbol, day), result.bars.clear()).drop("date")
                    path = partition_path("minute_bars", symbol=symbol, date=day.isoformat())
                    size = lake.lake.write_parquet(path, compact_for_storage(part), encodings=BAR_ENCODINGS)
                    bad = rejected.get((symbol, day), result.invalid.clear())
                    written[key] = _partition_metadata(part, bad, lake.lake.uri(path), size, with_preview)
    except BaseException:
        _record_written(context, written)  # what is in the lake stays materialised; the rest is missing
        raise
    if failed:
        _fail_partitions(context, written, failed, "got no data from any vendor")
    for key, metadata in written.items():
        context.add_asset_metadata(metadata, partition_key=key)
    return dg.MaterializeResult(
        check_results=[
            dg.AssetCheckResult(
                check_name=name,
                passed=not any(problems[p] for p in guarded),
                metadata={
                    "violations": sum(problems[p] for p in guarded),
                    "partitions": len(written),
                },
            )
            for name, (_, guarded) in BAR_CHECKS.items()
        ]
    )


def _record_written(context: dg.AssetExecutionContext, written: dict[str, dict]) -> None:
    """Report partitions already in the lake when the run as a whole will not succeed."""
    for key, metadata in written.items():
        context.log_event(
            dg.AssetMaterialization(asset_key=context.asset_key, partition=key, metadata=metadata)
        )


def _fail_partitions(
    context: dg.AssetExecutionContext, written: dict[str, dict], failed: dict[str, list[str]], why: str
) -> None:
    """Fail only ``failed`` partitions of a ranged run: the written ones stay materialised."""
    _record_written(context, written)
    lines = [f"{key}: {'; '.join(messages)}" for key, messages in sorted(failed.items())]
    total = len(written) + len(failed)
    asset = context.asset_key.to_user_string()
    raise dg.Failure(
        description=f"{len(failed)} of {total} {asset} partitions {why}:\n" + "\n".join(lines[:50]),
        metadata={
            "failed_partitions": dg.MetadataValue.json(sorted(failed)),
            "written_partitions": len(written),
        },
        allow_retries=False,
    )


def _partition_metadata(
    part: pl.DataFrame, rejected: pl.DataFrame, uri: str, size: int, preview: bool
) -> dict:
    regular = int(part["regular"].sum()) if part.height else 0
    metadata = {
        "dagster/row_count": part.height,
        "regular_bars": regular,
        "extended_bars": part.height - regular,
        "bars_by_source": dg.MetadataValue.json(
            dict(part["source"].value_counts().sort("source").iter_rows())
        ),
        "invalid_rows": rejected.height,
        "path": dg.MetadataValue.path(uri),
        "bytes": size,
    }
    if rejected.height:
        metadata["invalid_rows_sample"] = dg.MetadataValue.md(
            markdown_table(
                rejected.select("source", "ts", "open", "high", "low", "close", "volume", "problem").head(10)
            )
        )
    if preview and part.height:
        metadata["preview"] = dg.MetadataValue.md(
            markdown_table(part.filter("regular").head(5).drop("symbol"))
        )
    return metadata


# Declarative automation for everything derived from minute bars: update once new upstream data
# lands (latest session only for per-session assets). Unlike `eager()`, a symbol-day that failed
# does not hold back the rest, and a new, still empty session is not computed before its bars.
ON_NEW_MINUTE_BARS = (
    dg.AutomationCondition.in_latest_time_window()
    & dg.AutomationCondition.any_deps_updated().since_last_handled()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
)


def _day_bars(context: dg.AssetExecutionContext, lake: LakeResource, key: str) -> tuple[pl.DataFrame, dict]:
    """A session's bars for every symbol; an unreadable day file counts as missing and is named
    (its coverage drops to 0, so the refill sensor re-materialises it)."""
    bars, unreadable = consolidate.read_day_bars(lake.lake, SYMBOLS, date.fromisoformat(key))
    for path, error in unreadable.items():
        context.log.warning(f"{key}: skipping {path}: {error}")
    return bars, unreadable


# Per-session assets derived from every symbol's minute bars of that session, kept up to date.
PER_SESSION_FROM_MINUTE_BARS = dict(
    partitions_def=trading_days,
    group_name=GROUP,
    kinds=KINDS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    automation_condition=ON_NEW_MINUTE_BARS,
    deps=[minute_bars],
)


@dg.asset(
    **PER_SESSION_FROM_MINUTE_BARS,
    description="Daily OHLCV per symbol built from each session's regular-hours minute bars.",
)
def daily_bars(context: dg.AssetExecutionContext, lake: LakeResource) -> dict[str, pl.DataFrame]:
    out = {}
    for key in context.partition_keys:
        bars, unreadable = _day_bars(context, lake, key)
        frame = daily_from_minutes(bars)
        out[key] = frame
        context.add_asset_metadata(
            {
                "dagster/row_count": frame.height,
                "unreadable_files": dg.MetadataValue.json(unreadable),
                "symbols_missing": dg.MetadataValue.json(sorted(set(SYMBOLS) - set(frame["symbol"]))),
                "preview": dg.MetadataValue.md(markdown_table(frame.head(25))),
            },
            partition_key=key,
        )
    return out


@dg.asset(
    **PER_SESSION_FROM_MINUTE_BARS,
    check_specs=[
        dg.AssetCheckSpec(
            "coverage_above_threshold",
            asset="bar_coverage",
            description="Warns when a symbol-day's coverage is below FINANCE_DAG_COVERAGE_THRESHOLD.",
        )
    ],
    description=(
        "Per session and symbol: distinct regular-session minutes with a bar, expected minutes "
        "(390, or 210 on early closes), coverage = bars / expected (never above 1) and bars per source."
    ),
)
def bar_coverage(context: dg.AssetExecutionContext, lake: LakeResource) -> Iterator:
    out = {}
    for key in context.partition_keys:
        bars, unreadable = _day_bars(context, lake, key)
        frame = daily_coverage(bars, SYMBOLS, [date.fromisoformat(key)])
        out[key] = frame
        context.add_asset_metadata(
            {
                "dagster/row_count": frame.height,
                "unreadable_files": dg.MetadataValue.json(unreadable),
                "mean_coverage": float(frame["coverage"].mean() or 0.0),
                "table": dg.MetadataValue.md(markdown_table(frame.drop("bars_by_source"))),
            },
            partition_key=key,
        )
    yield dg.Output(out)
    threshold = SETTINGS.coverage_threshold
    low = pl.concat(out.values()).filter(pl.col("coverage") < threshold)
    yield dg.AssetCheckResult(
        check_name="coverage_above_threshold",
        passed=low.is_empty(),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "threshold": threshold,
            "below_threshold": low.height,
            "worst": dg.MetadataValue.md(
                markdown_table(low.sort("coverage").head(20).drop("bars_by_source"))
            ),
        },
    )


@dg.asset(
    deps=[bar_coverage],
    group_name=GROUP,
    kinds={"polars", "parquet", "matplotlib"},
    automation_condition=ON_NEW_MINUTE_BARS,
    description=(
        "Coverage per symbol over every materialised session, with tiers EXCELLENT >= 95 %, GOOD "
        "85-95 %, FAIR 70-85 %, POOR 50-70 %, VERY POOR < 50 %, NO DATA; symbols with >= 85 % are "
        "ready for research."
    ),
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
        },
    )


@dg.asset(
    partitions_def=symbols,
    deps=[dg.AssetDep("minute_bars", partition_mapping=dg.MultiToSingleDimensionPartitionMapping("symbol"))],
    group_name=GROUP,
    kinds=KINDS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    automation_condition=ON_NEW_MINUTE_BARS,
    description=(
        "The lake compacted for research: one parquet file per symbol and year "
        "(consolidated_bars/symbol=S/year=Y.parquet), rebuilt only for years whose day files changed."
    ),
)
def consolidated_bars(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    written: dict[str, dict] = {}
    failed: dict[str, list[str]] = {}
    for symbol in context.partition_keys:
        try:
            report = consolidate.consolidate_symbol(lake.lake, symbol)
        except StorageError as error:  # a bad day file fails its symbol only, naming the file
            failed[symbol] = [str(error)]
            continue
        written[symbol] = {
            "rebuilt_years": dg.MetadataValue.json(report.rebuilt_years),
            "unchanged_years": dg.MetadataValue.json(report.unchanged_years),
            "rows_rewritten": report.rows,
            "bytes_written": report.bytes,
            "path": dg.MetadataValue.path(lake.lake.uri(f"{consolidate.ASSET}/symbol={symbol}")),
        }
    if failed:
        _fail_partitions(context, written, failed, "could not be consolidated")
    for symbol, metadata in written.items():
        context.add_asset_metadata(metadata, partition_key=symbol)
    return dg.MaterializeResult()

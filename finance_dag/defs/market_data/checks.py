"""Data-quality checks of the market-data lake, runnable with their asset or on their own.

Each check re-reads what the lake holds (not what a run meant to write) for the partitions it
covers: the run's partitions when it runs with a materialisation (range or single partition
tags), or, executed on its own from the UI, the latest materialised session. Every result
names the partitions it covers and lists the failing ones, so a badge never speaks for
partitions it did not look at.
"""

from collections import Counter
from datetime import date

import dagster as dg
import polars as pl

from finance_dag.core.reports import markdown_table
from finance_dag.core.settings import Settings
from finance_dag.market_data.bars import BAR_SCHEMA, validate_bars
from finance_dag.market_data.consolidate import day_path, read_day_bars
from finance_dag.platform.checks import checked_keys, covered
from finance_dag.platform.partitions import DomainPartitions
from finance_dag.platform.storage import LakeResource, read_partitions

MINUTE_BARS = dg.AssetKey("minute_bars")
BAR_COVERAGE = dg.AssetKey("bar_coverage")
FAILING_SHOWN = 20

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
    "every_symbol_served": (
        "Every symbol of the universe has a file for each covered session (a symbol-day no vendor "
        "served has none until the refill sensor fills it).",
        ("no file",),
    ),
}


def build_checks(settings: Settings, parts: DomainPartitions) -> list[dg.AssetChecksDefinition]:
    threshold = settings.coverage_threshold

    @dg.multi_asset_check(
        specs=[
            dg.AssetCheckSpec(name, asset=MINUTE_BARS, description=desc)
            for name, (desc, _) in BAR_CHECKS.items()
        ],
        can_subset=True,
        description="Re-validates the stored minute bars of the covered partitions.",
    )
    def minute_bar_checks(context: dg.AssetCheckExecutionContext, lake: LakeResource):
        keys = checked_keys(context, MINUTE_BARS, parts.trading_days)
        problems: Counter[str] = Counter()
        failing: list[pl.DataFrame] = []
        unreadable: dict[str, str] = {}
        for day in map(date.fromisoformat, keys):
            bars, bad_files = read_day_bars(lake.lake, parts.symbols, day)
            unreadable |= bad_files
            _, invalid = validate_bars(bars.select(BAR_SCHEMA.names()))
            absent = [s for s in parts.symbols if not lake.lake.exists(day_path(s, day))]
            invalid = pl.concat(
                [invalid.select("symbol", "problem"), pl.DataFrame({"symbol": absent, "problem": "no file"})],
                how="vertical_relaxed",
            )
            problems.update(dict(invalid["problem"].value_counts().iter_rows()))
            if invalid.height:
                failing.append(invalid.group_by("symbol", "problem").len().with_columns(date=pl.lit(day)))
        failures = pl.concat(failing) if failing else pl.DataFrame()
        for spec in context.selected_asset_check_keys:
            _, guarded = BAR_CHECKS[spec.name]
            mine = failures.filter(pl.col("problem").is_in(guarded)) if failures.height else failures
            yield dg.AssetCheckResult(
                check_name=spec.name,
                passed=mine.is_empty(),
                metadata={
                    "violations": sum(problems[p] for p in guarded),
                    **covered(keys),
                    "failing_partitions": dg.MetadataValue.md(markdown_table(mine.head(FAILING_SHOWN))),
                    "unreadable_files": dg.MetadataValue.json(unreadable),
                },
            )

    @dg.asset_check(
        asset=BAR_COVERAGE,
        description="Warns when a symbol-day's coverage is below FINANCE_DAG_COVERAGE_THRESHOLD.",
    )
    def coverage_above_threshold(
        context: dg.AssetCheckExecutionContext, lake: LakeResource
    ) -> dg.AssetCheckResult:
        keys = checked_keys(context, BAR_COVERAGE, parts.trading_days)
        daily = read_partitions(lake.lake, BAR_COVERAGE, parts.trading_days, keys)
        low = daily.filter(pl.col("coverage") < threshold) if daily.height else daily
        return dg.AssetCheckResult(
            passed=low.is_empty(),
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "threshold": threshold,
                "below_threshold": low.height,
                **covered(keys),
                "worst": dg.MetadataValue.md(
                    markdown_table(low.sort("coverage").head(FAILING_SHOWN).drop("bars_by_source"))
                    if low.height
                    else "_none_"
                ),
            },
        )

    return [minute_bar_checks, coverage_above_threshold]

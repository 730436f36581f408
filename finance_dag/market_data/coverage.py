"""Coverage of minute bars against the XNYS calendar, and the tiers research relies on.

Coverage of a symbol-day = distinct regular-session minutes with a bar / regular minutes of
that session (390, or 210 on an early close). Extended-hours bars never count, so coverage
can never exceed 100 %. Minutes without a trade legitimately have no bar.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import polars as pl

from finance_dag.core import calendar
from finance_dag.market_data.bars import ny_date, regular_counts

# (tier, lowest coverage that earns it), best first; no bars at all is NO DATA.
TIERS: tuple[tuple[str, float], ...] = (
    ("EXCELLENT", 0.95),
    ("GOOD", 0.85),
    ("FAIR", 0.70),
    ("POOR", 0.50),
    ("VERY POOR", 0.0),
)
READY_THRESHOLD = 0.85
COVERAGE_SCHEMA = pl.Schema(
    {
        "date": pl.Date,
        "symbol": pl.String,
        "bars": pl.Int64,
        "expected_minutes": pl.Int64,
        "coverage": pl.Float64,
        "bars_by_source": pl.List(pl.Struct({"source": pl.String, "bars": pl.UInt32})),
    }
)
SUMMARY_SCHEMA = pl.Schema(
    {
        "symbol": pl.String,
        "days": pl.UInt32,
        "first_date": pl.Date,
        "last_date": pl.Date,
        "bars": pl.Int64,
        "expected_minutes": pl.Int64,
        "worst_day": pl.Float64,
        "coverage": pl.Float64,
        "tier": pl.String,
        "ready": pl.Boolean,
    }
)
COLUMN_DESCRIPTIONS: dict[str, str] = {
    "date": "XNYS session date (New York).",
    "symbol": "Ticker symbol.",
    "bars": "Distinct regular-session minutes with a bar, count.",
    "expected_minutes": "Regular-session minutes of the calendar: 390, or 210 on an early close.",
    "coverage": "bars / expected_minutes, fraction in [0, 1].",
    "bars_by_source": "Regular-session bars per vendor: list of {source, bars}.",
    "days": "Sessions with a coverage row, count.",
    "first_date": "First session covered.",
    "last_date": "Last session covered.",
    "worst_day": "Lowest daily coverage, fraction.",
    "tier": "EXCELLENT >= 95 %, GOOD >= 85 %, FAIR >= 70 %, POOR >= 50 %, VERY POOR, NO DATA.",
    "ready": "True when coverage >= 85 %: ready for research.",
}


def tier_expr(coverage: str = "coverage", bars: str = "bars") -> pl.Expr:
    """The tier of each row's coverage fraction; rows with no bars are NO DATA."""
    expr = pl.when(pl.col(bars) == 0).then(pl.lit("NO DATA"))
    for name, floor in TIERS:
        expr = expr.when(pl.col(coverage) >= floor).then(pl.lit(name))
    return expr.otherwise(pl.lit("VERY POOR"))


def daily_coverage(bars: pl.DataFrame, symbols: Sequence[str], days: Sequence[date]) -> pl.DataFrame:
    """Per symbol and session: ``bars``, ``expected_minutes``, ``coverage`` and bars per source.

    Every (symbol, day) requested gets a row; a symbol-day without bars has coverage 0.
    ``bars`` must carry ``symbol``, ``ts``, ``regular`` and ``source``.
    """
    grid = pl.DataFrame(
        [(s, d, calendar.expected_minutes(d)) for d in days for s in symbols],
        schema={"symbol": pl.String, "date": pl.Date, "expected_minutes": pl.Int64},
        orient="row",
    )
    regular = bars.filter("regular").with_columns(date=ny_date())
    per_source = (
        regular.group_by("symbol", "date", "source")
        .agg(bars=pl.col("ts").n_unique())
        .sort("source")
        .group_by("symbol", "date")
        .agg(bars_by_source=pl.struct("source", "bars"))
    )
    counted = regular_counts(regular)
    return (
        grid.join(counted, on=["symbol", "date"], how="left")
        .join(per_source, on=["symbol", "date"], how="left")
        .with_columns(pl.col("bars").fill_null(0).cast(pl.Int64))
        .with_columns(coverage=pl.col("bars") / pl.col("expected_minutes"))
        .select(COVERAGE_SCHEMA.names())
        .cast(COVERAGE_SCHEMA)
        .sort("date", "symbol")
    )


def coverage_summary(daily: pl.DataFrame) -> pl.DataFrame:
    """Per symbol over all days in ``daily``: days, bars, expected, coverage, tier, ready."""
    return (
        daily.group_by("symbol")
        .agg(
            days=pl.len(),
            first_date=pl.col("date").min(),
            last_date=pl.col("date").max(),
            bars=pl.col("bars").sum(),
            expected_minutes=pl.col("expected_minutes").sum(),
            worst_day=pl.col("coverage").min(),
        )
        .with_columns(coverage=pl.col("bars") / pl.col("expected_minutes"))
        .with_columns(tier=tier_expr(), ready=pl.col("coverage") >= READY_THRESHOLD)
        .sort(["coverage", "symbol"], descending=[True, False])
        .cast(SUMMARY_SCHEMA)
    )


def tier_counts(summary: pl.DataFrame) -> dict[str, int]:
    """Symbols per tier, every tier present (zero where none)."""
    counts = dict(summary.group_by("tier").len().iter_rows())
    return {name: int(counts.get(name, 0)) for name, _ in (*TIERS, ("NO DATA", 0))}


def refill_candidates(
    daily: pl.DataFrame, threshold: float, attempts: dict[str, int], max_attempts: int, limit: int
) -> list[str]:
    """``date|symbol`` keys below ``threshold`` that have been re-filled fewer than
    ``max_attempts`` times, worst first, at most ``limit``."""
    low = daily.filter(pl.col("coverage") < threshold).sort("coverage", "date", "symbol")
    keys = [f"{d.isoformat()}|{s}" for d, s in low.select("date", "symbol").iter_rows()]
    return [k for k in keys if attempts.get(k, 0) < max_attempts][:limit]

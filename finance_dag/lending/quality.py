"""Data-quality rules of the lending outputs as plain functions (the Dagster checks in
``finance_dag.defs.lending.checks`` call them): each returns the offending rows, empty when all
is well."""

import polars as pl

from finance_dag.lending.extended import EXTENDED_COLUMNS
from finance_dag.lending.factors import FACTOR_COLUMNS, Z_CAP
from finance_dag.lending.squeeze import WEIGHTS

TOLERANCE = 1e-9


def factor_range_violations(frame: pl.DataFrame) -> pl.DataFrame:
    """Rows of core factors out of their documented range: ``date``, ``symbol``, ``factor``,
    ``value`` (z-scores beyond +/-Z_CAP, UPI outside [0, 1], NaN or infinite values)."""
    bounds = {c: (-Z_CAP, Z_CAP) for c in ("sim", "ftz", "dtc_z", "lpf")} | {"upi": (0.0, 1.0)}
    long = frame.unpivot(index=["date", "symbol"], on=list(FACTOR_COLUMNS), variable_name="factor")
    bad = ~pl.col("value").is_finite()
    for factor, (low, high) in bounds.items():
        bad = bad | ((pl.col("factor") == factor) & ~pl.col("value").is_between(low, high))
    return long.filter(pl.col("value").is_not_null() & bad)


def empty_extended_factors(frame: pl.DataFrame) -> pl.DataFrame:
    """Per day, the extended factors null for every name, with the most common reason."""
    empty = frame.group_by("date").agg(
        *(pl.col(c).is_null().all().alias(c) for c in EXTENDED_COLUMNS),
        reasons=pl.col("null_reasons").drop_nulls().mode().first(),
    )
    long = empty.unpivot(index=["date", "reasons"], on=list(EXTENDED_COLUMNS), variable_name="factor")
    return long.filter(pl.col("value")).select("date", "factor", "reasons").sort("date", "factor")


def contribution_errors(scores: pl.DataFrame) -> pl.DataFrame:
    """Scores that are not the sum of their contributions, or count no or too many components."""
    total = pl.sum_horizontal(f"{c}_contrib" for c in WEIGHTS)
    wrong_sum = (total - pl.col("ssr_v4")).abs() > TOLERANCE
    wrong_count = ~pl.col("components").is_between(1, len(WEIGHTS))
    return scores.filter(pl.col("ssr_v4").is_not_null() & (wrong_sum | wrong_count)).select(
        "date", "symbol", "ssr_v4", "components", total.alias("sum_of_contributions")
    )

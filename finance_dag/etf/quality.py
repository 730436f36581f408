"""Data-quality rules of the ETF lake, as frames of failing rows (empty: all good).

The asset checks in ``defs/etf/checks.py`` run them on what the lake holds; notebooks can run
them on any frame.
"""

from __future__ import annotations

import polars as pl

WEIGHT_TOLERANCE = 1e-6


def duplicate_symbols(frame: pl.DataFrame, keys: tuple[str, ...] = ("symbol",)) -> pl.DataFrame:
    """Rows whose ``keys`` appear more than once."""
    return frame.filter(pl.struct(keys).is_duplicated()).select(*keys).unique().sort(keys)


def price_problems(prices: pl.DataFrame) -> pl.DataFrame:
    """Rows of daily prices with a non-positive price, high below low, a negative volume or a
    non-positive split ratio, each with the rule broken; plus repeated (date, symbol) rows."""
    rules = {
        "price not positive": pl.min_horizontal("open", "high", "low", "close") <= 0,
        "high below low": pl.col("high") < pl.col("low"),
        "negative volume": pl.col("volume") < 0,
        "split ratio not positive": pl.col("split_ratio") <= 0,
        "negative dividend": pl.col("dividend") < 0,
    }
    broken = [
        prices.filter(rule).select("date", "symbol", problem=pl.lit(name)) for name, rule in rules.items()
    ]
    repeated = duplicate_symbols(prices, ("date", "symbol")).with_columns(problem=pl.lit("repeated row"))
    return pl.concat([*broken, repeated], how="vertical_relaxed").sort("date", "symbol")


def score_problems(table: pl.DataFrame) -> pl.DataFrame:
    """Scored rows whose score is missing or outside (0, 1], excluded rows without a reason,
    and repeated symbols."""
    scored = pl.col("status") == "scored"
    bad = table.filter(
        (scored & (pl.col("score").is_null() | (pl.col("score") <= 0) | (pl.col("score") > 1)))
        | (~scored & pl.col("reason").is_null())
    ).select("symbol", "status", "score", "reason")
    repeated = duplicate_symbols(table).with_columns(status=pl.lit("repeated symbol"))
    return pl.concat([bad, repeated], how="diagonal_relaxed")


def weight_problems(weights: pl.DataFrame, min_weight: float, max_weight: float) -> pl.DataFrame:
    """Positions outside [min_weight, max_weight], and a total other than 1."""
    tol = WEIGHT_TOLERANCE
    outside = weights.filter(
        (pl.col("weight") < min_weight - tol) | (pl.col("weight") > max_weight + tol)
    ).select("symbol", "weight", problem=pl.lit(f"outside {min_weight:.1%}-{max_weight:.1%}"))
    total = float(weights["weight"].sum())
    if abs(total - 1.0) > tol:
        outside = pl.concat(
            [
                outside,
                pl.DataFrame(
                    {"symbol": ["(all)"], "weight": [total], "problem": ["weights do not sum to 1"]}
                ),
            ]
        )
    return outside

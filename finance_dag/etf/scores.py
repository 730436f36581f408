"""ETF factor scores: total-return panel, quality filter, four factors and their weighted blend.

Everything here is computed from a total-return panel *up to the as-of date* (the panel's last
row): the walk-forward backtest calls the same functions on the panel cut at each rebalance
date, so a score at t never sees a price after t.

- ``total_return_panel``: raw daily rows (``DAILY_PRICE_SCHEMA``) → a sessions × symbols matrix
  of total-return index values, from ``(close * split_ratio + dividend) / previous close``
  (splits and dividends applied point in time, nothing back-adjusted); NaN where a symbol has
  no row (before listing, or a missing session). The index starts at the first raw close, so it
  reads as dollars (the price with dividends reinvested since the first row) and depends only on
  the past: a backtest's share counts and fills never use a later price.
- ``quality_filter``: the reason a symbol cannot be scored on the as-of date, for every one of
  them — no prices, too short (fewer than ``MIN_HISTORY`` sessions), stale (no price for more
  than ``STALE_DAYS`` sessions, or more than ``MAX_FLAT_SHARE`` of the window without a price
  change), gaps (more than ``MAX_GAP_SHARE`` of the window's sessions missing), jumps (a daily
  total return beyond ±``MAX_JUMP``: splits are already in the total return, so a jump is a
  bad print or a corporate action the vendor did not report).
- Factors over the trailing window (``MIN_HISTORY`` = 252 sessions), each turned into a
  cross-sectional percentile in (0, 1] among the scored ETFs (higher is better):
  ``momentum`` = total return from t−252 to t−21 (12-1 months: the latest month is skipped,
  as usual, to avoid short-term reversal); ``quality`` = mean of the percentiles of the
  252-session Sharpe ratio and of the max drawdown (shallower is better); ``volatility`` =
  63-session realised volatility, annualised (lower is better); ``value`` = expense ratio from
  the curated file (cheaper is better).
- ``score`` = Σ weight × percentile over the factors a name has, divided by the weights used:
  a name without an expense ratio is scored on the other three (pro rata). When no scored ETF
  has an expense ratio, value is skipped for all and its weight redistributed pro rata, and
  the note says so, as the seed reported it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl

from finance_dag.backtest.engine import Panel, forward_fill

DEFAULT_WEIGHTS: dict[str, float] = {"momentum": 0.35, "quality": 0.30, "value": 0.15, "volatility": 0.20}
MIN_HISTORY = 252
MOMENTUM_SKIP = 21
VOL_WINDOW = 63
STALE_DAYS = 5
MAX_FLAT_SHARE = 0.20
MAX_GAP_SHARE = 0.05
MAX_JUMP = 0.40
SCORE_SCHEMA = pl.Schema(
    {
        "symbol": pl.String,
        "status": pl.String,
        "reason": pl.String,
        "momentum": pl.Float64,
        "sharpe": pl.Float64,
        "max_drawdown": pl.Float64,
        "volatility": pl.Float64,
        "expense_ratio": pl.Float64,
        "momentum_pct": pl.Float64,
        "quality_pct": pl.Float64,
        "value_pct": pl.Float64,
        "volatility_pct": pl.Float64,
        "score": pl.Float64,
        "rank": pl.Int64,
    }
)
SCORE_COLUMNS: dict[str, str] = {
    "symbol": "Ticker symbol.",
    "status": "scored, or excluded (see reason).",
    "reason": "Why the ETF was not scored (null when scored).",
    "momentum": "Total return from t-252 to t-21 sessions (12-1 months).",
    "sharpe": "Sharpe ratio of the last 252 daily total returns (annualised, rf = 0).",
    "max_drawdown": "Max drawdown of the total-return index over the last 252 sessions (negative).",
    "volatility": "Realised volatility of the last 63 daily total returns, annualised.",
    "expense_ratio": "Expense ratio from the curated category file (null where unknown).",
    "momentum_pct": "Momentum percentile among scored ETFs, (0, 1].",
    "quality_pct": "Quality percentile: mean of the Sharpe and drawdown percentiles, re-ranked.",
    "value_pct": "Value percentile (lower expense ratio is better); null without an expense ratio.",
    "volatility_pct": "Low-volatility percentile (lower volatility is better).",
    "score": "Weighted blend of the available percentiles, (0, 1].",
    "rank": "1 = best score.",
}


@dataclass(frozen=True)
class Scores:
    table: pl.DataFrame  # SCORE_SCHEMA, one row per symbol, best first then excluded
    weights: dict[str, float]  # the weights actually used (value dropped when skipped)
    note: str  # one line a person reads: active factors and weights, value skipped or not


def total_return_panel(rows: pl.DataFrame, sessions: Sequence[date] | None = None) -> Panel:
    """The total-return index of raw daily rows (see the module docstring) on ``sessions``
    (default: every date present)."""
    growth = (
        (pl.col("close") * pl.col("split_ratio") + pl.col("dividend"))
        / pl.col("close").shift(1).over("symbol")
    ).fill_null(1.0)
    indexed = rows.sort("date").select(
        "date",
        column=pl.col("symbol").rank("dense") - 1,
        tr=(pl.col("close").first() * growth.cum_prod()).over("symbol"),
    )
    days = rows["date"].unique().sort().to_numpy() if sessions is None else list(sessions)
    days = np.asarray(days, dtype="datetime64[D]")
    symbols = tuple(rows["symbol"].unique().sort())
    matrix = np.full((len(days), len(symbols)), np.nan)
    row = np.searchsorted(days, indexed["date"].to_numpy().astype("datetime64[D]"))
    inside = (row < len(days)) & (days[np.minimum(row, len(days) - 1)] == indexed["date"].to_numpy())
    matrix[row[inside], indexed["column"].to_numpy()[inside]] = indexed["tr"].to_numpy()[inside]
    return Panel(days, symbols, matrix)


def quality_filter(index: np.ndarray, dates: np.ndarray) -> list[str | None]:
    """Per column of ``index`` (a total-return panel ending at the as-of date), the reason it
    cannot be scored, or None (see the module docstring for the rules)."""
    n_rows = index.shape[0]
    observed = ~np.isnan(index)
    first = np.where(observed.any(axis=0), observed.argmax(axis=0), n_rows)
    last = n_rows - 1 - observed[::-1].argmax(axis=0)
    window = index[-MIN_HISTORY - 1 :]
    returns = simple_returns(window)
    reasons: list[str | None] = []
    for j in range(index.shape[1]):
        problems = []
        history = n_rows - first[j]
        if first[j] == n_rows:
            reasons.append("no prices up to the as-of date")
            continue
        if history < MIN_HISTORY + 1:
            problems.append(f"too short: {history} sessions of history, need {MIN_HISTORY + 1}")
        if n_rows - 1 - last[j] > STALE_DAYS:
            problems.append(f"stale: no price since {dates[last[j]]}")
        column = returns[:, j]
        seen = column[~np.isnan(column)]
        if history >= MIN_HISTORY + 1:
            flat = float(np.mean(seen == 0.0)) if seen.size else 1.0
            if flat > MAX_FLAT_SHARE:
                problems.append(
                    f"stale: {flat:.0%} of the last {MIN_HISTORY} sessions without a price change"
                )
            missing = int(np.isnan(window[1:, j]).sum())
            if missing > MAX_GAP_SHARE * MIN_HISTORY:
                problems.append(f"gaps: {missing} of the last {MIN_HISTORY} sessions missing")
        jumps = np.flatnonzero(np.abs(np.nan_to_num(column)) > MAX_JUMP)
        if jumps.size:
            worst = jumps[np.argmax(np.abs(column[jumps]))]
            day = dates[len(dates) - len(column) + worst]
            problems.append(f"jumps: {column[worst]:+.0%} on {day}")
        reasons.append("; ".join(problems) or None)
    return reasons


def simple_returns(index: np.ndarray) -> np.ndarray:
    """Daily total returns between consecutive observed rows (NaN where either side is missing)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return index[1:] / index[:-1] - 1.0


def score_etfs(
    panel: Panel,
    expense_ratios: Mapping[str, float | None],
    excluded: Mapping[str, str] | None = None,
    weights: Mapping[str, float] | None = None,
) -> Scores:
    """Scores of every panel symbol as of the panel's last date (see the module docstring).

    ``excluded`` names symbols not to score with the reason (leveraged/inverse products, a
    vendor failure); ``expense_ratios`` holds the curated ratios (missing or None: unknown).
    """
    weights = dict(DEFAULT_WEIGHTS if weights is None else weights)
    unknown = set(weights) - set(DEFAULT_WEIGHTS)
    if unknown or any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise ValueError(
            f"factor weights {weights} must be non-negative, sum above 0 and use only {', '.join(DEFAULT_WEIGHTS)}"
        )
    excluded = excluded or {}
    reasons = quality_filter(panel.prices, panel.dates)
    reasons = [excluded.get(s) or r for s, r in zip(panel.symbols, reasons, strict=True)]
    keep = np.array([r is None for r in reasons], dtype=bool)
    window = panel.prices[-MIN_HISTORY - 1 :, keep]
    returns = np.nan_to_num(simple_returns(window))
    filled = forward_fill(window)
    momentum = filled[-1 - MOMENTUM_SKIP] / filled[0] - 1.0
    sd = returns.std(axis=0, ddof=1)
    sharpe = np.divide(returns.mean(axis=0), sd, out=np.zeros_like(sd), where=sd > 0) * np.sqrt(252)
    drawdown = (filled / np.maximum.accumulate(filled, axis=0) - 1.0).min(axis=0)
    volatility = returns[-VOL_WINDOW:].std(axis=0, ddof=1) * np.sqrt(252)
    symbols = [s for s, k in zip(panel.symbols, keep, strict=True) if k]
    ratio = np.array([np.nan if expense_ratios.get(s) is None else expense_ratios[s] for s in symbols])
    pct = {
        "momentum": _percentile(momentum),
        "quality": _percentile(_percentile(sharpe) + _percentile(drawdown)),
        "value": _percentile(-ratio),
        "volatility": _percentile(-volatility),
    }
    used, note = _active_weights(weights, has_value=bool(np.isfinite(ratio).any()))
    blend = np.zeros(len(symbols))
    total = np.zeros(len(symbols))
    for factor, w in used.items():
        available = np.isfinite(pct[factor])
        blend += np.where(available, w * np.nan_to_num(pct[factor]), 0.0)
        total += np.where(available, w, 0.0)
    score = np.divide(blend, total, out=np.full(len(symbols), np.nan), where=total > 0)
    scored = pl.DataFrame(
        {
            "symbol": symbols,
            "status": "scored",
            "reason": None,
            "momentum": momentum,
            "sharpe": sharpe,
            "max_drawdown": drawdown,
            "volatility": volatility,
            "expense_ratio": ratio,
            "momentum_pct": pct["momentum"],
            "quality_pct": pct["quality"],
            "value_pct": pct["value"] if "value" in used else np.full(len(symbols), np.nan),
            "volatility_pct": pct["volatility"],
            "score": score,
        },
        schema={k: v for k, v in SCORE_SCHEMA.items() if k != "rank"},
        nan_to_null=True,
    ).sort("score", "symbol", descending=[True, False])
    scored = scored.with_columns(rank=pl.int_range(1, scored.height + 1, dtype=pl.Int64))
    dropped = pl.DataFrame(
        {
            "symbol": [s for s, k in zip(panel.symbols, keep, strict=True) if not k],
            "status": "excluded",
            "reason": [r for r in reasons if r is not None],
        },
        schema={"symbol": pl.String, "status": pl.String, "reason": pl.String},
    )
    table = pl.concat([scored, dropped], how="diagonal_relaxed").select(SCORE_SCHEMA.names())
    return Scores(table.cast(dict(SCORE_SCHEMA)), used, note)


def _active_weights(weights: Mapping[str, float], has_value: bool) -> tuple[dict[str, float], str]:
    """The weights used, renormalised to sum to 1, and the note a person reads."""
    active = {f: w for f, w in weights.items() if w > 0 and (f != "value" or has_value)}
    total = sum(active.values())
    used = {f: w / total for f, w in active.items()}
    shown = ", ".join(f"{f}={w:.0%}" for f, w in used.items())
    if weights.get("value", 0) > 0 and not has_value:
        return used, f"Value: SKIPPED (no expense ratio data available); weight redistributed: {shown}"
    return used, f"Active factors: {shown}"


def _percentile(values: np.ndarray) -> np.ndarray:
    """Cross-sectional percentile rank in (0, 1] (average ranks for ties); NaN stays NaN."""
    out = np.full(values.shape, np.nan)
    finite = np.isfinite(values)
    if finite.any():
        ranks = pl.Series(values[finite]).rank("average").to_numpy()
        out[finite] = ranks / finite.sum()
    return out

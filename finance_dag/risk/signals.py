"""Factor-adjusted confidence and the buy/sell/hold tilt (seed 002's rule, made deterministic).

Pure function on plain inputs (no Dagster). For each scored name: a confidence ``c`` in [0, 1] (an
ETF score, later a strategy signal's confidence), its standardised factor exposures ``x_k`` (units
of cross-sectional standard deviations) and its predicted volatility (any horizon: only its rank
is used). Among the names that have all three:

- volatility percentile ``p = (rank − 1)/(m − 1)`` with average ranks for ties over the m names
  (0 = least volatile, 1 = most; 0 when m = 1);
- volatility penalty ``VOLATILITY_PENALTY · max(0, 2p − 1)``: nothing up to the median, 0.10 for
  the most volatile name;
- exposure penalty ``EXPOSURE_PENALTY · Σ_k max(0, |x_k| − BAND)``: the seed's "max factor
  exposure ±0.3" read as a band of ±0.3 standard deviations around the (cap-weighted) average
  name; every unit of standardised exposure beyond it, on any factor and in either direction,
  costs 0.05;
- adjusted confidence ``clip(c − volatility penalty − exposure penalty, 0, 1)``, rounded to 6
  decimals (so a hand-computed 0.4 is 0.4 at the thresholds);
- action ``buy`` if adjusted ≥ ``BUY_AT`` (0.6), ``sell`` if ≤ ``SELL_AT`` (0.4), ``hold``
  otherwise. The adjustment only lowers confidence, so it can turn a buy into a hold or a hold
  into a sell, never the other way: risk makes a conviction less actionable, not more.

A name missing an exposure (absent, null or NaN), its volatility or its confidence is not
adjusted: ``adjusted_confidence`` is null, the action is ``hold`` and the explanation names what
is missing. Nothing is zero-filled.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import polars as pl

__all__ = [
    "BAND",
    "BUY_AT",
    "EXPOSURE_PENALTY",
    "SELL_AT",
    "SIGNAL_COLUMNS",
    "SIGNAL_SCHEMA",
    "VOLATILITY_PENALTY",
    "factor_adjusted_signals",
]

BAND = 0.3
VOLATILITY_PENALTY = 0.10
EXPOSURE_PENALTY = 0.05
BUY_AT = 0.6
SELL_AT = 0.4
SIGNAL_SCHEMA = pl.Schema(
    {
        "symbol": pl.String,
        "confidence": pl.Float64,
        "volatility_percentile": pl.Float64,
        "volatility_penalty": pl.Float64,
        "exposure_penalty": pl.Float64,
        "adjusted_confidence": pl.Float64,
        "action": pl.String,
        "explanation": pl.String,
    }
)
SIGNAL_COLUMNS: dict[str, str] = {
    "symbol": "Ticker symbol.",
    "confidence": "Input confidence in [0, 1] (the ETF score).",
    "volatility_percentile": "Rank of predicted volatility among the names, 0 = least volatile.",
    "volatility_penalty": "0.10 x max(0, 2p - 1).",
    "exposure_penalty": "0.05 x the standardised style exposure beyond +-0.3, summed over factors.",
    "adjusted_confidence": "Confidence less the penalties, clipped to [0, 1]; null when an input is missing.",
    "action": "buy (>= 0.6), sell (<= 0.4) or hold.",
    "explanation": "One line: what moved the confidence, or what is missing.",
}


def _action(adjusted: float) -> str:
    if adjusted >= BUY_AT:
        return "buy"
    if adjusted <= SELL_AT:
        return "sell"
    return "hold"


def _missing(
    confidence: float, row: dict[str, float | None] | None, factors: list[str], vol: float | None
) -> str:
    """What a name lacks to be adjusted, as a phrase ('' when complete)."""
    gaps = []
    if not math.isfinite(confidence):
        gaps.append("no confidence")
    if row is None:
        gaps.append("no factor exposures")
    else:
        absent = [f for f in factors if row[f] is None or not math.isfinite(row[f])]
        if absent:
            gaps.append(f"missing exposure: {', '.join(absent)}")
    if vol is None or not math.isfinite(vol):
        gaps.append("no predicted volatility")
    return "; ".join(gaps)


def factor_adjusted_signals(
    confidence: Mapping[str, float], exposures: pl.DataFrame, volatility: Mapping[str, float]
) -> pl.DataFrame:
    """Adjusted confidence, action and a one-line explanation per name of ``confidence``.

    ``exposures``: ``symbol`` and one standardised exposure column per factor (every other
    column); ``volatility``: symbol → predicted volatility. Rule in the module docstring. Returns
    ``SIGNAL_SCHEMA`` rows in the order of ``confidence``. The explanation reads e.g.
    ``0.700 → 0.555 hold: volatility percentile 1.00 -0.100; momentum +1.20 beyond ±0.3 -0.045``,
    naming the factors that moved it, largest penalty first.
    """
    for symbol, c in confidence.items():
        if not 0.0 <= c <= 1.0 and not math.isnan(c):
            raise ValueError(f"confidence of {symbol} is {c}, outside [0, 1]")
    factors = [c for c in exposures.columns if c != "symbol"]
    rows = {r["symbol"]: r for r in exposures.iter_rows(named=True)}
    gaps = {s: _missing(c, rows.get(s), factors, volatility.get(s)) for s, c in confidence.items()}
    complete = [s for s in confidence if not gaps[s]]
    ranks = pl.Series([volatility[s] for s in complete], dtype=pl.Float64).rank("average").to_list()
    spread = max(len(complete) - 1, 1)
    percentile = {s: (r - 1.0) / spread for s, r in zip(complete, ranks, strict=True)}

    out = []
    for symbol, c in confidence.items():
        if gaps[symbol]:
            out.append((symbol, c, None, None, None, None, "hold", f"not adjusted ({gaps[symbol]}): hold"))
            continue
        p = percentile[symbol]
        vol_penalty = VOLATILITY_PENALTY * max(0.0, 2.0 * p - 1.0)
        beyond = [(f, rows[symbol][f], EXPOSURE_PENALTY * (abs(rows[symbol][f]) - BAND)) for f in factors]
        beyond = sorted((b for b in beyond if b[2] > 0), key=lambda b: -b[2])
        exposure_penalty = sum(b[2] for b in beyond)
        adjusted = round(min(1.0, max(0.0, c - vol_penalty - exposure_penalty)), 6)
        action = _action(adjusted)
        reasons = [f"volatility percentile {p:.2f} -{vol_penalty:.3f}"] if vol_penalty > 0 else []
        reasons += [f"{f} {x:+.2f} beyond ±{BAND} -{pen:.3f}" for f, x, pen in beyond]
        why = "; ".join(reasons) or f"volatility at or below the median, exposures within ±{BAND}"
        out.append(
            (
                symbol,
                c,
                p,
                vol_penalty,
                exposure_penalty,
                adjusted,
                action,
                f"{c:.3f} → {adjusted:.3f} {action}: {why}",
            )
        )
    return pl.DataFrame(out, schema=SIGNAL_SCHEMA, orient="row")

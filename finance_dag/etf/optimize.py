"""Portfolio construction among scored ETF candidates: pick the best-scored names, then weight them.

``optimize`` keeps the top ``n_positions`` candidates by combined score and gives them weights that
sum to 1, each within [``min_weight``, ``max_weight``] (the seed's 30 names, 3 %–7.5 %), by one of:

- ``mvo`` (default): maximise ``s·w − λ·wᵀΣw``. ``s`` are the selected names' scores standardised
  to mean 0 and standard deviation 1 (a unitless expected-return proxy: only the ranking and
  spacing of scores matter, not their scale); ``Σ`` is the annualised (×252) Ledoit-Wolf
  covariance. Moving weight δ from name a to name b gains ``δ·(s_b − s_a)`` and costs about
  ``2λδ·(cov(b, p) − cov(a, p))`` (p the portfolio), so with the default λ = 20 one standard
  deviation of score is worth 2.5 points of annualised covariance with the portfolio, about the
  gap between a bond and an equity ETF in an equity-heavy book: score leads, risk breaks ties.
- ``minvar``: minimise ``wᵀΣw`` under the same bounds (scores only select).
- ``rankbased``: weights proportional to the score rank (1 for the lowest selected), clipped to
  the bounds with the excess redistributed to the unclipped names in proportion to their rank,
  repeatedly until none is out of bounds. That fixed point is ``clip(c·rank, min, max)`` with the
  one scale ``c`` that makes the weights sum to 1, which is solved for exactly (the sum is
  piecewise linear in ``c``).

Covariance from a window with gaps: each column is demeaned over its own observations and its
gaps count as 0; a column covering a fraction f of the window is scaled by 1/√f, so its own
variance is its observed variance while its correlations shrink toward 0 with the missing share.
A candidate with fewer than 2 returns gets the mean variance of the others and no correlation.

Fallbacks are never silent: ``Allocation.fallback`` says in a sentence what happened and
``Allocation.method`` names what produced the weights.

- Bounds that cannot hold (``n·min > 1`` or ``n·max < 1``, e.g. 10 candidates with a 7.5 % cap):
  equal weight 1/n, method ``equal``.
- No candidate with 2 returns (no risk estimate) for ``mvo``/``minvar``: ``rankbased``.
- Solver failure: ``rankbased``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

# cvxpy, scikit-learn and scipy.stats cost about 0.7 s to import: they are imported where they
# are used, so loading the code location (which imports this module for code versions) stays fast.

__all__ = ["RISK_AVERSION", "Allocation", "Method", "optimize", "shrunk_covariance"]

Method = Literal["mvo", "rankbased", "minvar"]
RISK_AVERSION = 20.0
_YEAR = 252
# Solver answers are accurate to ~1e-8; anything further off a bound or the budget is a failure.
_SOLVER_TOLERANCE = 1e-6
# 20 names at 5 % make 1.0000000000000002: still feasible.
_ROUNDING = 1e-12


@dataclass(frozen=True)
class Allocation:
    """Target weights and how they came about.

    ``weights``: symbol → weight, best score first, summing to 1. ``method``: what produced them
    (``mvo``, ``minvar``, ``rankbased`` or ``equal``). ``fallback``: why that differs from the
    request, for a user to read, or None. ``expected_volatility``: annualised ``√(wᵀΣw)`` (NaN
    without a risk estimate). ``hhi``: ``Σw²`` (1/n for equal weights).
    """

    weights: dict[str, float]
    method: str
    fallback: str | None
    expected_volatility: float
    hhi: float


def shrunk_covariance(returns: np.ndarray) -> np.ndarray | None:
    """Annualised Ledoit-Wolf covariance of daily ``returns`` (window × n) that may contain NaN
    (see the module docstring for gaps); None if no column has 2 returns."""
    observed = ~np.isnan(returns)
    count = observed.sum(axis=0)
    informative = count >= 2
    if not informative.any():
        return None
    mean = np.nanmean(np.where(observed[:, informative], returns[:, informative], np.nan), axis=0)
    centred = np.where(observed[:, informative], returns[:, informative] - mean, 0.0)
    centred *= np.sqrt(returns.shape[0] / count[informative])
    from sklearn.covariance import LedoitWolf

    known = LedoitWolf(assume_centered=True).fit(centred).covariance_ * _YEAR
    sigma = np.diag(np.full(returns.shape[1], np.mean(np.diag(known))))
    sigma[np.ix_(informative, informative)] = known
    return sigma


def _rank_weights(scores: np.ndarray, low: float, high: float) -> np.ndarray:
    """``clip(c · rank, low, high)`` with the scale ``c`` that makes the weights sum to 1."""
    from scipy import stats

    rank = stats.rankdata(scores)  # average ranks for ties, 1 = lowest
    breaks = np.unique(np.concatenate((low / rank, high / rank)))
    totals = np.clip(np.outer(breaks, rank), low, high).sum(axis=1)  # non-decreasing in c
    k = int(np.searchsorted(totals, 1.0))
    if k == 0:  # already n·low ≥ 1 at the smallest break: feasible only with n·low == 1
        return np.full(rank.size, low)
    c0, c1, s0, s1 = breaks[k - 1], breaks[k], totals[k - 1], totals[k]
    c = c0 + (1.0 - s0) * (c1 - c0) / (s1 - s0)
    return np.clip(c * rank, low, high)


def _solve(
    method: str, scores: np.ndarray, sigma: np.ndarray, low: float, high: float, aversion: float
) -> np.ndarray | None:
    """The convex problem for ``mvo`` or ``minvar``; None when the solver does not deliver."""
    import cvxpy as cp

    values, vectors = np.linalg.eigh(sigma)
    factor = vectors * np.sqrt(np.clip(values, 0.0, None))  # Σ = F Fᵀ, PSD by construction
    w = cp.Variable(scores.size)
    risk = cp.sum_squares(factor.T @ w)
    spread = scores.std()
    s = (scores - scores.mean()) / spread if spread > 0 else np.zeros_like(scores)
    objective = cp.Maximize(s @ w - aversion * risk) if method == "mvo" else cp.Minimize(risk)
    problem = cp.Problem(objective, [cp.sum(w) == 1, w >= low, w <= high])
    try:
        problem.solve(solver=cp.CLARABEL)
    except cp.error.SolverError:
        return None
    weights = w.value
    if weights is None or problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
        return None
    weights = np.clip(weights, low, high)
    if abs(weights.sum() - 1.0) > _SOLVER_TOLERANCE:
        return None
    return weights / weights.sum()


def optimize(
    scores: Mapping[str, float],
    returns: np.ndarray,
    method: Method = "mvo",
    n_positions: int = 30,
    min_weight: float = 0.03,
    max_weight: float = 0.075,
    risk_aversion: float = RISK_AVERSION,
) -> Allocation:
    """Weights for the top ``n_positions`` of ``scores`` (symbol → combined score, higher better).

    ``returns``: window × len(scores) daily returns of the candidates, columns in the order of
    ``scores``; NaN allowed (short histories). Candidates with a NaN score cannot be ranked and
    are left out; ties in score go to the symbol that sorts first. See the module docstring for
    the methods, the covariance and the fallbacks.
    """
    if method not in ("mvo", "rankbased", "minvar"):
        raise ValueError(f"method must be 'mvo', 'rankbased' or 'minvar', got {method!r}")
    if not 0 <= min_weight <= max_weight:
        raise ValueError(f"need 0 ≤ min_weight ≤ max_weight, got {min_weight}, {max_weight}")
    symbols = list(scores)
    returns = np.asarray(returns, dtype=np.float64)
    if returns.ndim != 2 or returns.shape[1] != len(symbols):
        raise ValueError(
            f"returns must be window × {len(symbols)} (one column per score), got {returns.shape}"
        )
    values = np.array([scores[s] for s in symbols], dtype=np.float64)
    rankable = [j for j in np.argsort(symbols, kind="stable") if np.isfinite(values[j])]
    chosen = sorted(rankable, key=lambda j: -values[j])[:n_positions]  # stable: ties by symbol
    if not chosen:
        raise ValueError("optimize: no candidate with a finite score")
    n, picked = len(chosen), values[chosen]
    sigma = shrunk_covariance(returns[:, chosen])
    fallback = None
    if n * min_weight - 1 > _ROUNDING or 1 - n * max_weight > _ROUNDING:
        weights, used = np.full(n, 1.0 / n), "equal"
        fallback = (
            f"{n} candidates cannot be weighted within {min_weight:.1%}–{max_weight:.1%} summing to 100% "
            f"(the bounds allow {n * min_weight:.1%}–{n * max_weight:.1%}); bounds relaxed to equal "
            f"weights of {1 / n:.2%}"
        )
    elif method == "rankbased":
        weights, used = _rank_weights(picked, min_weight, max_weight), "rankbased"
    elif sigma is None:
        weights, used = _rank_weights(picked, min_weight, max_weight), "rankbased"
        fallback = (
            f"no candidate has 2 returns in the window to estimate risk; {method} replaced by rankbased"
        )
    else:
        weights, used = _solve(method, picked, sigma, min_weight, max_weight, risk_aversion), method
        if weights is None:
            weights, used = _rank_weights(picked, min_weight, max_weight), "rankbased"
            fallback = f"the {method} solver found no solution; weights are rankbased instead"
    volatility = float(np.sqrt(weights @ sigma @ weights)) if sigma is not None else float("nan")
    return Allocation(
        weights={symbols[j]: float(x) for j, x in zip(chosen, weights, strict=True)},
        method=used,
        fallback=fallback,
        expected_volatility=volatility,
        hhi=float(weights @ weights),
    )

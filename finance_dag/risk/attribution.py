"""Risk attribution, VaR/CVaR, diversification and group exposure of a book under a factor model.

Pure functions on plain numpy/polars inputs (no Dagster). Notation: ``w`` the book's weights (n),
``X`` the names' factor exposures (n × k), ``F`` the daily factor covariance (k × k), ``D`` the
diagonal of daily specific variances ``s²``. The model's covariance of the names is
``Σ = X F Xᵀ + D``.

- ``attribute``: portfolio exposures ``x_p = Xᵀw``; factor variance ``x_pᵀ F x_p``; specific
  variance ``Σ_i w_i² s_i²``; predicted daily volatility ``σ = √(factor + specific)``, annualised
  ``σ·√252``; factor and specific shares of the variance. Euler decomposition of ``σ`` (it is
  homogeneous of degree 1 in ``w``, so the parts add up to ``σ`` exactly):
  factor k contributes ``x_p,k · (F x_p)_k / σ`` and specific risk ``wᵀDw / σ``; position i has
  the marginal contribution ``MCR_i = ∂σ/∂w_i = (X F x_p + D w)_i / σ`` and contributes
  ``w_i · MCR_i``. Names without a complete exposure row or a specific variance are *excluded*
  and listed with the weight they carry and the reason, never zero-filled. The remaining weights
  are used as given (not rescaled), so the figures are those of the covered part of the book.
- ``parametric_var``: Gaussian VaR and CVaR (expected shortfall) over ``h`` days, as positive
  loss fractions: ``VaR = z_c·σ√h − μh``, ``CVaR = σ√h·φ(z_c)/(1 − c) − μh`` with
  ``z_c = Φ⁻¹(c)`` (1.6449 at 95 %, 2.3263 at 99 %).
- ``historical_var``: empirical VaR/CVaR of realised daily returns with empyrical's conventions:
  ``VaR₁ = −quantile(r, 1 − c)`` with numpy's ``linear`` interpolation (empyrical's
  ``value_at_risk``), ``CVaR₁`` = mean of the losses at or beyond ``VaR₁`` (empyrical's
  ``conditional_value_at_risk`` when there are no ties). ``h``-day figures are the 1-day figures
  × √h (square-root-of-time, as the parametric zero-mean case): overlapping h-day sums from a
  year of data would rest on only about 25 independent windows.
- ``diversification_score``: ``1 − 1/DR`` with the diversification ratio
  ``DR = Σ_i |w_i| σ_i / σ_p`` (Choueifaty), i.e. ``1 − σ_p / Σ_i |w_i| σ_i``. Since
  ``σ_p ≤ Σ_i |w_i| σ_i`` for any correlations, the score lies in [0, 1]: 0 for a single asset
  or perfectly correlated same-sign holdings, ``1 − 1/√n`` for n uncorrelated names of equal
  volatility at equal weights, 1 for a perfect hedge.
- ``group_exposure``: the book's weight per sector or country label.
- ``returns_based_exposures``: exposures of names without fundamentals (ETFs) from a time-series
  regression of their returns on the model's factor returns.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

# scipy.stats costs about 0.45 s to import: it is imported where it is used, so loading the code
# location stays fast.

__all__ = [
    "TRADING_DAYS",
    "UNCLASSIFIED",
    "Attribution",
    "attribute",
    "diversification_score",
    "group_exposure",
    "historical_var",
    "parametric_var",
    "returns_based_exposures",
]

TRADING_DAYS = 252
UNCLASSIFIED = "(unclassified)"


@dataclass(frozen=True)
class Attribution:
    """Predicted risk of a book and where it comes from; all risk figures are daily fractions.

    ``exposures``: factor → portfolio exposure ``x_p,k``. ``factor_variance``, ``specific_variance``,
    ``total_variance``: daily variances. ``volatility``: ``σ`` (daily); ``volatility_annual``:
    ``σ·√252``. ``factor_share``/``specific_share``: shares of the variance (sum to 1).
    ``factors``: one row per factor — ``factor``, ``exposure``, ``contribution``
    (``x_p,k·(F x_p)_k/σ``) and ``share`` (contribution / σ, may be negative).
    ``specific_contribution``: ``wᵀDw/σ``; factor contributions plus it equal ``σ``.
    ``positions``: ``symbol``, ``weight``, ``mcr`` (``∂σ/∂w_i``), ``contribution`` (``w_i·MCR_i``,
    summing to ``σ``), ``share``; sorted by contribution, largest first. ``diversification``:
    ``diversification_score`` of the covered book under the model covariance. ``excluded``:
    ``symbol``, ``weight``, ``reason`` for names left out; ``excluded_weight``: their total weight.
    Ratios to ``σ`` or to the variance are NaN when the covered book has no risk (e.g. no name).
    """

    exposures: dict[str, float]
    factor_variance: float
    specific_variance: float
    total_variance: float
    volatility: float
    volatility_annual: float
    factor_share: float
    specific_share: float
    factors: pl.DataFrame
    specific_contribution: float
    positions: pl.DataFrame
    diversification: float
    excluded: pl.DataFrame
    excluded_weight: float


def _exclusion(row: np.ndarray | None, factors: list[str], specific: float | None) -> str | None:
    """Why a held name cannot be attributed, or None if it can."""
    if row is None:
        return "no factor exposures"
    missing = [f for f, x in zip(factors, row, strict=True) if not math.isfinite(x)]
    if missing:
        return f"missing exposure: {', '.join(missing)}"
    if specific is None or not math.isfinite(specific):
        return "no specific variance"
    return None


def attribute(
    weights: Mapping[str, float],
    exposures: pl.DataFrame,
    factor_cov: np.ndarray,
    specific_var: Mapping[str, float],
    specific_cov: tuple[Sequence[str], np.ndarray] | None = None,
) -> Attribution:
    """Attribute the predicted daily risk of ``weights`` (symbol → weight) to factors and positions.

    ``exposures`` has a ``symbol`` column and one column per factor (every other column), in the
    order of ``factor_cov`` (k × k, daily); ``specific_var``: symbol → daily specific variance.
    ``specific_cov`` (names, m × m daily matrix), when given, replaces ``D`` by a full specific
    covariance among those names (its diagonal overrides their ``specific_var``): names whose
    residuals move together (ETFs sharing risk the factors do not span) are not treated as
    independent. Every formula below then reads ``D`` as that matrix.
    Formulas in the module docstring; a held name without a full exposure row (absent, or a null
    or NaN exposure) or without a specific variance goes to ``excluded`` with the reason.
    """
    factors = [c for c in exposures.columns if c != "symbol"]
    cov = np.asarray(factor_cov, dtype=float)
    if cov.shape != (len(factors), len(factors)):
        raise ValueError(f"factor_cov is {cov.shape}, exposures have {len(factors)} factors: {factors}")
    if exposures["symbol"].is_duplicated().any():
        raise ValueError("exposures has more than one row for a symbol")
    table = exposures.select(factors).cast(pl.Float64).fill_null(float("nan")).to_numpy()
    row_of = {s: i for i, s in enumerate(exposures["symbol"].to_list())}

    covered: list[str] = []
    excluded: list[tuple[str, float, str]] = []
    for symbol, weight in weights.items():
        row = table[row_of[symbol]] if symbol in row_of else None
        reason = _exclusion(row, factors, specific_var.get(symbol))
        if reason is None:
            covered.append(symbol)
        else:
            excluded.append((symbol, float(weight), reason))

    w = np.array([weights[s] for s in covered], dtype=float)
    x = table[[row_of[s] for s in covered]].reshape(len(covered), len(factors))
    specific = np.diag(np.array([specific_var[s] for s in covered], dtype=float))
    if specific_cov is not None:
        names, block = specific_cov
        at = {s: i for i, s in enumerate(names)}
        inside = [(i, at[s]) for i, s in enumerate(covered) if s in at]
        if inside:
            rows, cols = np.array(inside).T
            specific[np.ix_(rows, rows)] = np.asarray(block, dtype=float)[np.ix_(cols, cols)]
    s2 = np.diag(specific)

    x_p = x.T @ w
    f_x = cov @ x_p
    factor_variance = float(x_p @ f_x)
    specific_variance = float(w @ specific @ w)
    total = factor_variance + specific_variance
    sigma = math.sqrt(total)
    per_sigma = 1.0 / sigma if sigma > 0 else math.nan
    per_variance = 1.0 / total if total > 0 else math.nan

    factor_contribution = x_p * f_x * per_sigma
    mcr = (x @ f_x + specific @ w) * per_sigma
    contribution = w * mcr
    name_vol = np.sqrt(predicted_variance(x, cov, s2))

    return Attribution(
        exposures=dict(zip(factors, x_p.tolist(), strict=True)),
        factor_variance=factor_variance,
        specific_variance=specific_variance,
        total_variance=total,
        volatility=sigma,
        volatility_annual=sigma * math.sqrt(TRADING_DAYS),
        factor_share=factor_variance * per_variance,
        specific_share=specific_variance * per_variance,
        factors=pl.DataFrame(
            {
                "factor": factors,
                "exposure": x_p,
                "contribution": factor_contribution,
                "share": factor_contribution * per_sigma,
            },
            schema={
                "factor": pl.String,
                "exposure": pl.Float64,
                "contribution": pl.Float64,
                "share": pl.Float64,
            },
        ),
        specific_contribution=specific_variance * per_sigma,
        positions=pl.DataFrame(
            {
                "symbol": covered,
                "weight": w,
                "mcr": mcr,
                "contribution": contribution,
                "share": contribution * per_sigma,
            },
            schema={
                "symbol": pl.String,
                "weight": pl.Float64,
                "mcr": pl.Float64,
                "contribution": pl.Float64,
                "share": pl.Float64,
            },
        ).sort("contribution", descending=True),
        diversification=_score(float(np.abs(w) @ name_vol), sigma),
        excluded=pl.DataFrame(
            excluded, schema={"symbol": pl.String, "weight": pl.Float64, "reason": pl.String}, orient="row"
        ),
        excluded_weight=float(sum(weight for _, weight, _ in excluded)),
    )


def predicted_variance(exposures: np.ndarray, factor_cov: np.ndarray, specific_var: np.ndarray) -> np.ndarray:
    """Each name's own predicted daily variance ``x_i F x_iᵀ + s_i²`` (n × k exposures, k × k
    factor covariance, n specific variances)."""
    return np.einsum("ik,kl,il->i", exposures, factor_cov, exposures) + specific_var


def _check(confidence: float, horizon_days: int) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if horizon_days < 1:
        raise ValueError(f"horizon_days must be at least 1, got {horizon_days}")


def parametric_var(
    sigma_daily: float, confidence: float, horizon_days: int = 1, mean: float = 0.0
) -> tuple[float, float]:
    """Gaussian ``(VaR, CVaR)`` over ``horizon_days`` as positive loss fractions.

    ``VaR = z·σ√h − μh`` and ``CVaR = σ√h·φ(z)/(1 − c) − μh`` with ``z = Φ⁻¹(c)``, ``σ`` the daily
    volatility and ``μ`` the daily mean return (0 by default: a risk model predicts no drift).
    """
    _check(confidence, horizon_days)
    from scipy.stats import norm

    z = float(norm.ppf(confidence))
    scale = sigma_daily * math.sqrt(horizon_days)
    drift = mean * horizon_days
    return z * scale - drift, scale * float(norm.pdf(z)) / (1.0 - confidence) - drift


def historical_var(returns: np.ndarray, confidence: float, horizon_days: int = 1) -> tuple[float, float]:
    """Empirical ``(VaR, CVaR)`` of realised daily portfolio ``returns`` as positive loss fractions.

    NaN returns are dropped. ``VaR₁ = −np.quantile(r, 1 − c, method="linear")``; ``CVaR₁`` = mean of
    the losses ``−r`` that are ≥ ``VaR₁``. Both are scaled by ``√h`` for an ``h``-day horizon.
    """
    _check(confidence, horizon_days)
    r = np.asarray(returns, dtype=float)
    r = r[~np.isnan(r)]
    if r.size == 0:
        raise ValueError("no realised returns")
    losses = -r
    var = -float(np.quantile(r, 1.0 - confidence, method="linear"))
    cvar = float(losses[losses >= var].mean())
    scale = math.sqrt(horizon_days)
    return var * scale, cvar * scale


def _score(gross: float, sigma: float) -> float:
    """``1 − σ_p / Σ|w_i|σ_i``; NaN when no name carries risk."""
    return 1.0 - sigma / gross if gross > 0 else math.nan


def diversification_score(weights: np.ndarray, cov_total: np.ndarray) -> float:
    """``1 − 1/DR`` with ``DR = Σ_i |w_i| σ_i / σ_p``, ``σ_i = √Σ_ii`` and ``σ_p = √(wᵀΣw)``.

    In [0, 1] (see the module docstring); NaN when no weighted name has any volatility.
    """
    w = np.asarray(weights, dtype=float)
    cov = np.asarray(cov_total, dtype=float)
    sigma_p = math.sqrt(max(float(w @ cov @ w), 0.0))  # clears a −1e-20 from rounding of a perfect hedge
    return _score(float(np.abs(w) @ np.sqrt(np.diag(cov))), sigma_p)


def group_exposure(weights: Mapping[str, float], labels: Mapping[str, str]) -> pl.DataFrame:
    """Weight per label (``label``, ``weight``), largest first, e.g. per sector or per country.

    Names without a label (absent, or a null label such as an uncategorised ETF's) are grouped
    under ``UNCLASSIFIED``, so the weights sum to the book's total weight.
    """
    return (
        pl.DataFrame(
            {
                "label": [labels.get(s) or UNCLASSIFIED for s in weights],
                "weight": [float(v) for v in weights.values()],
            },
            schema={"label": pl.String, "weight": pl.Float64},
        )
        .group_by("label")
        .agg(pl.col("weight").sum())
        .sort(["weight", "label"], descending=[True, False])
    )


def returns_based_exposures(
    asset_returns: np.ndarray, factor_returns: np.ndarray, min_obs: int = 60
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Factor exposures of names from their returns: ``(betas n×k, specific_var n, r2 n)``.

    For each name i, OLS over the days where both its return and all factor returns are known
    (``T_i`` days): ``r_it = a_i + Σ_k β_ik f_kt + e_it``. ``β_i`` are its exposures (in the units
    of the model's factor returns, so ``X F Xᵀ`` uses them like fundamental exposures); the
    specific variance is ``Σ_t e_it² / (T_i − k − 1)``; ``R² = 1 − Σe² / Σ(r − r̄)²``. This is how
    an ETF, which has no book-to-price, is attributed. A name with fewer than ``min_obs`` days
    gets NaN everywhere (never zeros). All names are solved at once from their masked normal
    equations ``(Zᵀ M_i Z) b_i = Zᵀ M_i r_i`` with ``Z = [1, f]`` (a pseudo-inverse, so a factor
    that is constant over a name's days gives the minimum-norm answer instead of an error).
    """
    y = np.asarray(asset_returns, dtype=float)
    f = np.asarray(factor_returns, dtype=float)
    if y.ndim != 2 or f.ndim != 2 or y.shape[0] != f.shape[0]:
        raise ValueError(f"asset_returns {y.shape} and factor_returns {f.shape} must be T×n and T×k")
    k = f.shape[1]
    if min_obs < k + 2:
        raise ValueError(f"min_obs must be at least k + 2 = {k + 2} to leave a residual degree of freedom")
    z = np.column_stack((np.ones(len(f)), f))
    mask = ~np.isnan(y) & ~np.isnan(f).any(axis=1)[:, None]
    m = mask.astype(float)
    z = np.where(np.isnan(z), 0.0, z)
    y0 = np.where(mask, y, 0.0)

    gram = np.einsum("ti,tj,tl->ijl", m, z, z)  # n × (k+1) × (k+1)
    moment = np.einsum("ti,tj->ij", y0, z)  # n × (k+1)
    coef = np.einsum("ijl,il->ij", np.linalg.pinv(gram), moment)
    resid = (y0 - z @ coef.T) * m
    count = m.sum(axis=0)
    enough = count >= min_obs
    dof = np.where(enough, count - k - 1, 1.0)
    sse = (resid**2).sum(axis=0)
    centred = (y0 - y0.sum(axis=0) / np.maximum(count, 1.0)) * m
    sst = (centred**2).sum(axis=0)

    betas = np.where(enough[:, None], coef[:, 1:], np.nan)
    specific = np.where(enough, sse / dof, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(enough & (sst > 0), 1.0 - sse / sst, np.nan)
    return betas, specific, r2

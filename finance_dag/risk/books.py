"""Risk of a book (a set of weights) under the risk model: exposures, attribution, VaR, groups.

Stocks the model covers use their fundamental exposures and specific variances. Any other name
(an ETF has no book-to-price) is given returns-based exposures: the OLS betas of its daily
returns on the model's daily factor returns over the last ``RETURNS_WINDOW`` sessions, and the
variance of that regression's residual as its specific variance
(``attribution.returns_based_exposures``). A name without enough returns is left out of the
attribution with its weight and the reason, never zero-filled.

VaR and CVaR are reported both ways at 95 % and 99 % over 1 and 10 sessions:
- parametric: Gaussian from the model's predicted daily volatility (``z·σ·√h``), where the
  returns-based names' specific risk is their residuals' full (shrunk) covariance, not a diagonal;
- historical: the book's current weights applied to its names' realised daily returns over the
  last ``RETURNS_WINDOW`` sessions (historical simulation), empirical quantile, √h for 10 days.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import polars as pl

from finance_dag.risk.attribution import (
    Attribution,
    attribute,
    group_exposure,
    historical_var,
    parametric_var,
    returns_based_exposures,
)
from finance_dag.risk.model import RiskModel

RETURNS_WINDOW = 252
MIN_RETURNS = 60
CONFIDENCES = (0.95, 0.99)
HORIZONS = (1, 10)
_SOURCES = pl.Schema({"symbol": pl.String, "source": pl.String, "r2": pl.Float64})
VAR_SCHEMA = pl.Schema(
    {
        "method": pl.String,
        "confidence": pl.Float64,
        "horizon_days": pl.Int64,
        "var": pl.Float64,
        "cvar": pl.Float64,
    }
)


@dataclass(frozen=True)
class BookRisk:
    name: str
    attribution: Attribution
    var: pl.DataFrame  # VAR_SCHEMA: loss fractions of the book's value
    sectors: pl.DataFrame  # label, weight
    regions: pl.DataFrame  # label, weight
    sources: pl.DataFrame  # symbol, source ("fundamental" or "returns-based"), r2


def book_exposures(
    model: RiskModel, symbols: list[str], asset_returns: pl.DataFrame, factor_returns: pl.DataFrame
) -> tuple[pl.DataFrame, dict[str, float], pl.DataFrame]:
    """Exposures (``symbol`` + the model's factors), specific variances and each name's source.

    ``asset_returns``: ``date``, ``symbol``, ``ret`` of the names outside the model;
    ``factor_returns``: ``date`` and the model's factors (the regressions' history)."""
    covered = set(model.exposures["symbol"])
    fundamental = [s for s in symbols if s in covered]
    others = [s for s in symbols if s not in covered]
    specific = dict(model.specific.select("symbol", "specific_variance").iter_rows())
    frames, sources = [], []
    if fundamental:
        rows = model.exposure_matrix(fundamental)
        frames.append(
            pl.DataFrame(rows, schema=list(model.factors), orient="row").with_columns(
                symbol=pl.Series(fundamental, dtype=pl.String)
            )
        )
        sources.append(
            pl.DataFrame({"symbol": fundamental, "source": "fundamental", "r2": None}, schema=_SOURCES)
        )
    if others:
        returns, factors = _window(others, asset_returns, factor_returns, model.factors)
        betas, residual, r2 = returns_based_exposures(returns, factors, MIN_RETURNS)
        frames.append(
            pl.DataFrame(betas, schema=list(model.factors), orient="row").with_columns(
                symbol=pl.Series(others, dtype=pl.String)
            )
        )
        specific |= {s: float(v) for s, v in zip(others, residual, strict=True) if np.isfinite(v)}
        sources.append(pl.DataFrame({"symbol": others, "source": "returns-based", "r2": r2}, schema=_SOURCES))
    exposures = pl.concat(frames).select("symbol", *model.factors).fill_nan(None)
    return exposures, specific, pl.concat(sources)


def book_risk(
    name: str,
    weights: Mapping[str, float],
    model: RiskModel,
    asset_returns: pl.DataFrame,
    factor_returns: pl.DataFrame,
    sectors: Mapping[str, str],
    regions: Mapping[str, str],
) -> BookRisk:
    """The risk of ``weights`` (see the module docstring); ``asset_returns`` holds the daily
    returns (``date``, ``symbol``, ``ret``) of every name of the book, for returns-based
    exposures and historical VaR."""
    symbols = sorted(weights)
    exposures, specific, sources = book_exposures(model, symbols, asset_returns, factor_returns)
    others = sources.filter(pl.col("source") == "returns-based")["symbol"].to_list()
    result = attribute(
        weights,
        exposures,
        model.covariance,
        specific,
        residual_covariance(others, exposures, asset_returns, factor_returns, model.factors),
    )
    realised = _book_returns(weights, asset_returns)
    rows = []
    for confidence in CONFIDENCES:
        for horizon in HORIZONS:
            rows.append(
                ("parametric", confidence, horizon, *parametric_var(result.volatility, confidence, horizon))
            )
            rows.append(("historical", confidence, horizon, *historical_var(realised, confidence, horizon)))
    return BookRisk(
        name,
        result,
        pl.DataFrame(rows, schema=VAR_SCHEMA, orient="row"),
        group_exposure(weights, sectors),
        group_exposure(weights, regions),
        sources,
    )


def _window(
    symbols: list[str], asset_returns: pl.DataFrame, factor_returns: pl.DataFrame, factors: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """The names' daily returns (T × m, NaN where missing) and the factor returns (T × k) over the
    last ``RETURNS_WINDOW`` sessions of factor returns."""
    history = factor_returns.sort("date").tail(RETURNS_WINDOW).fill_null(0.0)
    rows = asset_returns.join(history.select("date").with_row_index("t"), on="date").join(
        pl.DataFrame({"symbol": symbols}, schema={"symbol": pl.String}).with_row_index("i"), on="symbol"
    )
    returns = np.full((history.height, len(symbols)), np.nan)  # a pivot to thousands of columns takes seconds
    returns[rows["t"].to_numpy(), rows["i"].to_numpy()] = rows["ret"].cast(pl.Float64).to_numpy()
    return returns, history.select(factors).to_numpy()


def residual_covariance(
    symbols: list[str],
    exposures: pl.DataFrame,
    asset_returns: pl.DataFrame,
    factor_returns: pl.DataFrame,
    factors: tuple[str, ...],
) -> tuple[list[str], np.ndarray] | None:
    """The daily covariance of the returns-based names' residuals ``r − a − βf`` (Ledoit-Wolf
    shrunk, NaN-aware: ``etf.optimize.shrunk_covariance``), so names whose residuals move together
    — ETFs sharing rates, credit or commodity risk the equity factors do not span — are not
    treated as independent. None when fewer than two names have exposures."""
    from finance_dag.etf.optimize import shrunk_covariance

    known = exposures.filter(pl.col("symbol").is_in(symbols)).drop_nulls()
    names = known["symbol"].to_list()
    if len(names) < 2:
        return None
    returns, history = _window(names, asset_returns, factor_returns, factors)
    residuals = returns - history @ known.select(factors).to_numpy().T
    residuals -= np.nanmean(residuals, axis=0)  # the intercept a
    covariance = shrunk_covariance(residuals)
    return (names, covariance / 252.0) if covariance is not None else None


def _book_returns(weights: Mapping[str, float], asset_returns: pl.DataFrame) -> np.ndarray:
    """The book's daily returns over the last ``RETURNS_WINDOW`` sessions at today's weights
    (a name without a return on a day counts 0 that day)."""
    frame = asset_returns.filter(pl.col("symbol").is_in(list(weights)))
    if frame.is_empty():
        return np.array([])
    wide = frame.pivot("symbol", index="date", values="ret").sort("date").tail(RETURNS_WINDOW)
    names = [c for c in wide.columns if c != "date"]
    return np.nan_to_num(wide.select(names).to_numpy().astype(float)) @ np.array([weights[n] for n in names])

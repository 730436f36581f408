"""finance_dag.risk.attribution on hand-checked cases: Euler contributions add up to the predicted
volatility, marginal contributions are the derivative of σ, Gaussian and historical VaR/CVaR, the
diversification score, group exposure and returns-based exposures on synthetic data."""

import math
from statistics import NormalDist

import numpy as np
import polars as pl
import pytest

from finance_dag.risk.attribution import (
    UNCLASSIFIED,
    attribute,
    diversification_score,
    group_exposure,
    historical_var,
    parametric_var,
    returns_based_exposures,
)

# Three names, two factors (daily): factor vols 1 % and 2 %, correlation 0.3.
FACTOR_COV = np.array([[1e-4, 0.3 * 0.01 * 0.02], [0.3 * 0.01 * 0.02, 4e-4]])
EXPOSURES = pl.DataFrame({"symbol": ["A", "B", "C"], "market": [1.2, 0.8, 1.0], "size": [-0.5, 0.4, 1.5]})
SPECIFIC = {"A": 1e-4, "B": 2.25e-4, "C": 4e-4}
WEIGHTS = {"A": 0.5, "B": 0.3, "C": 0.2}


def model_sigma(weights: dict[str, float]) -> float:
    """σ from the full n × n model covariance X F Xᵀ + D, independently of ``attribute``."""
    x = EXPOSURES.select("market", "size").to_numpy()
    cov = x @ FACTOR_COV @ x.T + np.diag([SPECIFIC[s] for s in EXPOSURES["symbol"]])
    w = np.array([weights.get(s, 0.0) for s in EXPOSURES["symbol"]])
    return math.sqrt(w @ cov @ w)


def test_two_assets_one_factor_by_hand():
    exposures = pl.DataFrame({"symbol": ["A", "B"], "market": [1.0, 0.5]})
    result = attribute({"A": 0.5, "B": 0.5}, exposures, np.array([[4e-4]]), {"A": 1e-4, "B": 4e-4})
    # x_p = 0.75; factor var = 0.75² · 4e-4 = 2.25e-4; specific = 0.25 · 1e-4 + 0.25 · 4e-4 = 1.25e-4.
    assert result.exposures == {"market": pytest.approx(0.75, abs=1e-15)}
    assert result.factor_variance == pytest.approx(2.25e-4, rel=1e-12)
    assert result.specific_variance == pytest.approx(1.25e-4, rel=1e-12)
    assert result.volatility == pytest.approx(math.sqrt(3.5e-4), rel=1e-12)
    assert result.volatility_annual == pytest.approx(math.sqrt(3.5e-4 * 252), rel=1e-12)
    assert result.factor_share == pytest.approx(2.25 / 3.5, rel=1e-12)
    assert result.specific_share == pytest.approx(1.25 / 3.5, rel=1e-12)
    sigma = result.volatility
    # MCR_A = (1.0 · 4e-4 · 0.75 + 1e-4 · 0.5)/σ = 3.5e-4/σ; MCR_B = (0.5 · 3e-4 + 4e-4 · 0.5)/σ = 3.5e-4/σ.
    positions = dict(zip(result.positions["symbol"], result.positions["mcr"], strict=True))
    assert positions["A"] == pytest.approx(3.5e-4 / sigma, rel=1e-12)
    assert positions["B"] == pytest.approx(3.5e-4 / sigma, rel=1e-12)
    assert result.factors["contribution"].item() == pytest.approx(2.25e-4 / sigma, rel=1e-12)
    assert result.specific_contribution == pytest.approx(1.25e-4 / sigma, rel=1e-12)
    assert result.positions["contribution"].sum() == pytest.approx(sigma, abs=1e-12)
    assert result.excluded.height == 0 and result.excluded_weight == 0.0


def test_three_assets_contributions_sum_to_sigma():
    result = attribute(WEIGHTS, EXPOSURES, FACTOR_COV, SPECIFIC)
    sigma = result.volatility
    assert sigma == pytest.approx(model_sigma(WEIGHTS), rel=1e-12)
    assert abs(result.factors["contribution"].sum() + result.specific_contribution - sigma) < 1e-12
    assert abs(result.positions["contribution"].sum() - sigma) < 1e-12
    assert result.positions["share"].sum() == pytest.approx(1.0, abs=1e-12)
    assert result.factor_share + result.specific_share == pytest.approx(1.0, abs=1e-12)
    assert result.total_variance == pytest.approx(result.factor_variance + result.specific_variance)
    # x_p = Xᵀw = (0.6 + 0.24 + 0.2, −0.25 + 0.12 + 0.3).
    assert result.exposures["market"] == pytest.approx(1.04, abs=1e-15)
    assert result.exposures["size"] == pytest.approx(0.17, abs=1e-15)
    assert result.positions["contribution"].is_sorted(descending=True)


def test_marginal_contributions_are_the_derivative_of_sigma():
    result = attribute(WEIGHTS, EXPOSURES, FACTOR_COV, SPECIFIC)
    mcr = dict(zip(result.positions["symbol"], result.positions["mcr"], strict=True))
    h = 1e-6
    for symbol in WEIGHTS:
        up = {**WEIGHTS, symbol: WEIGHTS[symbol] + h}
        down = {**WEIGHTS, symbol: WEIGHTS[symbol] - h}
        numeric = (model_sigma(up) - model_sigma(down)) / (2 * h)
        assert mcr[symbol] == pytest.approx(numeric, rel=1e-7)


def test_names_without_exposures_are_excluded_with_their_weight():
    exposures = EXPOSURES.vstack(pl.DataFrame({"symbol": ["D"], "market": [1.1], "size": [None]}))
    weights = {**WEIGHTS, "D": 0.1, "E": 0.05, "F": 0.02}
    specific = {**SPECIFIC, "D": 1e-4, "E": 1e-4}
    exposures = exposures.vstack(pl.DataFrame({"symbol": ["F"], "market": [0.9], "size": [0.1]}))
    result = attribute(weights, exposures, FACTOR_COV, specific)
    assert result.excluded.rows() == [
        ("D", 0.1, "missing exposure: size"),
        ("E", 0.05, "no factor exposures"),
        ("F", 0.02, "no specific variance"),
    ]
    assert result.excluded_weight == pytest.approx(0.17)
    assert sorted(result.positions["symbol"]) == ["A", "B", "C"]
    # The covered names keep their weights: the figures equal the three-name book's.
    assert result.volatility == pytest.approx(attribute(WEIGHTS, EXPOSURES, FACTOR_COV, SPECIFIC).volatility)


def test_empty_book_has_no_risk_and_undefined_ratios():
    result = attribute({"Z": 1.0}, EXPOSURES, FACTOR_COV, SPECIFIC)
    assert result.volatility == 0.0 and result.positions.height == 0
    assert math.isnan(result.factor_share) and math.isnan(result.diversification)
    assert result.excluded_weight == 1.0


def test_mismatched_factor_covariance_is_refused():
    with pytest.raises(ValueError, match="2 factors"):
        attribute(WEIGHTS, EXPOSURES, np.eye(3), SPECIFIC)


def test_attribution_diversification_uses_the_model_covariance():
    result = attribute(WEIGHTS, EXPOSURES, FACTOR_COV, SPECIFIC)
    x = EXPOSURES.select("market", "size").to_numpy()
    cov = x @ FACTOR_COV @ x.T + np.diag(list(SPECIFIC.values()))
    assert result.diversification == pytest.approx(diversification_score(np.array([0.5, 0.3, 0.2]), cov))


@pytest.mark.parametrize(("confidence", "z"), [(0.95, 1.6449), (0.99, 2.3263)])
def test_gaussian_var_is_z_sigma_and_scales_with_root_ten(confidence, z):
    sigma = 0.01
    var1, cvar1 = parametric_var(sigma, confidence, 1)
    var10, cvar10 = parametric_var(sigma, confidence, 10)
    assert var1 == pytest.approx(z * sigma, abs=1e-6)
    assert var10 == pytest.approx(var1 * math.sqrt(10), rel=1e-12)
    assert cvar10 == pytest.approx(cvar1 * math.sqrt(10), rel=1e-12)
    # CVaR = σ·φ(z)/(1 − c) with the exact z from the standard library's normal distribution.
    exact = NormalDist().inv_cdf(confidence)
    assert cvar1 == pytest.approx(sigma * NormalDist().pdf(exact) / (1 - confidence), rel=1e-12)
    assert cvar1 > var1


def test_gaussian_var_with_a_mean():
    var, cvar = parametric_var(0.01, 0.95, 10, mean=0.001)
    assert var == pytest.approx(1.6448536 * 0.01 * math.sqrt(10) - 0.01, abs=1e-8)
    assert cvar == pytest.approx(parametric_var(0.01, 0.95, 10)[1] - 0.01, rel=1e-12)


def test_var_refuses_bad_confidence_or_horizon():
    with pytest.raises(ValueError, match="confidence"):
        parametric_var(0.01, 95, 1)
    with pytest.raises(ValueError, match="horizon"):
        historical_var(np.array([0.01]), 0.95, 0)
    with pytest.raises(ValueError, match="no realised returns"):
        historical_var(np.array([np.nan]), 0.95, 1)


# 20 daily returns in %, worst −5, −3, −2, −1.5, then milder; one NaN (a missing day) is dropped.
HAND = np.array(
    [
        0.5,
        -1.5,
        1.0,
        -5.0,
        0.2,
        0.3,
        -0.4,
        2.0,
        -3.0,
        0.1,
        0.6,
        -0.2,
        1.2,
        -2.0,
        0.4,
        0.0,
        0.9,
        -0.6,
        0.7,
        -0.8,
    ]
)


def test_historical_var_is_the_hand_quantile():
    returns = np.append(HAND, np.nan) / 100
    # 95 %: position (20 − 1) · 0.05 = 0.95 between −5 and −3: −5 + 0.95 · 2 = −3.1 → VaR 3.1 %;
    # the only loss at or beyond 3.1 % is 5 %.
    var, cvar = historical_var(returns, 0.95, 1)
    assert var == pytest.approx(0.031, abs=1e-15)
    assert cvar == pytest.approx(0.05, abs=1e-15)
    # 90 %: position 1.9 between −3 and −2: −3 + 0.9 · 1 = −2.1 → VaR 2.1 %; CVaR mean(5, 3) = 4 %.
    var, cvar = historical_var(returns, 0.90, 1)
    assert var == pytest.approx(0.021, abs=1e-15)
    assert cvar == pytest.approx(0.04, abs=1e-15)
    var10, cvar10 = historical_var(returns, 0.90, 10)
    assert var10 == pytest.approx(0.021 * math.sqrt(10), rel=1e-12)
    assert cvar10 == pytest.approx(0.04 * math.sqrt(10), rel=1e-12)
    assert cvar10 > var10


def test_diversification_score_bounds():
    assert diversification_score(np.array([1.0]), np.array([[4e-4]])) == 0.0
    perfectly_correlated = np.full((2, 2), 1e-4)
    assert diversification_score(np.array([0.5, 0.5]), perfectly_correlated) == pytest.approx(0.0, abs=1e-15)
    uncorrelated = np.eye(2) * 1e-4
    assert diversification_score(np.array([0.5, 0.5]), uncorrelated) == pytest.approx(1 - 1 / math.sqrt(2))
    correlated = np.array([[1e-4, 0.5e-4], [0.5e-4, 1e-4]])
    assert 0 < diversification_score(np.array([0.5, 0.5]), correlated) < 1 - 1 / math.sqrt(2)
    assert diversification_score(np.full(4, 0.25), np.eye(4) * 1e-4) == pytest.approx(0.5)
    assert diversification_score(np.array([0.5, -0.5]), perfectly_correlated) == 1.0  # a perfect hedge
    assert math.isnan(diversification_score(np.array([0.0]), np.array([[1e-4]])))


def test_group_exposure_sums_to_the_total_weight():
    weights = {"A": 0.3, "B": 0.2, "C": 0.4, "D": 0.05}
    sectors = {"A": "Technology", "B": "Technology", "C": "Energy"}
    table = group_exposure(weights, sectors)
    assert table.columns == ["label", "weight"]
    assert table.rows() == [("Technology", pytest.approx(0.5)), ("Energy", 0.4), (UNCLASSIFIED, 0.05)]
    assert table["weight"].sum() == pytest.approx(sum(weights.values()))
    countries = group_exposure(weights, {"A": "US", "B": "JP", "C": "US", "D": "DE"})
    assert countries.rows() == [("US", pytest.approx(0.7)), ("JP", 0.2), ("DE", 0.05)]


def test_returns_based_exposures_recover_known_betas():
    rng = np.random.default_rng(7)
    days, k = 750, 3
    factors = rng.normal(0.0, [0.01, 0.008, 0.008], (days, k))
    betas = np.array([[1.0, 0.0, 0.0], [0.8, -0.5, 0.3], [1.2, 0.7, -0.4], [0.3, 0.2, 1.0], [0.9, 0.1, 0.1]])
    noise_vol = np.array([0.001, 0.0015, 0.0012, 0.001, 0.002])  # index-like ETFs: R² well above 0.9
    returns = 0.0002 + factors @ betas.T + rng.normal(0.0, noise_vol, (days, 5))
    returns[:250, 3] = np.nan  # listed a year later
    returns[: days - 40, 4] = np.nan  # 40 days only: below min_obs
    factors[10, 1] = np.nan  # a day without a factor return drops out for every name
    estimated, specific, r2 = returns_based_exposures(returns, factors, min_obs=60)
    assert estimated.shape == (5, 3) and specific.shape == (5,) and r2.shape == (5,)
    np.testing.assert_allclose(estimated[:4], betas[:4], atol=0.02)
    np.testing.assert_allclose(specific[:4], noise_vol[:4] ** 2, rtol=0.15)
    assert np.all((r2[:4] > 0.9) & (r2[:4] < 1))
    assert np.isnan(estimated[4]).all() and math.isnan(specific[4]) and math.isnan(r2[4])
    # Same numbers as a per-name least squares on that name's own days.
    for i in range(4):
        keep = ~np.isnan(returns[:, i]) & ~np.isnan(factors).any(axis=1)
        z = np.column_stack((np.ones(keep.sum()), factors[keep]))
        coef, sse, *_ = np.linalg.lstsq(z, returns[keep, i], rcond=None)
        np.testing.assert_allclose(estimated[i], coef[1:], rtol=1e-8, atol=1e-10)
        assert specific[i] == pytest.approx(sse[0] / (keep.sum() - k - 1), rel=1e-8)
        centred = returns[keep, i] - returns[keep, i].mean()
        assert r2[i] == pytest.approx(1 - sse[0] / (centred @ centred), rel=1e-8)


def test_returns_based_exposures_refuse_too_few_observations_for_the_factors():
    with pytest.raises(ValueError, match="min_obs"):
        returns_based_exposures(np.zeros((100, 2)), np.zeros((100, 6)), min_obs=7)

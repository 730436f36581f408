"""finance_dag.analytics overfitting measures: probabilistic and deflated Sharpe ratio (Bailey & López
de Prado 2012, 2014) and the probability of backtest overfitting by CSCV (Bailey, Borwein, López de
Prado & Zhu 2017)."""

import math

import numpy as np
import polars as pl
import pytest
from scipy import stats

from finance_dag.analytics import (
    deflated_sharpe_ratio,
    expected_maximum_sharpe,
    probabilistic_sharpe_ratio,
    probability_of_backtest_overfitting,
)

GAMMA = 0.5772156649015329


def _psr_by_formula(sr: float, sr_star: float, t: int, skew: float, kurt: float) -> float:
    z = (sr - sr_star) * math.sqrt(t - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2)
    return float(stats.norm.cdf(z))


def _sr0_by_formula(n: int, variance: float) -> float:
    inv = stats.norm.ppf
    return math.sqrt(variance) * ((1 - GAMMA) * inv(1 - 1 / n) + GAMMA * inv(1 - 1 / (n * math.e)))


def test_psr_hand_checked():
    # daily SR 0.1 (annual ~1.59) over 500 days, negatively skewed and fat-tailed returns
    assert probabilistic_sharpe_ratio(0.1, 500, -1.0, 6.0) == pytest.approx(
        _psr_by_formula(0.1, 0.0, 500, -1.0, 6.0), abs=1e-12
    )
    assert probabilistic_sharpe_ratio(0.05, 252, 0.5, 3.0, benchmark_sharpe=0.02) == pytest.approx(
        _psr_by_formula(0.05, 0.02, 252, 0.5, 3.0), abs=1e-12
    )
    # normal returns, SR = SR*: a coin flip; worse tails lower the confidence in a positive SR
    assert probabilistic_sharpe_ratio(0.07, 300, 0.0, 3.0, benchmark_sharpe=0.07) == pytest.approx(0.5)
    assert probabilistic_sharpe_ratio(0.1, 500, -2.0, 12.0) < probabilistic_sharpe_ratio(0.1, 500, 0.0, 3.0)


def test_psr_matches_its_sampling_distribution():
    """PSR(0) of normal returns is Φ(SR · sqrt(T-1) / sqrt(1 + SR²/2)): the textbook case."""
    sr, t = 0.08, 1000
    expected = stats.norm.cdf(sr * math.sqrt(t - 1) / math.sqrt(1 + sr**2 / 2))
    assert probabilistic_sharpe_ratio(sr, t, 0.0, 3.0) == pytest.approx(expected, abs=1e-12)


def test_expected_maximum_sharpe_hand_checked():
    for n, v in [(2, 0.001), (10, 0.002), (100, 0.5 / 250), (1000, 0.01)]:
        assert expected_maximum_sharpe(n, v) == pytest.approx(_sr0_by_formula(n, v), rel=1e-12)
    assert expected_maximum_sharpe(1, 0.01) == 0.0
    assert expected_maximum_sharpe(50, 0.0) == 0.0


def test_dsr_hand_checked_and_the_papers_example():
    sr, n, t, skew, kurt, var = 2.5 / math.sqrt(250), 100, 1250, -3.0, 10.0, 0.5 / 250
    expected = _psr_by_formula(sr, _sr0_by_formula(n, var), t, skew, kurt)
    assert deflated_sharpe_ratio(sr, n, t, skew, kurt, var) == pytest.approx(expected, abs=1e-12)
    # Bailey & López de Prado (2014), numerical example: DSR = 0.9004
    assert deflated_sharpe_ratio(sr, n, t, skew, kurt, var) == pytest.approx(0.9004, abs=1e-4)
    # a single trial is not deflated
    assert deflated_sharpe_ratio(sr, 1, t, skew, kurt, var) == probabilistic_sharpe_ratio(sr, t, skew, kurt)


def test_dsr_falls_with_more_trials_and_more_dispersion():
    trials = [1, 2, 5, 10, 100, 1000, 10_000]
    dsr = [deflated_sharpe_ratio(0.1, n, 1000, 0.0, 3.0, 0.001) for n in trials]
    assert all(a > b for a, b in zip(dsr, dsr[1:], strict=False))
    variances = [0.0001, 0.001, 0.01]
    by_variance = [deflated_sharpe_ratio(0.1, 50, 1000, 0.0, 3.0, v) for v in variances]
    assert all(a > b for a, b in zip(by_variance, by_variance[1:], strict=False))


def test_sharpe_input_validation():
    with pytest.raises(ValueError, match="n_obs must be ≥ 2"):
        probabilistic_sharpe_ratio(0.1, 1, 0.0, 3.0)
    with pytest.raises(ValueError, match="Pearson"):
        probabilistic_sharpe_ratio(0.1, 100, 0.0, 0.0)  # an excess kurtosis of 0 passed by mistake
    with pytest.raises(ValueError, match="annualised instead of per period"):
        probabilistic_sharpe_ratio(2.5, 100, 3.0, 3.0)
    with pytest.raises(ValueError, match="must be finite"):
        probabilistic_sharpe_ratio(float("nan"), 100, 0.0, 3.0)
    with pytest.raises(ValueError, match="n_trials must be ≥ 1"):
        deflated_sharpe_ratio(0.1, 0, 100, 0.0, 3.0, 0.01)
    with pytest.raises(ValueError, match="sharpe_variance_across_trials must be finite and ≥ 0"):
        deflated_sharpe_ratio(0.1, 10, 100, 0.0, 3.0, -0.01)


# ---- probability of backtest overfitting -------------------------------------------------------
def test_pbo_pure_noise_is_about_one_half():
    """20 configurations of i.i.d. returns (random-walk prices): the in-sample winner is a random
    pick out of sample, so its rank is below the median about half the time."""
    noise = np.random.default_rng(7).normal(0.0, 0.01, size=(1000, 20))
    assert probability_of_backtest_overfitting(noise) > 0.3
    pbos = [
        probability_of_backtest_overfitting(np.random.default_rng(seed).normal(0.0, 0.01, size=(500, 20)))
        for seed in range(30)
    ]
    assert 0.4 < np.mean(pbos) < 0.6


def test_pbo_near_zero_with_a_persistent_edge():
    returns = np.random.default_rng(3).normal(0.0, 0.01, size=(1000, 20))
    returns[:, 5] += 0.003  # a daily Sharpe of 0.3 (annual ~4.8) in every period
    assert probability_of_backtest_overfitting(returns) == 0.0
    assert probability_of_backtest_overfitting(pl.DataFrame(returns), n_splits=4) == 0.0


def test_pbo_hand_built_reversal_is_one():
    """Two configurations, two blocks: A wins block 1 and loses block 2, B the reverse. Each split
    selects the in-sample winner, which is last (rank 1 of 2, logit ln(1/2) < 0) out of sample."""
    up, down = [0.02, 0.01, 0.03, 0.02], [-0.01, -0.02, 0.0, -0.01]
    a = np.array(up + down)
    b = np.array(down + up)
    assert probability_of_backtest_overfitting(np.column_stack([a, b]), n_splits=2) == 1.0
    # and when A wins both blocks it is always picked and always first out of sample
    assert probability_of_backtest_overfitting(np.column_stack([a + 0.05, b]), n_splits=2) == 0.0


def test_pbo_constant_configuration_does_not_break_ranking():
    returns = np.random.default_rng(1).normal(0.0, 0.01, size=(200, 5))
    returns[:, 0] = 0.0  # a configuration that never trades
    assert 0.0 <= probability_of_backtest_overfitting(returns) <= 1.0


def test_pbo_input_validation():
    good = np.zeros((32, 3))
    with pytest.raises(ValueError, match=r"M ≥ 2 configurations, got shape \(32, 1\)"):
        probability_of_backtest_overfitting(good[:, :1])
    with pytest.raises(ValueError, match=r"got shape \(32,\)"):
        probability_of_backtest_overfitting(good[:, 0])
    with pytest.raises(ValueError, match="missing or infinite"):
        probability_of_backtest_overfitting(np.where(np.eye(32, 3) > 0, np.nan, 0.0))
    with pytest.raises(ValueError, match="n_splits must be even and ≥ 2, got 7"):
        probability_of_backtest_overfitting(good, n_splits=7)
    with pytest.raises(ValueError, match="15 periods are too few for 8 blocks"):
        probability_of_backtest_overfitting(good[:15])

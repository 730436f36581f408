"""finance_dag.etf.optimize: selection, the three weightings, the covariance from gappy windows and
the fallbacks, which always say what they did."""

import time

import cvxpy as cp
import numpy as np
import pytest

from finance_dag.etf.optimize import optimize, shrunk_covariance

LOW, HIGH = 0.03, 0.075


def candidates(n: int, seed: int = 0, window: int = 252) -> tuple[dict[str, float], np.ndarray]:
    """n scored candidates with one-factor daily returns (betas 0.2–1.2) and a few gaps."""
    rng = np.random.default_rng(seed)
    market = rng.normal(0.0, 0.01, window)
    returns = rng.uniform(0.2, 1.2, n) * market[:, None] + rng.normal(0.0, 0.006, (window, n))
    returns[: window // 2, 3] = np.nan  # listed half-way through the window
    scores = {f"E{j:03d}": float(s) for j, s in enumerate(rng.normal(size=n))}
    return scores, returns


def orthogonal(n: int, vols: np.ndarray, window: int = 252) -> np.ndarray:
    """Returns with zero sample correlation and exactly the daily volatilities ``vols``."""
    raw = np.random.default_rng(3).normal(size=(window, n))
    q, _ = np.linalg.qr(raw - raw.mean(axis=0))  # centred, orthonormal columns
    return q * np.sqrt(window) * vols


def assert_valid(allocation, low: float = LOW, high: float = HIGH) -> np.ndarray:
    w = np.array(list(allocation.weights.values()))
    assert w.sum() == pytest.approx(1.0, abs=1e-9)
    assert (w >= low - 1e-7).all() and (w <= high + 1e-7).all(), w
    assert allocation.hhi == pytest.approx(w @ w)
    return w


@pytest.mark.parametrize("method", ["mvo", "minvar", "rankbased"])
def test_weights_sum_to_one_within_bounds_for_the_top_scores(method):
    scores, returns = candidates(80)
    allocation = optimize(scores, returns, method)
    assert_valid(allocation)
    assert (allocation.method, allocation.fallback) == (method, None)
    assert list(allocation.weights) == sorted(scores, key=scores.get, reverse=True)[:30]
    assert 0.0 < allocation.expected_volatility < 0.5


def test_mvo_prefers_higher_scores_at_equal_risk():
    # identical return columns: every portfolio has the same risk, so only the score counts
    n = 30
    returns = np.repeat(np.random.default_rng(1).normal(0, 0.01, (252, 1)), n, axis=1)
    scores = {f"E{j:02d}": float(n - j) for j in range(n)}  # E00 best
    w = assert_valid(optimize(scores, returns))
    assert (np.diff(w) <= 1e-7).all() and w[0] == pytest.approx(HIGH) and w[-1] == pytest.approx(LOW)


def test_mvo_prefers_lower_risk_at_equal_score():
    n = 30
    vols = np.linspace(0.004, 0.02, n)  # E00 least volatile
    scores = dict.fromkeys((f"E{j:02d}" for j in range(n)), 1.0)
    allocation = optimize(scores, orthogonal(n, vols))
    w = np.array([allocation.weights[f"E{j:02d}"] for j in range(n)])
    assert_valid(allocation)
    assert (np.diff(w) <= 1e-7).all() and w[0] > 0.05 and w[-1] == pytest.approx(LOW)


def test_rankbased_weights_are_proportional_to_rank_between_the_bounds():
    scores, returns = candidates(30, seed=2)
    allocation = optimize(scores, returns, "rankbased")
    w = assert_valid(allocation)  # best score first
    rank = np.arange(30, 0, -1)
    free = (w > LOW + 1e-12) & (w < HIGH - 1e-12)
    assert free.sum() > 2
    ratio = w[free] / rank[free]
    np.testing.assert_allclose(ratio, ratio[0])
    assert (np.diff(w) <= 1e-12).all()


@pytest.mark.parametrize(
    ("n", "n_positions", "why"),
    [
        (10, 30, "10 candidates cannot be weighted within 3.0%–7.5%"),
        (40, 40, "the bounds allow 120.0%–300.0%"),
    ],
)
def test_infeasible_bounds_fall_back_to_equal_weights_and_say_so(n, n_positions, why):
    scores, returns = candidates(n)
    allocation = optimize(scores, returns, n_positions=n_positions)
    assert allocation.method == "equal" and why in allocation.fallback
    assert f"equal weights of {1 / n:.2%}" in allocation.fallback
    assert list(allocation.weights.values()) == pytest.approx([1 / n] * n)


@pytest.mark.parametrize("method", ["mvo", "minvar"])
def test_a_singular_or_gappy_window_still_gives_a_valid_allocation(method):
    scores, _ = candidates(30)
    rng = np.random.default_rng(4)
    returns = rng.normal(0, 0.01, (5, 30))  # fewer days than names: singular sample covariance
    returns[:, 1] = returns[:, 0]  # a duplicate
    returns[:, 2] = 0.0  # a flat line
    returns[:, 3] = np.nan  # no history at all
    returns[:4, 4] = np.nan  # one return only
    allocation = optimize(scores, returns, method)
    assert_valid(allocation)
    assert (allocation.method, allocation.fallback) == (method, None)
    assert np.isfinite(allocation.expected_volatility)


def test_no_return_history_falls_back_to_rankbased_and_says_so():
    scores, returns = candidates(30)
    allocation = optimize(scores, np.full_like(returns, np.nan), "minvar")
    assert_valid(allocation)
    assert allocation.method == "rankbased" and "minvar replaced by rankbased" in allocation.fallback
    assert np.isnan(allocation.expected_volatility)


def test_a_solver_failure_falls_back_to_rankbased_and_says_so(monkeypatch):
    def fail(*args, **kwargs):
        raise cp.error.SolverError("numerical trouble")

    monkeypatch.setattr(cp.Problem, "solve", fail)
    scores, returns = candidates(40)
    allocation = optimize(scores, returns)
    assert allocation.method == "rankbased" and "mvo solver found no solution" in allocation.fallback
    assert allocation.weights == optimize(scores, returns, "rankbased").weights


def test_nan_scores_are_not_candidates_and_ties_go_to_the_first_symbol():
    scores, returns = candidates(40)
    scores["E000"] = float("nan")
    scores["E001"] = scores["E002"] = 99.0
    allocation = optimize(scores, returns, "rankbased", n_positions=15)
    assert "E000" not in allocation.weights and list(allocation.weights)[:2] == ["E001", "E002"]


def test_shrunk_covariance_keeps_a_short_history_s_own_variance():
    rng = np.random.default_rng(5)
    returns = rng.normal(0, 0.01, (252, 4))
    returns[:200, 0] = np.nan
    sigma = shrunk_covariance(returns)
    observed = returns[200:, 0]
    # Ledoit-Wolf shrinks each variance toward the average one, so compare against both ends
    own = observed.var() * 252
    average = np.mean(np.var(returns[:, 1:], axis=0)) * 252
    assert min(own, average) - 1e-12 <= sigma[0, 0] <= max(own, average) + 1e-12
    np.testing.assert_allclose(sigma, sigma.T)
    assert np.linalg.eigvalsh(sigma).min() > 0


def test_thirty_names_solve_in_tens_of_milliseconds():
    scores, returns = candidates(200)
    optimize(scores, returns)  # the first call pays cvxpy's imports
    started = time.perf_counter()
    optimize(scores, returns)
    assert time.perf_counter() - started < 0.5  # ~30 ms measured

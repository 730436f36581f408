"""finance_dag.strategies.walkforward: windows, the hand computation of a path's net returns, parameter
choice from training data only, and no manufactured edge on pure-noise bars."""

from functools import partial

import numpy as np
import polars as pl
import pytest

from finance_dag.backtest.costs import CostModel
from finance_dag.backtest.vectorised import intraday_path, weights_returns
from finance_dag.core import calendar
from finance_dag.market_data.bars import ny_date
from finance_dag.strategies import STRATEGIES, Bars
from finance_dag.strategies.walkforward import position_weights, walk_forward, walk_forward_intraday, windows
from tests.strategies.test_signals import SESSIONS, bars_of, cointegrated_closes, minute_frame


def random_walk(n_sessions: int, n_symbols: int, seed: int) -> Bars:
    """Geometric random walks (1 % daily σ, no drift): no rule has an edge on them."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, (n_sessions, n_symbols)), axis=0))
    volume = rng.uniform(1e5, 1e6, close.shape)
    dates = np.datetime64("2020-01-01") + np.arange(n_sessions)
    return Bars(dates, tuple(f"S{j}" for j in range(n_symbols)), close, close, close, volume)


@pytest.mark.parametrize(
    ("n", "train", "test", "step"), [(100, 30, 20, None), (101, 30, 7, None), (90, 40, 15, 10)]
)
def test_windows_never_test_on_training_sessions_and_run_in_order(n, train, test, step):
    splits = windows(n, train, test, step)
    for fit, scored in splits:
        assert fit.stop - fit.start == train and fit.stop == scored.start < scored.stop <= n
    starts = [fit.start for fit, _ in splits]
    assert starts == sorted(starts) and starts[0] == 0 and splits[-1][1].stop == n
    if step is None:  # test slices tile [train, n)
        covered = np.concatenate([np.arange(n)[scored] for _, scored in splits])
        assert covered.tolist() == list(range(train, n))


def test_windows_reject_nothing_to_test():
    with pytest.raises(ValueError, match="nothing to test"):
        windows(30, 30, 5)


def test_weights_returns_by_hand_with_costs():
    positions = np.array([[1.0, -1.0], [0.5, 0.0], [0.0, 0.0]])
    returns = np.array([[np.nan, np.nan], [0.02, -0.04], [0.10, np.nan]])
    costs = np.array([0.001, 0.0005, 0.0002])
    # weights p / 2: session 1 earns 0.5·0.02 + (-0.5)·(-0.04) = 0.03; session 2 earns 0.25·0.10 = 0.025
    expected = np.array([-0.001, 0.03 - 0.0005, 0.025 - 0.0002])
    weights = position_weights(positions)
    np.testing.assert_allclose(weights_returns(weights, returns, costs), expected, rtol=0, atol=1e-15)
    np.testing.assert_allclose(weights_returns(weights, returns), expected + costs, rtol=0, atol=1e-15)


def test_walk_forward_stitches_the_chosen_paths_test_returns_net_of_costs():
    bars = random_walk(300, 6, seed=3)
    model = CostModel()
    cost = partial(
        model.weight_costs,
        prices=bars.close,
        adv=np.full(bars.close.shape, 1e6),
        volatility=np.full(bars.close.shape, 0.01),
        capital=1e6,
    )
    strategy = STRATEGIES["volume_weighted_momentum"]
    result = walk_forward(strategy, bars, train=100, test=50, cost=cost)
    symbol_returns = np.vstack([np.full(6, np.nan), bars.close[1:] / bars.close[:-1] - 1.0])
    for (_, scored), params in zip(result.windows, result.chosen, strict=True):
        positions = strategy(bars, **params)
        net = weights_returns(position_weights(positions), symbol_returns, cost(position_weights(positions)))
        np.testing.assert_array_equal(result.returns[scored.start - 100 : scored.stop - 100], net[scored])
    assert result.n_trials == len(strategy.grid()) and result.dates[0] == bars.dates[100]
    assert result.returns.size == 200 and 0.0 <= result.pbo <= 1.0


def test_choice_ignores_data_after_the_training_window():
    bars = random_walk(400, 8, seed=7)
    strategy = STRATEGIES["cross_sectional_momentum"]
    base = walk_forward(strategy, bars, train=120, test=40)
    assert len({tuple(c.items()) for c in base.chosen}) > 1  # the choice does vary across windows
    rng = np.random.default_rng(1)
    for k, (fit, _) in enumerate(base.windows):
        close = bars.close.copy()
        close[fit.stop :] *= rng.uniform(0.5, 1.5, close[fit.stop :].shape)
        perturbed = Bars(bars.dates, bars.symbols, close, close, close, bars.volume)
        assert walk_forward(strategy, perturbed, train=120, test=40).chosen[: k + 1] == base.chosen[: k + 1]


def test_no_edge_is_manufactured_on_noise():
    """30 symbols × 1,000 sessions of pure noise, 10 seeds: the cross-sectional momentum search's
    out-of-sample annualised Sharpe ratio (748 sessions, standard error ≈ sqrt(252 / 748) ≈ 0.58) is
    within 3 standard errors of 0 on every seed, and its mean over the seeds (standard error ≈ 0.18)
    within ±0.6. A single seed's |Sharpe| < 1.0 is not a safe bound (seed 7 gives -1.02); over seeds
    0-19 the largest |Sharpe| was 1.02 and the mean over 0-9 -0.04."""
    sharpes = []
    for seed in range(10):
        result = walk_forward(STRATEGIES["cross_sectional_momentum"], random_walk(1000, 30, seed), 252, 63)
        assert result.n_trials == 9 and result.returns.size == 748
        sharpes.append(result.out_of_sample["sharpe"])
    assert np.max(np.abs(sharpes)) < 3 * np.sqrt(252 / 748)
    assert abs(np.mean(sharpes)) < 0.6


def test_pair_is_fitted_again_on_each_training_window_and_traded_after_it():
    bars = bars_of(cointegrated_closes(460))
    strategy = STRATEGIES["pair_stat_arb"]
    result = walk_forward(strategy, bars, train=200, test=130)
    symbol_returns = np.vstack([np.full(3, np.nan), bars.close[1:] / bars.close[:-1] - 1.0])
    for (fit, scored), params in zip(result.windows, result.chosen, strict=True):
        in_sample = strategy(bars, train=fit, in_sample=True, **params)
        assert np.abs(in_sample[fit]).sum() > 0  # the training window is traded, in sample
        np.testing.assert_array_equal(in_sample[fit.stop :], strategy(bars, train=fit, **params)[fit.stop :])
        net = weights_returns(position_weights(in_sample), symbol_returns)
        np.testing.assert_array_equal(result.returns[scored.start - 200 : scored.stop - 200], net[scored])


def intraday_minutes(n_sessions: int, symbols: int, seed: int) -> dict[str, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    out = {}
    for j in range(symbols):
        frames = []
        for day in SESSIONS[:n_sessions]:
            closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, calendar.expected_minutes(day))))
            frames.append(minute_frame(day, closes, closes * 1.0005, closes * 0.9995))
        out[f"S{j}"] = pl.concat(frames)
    return out


def test_intraday_costs_reduce_each_session_by_exactly_the_spread_on_its_turnover():
    minutes = intraday_minutes(12, 2, seed=5)
    spread_only = CostModel(
        commission_per_share=0, min_commission=0, half_spread_bps=10, impact_coefficient=0
    )
    grid = [{"range_minutes": 30}]
    strategy = STRATEGIES["opening_range_breakout"]
    free = walk_forward_intraday(strategy, minutes, train=6, test=3, grid=grid)
    paid = walk_forward_intraday(strategy, minutes, train=6, test=3, costs=spread_only, grid=grid)
    assert free.turnover.sum() > 0 and free.returns.size == 6
    np.testing.assert_allclose(free.returns - paid.returns, 1e-3 * free.turnover, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(paid.costs, 1e-3 * free.turnover, rtol=1e-9)
    # a session's return is the mean of the symbols' intraday returns: flat overnight
    per_symbol = []
    for frame in minutes.values():
        session = frame.select(ny_date()).to_series().to_numpy()
        per_symbol.append(intraday_path(session, frame["close"].to_numpy(), strategy(frame, **grid[0])).gross)
    np.testing.assert_allclose(free.returns, np.mean(per_symbol, axis=0)[6:], rtol=1e-12)

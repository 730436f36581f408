"""finance_dag.backtest.vectorised: the engine's vectorised mode by hand (daily weights with shorts,
turnover, intraday paths flat overnight)."""

import numpy as np
import pytest

from finance_dag.backtest.vectorised import intraday_path, turnover, weights_returns


def test_turnover_counts_the_first_row_from_cash_and_shorts_like_longs():
    weights = np.array([[0.5, -0.5], [0.5, 0.25], [np.nan, 0.0]])
    np.testing.assert_allclose(turnover(weights), [1.0, 0.75, 0.75])


def test_weights_returns_rejects_mismatched_shapes_and_bad_costs():
    with pytest.raises(ValueError, match="must be the same T×N"):
        weights_returns(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="costs must be 3 finite values"):
        weights_returns(np.zeros((3, 2)), np.zeros((3, 2)), np.array([0.0, np.nan, 0.0]))


def test_intraday_path_by_hand_is_flat_overnight_and_closes_out():
    session = np.array(["2024-01-02"] * 3 + ["2024-01-03"] * 2, dtype="datetime64[D]")
    close = np.array([100.0, 101.0, 99.0, 50.0, 55.0])
    position = np.array([1.0, 1.0, 0.0, -1.0, -1.0])
    path = intraday_path(session, close, position)
    assert path.sessions.tolist() == sorted(set(session.tolist()))
    # day 1: long 100 → 101 (+1 %), long 101 → 99, then flat; day 2: short 50 → 55 (-10 %), the
    # overnight move 99 → 50 is never earned
    np.testing.assert_allclose(path.gross, [0.01 + (99 / 101 - 1), -0.1], rtol=1e-12)
    # orders: buy 1, sell 1 (and a zero close-out); short 1, cover 1 at the last bar
    np.testing.assert_allclose(path.traded, [1.0, 0.0, 1.0, 1.0, 1.0])
    np.testing.assert_allclose(path.turnover, [2.0, 2.0])
    assert path.session_index.tolist() == [0, 0, 0, 1, 1]


def test_intraday_path_rejects_rows_out_of_order():
    with pytest.raises(ValueError, match="time order"):
        intraday_path(np.array([2, 1]), np.ones(2), np.zeros(2))

"""finance_dag.strategies.research by hand: the daily panel, which symbols are testable and why,
grids from run config, costs of a sale over a missing close, the equal-risk combination and the
rolling Sharpe ratio."""

from datetime import date

import numpy as np
import polars as pl
import pytest

from finance_dag.backtest.costs import CostModel
from finance_dag.strategies import STRATEGIES, Bars
from finance_dag.strategies.research import (
    bars_from_daily,
    daily_cost,
    equal_risk_combination,
    grid_with,
    rolling_sharpe,
    usable_symbols,
)

D1, D2, D3 = date(2024, 1, 2), date(2024, 1, 3), date(2024, 1, 4)


def daily_rows(rows: list[tuple[str, date, float]]) -> pl.DataFrame:
    symbol, day, close = zip(*rows, strict=True)
    return pl.DataFrame(
        {
            "symbol": symbol,
            "date": day,
            "high": close,
            "low": close,
            "close": close,
            "volume": [1e6] * len(rows),
        }
    )


def test_bars_from_daily_lays_symbols_on_the_common_sessions():
    bars = bars_from_daily(daily_rows([("B", D1, 10.0), ("A", D2, 5.0), ("B", D3, 11.0), ("A", D1, 4.0)]))
    assert bars.symbols == ("A", "B") and bars.dates.tolist() == [D1, D2, D3]
    np.testing.assert_array_equal(bars.close, [[4.0, 10.0], [5.0, np.nan], [np.nan, 11.0]])


def test_bars_from_daily_rejects_duplicates_and_missing_columns():
    with pytest.raises(ValueError, match="duplicate"):
        bars_from_daily(daily_rows([("A", D1, 1.0), ("A", D1, 2.0)]))
    with pytest.raises(ValueError, match=r"lack column\(s\) \['volume'\]"):
        bars_from_daily(daily_rows([("A", D1, 1.0)]).drop("volume"))


def test_usable_symbols_give_each_skipped_symbol_its_reason():
    bars = bars_from_daily(
        daily_rows([("A", D1, 1.0), ("A", D2, 1.0), ("B", D1, 1.0), ("C", D1, 2.0), ("C", D2, 2.0)])
    )
    kept, skipped = usable_symbols(bars, ready=["A", "B", "Z"], min_sessions=2)
    assert kept == ["A"]
    assert skipped == {
        "B": "1 sessions of daily bars, needs 2 (train + test)",
        "C": "not ready for research in the coverage report",
        "Z": "ready in the coverage report but no daily bars in the window",
    }


def test_grid_with_replaces_the_declared_values_and_checks_them():
    strategy = STRATEGIES["bollinger_reversal"]
    assert grid_with(strategy, {}) == strategy.grid()
    assert grid_with(strategy, {"window": [30]}) == [{"window": 30, "k": k} for k in (1.5, 2.0, 2.5)]
    with pytest.raises(ValueError, match=r"k=9.0 is outside \[0.5, 4.0\]"):
        grid_with(strategy, {"k": [2.0, 9.0]})
    with pytest.raises(ValueError, match="unknown parameter 'span'"):
        grid_with(strategy, {"span": [3]})
    with pytest.raises(ValueError, match="no values"):
        grid_with(strategy, {"k": []})


def test_a_sale_on_a_session_without_a_close_is_priced_at_the_last_close():
    close = np.array([[100.0], [100.0], [np.nan], [100.0]])
    bars = Bars(
        np.array([D1, D2, D3, date(2024, 1, 5)], dtype="datetime64[D]"),
        ("A",),
        close,
        close,
        close,
        np.full((4, 1), 1e6),
    )
    per_share = CostModel(
        commission_per_share=0.01, min_commission=0.0, half_spread_bps=0.0, impact_coefficient=0.0
    )
    weights = np.array([[0.5], [0.5], [0.0], [0.0]])  # bought on D1, flat on D3 (no close)
    # 0.5 × $1,000,000 / $100 = 5,000 shares at $0.01 each: $50 = 5e-5 of capital, both times
    np.testing.assert_allclose(daily_cost(bars, per_share, 1e6)(weights), [5e-5, 0.0, 5e-5, 0.0], rtol=1e-12)


def test_equal_risk_combination_by_hand():
    returns = pl.DataFrame(
        {
            "date": [D1, D2, D3, date(2024, 1, 5)],
            "a": [0.01, -0.01, 0.02, 0.0],
            "b": [0.02, 0.02, -0.02, 0.04],
        }
    )
    combined = equal_risk_combination(returns, window=2)
    # session 3: σ_a of (0.01, -0.01) > 0, σ_b of (0.02, 0.02) = 0 → all in a; session 4:
    # σ_a = std(-0.01, 0.02) = 0.021213, σ_b = std(0.02, -0.02) = 0.028284 → 1/σ weights 4/7, 3/7
    np.testing.assert_allclose(combined["weight_a"], [0, 0, 1, 4 / 7], rtol=1e-9)
    np.testing.assert_allclose(combined["weight_b"], [0, 0, 0, 3 / 7], rtol=1e-9)
    np.testing.assert_allclose(combined["return"], [0, 0, 0.02, 3 / 7 * 0.04], rtol=1e-9)


def test_rolling_sharpe_by_hand():
    sharpe = rolling_sharpe(np.array([0.01, 0.02, 0.03, 0.0]), window=3)
    assert np.isnan(sharpe[:2]).all()
    np.testing.assert_allclose(
        sharpe[2:],
        [0.02 / 0.01 * np.sqrt(252), (0.05 / 3) / np.std([0.02, 0.03, 0.0], ddof=1) * np.sqrt(252)],
    )
    assert np.isnan(rolling_sharpe(np.zeros(5), window=3)[2:]).all()  # no spread, no ratio

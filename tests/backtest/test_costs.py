"""finance_dag.backtest.costs: commission (with its minimum and cap), half-spread and square-root
impact on hand-built trade lists, and the same model applied to a daily weights path.

Hand-computed orders with the defaults (0.005/share, $1 minimum, 1 % cap, 2 bp half-spread, Y = 0.1):

    shares   price  adv        σ     value    commission          spread   impact
    +100     50     1,000,000  0.02  5,000    max(1, 0.5) = 1     1.0      0.1·0.02·sqrt(1e-4)·5,000 = 0.1
    -10,000  20     250,000    0.03  200,000  50                  40.0     0.1·0.03·sqrt(0.04)·200,000 = 120
    +10      5      1,000      0.05  50       min(1, 0.5) = 0.5   0.01     0.1·0.05·sqrt(0.01)·50 = 0.025
    0        (NaN)  (NaN)      (NaN) 0        0                   0        0
"""

from datetime import date

import numpy as np
import polars as pl
import pytest

from finance_dag.backtest.costs import DEFAULT_COSTS, CostModel

D0, D1 = date(2024, 1, 2), date(2024, 1, 3)


def _trades(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={
            "date": pl.Date,
            "symbol": pl.String,
            "shares": pl.Float64,
            "price": pl.Float64,
            "adv": pl.Float64,
            "volatility": pl.Float64,
        },
        orient="row",
    )


HAND = _trades(
    [
        (D0, "AAA", 100, 50.0, 1_000_000, 0.02),
        (D0, "BBB", -10_000, 20.0, 250_000, 0.03),
        (D1, "CCC", 10, 5.0, 1_000, 0.05),
        (D1, "DDD", 0, None, None, None),
    ]
)


def test_trade_costs_hand_computed():
    out = DEFAULT_COSTS.trade_costs(HAND)
    assert out.columns == [*HAND.columns, "commission", "spread_cost", "impact_cost", "total_cost"]
    np.testing.assert_allclose(out["commission"], [1.0, 50.0, 0.5, 0.0], rtol=1e-12)
    np.testing.assert_allclose(out["spread_cost"], [1.0, 40.0, 0.01, 0.0], rtol=1e-12)
    np.testing.assert_allclose(out["impact_cost"], [0.1, 120.0, 0.025, 0.0], rtol=1e-12)
    np.testing.assert_allclose(out["total_cost"], [2.1, 210.0, 0.535, 0.0], rtol=1e-12)


def test_commission_minimum_and_cap():
    model = CostModel(half_spread_bps=0.0, impact_coefficient=0.0)
    trades = _trades(
        [
            (D0, "A", 1, 100.0, 1e6, 0.02),  # 0.005 < $1 minimum
            (D0, "B", 1_000, 25.0, 1e6, 0.02),  # 5.00 per share rate
            (D0, "C", 1_000, 0.25, 1e6, 0.02),  # 5.00 capped at 1 % of $250 (IB's example)
        ]
    )
    np.testing.assert_allclose(model.trade_costs(trades)["total_cost"], [1.0, 5.0, 2.5], rtol=1e-12)


def test_costs_reduce_returns_by_exactly_the_costs():
    """Buy 100 AAA at 50 on d0 with $10,000 cash, sell them at 55 on d1: the net P&L is the gross
    P&L (500) minus the costs of both orders computed by hand."""
    trades = _trades([(D0, "AAA", 100, 50.0, 1_000_000, 0.02), (D1, "AAA", -100, 55.0, 1_000_000, 0.02)])
    out = DEFAULT_COSTS.trade_costs(trades)
    buy = 1.0 + 5_000 * 2e-4 + 0.1 * 0.02 * 0.01 * 5_000  # 1 + 1 + 0.1
    sell = 1.0 + 5_500 * 2e-4 + 0.1 * 0.02 * 0.01 * 5_500  # 1 + 1.1 + 0.11
    gross = float((-out["shares"] * out["price"]).sum())
    net = gross - float(out["total_cost"].sum())
    assert gross == pytest.approx(500.0)
    assert net == pytest.approx(500.0 - buy - sell, abs=1e-12)
    assert net / 10_000 == pytest.approx(0.05 - 4.31 / 10_000, abs=1e-15)


def test_impact_grows_with_volume_as_power_one_and_a_half():
    sizes = np.array([100.0, 200.0, 400.0, 1_600.0, 10_000.0])
    trades = _trades([(D0, "A", q, 40.0, 500_000, 0.025) for q in sizes])
    impact = DEFAULT_COSTS.trade_costs(trades)["impact_cost"].to_numpy()
    np.testing.assert_allclose(impact, 0.1 * 0.025 * np.sqrt(sizes / 500_000) * sizes * 40.0, rtol=1e-12)
    per_share = impact / sizes
    assert (np.diff(per_share) > 0).all()  # convex: each extra share costs more
    assert impact[1] == pytest.approx(2 * np.sqrt(2) * impact[0])
    assert impact[3] == pytest.approx(64 * impact[0])  # 16× the size, 16^1.5


def test_zero_trades_cost_zero():
    trades = _trades([(D0, "A", 0, 10.0, 1e6, 0.02), (D0, "B", 0, None, 0.0, -1.0)])
    out = DEFAULT_COSTS.trade_costs(trades)
    assert out.select("commission", "spread_cost", "impact_cost", "total_cost").to_numpy().tolist() == [
        [0.0] * 4,
        [0.0] * 4,
    ]
    empty = DEFAULT_COSTS.trade_costs(trades.clear())
    assert empty.height == 0 and "total_cost" in empty.columns


def test_short_costs_the_same_as_long():
    long = DEFAULT_COSTS.trade_costs(HAND)
    short = DEFAULT_COSTS.trade_costs(HAND.with_columns(-pl.col("shares")))
    for column in ("commission", "spread_cost", "impact_cost", "total_cost"):
        np.testing.assert_array_equal(long[column], short[column])


def test_trade_costs_validation():
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['adv', 'volatility'\]"):
        DEFAULT_COSTS.trade_costs(HAND.drop("adv", "volatility"))
    with pytest.raises(ValueError, match="shares must not be null"):
        DEFAULT_COSTS.trade_costs(HAND.with_columns(pl.lit(None, pl.Float64).alias("shares")))
    bad = _trades([(D0, "OK", 10, 10.0, 1e5, 0.02), (D1, "NOADV", 10, 10.0, 0.0, 0.02)])
    with pytest.raises(ValueError, match=r"1 traded row\(s\).*NOADV"):
        DEFAULT_COSTS.trade_costs(bad)
    with pytest.raises(ValueError, match="NOPX"):
        DEFAULT_COSTS.trade_costs(_trades([(D0, "NOPX", -5, None, 1e5, 0.02)]))
    with pytest.raises(ValueError, match=r"\['min_commission'\] must be finite and non-negative"):
        CostModel(min_commission=-1.0)


# ---- weights path ------------------------------------------------------------------------------
CAPITAL = 1_000_000.0
W = np.array([[0.5, 0.5], [0.5, 0.5], [0.7, 0.3], [0.0, -0.3]])
PRICES = np.array([[100.0, 50.0], [101.0, 49.0], [102.0, 48.0], [103.0, 47.0]])
ADV = np.full((4, 2), 2_000_000.0)
SIGMA = np.array([[0.02, 0.01]] * 4)


def _hand_weight_cost(dw: float, price: float, adv: float, sigma: float) -> float:
    """One order of |dw| of capital, from the formulas (currency)."""
    if dw == 0:
        return 0.0
    shares = abs(dw) * CAPITAL / price
    commission = min(max(1.0, 0.005 * shares), 0.01 * shares * price)
    return commission + 2e-4 * abs(dw) * CAPITAL + 0.1 * sigma * np.sqrt(shares / adv) * abs(dw) * CAPITAL


def test_weight_costs_hand_computed():
    cost = DEFAULT_COSTS.weight_costs(W, PRICES, ADV, SIGMA, CAPITAL)
    # the first row is bought from cash; row 1 repeats row 0 (no order, no minimum commission)
    dw = [[0.5, 0.5], [0.0, 0.0], [0.2, -0.2], [-0.7, -0.6]]
    expected = [
        sum(_hand_weight_cost(d, PRICES[t, j], ADV[t, j], SIGMA[t, j]) for j, d in enumerate(row)) / CAPITAL
        for t, row in enumerate(dw)
    ]
    np.testing.assert_allclose(cost, expected, rtol=1e-12)
    assert cost[1] == 0.0
    # spot check of row 0, symbol 0: 5,000 shares, commission 25, spread 100, impact 0.1·0.02·0.05·500,000
    assert _hand_weight_cost(0.5, 100.0, 2e6, 0.02) == pytest.approx(25.0 + 100.0 + 50.0)


def test_weight_costs_net_return_is_gross_minus_cost():
    returns = np.vstack([np.full(2, np.nan), PRICES[1:] / PRICES[:-1] - 1.0])
    gross = np.r_[0.0, (W[:-1] * returns[1:]).sum(axis=1)]
    cost = DEFAULT_COSTS.weight_costs(W, PRICES, ADV, SIGMA, CAPITAL)
    net = gross - cost
    free = CostModel(0.0, 0.0, 0.0, 0.0, 0.0).weight_costs(W, PRICES, ADV, SIGMA, CAPITAL)
    np.testing.assert_array_equal(free, 0.0)
    np.testing.assert_allclose(gross - net, cost, rtol=0, atol=1e-18)
    assert (net[[0, 2, 3]] < gross[[0, 2, 3]]).all() and net[1] == gross[1]


def test_weight_costs_match_trade_costs():
    """The weights path is priced exactly like the equivalent trade list."""
    cost = DEFAULT_COSTS.weight_costs(W, PRICES, ADV, SIGMA, CAPITAL)
    dw = np.diff(W, axis=0, prepend=0.0)
    t, j = np.nonzero(dw)
    trades = pl.DataFrame(
        {
            "date": t,
            "symbol": j,
            "shares": dw[t, j] * CAPITAL / PRICES[t, j],
            "price": PRICES[t, j],
            "adv": ADV[t, j],
            "volatility": SIGMA[t, j],
        }
    )
    per_day = DEFAULT_COSTS.trade_costs(trades).group_by("date").agg(pl.col("total_cost").sum()).sort("date")
    expected = np.zeros(len(W))
    expected[per_day["date"].to_numpy()] = per_day["total_cost"].to_numpy() / CAPITAL
    np.testing.assert_allclose(cost, expected, rtol=1e-12)


def test_weight_costs_short_path_costs_the_same_and_capital_per_session():
    long = DEFAULT_COSTS.weight_costs(W, PRICES, ADV, SIGMA, CAPITAL)
    short = DEFAULT_COSTS.weight_costs(-W, PRICES, ADV, SIGMA, CAPITAL)
    np.testing.assert_array_equal(long, short)
    equity = np.array([1e6, 1.1e6, 0.9e6, 1e6])
    varying = DEFAULT_COSTS.weight_costs(W, PRICES, ADV, SIGMA, equity)
    for t in range(len(W)):
        single = DEFAULT_COSTS.weight_costs(
            W[: t + 1], PRICES[: t + 1], ADV[: t + 1], SIGMA[: t + 1], equity[t]
        )
        assert varying[t] == pytest.approx(single[t], rel=1e-12)


def test_weight_costs_ignore_missing_inputs_without_an_order():
    prices = PRICES.copy()
    prices[1, 0] = np.nan  # no order on row 1
    weights = W.copy()
    weights[3, 1] = np.nan  # NaN weight = no position
    cost = DEFAULT_COSTS.weight_costs(weights, prices, ADV, SIGMA, CAPITAL)
    assert cost[1] == 0.0
    expected3 = (
        _hand_weight_cost(-0.7, 103.0, 2e6, 0.02) + _hand_weight_cost(-0.3, 47.0, 2e6, 0.01)
    ) / CAPITAL
    assert cost[3] == pytest.approx(expected3, rel=1e-12)


def test_weight_costs_validation():
    with pytest.raises(ValueError, match="weights must be T×N"):
        DEFAULT_COSTS.weight_costs(W[0], PRICES[0], ADV[0], SIGMA[0], CAPITAL)
    with pytest.raises(ValueError, match=r"adv has shape \(3, 2\), the orders \(4, 2\)"):
        DEFAULT_COSTS.weight_costs(W, PRICES, ADV[:3], SIGMA, CAPITAL)
    with pytest.raises(ValueError, match="capital must be finite and positive"):
        DEFAULT_COSTS.weight_costs(W, PRICES, ADV, SIGMA, 0.0)
    prices = PRICES.copy()
    prices[2, 1] = np.nan  # an order on (2, 1) without a price
    with pytest.raises(ValueError, match=r"1 order\(s\).*\[\(2, 1\)\]"):
        DEFAULT_COSTS.weight_costs(W, prices, ADV, SIGMA, CAPITAL)

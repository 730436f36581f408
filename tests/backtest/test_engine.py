"""finance_dag.backtest.engine: the walk-forward engine on hand-built panels.

Hand cases use a few symbols on the first XNYS sessions of 2024 with $1M (unless said) and the
seed's rules: 12 % stop below the average entry close, 5-point drift band, $0.005/share with a $1
minimum, 5 bp slippage, market-on-close fills in whole shares.
"""

import time
from datetime import date

import numpy as np
import polars as pl
import pytest

from finance_dag.analytics import performance_summary
from finance_dag.backtest import BacktestConfig, Panel, rebalance_dates, walk_forward
from finance_dag.core import calendar

SESSIONS = calendar.sessions(date(2024, 1, 2), date(2024, 3, 28))


def hand_panel(**columns: list[float]) -> Panel:
    """Symbols as keyword arguments, their closes on the first sessions of 2024."""
    n = len(next(iter(columns.values())))
    return Panel(
        np.array(SESSIONS[:n], dtype="datetime64[D]"), tuple(columns), np.array(list(columns.values())).T
    )


def fixed(weights: dict[str, float]):
    return lambda t, panel: weights


def random_panel(seed: int, n_sessions: int = 260, n_symbols: int = 6) -> Panel:
    """Volatile random walks (3 % a day) so stops and drift rebalances happen; one symbol lists late."""
    rng = np.random.default_rng(seed)
    days = calendar.sessions(date(2022, 1, 3), date(2023, 12, 29))[:n_sessions]
    prices = 40 * np.exp(np.cumsum(rng.normal(0.0005, 0.03, (n_sessions, n_symbols)), axis=0))
    prices[:60, -1] = np.nan
    return Panel(np.array(days, dtype="datetime64[D]"), tuple(f"S{j}" for j in range(n_symbols)), prices)


def momentum(t: date, panel: Panel) -> dict[str, float]:
    """Trailing 20-session momentum, the best two at 45 % each: a decision that reads the panel."""
    assert panel.dates[-1] == np.datetime64(t, "D")
    if panel.dates.size < 21:
        return {}
    change = panel.prices[-1] / panel.prices[-21] - 1.0
    best = np.argsort(np.where(np.isnan(change), -np.inf, change))[::-1][:2]
    return {panel.symbols[j]: 0.45 for j in best if np.isfinite(change[j])}


# ---- Panel ----------------------------------------------------------------------------------------
def test_panel_from_long_upto_and_returns():
    d = SESSIONS
    frame = pl.DataFrame(
        {
            "date": [d[0], d[1], d[2], d[0], d[2], d[3]],
            "symbol": ["B", "B", "B", "A", "A", "A"],
            "price": [10.0, 11.0, 0.0, 20.0, 22.0, None],
        }
    )
    panel = Panel.from_long(frame)
    assert panel.symbols == ("A", "B")
    assert panel.dates.tolist() == d[:4]
    np.testing.assert_array_equal(panel.prices, [[20, 10], [np.nan, 11], [22, np.nan], [np.nan, np.nan]])
    np.testing.assert_allclose(panel.returns(), [[np.nan] * 2, [np.nan, 0.1], [np.nan] * 2, [np.nan] * 2])
    cut = panel.upto(d[1])
    assert cut.dates.tolist() == d[:2] and np.shares_memory(cut.prices, panel.prices)
    assert panel.upto(date(2023, 12, 29)).prices.shape == (0, 2)
    with pytest.raises(ValueError):
        cut.prices[0, 0] = 1.0  # read-only: decide cannot alter what the engine trades on
    with pytest.raises(ValueError, match="duplicate"):
        Panel.from_long(pl.concat([frame, frame]))


# ---- rebalance calendar ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("start", "end", "frequency", "expected"),
    [
        (date(2020, 1, 2), date(2024, 12, 31), "quarterly", 20),
        (date(2023, 1, 1), date(2023, 12, 31), "monthly", 12),
        (date(2023, 1, 1), date(2023, 12, 31), "bimonthly", 6),
        (date(2020, 1, 15), date(2020, 12, 31), "quarterly", 3),
    ],
)
def test_rebalance_count_equals_the_calendars_period_starts(start, end, frequency, expected):
    sessions = calendar.sessions(start, end)
    assert len(rebalance_dates(sessions, start, end, frequency)) == expected


def test_rebalance_dates_are_the_first_sessions_of_each_period():
    sessions = calendar.sessions(date(2023, 1, 1), date(2023, 12, 31))
    got = rebalance_dates(sessions, date(2023, 1, 1), date(2023, 12, 31), "bimonthly")
    assert got == [date(2023, 1, 3), date(2023, 3, 1), date(2023, 5, 1), date(2023, 7, 3), date(2023, 9, 1),
                   date(2023, 11, 1)]  # fmt: skip
    # sessions that begin mid-quarter do not make their first day a period start
    late = calendar.sessions(date(2020, 1, 15), date(2020, 7, 31))
    got = rebalance_dates(late, date(2020, 1, 1), date(2020, 7, 31), "quarterly")
    assert got == [date(2020, 4, 1), date(2020, 7, 1)]
    # a period start missing from the sessions moves to the next session of the same period
    gap = [d for d in sessions if d != date(2023, 3, 1)]
    assert rebalance_dates(gap, date(2023, 1, 1), date(2023, 12, 31), "bimonthly")[1] == date(2023, 3, 2)


def test_five_years_quarterly_makes_20_rebalances_not_2():
    days = calendar.sessions(date(2020, 1, 2), date(2024, 12, 31))
    panel = Panel(np.array(days, dtype="datetime64[D]"), ("A",), np.full((len(days), 1), 100.0))
    result = walk_forward(panel, rebalance_dates(days, days[0], days[-1], "quarterly"), fixed({"A": 0.5}))
    assert result.metrics["rebalances"] == 20 and result.metrics["initial_allocations"] == 0
    assert result.weights["rebalance_date"].n_unique() == 20


def test_a_start_that_is_not_a_period_start_is_the_initial_allocation():
    days = calendar.sessions(date(2020, 1, 15), date(2020, 12, 31))
    panel = Panel(np.array(days, dtype="datetime64[D]"), ("A",), np.linspace(100, 130, len(days))[:, None])
    schedule = rebalance_dates(days, days[0], days[-1], "quarterly")
    result = walk_forward(panel, schedule, fixed({"A": 0.5}), start=date(2020, 1, 15))
    assert result.metrics["rebalances"] == 3 and result.metrics["initial_allocations"] == 1
    assert result.trades.row(0, named=True)["reason"] == "initial"
    assert result.equity["date"][0] == date(2020, 1, 15)
    assert result.weights["reason"].to_list() == ["initial", "rebalance", "rebalance", "rebalance"]


# ---- costs ----------------------------------------------------------------------------------------
def test_costs_reduce_equity_by_exactly_commission_plus_slippage():
    panel = hand_panel(A=[100.0, 100.0], B=[50.0, 50.0])
    result = walk_forward(panel, [SESSIONS[0]], fixed({"A": 0.5}))
    # 5,000 shares at 100 × 1.0005 = 100.05: slippage 5,000 × 0.05 = 250, commission 5,000 × 0.005 = 25
    trade = result.trades.row(0, named=True)
    assert trade == {"date": SESSIONS[0], "symbol": "A", "side": "buy", "shares": 5000, "price": 100.05,
                     "value": 500_250.0, "commission": 25.0, "slippage_cost": 250.0, "reason": "rebalance"}  # fmt: skip
    assert result.equity["equity"].to_list() == [1_000_000 - 275.0] * 2
    assert result.equity["invested"][0] == 500_000.0
    assert result.metrics["costs_paid"] == 275.0


def test_a_fully_invested_small_book_trims_its_buy_and_pays_the_minimum_commission():
    panel = hand_panel(A=[100.0])
    result = walk_forward(panel, [SESSIONS[0]], fixed({"A": 1.0}), BacktestConfig(initial_capital=10_000))
    # 100 shares would cost 10,005 + $1: one share fewer, 99 × 100.05 + 1 = 9,905.95
    assert result.trades["shares"].to_list() == [99] and result.trades["commission"].to_list() == [1.0]
    assert result.equity.row(0, named=True)["cash"] == pytest.approx(10_000 - 9_905.95, abs=1e-9)
    assert result.equity["equity"][0] == pytest.approx(10_000 - 1.0 - 99 * 0.05, abs=1e-9)


# ---- stop-loss ------------------------------------------------------------------------------------
def test_the_stop_triggers_on_the_close_12_percent_below_entry_and_not_at_11_9():
    a = [100.0, 95.0, 88.1, 90.0, 88.0, 87.0, 90.0, 92.0]
    panel = hand_panel(A=a, B=[50.0] * len(a))
    result = walk_forward(panel, [SESSIONS[0], SESSIONS[6]], fixed({"A": 0.45, "B": 0.45}))
    assert result.stops.to_dicts() == [{"date": SESSIONS[4], "symbol": "A", "shares": 4500, "price": 88.0,
                                        "entry_price": 100.0, "loss_pct": pytest.approx(0.12)}]  # fmt: skip
    stop = result.trades.filter(pl.col("reason") == "stop_loss").row(0, named=True)
    assert (stop["date"], stop["side"], stop["shares"], stop["price"]) == (
        SESSIONS[4],
        "sell",
        4500,
        88.0 * 0.9995,
    )
    # the cash waits: no trade until the next scheduled rebalance, which buys A back
    later = result.trades.filter(pl.col("date") > SESSIONS[4])
    assert later["date"].unique().to_list() == [SESSIONS[6]] and later["reason"].unique().to_list() == [
        "rebalance"
    ]
    cash = result.equity["cash"].to_list()
    assert cash[4] == cash[5] > cash[3]
    assert result.metrics["stop_losses"] == 1 and result.metrics["drift_rebalances"] == 0
    assert result.metrics["trade_win_rate"] == 0.0  # one closed round trip, a loss
    unstopped = walk_forward(
        panel, [SESSIONS[0]], fixed({"A": 0.45, "B": 0.45}), BacktestConfig(stop_loss=None)
    )
    assert unstopped.stops.is_empty() and unstopped.trades["reason"].to_list() == ["rebalance"] * 2


def test_the_entry_price_is_the_average_close_of_the_buys():
    # bought 4,500 at 100, topped up at 80 on the next rebalance to 90 % of the book: the stop is
    # 12 % below the share-weighted average, not below either close
    a = [100.0, 80.0, 80.0, 75.0, 74.0, 70.0]
    panel = hand_panel(A=a)
    result = walk_forward(
        panel, [SESSIONS[0], SESSIONS[1]], fixed({"A": 0.9}), BacktestConfig(drift_band=None)
    )
    buys = result.trades.filter(pl.col("side") == "buy")
    average = (buys["shares"] * pl.Series([100.0, 80.0])).sum() / buys["shares"].sum()
    stop = result.stops.row(0, named=True)
    assert stop["entry_price"] == pytest.approx(average)
    assert stop["date"] == SESSIONS[int(np.argmax(np.array(a[2:]) <= average * 0.88)) + 2]


# ---- drift ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("top", "drifts"), [(130.0, 1), (118.0, 0)])
def test_a_weight_more_than_5_points_off_target_trades_the_book_back(top, drifts):
    # 45 % A, 45 % B, 10 % cash: A's weight is 45g / (45g + 55) for a gain g, > 50 % once g > 1.22
    a = [100.0, 105.0, 110.0, top, top, top]
    panel = hand_panel(A=a, B=[50.0] * len(a))
    result = walk_forward(panel, [SESSIONS[0]], fixed({"A": 0.45, "B": 0.45}))
    assert result.metrics["drift_rebalances"] == drifts and result.metrics["rebalances"] == 1
    drift = result.trades.filter(pl.col("reason") == "drift")
    assert drift.height == 2 * drifts
    if drifts:
        assert drift["date"].unique().to_list() == [SESSIONS[3]]
        assert dict(zip(drift["symbol"], drift["side"], strict=True)) == {"A": "sell", "B": "buy"}
        signed = pl.when(pl.col("side") == "buy").then(pl.col("shares")).otherwise(-pl.col("shares"))
        held = result.trades.filter(pl.col("symbol") == "A").select(signed.sum()).item()
        assert held * top / result.equity["equity"][3] == pytest.approx(0.45, abs=1e-3)  # back on target


# ---- walk-forward: no look-ahead --------------------------------------------------------------------
def prefix(result, t: date) -> tuple[pl.DataFrame, ...]:
    return (
        result.weights.filter(pl.col("rebalance_date") <= t),
        result.trades.filter(pl.col("date") <= t),
        result.stops.filter(pl.col("date") <= t),
        result.equity.filter(pl.col("date") <= t),
    )


@pytest.mark.parametrize("seed", range(4))
def test_changing_or_extending_prices_after_t_changes_nothing_up_to_t(seed):
    panel = random_panel(seed)
    days = panel.dates.tolist()
    schedule = rebalance_dates(days, days[0], days[-1], "monthly")
    full = walk_forward(panel, schedule, momentum)
    assert (
        full.metrics["stop_losses"] + full.metrics["drift_rebalances"] > 0
    )  # off-cycle events are exercised
    rng = np.random.default_rng(seed)
    for cut in rng.choice(np.arange(30, len(days) - 10), size=3, replace=False):
        t = days[cut]
        shocked = panel.prices.copy()
        shocked[cut + 1 :] *= rng.uniform(0.5, 1.5, shocked[cut + 1 :].shape)
        for other in (
            walk_forward(Panel(panel.dates, panel.symbols, shocked), schedule, momentum),
            walk_forward(panel.upto(t), schedule, momentum),  # history ends at t
        ):
            for before, after in zip(prefix(full, t), prefix(other, t), strict=True):
                assert before.equals(after), t


def test_decide_sees_only_the_data_up_to_its_date():
    panel = random_panel(0)
    days = panel.dates.tolist()
    seen = []

    def spy(t: date, view: Panel) -> dict[str, float]:
        seen.append((t, view.dates.max().item(), view.prices.shape[0], view.prices.flags.writeable))
        return momentum(t, view)

    schedule = rebalance_dates(days, days[0], days[-1], "monthly")
    walk_forward(panel, schedule, spy)
    assert [t for t, *_ in seen] == schedule
    assert all(last == t and rows == days.index(t) + 1 and not writeable for t, last, rows, writeable in seen)


def test_metrics_are_the_performance_summary_of_the_equity_returns():
    panel = random_panel(1)
    days = panel.dates.tolist()
    result = walk_forward(panel, rebalance_dates(days, days[0], days[-1], "monthly"), momentum)
    curve = np.concatenate(([1_000_000.0], result.equity["equity"].to_numpy()))
    expected = performance_summary(curve[1:] / curve[:-1] - 1.0)
    assert {k: result.metrics[k] for k in expected} == expected
    assert result.metrics["max_drawdown"] == pytest.approx(result.equity["drawdown"].min())
    assert result.metrics["costs_paid"] == pytest.approx(
        result.trades["commission"].sum() + result.trades["slippage_cost"].sum()
    )
    # equity is cash plus positions: the trades' cash flows reproduce the final cash
    flows = result.trades.select(
        pl.when(pl.col("side") == "buy").then(-pl.col("value")).otherwise(pl.col("value"))
        - pl.col("commission")
    )
    assert result.equity["cash"][-1] == pytest.approx(1_000_000 + flows.to_series().sum())


def test_bad_decisions_and_dates_are_refused():
    panel = hand_panel(A=[100.0, np.nan], B=[50.0, 50.0])
    with pytest.raises(ValueError, match="not in the panel"):
        walk_forward(panel, [SESSIONS[0]], fixed({"Z": 0.5}))
    with pytest.raises(ValueError, match="summing to ≤ 1"):
        walk_forward(panel, [SESSIONS[0]], fixed({"A": 0.6, "B": 0.6}))
    with pytest.raises(ValueError, match="without a close"):
        walk_forward(panel, [SESSIONS[1]], fixed({"A": 0.5}))
    with pytest.raises(ValueError, match="not sessions"):
        walk_forward(panel, [date(2024, 1, 1)], fixed({}))


def test_the_engine_runs_2000_symbols_over_5_years_in_well_under_a_second():
    days = calendar.sessions(date(2020, 1, 2), date(2024, 12, 31))
    rng = np.random.default_rng(0)
    prices = 50 * np.exp(np.cumsum(rng.normal(0.0003, 0.012, (len(days), 2000)), axis=0))
    panel = Panel(np.array(days, dtype="datetime64[D]"), tuple(f"S{j}" for j in range(2000)), prices)
    schedule = rebalance_dates(days, days[0], days[-1], "quarterly")
    picks = {f"S{j}": 1 / 30 for j in range(0, 2000, 67)}
    started = time.perf_counter()
    result = walk_forward(panel, schedule, fixed(picks))
    assert time.perf_counter() - started < 1.0  # ~0.06 s measured on the 2-core project machine
    assert result.equity.height == len(days) and result.metrics["rebalances"] == 20

"""The ETF rule (scores, then the optimiser) inside the walk-forward engine: weights within bounds,
excluded products never held, no look-ahead, and one rebalance per calendar period start."""

from datetime import date

import numpy as np
import polars as pl
import pytest

from finance_dag.backtest.engine import Panel, rebalance_dates, walk_forward
from finance_dag.core import calendar
from finance_dag.etf import strategy
from finance_dag.etf.scores import MIN_HISTORY

RULES = strategy.Rules(n_positions=10, min_weight=0.05, max_weight=0.15)
SYMBOLS = tuple(f"E{j:02d}" for j in range(60))
LEVERAGED = {s: "leveraged/inverse" for s in SYMBOLS[:5]}


def random_walks(seed: int, first: date, last: date) -> Panel:
    """60 geometric random walks; the first five (the "leveraged" ones) trend up fast with low noise,
    so the rule would buy them if it could; one symbol lists late, one has a gap."""
    days = calendar.sessions(first, last)
    rng = np.random.default_rng(seed)
    drift = rng.normal(0.0003, 0.0004, len(SYMBOLS))
    drift[:5] = 0.004
    vol = rng.uniform(0.006, 0.02, len(SYMBOLS))
    vol[:5] = 0.004
    prices = 40 * np.exp(np.cumsum(drift + vol * rng.standard_normal((len(days), len(SYMBOLS))), axis=0))
    prices[:400, -1] = np.nan
    prices[300:310, -2] = np.nan
    return Panel(np.array(days, dtype="datetime64[D]"), SYMBOLS, prices)


def ratios() -> dict[str, float | None]:
    return {s: (None if j % 3 == 0 else 0.0003 + 0.0001 * (j % 17)) for j, s in enumerate(SYMBOLS)}


def test_decide_weights_sum_to_1_within_bounds_and_never_hold_excluded_products():
    panel = random_walks(1, date(2021, 1, 4), date(2023, 12, 29))
    free = strategy.decide(panel, ratios(), {}, RULES).allocation.weights
    assert set(SYMBOLS[:5]) <= set(free)  # the trending products win when allowed
    for rules in (RULES, strategy.Rules()):
        decision = strategy.decide(panel, ratios(), LEVERAGED, rules)
        weights = decision.allocation.weights
        assert sum(weights.values()) == pytest.approx(1.0, abs=1e-9)
        assert len(weights) == rules.n_positions
        assert all(rules.min_weight - 1e-9 <= w <= rules.max_weight + 1e-9 for w in weights.values())
        assert not set(weights) & set(LEVERAGED)
        table = decision.scores.table
        best = table.filter(pl.col("status") == "scored").head(rules.n_positions)["symbol"]
        assert set(weights) == set(best)
        assert (
            table.filter(pl.col("symbol").is_in(list(LEVERAGED)))["reason"].to_list()
            == ["leveraged/inverse"] * 5
        )


def test_decide_uses_only_the_last_session_of_the_panel_it_is_given():
    panel = random_walks(2, date(2021, 1, 4), date(2023, 12, 29))
    t = panel.dates[600].item()
    cut = strategy.decide(panel.upto(t), ratios(), LEVERAGED, RULES)
    changed = panel.prices.copy()
    changed[601:] *= np.random.default_rng(0).uniform(0.5, 1.5, changed[601:].shape)
    again = strategy.decide(Panel(panel.dates, SYMBOLS, changed).upto(t), ratios(), LEVERAGED, RULES)
    assert again.allocation.weights == cut.allocation.weights
    assert again.scores.table.equals(cut.scores.table)


def run(panel: Panel, start: date, frequency: str = "monthly"):
    dates = rebalance_dates(panel.dates, start, panel.dates[-1].item(), frequency)
    return walk_forward(panel, dates, strategy.decider(ratios(), LEVERAGED, RULES), start=start)


def test_no_look_ahead_perturbing_and_extending_prices_after_t_changes_nothing_up_to_t():
    panel = random_walks(3, date(2021, 1, 4), date(2023, 12, 29))  # 753 sessions
    base = Panel(panel.dates[:700], SYMBOLS, panel.prices[:700])
    start = base.dates[MIN_HISTORY + 10].item()
    before = run(base, start)
    decided = before.weights["rebalance_date"].unique().sort().to_list()
    assert len(decided) >= 18
    t = decided[len(decided) // 2]
    k = int(np.searchsorted(panel.dates, np.datetime64(t, "D"), side="right"))
    changed = panel.prices.copy()  # 40 more sessions, and every price after t moved
    changed[k:] *= np.random.default_rng(9).uniform(0.9, 1.1, changed[k:].shape)  # jumps stay < 40 %
    after = run(Panel(panel.dates[:740], SYMBOLS, changed[:740]), start)

    def upto_t(frame: pl.DataFrame, column: str) -> pl.DataFrame:
        return frame.filter(pl.col(column) <= t)

    assert upto_t(after.weights, "rebalance_date").equals(upto_t(before.weights, "rebalance_date"))
    assert upto_t(after.trades, "date").equals(upto_t(before.trades, "date"))
    assert upto_t(after.stops, "date").equals(upto_t(before.stops, "date"))
    assert upto_t(after.equity, "date").equals(upto_t(before.equity, "date"))
    # ...while the decisions after t did see the new prices
    assert not after.weights.filter(pl.col("rebalance_date") > t).equals(
        before.weights.filter(pl.col("rebalance_date") > t)
    )
    assert not (
        before.weights["symbol"].is_in(list(LEVERAGED)).any()
        or after.weights["symbol"].is_in(list(LEVERAGED)).any()
    )


def test_every_rebalance_of_the_backtest_is_within_the_bounds():
    panel = random_walks(4, date(2021, 1, 4), date(2023, 12, 29))
    result = run(panel, panel.dates[MIN_HISTORY + 5].item())
    per_date = result.weights.group_by("rebalance_date").agg(
        total=pl.col("weight").sum(), n=pl.len(), lo=pl.col("weight").min(), hi=pl.col("weight").max()
    )
    assert per_date.height >= 20
    assert per_date["total"].to_numpy() == pytest.approx(1.0, abs=1e-9)
    assert (per_date["n"] == 10).all()
    assert per_date["lo"].min() >= 0.05 - 1e-9 and per_date["hi"].max() <= 0.15 + 1e-9


def test_quarterly_over_2020_to_2024_rebalances_20_times_through_the_etf_rule():
    panel = random_walks(5, date(2019, 1, 2), date(2024, 12, 31))
    start, end = date(2020, 1, 2), date(2024, 12, 31)
    dates = rebalance_dates(panel.dates, start, end, "quarterly")
    result = walk_forward(panel, dates, strategy.decider(ratios(), LEVERAGED, RULES))
    quarter_starts = [
        calendar.sessions(date(y, m, 1), date(y, m + 2, 28))[0]
        for y in range(2020, 2025)
        for m in (1, 4, 7, 10)
    ]
    assert dates == quarter_starts
    assert result.metrics["rebalances"] == 20
    assert result.metrics["initial_allocations"] == 0
    assert result.weights["rebalance_date"].unique().sort().to_list() == quarter_starts
    assert set(result.weights["reason"]) == {"rebalance"}
    assert result.equity["date"][0] == date(2020, 1, 2) and result.equity["date"][-1] == end

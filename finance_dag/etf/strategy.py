"""The ETF strategy's decision at one date: scores from prices up to that date, then weights.

``decide`` is the one function behind both the ``target_portfolio`` asset (as of the partition's
session) and every rebalance of the walk-forward backtest (as of each rebalance date, on the
panel cut there by the engine), so the backtest trades exactly the rule the desk runs today.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date

import polars as pl

from finance_dag.backtest.engine import Panel
from finance_dag.etf.optimize import Allocation, optimize
from finance_dag.etf.scores import DEFAULT_WEIGHTS, MIN_HISTORY, Scores, score_etfs, simple_returns


@dataclass(frozen=True)
class Rules:
    """Strategy parameters; the defaults are the seed's."""

    factor_weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    optimizer: str = "mvo"  # "mvo", "rankbased" or "minvar"
    n_positions: int = 30
    min_weight: float = 0.03
    max_weight: float = 0.075


@dataclass(frozen=True)
class Decision:
    scores: Scores
    allocation: Allocation


def decide(
    panel: Panel, expense_ratios: Mapping[str, float | None], excluded: Mapping[str, str], rules: Rules
) -> Decision:
    """Score every ETF of ``panel`` as of its last session and optimise the top ``n_positions``
    over their last ``MIN_HISTORY`` daily total returns."""
    scored = score_etfs(panel, expense_ratios, excluded, rules.factor_weights)
    return Decision(scored, allocate(scored.table, panel, rules))


def decider(
    expense_ratios: Mapping[str, float | None], excluded: Mapping[str, str], rules: Rules
) -> Callable[[date, Panel], dict[str, float]]:
    """``decide`` as the walk-forward engine calls it: the panel it passes ends at the rebalance date."""

    def weights(_day: date, panel: Panel) -> dict[str, float]:
        return decide(panel, expense_ratios, excluded, rules).allocation.weights

    return weights


def allocate(table: pl.DataFrame, panel: Panel, rules: Rules) -> Allocation:
    """Weights for the best ``n_positions`` of a score table (``SCORE_SCHEMA``, best first)."""
    top = table.filter(pl.col("status") == "scored").head(rules.n_positions)
    columns = [panel.symbols.index(s) for s in top["symbol"]]
    window = panel.prices[-MIN_HISTORY - 1 :, columns]
    returns = simple_returns(window)
    return optimize(
        dict(zip(top["symbol"], top["score"], strict=True)),
        returns,
        method=rules.optimizer,  # type: ignore[arg-type]
        n_positions=rules.n_positions,
        min_weight=rules.min_weight,
        max_weight=rules.max_weight,
    )

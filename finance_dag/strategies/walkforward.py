"""Walk-forward evaluation of a registered daily strategy: parameters chosen on a training window from
the strategy's declared grid, scored on the following out-of-sample window, rolled forward.

Rules:

- **Sizing**: an equal risk budget per symbol of the bars. A position ``p[t, i]`` in [-1, 1] is the
  weight ``w[t, i] = p[t, i] / N`` with ``N`` the number of symbols in the bars (not the number
  with a position), so the gross exposure is at most 1 and a flat symbol leaves its budget in cash.
- **Timing**: row t of a position path is taken at t's close and held over t → t+1, so it earns
  ``r[t+1] = close[t+1] / close[t] - 1``; the path's return on session t is
  ``Σ_i w[t-1, i] · r[t, i] - cost[t]`` (0 gross on the first session, nothing is held before it).
  A missing return (no close on t or t-1) contributes 0: a position over a gap is marked flat.
- **Costs** are a fraction of capital per session, charged on the session whose close trades them
  (e.g. :meth:`finance_dag.backtest.costs.CostModel.weight_costs` of the weights path).
- **Windows**: window k trains on sessions ``[k·step, k·step + train)`` and tests on the next
  ``test`` sessions (the last test slice may be shorter); :func:`walk_forward` steps by ``test``,
  so its test slices tile ``[train, T)`` without overlap.
- **Selection**: in each window every parameter set of :meth:`Strategy.grid` is scored by the
  annualised Sharpe ratio of its returns on the training sessions only; the best wins (ties and
  undefined Sharpe ratios: the first in grid order among the best finite ones, or the first set when
  none is finite). Signals are causal (row t uses data up to t), so one position path per parameter
  set over all sessions gives exactly the returns a window would compute on its own data: the
  training returns read closes up to the training window's last session and nothing after.
- **Stitching**: the out-of-sample series is each window's chosen set's returns on its test
  sessions, as if that set's path had been held all along: the cost of switching paths at a window
  boundary is not charged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from finance_dag.analytics import (
    deflated_sharpe_ratio,
    performance_summary,
    probability_of_backtest_overfitting,
)
from finance_dag.strategies.signals import Bars, Strategy

__all__ = ["WalkForward", "position_weights", "strategy_returns", "walk_forward", "windows"]

CostFunction = Callable[[np.ndarray], np.ndarray]


def position_weights(positions: np.ndarray) -> np.ndarray:
    """Weights of a T×N position path: ``p / N`` (NaN → 0), an equal risk budget per symbol."""
    p = np.nan_to_num(np.asarray(positions, dtype=float), nan=0.0)
    if p.ndim != 2:
        raise ValueError(f"position_weights: positions must be T×N, got shape {p.shape}")
    return p / p.shape[1]


def strategy_returns(
    positions: np.ndarray, returns: np.ndarray, costs: np.ndarray | None = None
) -> np.ndarray:
    """Daily net return (T) of the position path ``positions`` (T×N, row t held over t → t+1) given
    the symbols' simple daily returns ``returns`` (T×N, row t = close[t] / close[t-1] - 1) and the
    per-session ``costs`` (T, fraction of capital; None = free):
    ``out[t] = Σ_i p[t-1, i] / N · r[t, i] - costs[t]``, ``out[0] = -costs[0]``, a NaN return
    counting as 0."""
    w = position_weights(positions)
    r = np.asarray(returns, dtype=float)
    if r.shape != w.shape:
        raise ValueError(f"strategy_returns: returns have shape {r.shape}, positions {w.shape}")
    gross = np.zeros(w.shape[0])
    gross[1:] = (w[:-1] * np.nan_to_num(r[1:], nan=0.0)).sum(axis=1)
    if costs is None:
        return gross
    c = np.asarray(costs, dtype=float)
    if c.shape != gross.shape or not np.isfinite(c).all():
        raise ValueError(
            f"strategy_returns: costs must be {gross.shape[0]} finite values, got shape {c.shape}"
        )
    return gross - c


def windows(n_sessions: int, train: int, test: int, step: int | None = None) -> list[tuple[slice, slice]]:
    """Rolling walk-forward windows over ``n_sessions``: (train, test) row slices, window k training on
    ``[k·step, k·step + train)`` and testing on ``[k·step + train, min(k·step + train + test, T))``;
    ``step`` defaults to ``test`` (test slices then tile ``[train, T)``). Windows continue while a
    test session remains. ``train`` ≥ 2, ``test`` ≥ 1, ``step`` ≥ 1 and ``n_sessions`` > ``train``."""
    step = test if step is None else step
    if train < 2 or test < 1 or step < 1:
        raise ValueError(f"windows: need train ≥ 2, test ≥ 1, step ≥ 1; got {train}, {test}, {step}")
    if n_sessions <= train:
        raise ValueError(f"windows: {n_sessions} session(s) leave nothing to test after train = {train}")
    return [
        (slice(start, start + train), slice(start + train, min(start + train + test, n_sessions)))
        for start in range(0, n_sessions - train, step)
    ]


@dataclass(frozen=True)
class WalkForward:
    """A walk-forward run of ``strategy``.

    - ``windows``: the (train, test) session slices; ``chosen``: the parameter set picked on each
      window's training sessions; ``n_trials``: the parameter sets tried per window (the grid size);
    - ``dates`` / ``returns``: the stitched out-of-sample daily returns;
    - ``in_sample``: :func:`performance_summary` of the chosen sets' training returns, window after
      window (rolling training windows overlap when ``train > test``: a session counts once per
      window that trained on it); ``out_of_sample``: that of ``returns``;
    - ``deflated_sharpe``: :func:`deflated_sharpe_ratio` of ``returns`` given ``n_trials`` and the
      variance of the per-period Sharpe ratios of every parameter set over the out-of-sample sessions
      (NaN when a Sharpe ratio is undefined);
    - ``pbo``: :func:`probability_of_backtest_overfitting` (8 splits) of the out-of-sample sessions ×
      parameter sets return matrix (NaN with fewer than 2 sets or 16 sessions).
    """

    strategy: str
    windows: tuple[tuple[slice, slice], ...]
    chosen: tuple[dict[str, float], ...]
    n_trials: int
    dates: np.ndarray
    returns: np.ndarray
    in_sample: dict[str, float]
    out_of_sample: dict[str, float]
    deflated_sharpe: float
    pbo: float


def _deflated_sharpe(returns: np.ndarray, trials: np.ndarray) -> float:
    """DSR of ``returns`` (per-period moments, Pearson kurtosis) against the ``trials`` matrix's
    spread of per-period Sharpe ratios; NaN where a Sharpe ratio or the moments are undefined."""
    std = returns.std()
    per_period = trials.mean(axis=0) / np.where(
        np.ptp(trials, axis=0) > 0, trials.std(axis=0, ddof=1), np.nan
    )
    if returns.size < 2 or not std > 0 or not np.isfinite(per_period).all():
        return float("nan")
    z = (returns - returns.mean()) / std
    return deflated_sharpe_ratio(
        sharpe=float(returns.mean() / returns.std(ddof=1)),
        n_trials=trials.shape[1],
        n_obs=returns.size,
        skew=float(np.mean(z**3)),
        kurtosis=float(np.mean(z**4)),
        sharpe_variance_across_trials=float(per_period.var(ddof=1)) if per_period.size > 1 else 0.0,
    )


def walk_forward(
    strategy: Strategy, bars: Bars, train: int, test: int, cost: CostFunction | None = None
) -> WalkForward:
    """Walk-forward evaluation of a daily ``strategy`` on ``bars`` (see the module docstring for the
    rules). ``cost`` maps a T×N weights path (:func:`position_weights`) to its per-session cost, e.g.
    ``functools.partial(CostModel().weight_costs, prices=..., adv=..., volatility=..., capital=...)``;
    None = no costs. The strategy runs with its default options."""
    if strategy.data != "daily":
        raise ValueError(f"walk_forward: {strategy.name} runs on {strategy.data} bars, not daily bars")
    splits = windows(bars.dates.size, train, test)
    grid = strategy.grid()
    symbol_returns = np.full(bars.close.shape, np.nan)
    symbol_returns[1:] = bars.close[1:] / bars.close[:-1] - 1.0
    paths = []
    for params in grid:
        positions = strategy(bars, **params)
        costs = None if cost is None else cost(position_weights(positions))
        paths.append(strategy_returns(positions, symbol_returns, costs))
    matrix = np.column_stack(paths)  # sessions × parameter sets

    picks = []
    for fit, _ in splits:
        scores = np.array([performance_summary(matrix[fit, m])["sharpe"] for m in range(len(grid))])
        finite = np.isfinite(scores)
        picks.append(int(np.argmax(np.where(finite, scores, -np.inf))) if finite.any() else 0)
    in_sample = np.concatenate([matrix[fit, m] for (fit, _), m in zip(splits, picks, strict=True)])
    returns = np.concatenate([matrix[scored, m] for (_, scored), m in zip(splits, picks, strict=True)])
    oos = matrix[train:]
    enough = len(grid) >= 2 and oos.shape[0] >= 16
    return WalkForward(
        strategy=strategy.name,
        windows=tuple(splits),
        chosen=tuple(dict(grid[m]) for m in picks),
        n_trials=len(grid),
        dates=bars.dates[train:],
        returns=returns,
        in_sample=performance_summary(in_sample),
        out_of_sample=performance_summary(returns),
        deflated_sharpe=_deflated_sharpe(returns, oos),
        pbo=probability_of_backtest_overfitting(oos) if enough else float("nan"),
    )

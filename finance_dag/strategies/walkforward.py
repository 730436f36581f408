"""Walk-forward evaluation of a registered daily strategy: parameters chosen on a training window from
the strategy's declared grid, scored on the following out-of-sample window, rolled forward.

Rules:

- **Sizing**: by default an equal risk budget per symbol of the bars. A position ``p[t, i]`` in
  [-1, 1] is the weight ``w[t, i] = p[t, i] / N`` with ``N`` the number of symbols in the bars (not
  the number with a position), so the gross exposure is at most 1 and a flat symbol leaves its
  budget in cash; ``size`` replaces it (e.g. :class:`finance_dag.strategies.sizing.Sizer`).
- **Timing and costs** are the backtest engine's vectorised mode
  (:mod:`finance_dag.backtest.vectorised`): row t of the weights is held over t → t+1, so session t
  nets ``Σ_i w[t-1, i] · r[t, i] - cost[t]``, a missing return counting 0; costs are a fraction
  of capital per session, charged on the session whose close trades them (e.g.
  :meth:`finance_dag.backtest.costs.CostModel.weight_costs` of the weights path).
- **Intraday** rules (:func:`walk_forward_intraday`) trade each symbol's minute bars within the
  session and are flat overnight; a session's return is the mean over the symbols of each one's
  intraday return on its budget, net of its orders' costs.
- **Windows**: window k trains on sessions ``[k·step, k·step + train)`` and tests on the next
  ``test`` sessions (the last test slice may be shorter); :func:`walk_forward` steps by ``test``,
  so its test slices tile ``[train, T)`` without overlap.
- **Selection**: in each window every parameter set of :meth:`Strategy.grid` is scored by the
  annualised Sharpe ratio of its returns on the training sessions only; the best wins (ties and
  undefined Sharpe ratios: the first in grid order among the best finite ones, or the first set when
  none is finite). Signals are causal (row t uses data up to t), so one position path per parameter
  set over all sessions gives exactly the returns a window would compute on its own data: the
  training returns read closes up to the training window's last session and nothing after. A rule
  fitted on a window (``pair_stat_arb``: the pair and its hedge ratio) is fitted again on each
  training window, scored in sample on it and traded out of sample after it.
- **Stitching**: the out-of-sample series is each window's chosen set's returns on its test
  sessions, as if that set's path had been held all along: the cost of switching paths at a window
  boundary is not charged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import polars as pl

from finance_dag.analytics import (
    deflated_sharpe_ratio,
    performance_summary,
    probability_of_backtest_overfitting,
)
from finance_dag.backtest.costs import CostModel
from finance_dag.backtest.vectorised import intraday_path, turnover, weights_returns
from finance_dag.market_data.bars import ny_date
from finance_dag.strategies.signals import Bars, Strategy

__all__ = [
    "Path",
    "WalkForward",
    "position_weights",
    "select",
    "walk_forward",
    "walk_forward_intraday",
    "windows",
]

CostFunction = Callable[[np.ndarray], np.ndarray]
SizeFunction = Callable[[np.ndarray], np.ndarray]
_YEAR = 252


def position_weights(positions: np.ndarray) -> np.ndarray:
    """Weights of a T×N position path: ``p / N`` (NaN → 0), an equal risk budget per symbol."""
    p = np.nan_to_num(np.asarray(positions, dtype=float), nan=0.0)
    if p.ndim != 2:
        raise ValueError(f"position_weights: positions must be T×N, got shape {p.shape}")
    return p / p.shape[1]


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
class Path:
    """One parameter set's outcome per session: net ``returns``, one-way ``turnover`` and the
    ``costs`` paid (fractions of capital)."""

    returns: np.ndarray
    turnover: np.ndarray
    costs: np.ndarray


def summary(returns: np.ndarray, traded: np.ndarray, costs: np.ndarray) -> dict[str, float]:
    """:func:`performance_summary` plus ``win_loss`` (mean gain of the up sessions ÷ mean loss of the
    down ones; NaN without both), ``turnover`` (mean one-way turnover per session × 252: capital
    traded a year) and ``costs`` (the sum of the costs, a fraction of capital)."""
    wins, losses = returns[returns > 0], returns[returns < 0]
    ratio = float(wins.mean() / -losses.mean()) if wins.size and losses.size else float("nan")
    mean_turnover = float(traded.mean()) * _YEAR if traded.size else float("nan")
    return {
        **performance_summary(returns),
        "win_loss": ratio,
        "turnover": mean_turnover,
        "costs": float(costs.sum()),
    }


@dataclass(frozen=True)
class WalkForward:
    """A walk-forward run of ``strategy``.

    - ``windows``: the (train, test) session slices; ``chosen``: the parameter set picked on each
      window's training sessions; ``n_trials``: the parameter sets tried per window (the grid size);
    - ``sessions``: every session evaluated (the windows index it);
    - ``dates`` / ``returns`` / ``turnover`` / ``costs``: the stitched out-of-sample sessions (net
      returns, one-way turnover, costs paid, fractions of capital);
    - ``in_sample``: :func:`summary` of the chosen sets' training sessions, window after window
      (rolling training windows overlap when ``train > test``: a session counts once per window that
      trained on it); ``out_of_sample``: that of the stitched series;
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
    sessions: np.ndarray
    dates: np.ndarray
    returns: np.ndarray
    turnover: np.ndarray
    costs: np.ndarray
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


def select(
    name: str,
    dates: np.ndarray,
    grid: list[dict[str, float]],
    paths: Callable[[slice], list[Path]],
    train: int,
    test: int,
) -> WalkForward:
    """The walk-forward choice and stitching (module docstring) over ``dates``: ``paths(fit)`` gives
    every parameter set's :class:`Path` (grid order) for the window training on rows ``fit``; it may
    ignore ``fit`` (a causal rule's paths are the same for every window)."""
    splits = windows(dates.size, train, test)
    picked: list[tuple[slice, slice, Path, int]] = []
    oos = np.empty((dates.size - train, len(grid)))  # each window's sets on its test sessions
    for fit, scored in splits:
        candidates = paths(fit)
        scores = np.array([performance_summary(path.returns[fit])["sharpe"] for path in candidates])
        finite = np.isfinite(scores)
        best = int(np.argmax(np.where(finite, scores, -np.inf))) if finite.any() else 0
        picked.append((fit, scored, candidates[best], best))
        oos[scored.start - train : scored.stop - train] = np.column_stack(
            [p.returns[scored] for p in candidates]
        )

    def stitch(part: int, field: str) -> np.ndarray:
        return np.concatenate([getattr(path, field)[window[part]] for *window, path, _ in picked])

    returns, traded, costs = (stitch(1, f) for f in ("returns", "turnover", "costs"))
    enough = len(grid) >= 2 and oos.shape[0] >= 16
    return WalkForward(
        strategy=name,
        windows=tuple(splits),
        chosen=tuple(dict(grid[best]) for *_, best in picked),
        n_trials=len(grid),
        sessions=dates,
        dates=dates[train:],
        returns=returns,
        turnover=traded,
        costs=costs,
        in_sample=summary(*(stitch(0, f) for f in ("returns", "turnover", "costs"))),
        out_of_sample=summary(returns, traded, costs),
        deflated_sharpe=_deflated_sharpe(returns, oos),
        pbo=probability_of_backtest_overfitting(oos) if enough else float("nan"),
    )


def walk_forward(
    strategy: Strategy,
    bars: Bars,
    train: int,
    test: int,
    cost: CostFunction | None = None,
    size: SizeFunction = position_weights,
    grid: list[dict[str, float]] | None = None,
    options: Mapping[str, object] | None = None,
) -> WalkForward:
    """Walk-forward evaluation of a daily ``strategy`` on ``bars`` (see the module docstring for the
    rules). ``size`` maps a T×N position path to its weights (default :func:`position_weights`);
    ``cost`` maps the weights to their per-session cost, e.g.
    ``functools.partial(CostModel().weight_costs, prices=..., adv=..., volatility=..., capital=...)``;
    None = no costs. ``grid`` replaces the strategy's declared grid (validate it first with
    :meth:`Strategy.validate`); ``options`` are passed to every call of the rule (e.g. the regime
    filter's ``vix``)."""
    if strategy.data != "daily":
        raise ValueError(f"walk_forward: {strategy.name} runs on {strategy.data} bars, not daily bars")
    grid = strategy.grid() if grid is None else grid
    symbol_returns = bars.returns

    def path(positions: np.ndarray) -> Path:
        weights = size(positions)
        costs = np.zeros(weights.shape[0]) if cost is None else cost(weights)
        return Path(weights_returns(weights, symbol_returns, costs), turnover(weights), costs)

    if strategy.fit is not None:  # fitted once per training window, scored in sample on it

        def fitted(fit: slice) -> list[Path]:
            fitted_options = {**(options or {}), **strategy.fit(bars, fit)}
            return [path(strategy(bars, **fitted_options, in_sample=True, **params)) for params in grid]

        return select(strategy.name, bars.dates, grid, fitted, train, test)
    causal = [path(strategy(bars, **(options or {}), **params)) for params in grid]
    return select(strategy.name, bars.dates, grid, lambda _: causal, train, test)


def walk_forward_intraday(
    strategy: Strategy,
    minutes: Mapping[str, pl.DataFrame],
    train: int,
    test: int,
    costs: CostModel | None = None,
    capital: float = 1_000_000.0,
    grid: list[dict[str, float]] | None = None,
) -> WalkForward:
    """Walk-forward evaluation of a minute-bar ``strategy`` over the symbols of ``minutes`` (each one
    symbol's regular-session bars: ``ts``, ``high``, ``low``, ``close``, ``volume``, ascending ``ts``).

    Sessions are every session any symbol has bars on; each symbol trades a budget of
    ``capital / N`` and a session's return is ``Σ_i (gross_i - cost_i) / N`` (a symbol without bars
    that session contributes 0). Orders are priced by ``costs`` (None = free) at the bar's close with
    the symbol's ADV and daily σ of the 21 sessions *before* the session (their daily volumes and
    last-bar closes), so a session's costs use nothing of that session; before any history the first
    session's volume and a 2 % σ stand in, and the ADV is at least one share."""
    if strategy.data != "minute":
        raise ValueError(
            f"walk_forward_intraday: {strategy.name} runs on {strategy.data} bars, not minute bars"
        )
    if not minutes:
        raise ValueError("walk_forward_intraday: no symbols")
    grid = strategy.grid() if grid is None else grid
    frames = {s: f.sort("ts").with_columns(session=ny_date()) for s, f in minutes.items()}
    sessions = np.unique(np.concatenate([f["session"].to_numpy() for f in frames.values()]))
    budget = capital / len(frames)
    totals = [np.zeros((sessions.size, 3)) for _ in grid]  # per set: gross - cost, turnover, cost
    for frame in frames.values():
        day = frame["session"].to_numpy()
        close = frame["close"].to_numpy()
        adv, sigma = _trailing_daily_stats(frame)
        for k, params in enumerate(grid):
            outcome = intraday_path(day, close, strategy(frame, **params))
            order_cost = np.zeros(day.size)
            if costs is not None:
                i = outcome.session_index
                order_cost = (
                    costs.order_costs(outcome.traded * budget / close, close, adv[i], sigma[i]) / budget
                )
            where = np.searchsorted(sessions, outcome.sessions)
            spent = np.bincount(outcome.session_index, order_cost, outcome.sessions.size)
            totals[k][where] += np.column_stack((outcome.gross - spent, outcome.turnover, spent))
    n = len(frames)
    paths = [Path(t[:, 0] / n, t[:, 1] / n, t[:, 2] / n) for t in totals]
    return select(strategy.name, sessions, grid, lambda _: paths, train, test)


def _trailing_daily_stats(frame: pl.DataFrame, window: int = 21) -> tuple[np.ndarray, np.ndarray]:
    """Per session of ``frame`` (ascending): the mean daily volume and the std (ddof=1) of the daily
    close-to-close returns over the ``window`` sessions before it (fewer at the start; see
    :func:`walk_forward_intraday` for the stand-ins)."""
    daily = frame.group_by("session", maintain_order=True).agg(
        pl.col("volume").sum().cast(pl.Float64), pl.col("close").last()
    )
    stats = daily.select(
        adv=pl.col("volume").shift(1).rolling_mean(window, min_samples=1),
        sigma=pl.col("close").pct_change().shift(1).rolling_std(window, min_samples=2),
    )
    adv = stats["adv"].fill_null(daily["volume"][0]).to_numpy()
    sigma = stats["sigma"].fill_null(0.02).to_numpy()
    return np.maximum(adv, 1.0), sigma  # an ADV of at least one share keeps the impact finite

"""Vectorised mode of the backtest engine, for signal research: whole position paths at once, with
shorting and per-order costs, instead of the event loop's whole shares, stops and drift bands.

The event loop (:mod:`finance_dag.backtest.engine`) trades one book a few times a year; research
evaluates a dozen rules × their parameter grids × a hundred symbols every session, where a loop
over sessions would cost minutes. Both modes share the engine's conventions: a decision at t uses
data up to t, it is executed at t's close and earns the returns after t; a return never spans a
missing close (:meth:`~finance_dag.backtest.engine.Panel.returns`); costs come from
:class:`~finance_dag.backtest.costs.CostModel`; metrics from
:func:`finance_dag.analytics.performance_summary`.

- **Daily** (:func:`weights_returns`): row t of a signed weights path (fractions of capital,
  < 0 short) is the book from t's close to t+1's, so session t nets
  ``Σ_i w[t-1, i] · r[t, i] - cost[t]`` (0 gross on the first session: nothing is held before it);
  a missing return contributes 0. Turnover (:func:`turnover`) is ``Σ_i |w[t, i] - w[t-1, i]|``,
  the first row bought from cash.
- **Intraday** (:func:`intraday_path`): a position path on one symbol's minute bars, row m held
  from m's close to m+1's within its session; every session starts and ends flat (the position left
  on the session's last bar is closed at that bar's close), so nothing is held overnight.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["IntradayPath", "intraday_path", "turnover", "weights_returns"]


def turnover(weights: np.ndarray) -> np.ndarray:
    """One-way turnover per session of a T×N weights path: ``Σ_i |Δw[t, i]|`` (NaN = 0, the first
    row traded from cash)."""
    w = np.nan_to_num(np.asarray(weights, dtype=float), nan=0.0)
    return np.abs(np.diff(w, axis=0, prepend=0.0)).sum(axis=1)


def weights_returns(weights: np.ndarray, returns: np.ndarray, costs: np.ndarray | None = None) -> np.ndarray:
    """Daily net return (T) of the weights path ``weights`` (T×N, row t held over t → t+1, NaN = 0)
    given the symbols' simple returns ``returns`` (T×N, row t = close[t] / close[t-1] - 1) and the
    per-session ``costs`` (T, fraction of capital; None = free):
    ``out[t] = Σ_i w[t-1, i] · r[t, i] - costs[t]``, ``out[0] = -costs[0]``, a NaN return counting 0."""
    w = np.nan_to_num(np.asarray(weights, dtype=float), nan=0.0)
    r = np.asarray(returns, dtype=float)
    if w.ndim != 2 or r.shape != w.shape:
        raise ValueError(f"weights_returns: weights {w.shape} and returns {r.shape} must be the same T×N")
    gross = np.zeros(w.shape[0])
    gross[1:] = (w[:-1] * np.nan_to_num(r[1:], nan=0.0)).sum(axis=1)
    if costs is None:
        return gross
    c = np.asarray(costs, dtype=float)
    if c.shape != gross.shape or not np.isfinite(c).all():
        raise ValueError(
            f"weights_returns: costs must be {gross.shape[0]} finite values, got shape {c.shape}"
        )
    return gross - c


@dataclass(frozen=True)
class IntradayPath:
    """A minute position path's outcome: per distinct session (``sessions``, ascending) the gross
    return on the symbol's budget (``gross``) and the budget traded (``turnover``); per input row
    the budget traded at that bar's close (``traded``, ≥ 0, including the close-out on a session's
    last bar), for pricing the orders."""

    sessions: np.ndarray
    gross: np.ndarray
    turnover: np.ndarray
    traded: np.ndarray
    session_index: np.ndarray  # per row, its session's position in ``sessions``


def intraday_path(session: np.ndarray, close: np.ndarray, position: np.ndarray) -> IntradayPath:
    """Evaluate one symbol's minute position path. ``session`` (the session date of each row),
    ``close`` and ``position`` (in [-1, 1], NaN = flat) are aligned rows in time order.

    Within a session, row m earns ``p[m-1] · (close[m] / close[m-1] - 1)`` (a missing close earns
    0); the first row of a session earns nothing (flat overnight). Orders: ``|p[m] - p[m-1]|`` at
    m's close (``p`` before a session's first row is 0), plus ``|p[last]|`` at the session's last
    row, the close-out."""
    day = np.asarray(session)
    price = np.asarray(close, dtype=float)
    p = np.nan_to_num(np.asarray(position, dtype=float), nan=0.0)
    if not (day.shape == price.shape == p.shape) or day.ndim != 1:
        raise ValueError(
            f"intraday_path: session {day.shape}, close {price.shape}, position {p.shape} differ"
        )
    if day.size > 1 and (day[1:] < day[:-1]).any():
        raise ValueError("intraday_path: rows must be in time order (sessions ascending)")
    sessions, index = np.unique(day, return_inverse=True)
    first = np.ones(day.size, dtype=bool)
    first[1:] = day[1:] != day[:-1]
    last = np.roll(first, -1)
    last[-1:] = True
    previous = np.where(first, 0.0, np.roll(p, 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        step = np.where(first, 0.0, price / np.roll(price, 1) - 1.0)
    earned = previous * np.nan_to_num(step, nan=0.0, posinf=0.0, neginf=0.0)
    traded = np.abs(p - previous) + np.where(last, np.abs(p), 0.0)
    return IntradayPath(
        sessions=sessions,
        gross=np.bincount(index, earned, sessions.size),
        turnover=np.bincount(index, traded, sessions.size),
        traded=traded,
        session_index=index,
    )

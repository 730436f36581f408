"""Strategy families as pure functions of the data up to t, and their registry.

Every daily strategy maps :class:`Bars` (sessions × symbols) to a target position matrix of the
same shape with values in [-1, 1]: the fraction of the symbol's risk budget held, negative = short.
**Row t uses data up to and including t's close only**: the position is taken at t's close and held
over t → t+1, so the return it earns is ``close[t+1] / close[t] - 1``. Position sizing, costs and the
walk-forward loop live elsewhere; a strategy only says which way and how much of its budget.

Conventions shared by every rule:

- a missing value (NaN) never becomes a signal: rolling windows holding a NaN give NaN, and a
  NaN signal is flat (0); a symbol without a close on t is flat on t (it cannot be traded there);
- ``sign(0) = 0``: a tie is flat;
- rolling statistics over n rows are over rows t-n+1..t; "prior" windows (breakouts) over
  t-n..t-1;
- standard deviations are population ones (ddof = 0), as in Bollinger's bands.

The registry :data:`STRATEGIES` names each rule with its family, its tunable parameters (a default,
an allowed range and a small grid for the walk-forward search) and any non-tunable options
(``pair_stat_arb``'s pair and training window). :func:`get` and :func:`validate` fail with messages
naming the unknown strategy or the offending parameter.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from functools import cached_property, partial
from numbers import Real
from typing import Literal

import numpy as np
import polars as pl
from numpy.lib.stride_tricks import sliding_window_view

from finance_dag.backtest.engine import Panel
from finance_dag.market_data.bars import ny_date, session_windows

__all__ = [
    "STRATEGIES",
    "Bars",
    "Family",
    "Pair",
    "Param",
    "Strategy",
    "bollinger_reversal",
    "choose_pair",
    "cross_sectional_momentum",
    "get",
    "low_volatility_tilt",
    "momentum",
    "opening_range_breakout",
    "pair_stat_arb",
    "rsi",
    "rsi_reversal",
    "validate",
    "volatility_breakout",
    "volatility_regime_filter",
    "volume_weighted_momentum",
]

Family = Literal["momentum", "mean_reversion", "volatility"]


@dataclass(frozen=True)
class Bars:
    """Aligned daily bars of ``symbols`` on ascending sessions ``dates``: T×N float arrays, NaN where
    missing.

    ``close`` is the adjusted total-return close; ``high`` and ``low`` must be adjusted by the same
    factor as the close (raw high × adjusted close ÷ raw close) so breakouts compare like with like;
    ``volume`` is shares traded. The arrays are stored as read-only views.
    """

    dates: np.ndarray
    symbols: tuple[str, ...]
    close: np.ndarray
    high: np.ndarray
    low: np.ndarray
    volume: np.ndarray

    def __post_init__(self) -> None:
        dates = np.asarray(self.dates, dtype="datetime64[D]")
        symbols = tuple(self.symbols)
        if dates.ndim != 1 or (dates.size > 1 and not (dates[1:] > dates[:-1]).all()):
            raise ValueError("Bars: dates must be one strictly ascending vector")
        if len(set(symbols)) != len(symbols):
            raise ValueError("Bars: symbols must be unique")
        object.__setattr__(self, "symbols", symbols)
        arrays = {"dates": dates}
        for name in ("close", "high", "low", "volume"):
            array = np.asarray(getattr(self, name), dtype=np.float64)
            if array.shape != (dates.size, len(symbols)):
                raise ValueError(
                    f"Bars: {name} must be (dates, symbols) = ({dates.size}, {len(symbols)}), got {array.shape}"
                )
            arrays[name] = array
        for name, array in arrays.items():
            view = array.view()
            view.flags.writeable = False
            object.__setattr__(self, name, view)

    @cached_property
    def returns(self) -> np.ndarray:
        """Close-to-close returns (T×N, read-only) by the backtest engine's rule, never across a
        missing close (:meth:`Panel.returns`); computed once per ``Bars``, shared by the rules'
        sizing, costs and factor exposures."""
        returns = Panel(self.dates, self.symbols, self.close).returns()
        returns.flags.writeable = False
        return returns


# --- shared building blocks -------------------------------------------------------------------


def _rolling(x: np.ndarray, window: int, reduce: Callable[..., np.ndarray]) -> np.ndarray:
    """Row t = ``reduce`` over rows t-window+1..t of each column; NaN on the first window-1 rows and
    wherever the window holds a NaN (the reducers are not NaN-skipping). Column by column, so the
    window view never materialises more than T × window values at once."""
    out = np.full(x.shape, np.nan)
    if window <= x.shape[0]:
        for j in range(x.shape[1]):
            out[window - 1 :, j] = reduce(sliding_window_view(x[:, j], window), axis=-1)
    return out


def _lagged(x: np.ndarray, k: int) -> np.ndarray:
    """``x`` shifted down by ``k`` rows: row t holds row t-k (NaN on the first k rows, so all of
    them when ``k`` reaches the number of rows)."""
    out = np.full(x.shape, np.nan)
    if k < x.shape[0]:
        out[k:] = x[: x.shape[0] - k]
    return out


def _log_returns(close: np.ndarray) -> np.ndarray:
    """``log(close[t] / close[t-1])``; NaN on the first row and where either close is missing."""
    return np.log(close) - np.log(_lagged(close, 1))


def _realised_vol(close: np.ndarray, window: int) -> np.ndarray:
    """σ_t = population std of the last ``window`` daily log returns (not annualised)."""
    return _rolling(_log_returns(close), window, np.std)


def _positions(raw: np.ndarray, close: np.ndarray) -> np.ndarray:
    """Final positions: NaN → 0, and flat wherever the symbol has no close on t."""
    return np.where(np.isfinite(raw) & np.isfinite(close), raw, 0.0)


def _sign(x: np.ndarray) -> np.ndarray:
    """sign(x) with NaN → 0."""
    return np.sign(np.nan_to_num(x, nan=0.0))


def _quantile_long_short(score: np.ndarray, quantile: float) -> np.ndarray:
    """Each row: +1 on the m highest scores, -1 on the m lowest, 0 elsewhere, where
    m = max(1, ⌊quantile · n_t⌋) and n_t ≥ 2 is the number of finite scores on the row (fewer: flat).
    Ties at a boundary go by column order (a stable sort)."""
    valid = np.isfinite(score)
    n = valid.sum(axis=1, keepdims=True)
    m = np.maximum(1, np.floor(quantile * n))
    rank = np.argsort(np.argsort(np.where(valid, score, np.inf), axis=1, kind="stable"), axis=1)
    out = np.where(rank < m, -1.0, 0.0) + np.where((rank >= n - m) & valid, 1.0, 0.0)
    return np.where(n >= 2, out, 0.0)


def _band_reversal(z: np.ndarray, entry: float, exit: float) -> np.ndarray:
    """Mean-reversion with hysteresis, column by column along time (``exit`` ≤ ``entry``):

    - z < -entry → +1 (long), z > +entry → -1 (short);
    - otherwise a long is kept while z < -exit and a short while z > +exit, else flat;
    - a NaN z is flat and forgets the position.

    Vectorised: the position at t is the sign of the latest entry at s ≤ t if every row in (s, t]
    kept it (a long survives only rows with -entry ≤ z < -exit, a short only +exit < z ≤ +entry),
    else flat; latest indices come from running maxima, so there is no loop over time.
    """
    rows = np.arange(z.shape[0])[:, None]
    with np.errstate(invalid="ignore"):
        long_entry, short_entry = z < -entry, z > entry
        keeps_long, keeps_short = z < -exit, z > exit
    entered = long_entry | short_entry
    last_entry = np.maximum.accumulate(np.where(entered, rows, -1), axis=0)
    side = np.take_along_axis(long_entry.astype(float) - short_entry, np.maximum(last_entry, 0), axis=0)
    side = np.where(last_entry >= 0, side, 0.0)
    long_broken = np.maximum.accumulate(np.where(entered | keeps_long, -1, rows), axis=0)
    short_broken = np.maximum.accumulate(np.where(entered | keeps_short, -1, rows), axis=0)
    alive = np.where(side > 0, long_broken < last_entry, short_broken < last_entry)
    return np.where(alive, side, 0.0)


def _wilder_average(x: np.ndarray, n: int) -> np.ndarray:
    """Wilder's smoothing: the first value is the mean of the first n values, then
    a_t = (a_{t-1} · (n-1) + x_t) / n. A NaN (a gap) restarts it: NaN until n valid values follow."""
    out = np.full(x.shape, np.nan)
    run = np.zeros(x.shape[1])
    total = np.zeros(x.shape[1])
    average = np.full(x.shape[1], np.nan)
    for t in range(x.shape[0]):
        ok = np.isfinite(x[t])
        value = np.where(ok, x[t], 0.0)
        run = np.where(ok, run + 1, 0)
        total = np.where(ok & (run <= n), total + value, 0.0)
        average = np.select([run == n, run > n], [total / n, (average * (n - 1) + value) / n], np.nan)
        out[t] = average
    return out


# --- momentum ---------------------------------------------------------------------------------


def momentum(bars: Bars, lookback: int) -> np.ndarray:
    """Time-series momentum: position_t = sign(close_t / close_{t-k} - 1), k = ``lookback``."""
    return _positions(_sign(bars.close / _lagged(bars.close, lookback) - 1.0), bars.close)


def volume_weighted_momentum(bars: Bars, lookback: int) -> np.ndarray:
    """position_t = sign(Σ_{i<k} v_{t-i} r_{t-i} / Σ_{i<k} v_{t-i}), r the simple daily return and v the
    volume over the last k = ``lookback`` sessions: the direction of the volume-weighted mean return."""
    returns = bars.close / _lagged(bars.close, 1) - 1.0
    weighted = _rolling(returns * bars.volume, lookback, np.sum) / _rolling(bars.volume, lookback, np.sum)
    return _positions(_sign(weighted), bars.close)


def cross_sectional_momentum(bars: Bars, lookback: int, quantile: float) -> np.ndarray:
    """Each session, rank the trailing k-day returns R_t = close_t / close_{t-k} - 1 across symbols:
    long the top ``quantile``, short the bottom ``quantile`` (m = max(1, ⌊q · n_t⌋) names each side,
    n_t ≥ 2 symbols with a return)."""
    trailing = bars.close / _lagged(bars.close, lookback) - 1.0
    return _positions(_quantile_long_short(trailing, quantile), bars.close)


# --- mean reversion ---------------------------------------------------------------------------


def rsi(close: np.ndarray, period: int) -> np.ndarray:
    """Wilder's relative strength index over n = ``period`` close-to-close changes Δ_t:
    G_t, L_t = Wilder averages of max(Δ, 0) and max(-Δ, 0); RSI = 100 - 100 / (1 + G/L), i.e.
    100 · G / (G + L): 0 after n falls, 100 after n rises, NaN when G = L = 0 (no change at all)."""
    change = close - _lagged(close, 1)
    gain = _wilder_average(np.maximum(change, 0.0), period)  # np.maximum keeps NaN: a gap stays a gap
    loss = _wilder_average(np.maximum(-change, 0.0), period)
    with np.errstate(invalid="ignore", divide="ignore"):
        return 100.0 * gain / (gain + loss)


def rsi_reversal(bars: Bars, period: int, low: float, high: float) -> np.ndarray:
    """Long when RSI_n < ``low`` (oversold), short when RSI_n > ``high`` (overbought), flat otherwise."""
    value = rsi(bars.close, period)
    raw = np.where(value < low, 1.0, 0.0) - np.where(value > high, 1.0, 0.0)
    return _positions(raw, bars.close)


def bollinger_reversal(bars: Bars, window: int, k: float) -> np.ndarray:
    """z_t = (close_t - mean_n) / std_n over the last n = ``window`` closes: long when z < -k, short
    when z > +k, and hold until z crosses 0 (the moving average); flat in between."""
    mean = _rolling(bars.close, window, np.mean)
    std = _rolling(bars.close, window, np.std)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(std > 0, (bars.close - mean) / std, np.nan)
    return _positions(_band_reversal(z, k, 0.0), bars.close)


# MacKinnon (2010), table 2: the 5 % critical value of the Engle-Granger τ statistic for two variables
# with a constant is τ(T) = -3.33613 - 6.1101 / T - 6.823 / T² (T = observations).
_EG_CRITICAL_5PCT = (-3.33613, -6.1101, -6.823)


@dataclass(frozen=True)
class Pair:
    """A cointegrating pair: log close_a = alpha + beta · log close_b + spread, fitted by OLS on the
    training window, with the Engle-Granger statistic of the residuals and its 5 % critical value
    (the pair is cointegrated at 5 % when ``statistic < critical_5pct``); ``spread_std`` is the
    training residuals' standard deviation."""

    a: int
    b: int
    alpha: float
    beta: float
    spread_std: float
    statistic: float
    critical_5pct: float


def choose_pair(closes: np.ndarray, train: slice) -> Pair:
    """The most cointegrated pair of columns of ``closes`` (T×N) on rows ``train`` only, by the
    Engle-Granger two-step test as ``statsmodels.tsa.stattools.coint(y_i, y_j)`` with i < j (column
    order), on log closes. statsmodels is not a dependency, so the test is done here with numpy:

    1. for every pair, OLS y_i = α + β y_j + e on the training rows;
    2. ADF regression on the residuals without a constant and with one lagged difference,
       Δe_t = γ e_{t-1} + φ Δe_{t-1} + ε_t; the statistic is γ̂'s t-ratio (statsmodels picks the
       number of lags by AIC; one fixed lag keeps every pair's regression the same shape, vectorised).

    All pairs have the same sample size and number of variables, so the most negative statistic is
    the smallest MacKinnon p-value: the ranking needs no p-value. Only pairs with every close present
    in the window compete; fewer than two such columns is a ``ValueError``.
    """
    logs = np.log(np.asarray(closes, dtype=np.float64)[train])
    complete = np.flatnonzero(np.isfinite(logs).all(axis=0))
    if complete.size < 2 or logs.shape[0] < 10:
        raise ValueError(
            f"choose_pair: need two symbols with every close in a training window of at least 10 sessions; "
            f"{complete.size} complete column(s) over {logs.shape[0]} session(s)"
        )
    i, j = (complete[k] for k in np.triu_indices(complete.size, 1))
    y, x = logs[:, i], logs[:, j]  # T × pairs
    xc, yc = x - x.mean(axis=0), y - y.mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        beta = (xc * yc).sum(axis=0) / (xc * xc).sum(axis=0)
        resid = yc - beta * xc
        diff = np.diff(resid, axis=0)
        target, level, lag = diff[1:], resid[1:-1], diff[:-1]
        sll, slg, sgg = (level * level).sum(0), (level * lag).sum(0), (lag * lag).sum(0)
        det = sll * sgg - slg * slg
        sly, sgy = (level * target).sum(0), (lag * target).sum(0)
        gamma = (sgg * sly - slg * sgy) / det
        phi = (sll * sgy - slg * sly) / det
        dof = target.shape[0] - 2
        s2 = ((target - gamma * level - phi * lag) ** 2).sum(0) / dof
        statistic = gamma / np.sqrt(s2 * sgg / det)
    finite = np.flatnonzero(np.isfinite(statistic))
    if not finite.size:
        raise ValueError("choose_pair: no pair has a finite Engle-Granger statistic (constant closes?)")
    best = int(finite[np.argmin(statistic[finite])])
    n = logs.shape[0]
    c0, c1, c2 = _EG_CRITICAL_5PCT
    return Pair(
        a=int(i[best]),
        b=int(j[best]),
        alpha=float(y[:, best].mean() - beta[best] * x[:, best].mean()),
        beta=float(beta[best]),
        spread_std=float(resid[:, best].std()),
        statistic=float(statistic[best]),
        critical_5pct=c0 + c1 / n + c2 / n**2,
    )


PAIR_TRAIN = 252  # sessions the pair is chosen and fitted on when no training window is given


def pair_stat_arb(
    bars: Bars,
    entry: float,
    exit: float,
    pair: tuple[str, str] | None = None,
    train: slice | None = None,
    in_sample: bool = False,
) -> np.ndarray:
    """Statistical arbitrage on one pair (a, b).

    The training window is ``train`` (default: the first ``PAIR_TRAIN`` sessions); the pair is
    ``pair`` or :func:`choose_pair`'s on that window. OLS on the window gives
    log a = α + β log b + e, and z_t = (log a_t - α - β log b_t) / std(e). The spread is long
    (+1: long a, short β of b) when z < -entry and short when z > +entry, held until |z| < exit.
    Per-symbol positions are the spread's dollar legs scaled into [-1, 1]:
    w_a = s / max(1, |β|), w_b = -β s / max(1, |β|). Flat on and before the window's last session
    (the fit uses it) and on every other symbol; with ``in_sample`` it also trades inside the window
    (the in-sample path a walk-forward scores its training window on, knowingly fitted on it).
    """
    window = train if train is not None else slice(0, PAIR_TRAIN)
    if pair is None:
        fitted = choose_pair(bars.close, window)
    else:
        unknown = [s for s in pair if s not in bars.symbols]
        if unknown:
            raise ValueError(
                f"pair_stat_arb: pair symbol(s) {unknown} not in the bars' symbols {bars.symbols}"
            )
        a, b = (bars.symbols.index(s) for s in pair)
        fitted = replace(choose_pair(bars.close[:, [a, b]], window), a=a, b=b)
    rows = range(bars.close.shape[0])[window]  # choose_pair made sure the window is not empty
    logs = np.log(bars.close[:, [fitted.a, fitted.b]])
    z = (logs[:, :1] - fitted.alpha - fitted.beta * logs[:, 1:]) / fitted.spread_std
    z[: rows[0] if in_sample else rows[-1] + 1] = np.nan
    spread = _band_reversal(z, entry, exit)[:, 0]
    scale = max(1.0, abs(fitted.beta))
    raw = np.zeros(bars.close.shape)
    raw[:, fitted.a] = spread / scale
    raw[:, fitted.b] = -fitted.beta * spread / scale
    both = np.isfinite(logs).all(axis=1, keepdims=True)
    return _positions(np.where(both, raw, 0.0), bars.close)


# --- volatility -------------------------------------------------------------------------------


def volatility_regime_filter(
    bars: Bars, vol_window: int, median_window: int, vix: np.ndarray | None = None
) -> np.ndarray:
    """Long in a calm regime, flat otherwise: calm when σ_t < median(σ_{t-m+1..t}) over
    m = ``median_window`` sessions.

    - Without ``vix``, a VIX-style proxy per symbol: σ_t = realised vol of its last ``vol_window``
      daily log returns.
    - With ``vix`` (one close per session of the bars, NaN where none; e.g. FRED's VIXCLS), the
      market's regime for every symbol: σ_t = the mean of the last ``vol_window`` VIX closes.
    """
    if vix is None:
        vol = _realised_vol(bars.close, vol_window)
    else:
        series = np.asarray(vix, dtype=float).reshape(-1, 1)
        if series.shape[0] != bars.dates.size:
            raise ValueError(
                f"volatility_regime_filter: vix has {series.shape[0]} values for {bars.dates.size} sessions"
            )
        vol = np.broadcast_to(_rolling(series, vol_window, np.mean), bars.close.shape)
    median = _rolling(vol[:, :1] if vix is not None else vol, median_window, np.median)
    return _positions(np.where(vol < median, 1.0, 0.0), bars.close)


def volatility_breakout(bars: Bars, window: int, hold: int) -> np.ndarray:
    """Breakout: +1 when close_t > max(high_{t-n..t-1}), -1 when close_t < min(low_{t-n..t-1}),
    n = ``window``; the position is held for ``hold`` sessions (t..t+hold-1). A new breakout restarts
    the count in its own direction; a missing close ends the hold."""
    prior_high = _lagged(_rolling(bars.high, window, np.max), 1)
    prior_low = _lagged(_rolling(bars.low, window, np.min), 1)
    event = np.where(bars.close > prior_high, 1.0, 0.0) - np.where(bars.close < prior_low, 1.0, 0.0)
    out = np.zeros(event.shape)
    held = np.zeros(event.shape[1])
    left = np.zeros(event.shape[1])
    for t in range(event.shape[0]):
        fresh = event[t] != 0
        left = np.where(fresh, hold, np.where(np.isfinite(bars.close[t]), left - 1, 0))
        held = np.where(fresh, event[t], np.where(left > 0, held, 0.0))
        out[t] = held
    return _positions(out, bars.close)


def low_volatility_tilt(bars: Bars, window: int, quantile: float) -> np.ndarray:
    """Cross-sectional low-volatility factor: each session, long the ``quantile`` of symbols with the
    lowest realised vol of the last n = ``window`` daily log returns, short the highest."""
    return _positions(_quantile_long_short(-_realised_vol(bars.close, window), quantile), bars.close)


def fit_pair(bars: Bars, train: slice) -> dict[str, object]:
    """The options ``pair_stat_arb`` trades with after training on rows ``train``: the pair
    :func:`choose_pair` picks there (by name) and the window its hedge ratio is fitted on. The
    walk-forward calls it once per training window, not once per parameter set."""
    chosen = choose_pair(bars.close, train)
    return {"pair": (bars.symbols[chosen.a], bars.symbols[chosen.b]), "train": train}


# --- intraday ---------------------------------------------------------------------------------


def opening_range_breakout(minutes: pl.DataFrame, range_minutes: int) -> np.ndarray:
    """Opening-range breakout on one symbol's regular-session minute bars (``ts`` UTC minute start,
    ``high``, ``low``, ``close``; ascending ``ts``), one position per input row.

    Per session: the range is the high/low of the bars starting in [open, open + ``range_minutes``);
    flat inside it. After it, a close above the range high goes long (+1), a close below the range
    low short (-1); the position is held (a break of the other side reverses it) until the session's
    last minute (start = close - 1 min), where it is 0: flat at the close. A session without a bar in
    its range is flat. Open and close are the XNYS calendar's, so early closes are handled; when the
    last minute's bar is missing, the row before it still holds the position: the engine closes at the
    session's end whatever the last row says.
    """
    if not minutes["ts"].is_sorted() or minutes["ts"].is_duplicated().any():
        raise ValueError("opening_range_breakout: ts must be strictly ascending (one symbol's bars)")
    frame = minutes.select("ts", "high", "low", "close").with_columns(date=ny_date())
    windows = session_windows(frame["date"].unique().to_list()).select("date", "open_ts", "close_ts")
    frame = frame.join(windows, on="date", how="left", maintain_order="left")
    outside = frame.filter(
        pl.col("open_ts").is_null()
        | (pl.col("ts") < pl.col("open_ts"))
        | (pl.col("ts") >= pl.col("close_ts"))
    )
    if outside.height:
        raise ValueError(
            f"opening_range_breakout: {outside.height} bar(s) outside the regular session, first at {outside['ts'][0]}"
        )
    in_range = pl.col("ts") < pl.col("open_ts") + timedelta(minutes=range_minutes)
    top = pl.when(in_range).then(pl.col("high")).max().over("date")
    bottom = pl.when(in_range).then(pl.col("low")).min().over("date")
    # A bar inside the range cannot close outside it, so breaks (and the forward fill) start after it.
    event = pl.when(pl.col("close") > top).then(1.0).when(pl.col("close") < bottom).then(-1.0)
    last_minute = pl.col("ts") >= pl.col("close_ts") - timedelta(minutes=1)
    position = pl.when(in_range | last_minute).then(0.0).otherwise(event.forward_fill().over("date"))
    return frame.select(position.fill_null(0.0).alias("position"))["position"].to_numpy()


# --- registry ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    """A tunable parameter: its ``default``, the allowed range [``low``, ``high``], the small ``grid``
    (2-4 values) the walk-forward search tries, and what it means. An integer default makes the
    parameter integer-valued."""

    default: float
    low: float
    high: float
    grid: tuple[float, ...]
    doc: str

    def __post_init__(self) -> None:
        values = (self.default, *self.grid)
        if not 2 <= len(self.grid) <= 4 or not all(self.low <= v <= self.high for v in values):
            raise ValueError(
                f"Param {self.doc!r}: default and 2-4 grid values must lie in [{self.low}, {self.high}]"
            )

    @property
    def integer(self) -> bool:
        return isinstance(self.default, int)


@dataclass(frozen=True)
class Strategy:
    """A registered rule: ``signal(data, **params)`` with ``data`` daily :class:`Bars` (``data="daily"``)
    or one symbol's minute-bar frame (``data="minute"``). ``params`` are the tunable parameters;
    ``options`` names keyword arguments passed through unchecked (not searched over); ``fit``, when
    set, gives the options a training window fixes (``fit(bars, train_rows)``), for rules fitted on
    their training window."""

    name: str
    family: Family
    signal: Callable[..., np.ndarray]
    params: Mapping[str, Param] = field(default_factory=dict)
    options: tuple[str, ...] = ()
    data: Literal["daily", "minute"] = "daily"
    fit: Callable[[Bars, slice], dict[str, object]] | None = None

    @property
    def defaults(self) -> dict[str, float]:
        return {key: spec.default for key, spec in self.params.items()}

    def grid(self) -> list[dict[str, float]]:
        """Every parameter set of the declared grid (one empty set when there is nothing to tune)."""
        keys = list(self.params)
        return [
            dict(zip(keys, values, strict=True))
            for values in itertools.product(*(self.params[k].grid for k in keys))
        ]

    def validate(self, params: Mapping[str, object]) -> dict[str, object]:
        """``params`` completed with the defaults; a parameter that is unknown, out of its range or
        not an integer where one is needed raises a ``ValueError`` naming it."""
        for key, value in params.items():
            if key in self.options:
                continue
            spec = self.params.get(key)
            if spec is None:
                known = sorted([*self.params, *self.options])
                raise ValueError(f"{self.name}: unknown parameter {key!r}; it takes {known or 'none'}")
            if not isinstance(value, Real) or isinstance(value, bool) or not spec.low <= value <= spec.high:
                raise ValueError(
                    f"{self.name}: parameter {key}={value!r} is outside [{spec.low}, {spec.high}]"
                )
            if spec.integer and not float(value).is_integer():
                raise ValueError(f"{self.name}: parameter {key}={value!r} must be an integer")
        integers = {key for key, spec in self.params.items() if spec.integer}
        return {**self.defaults, **{key: int(v) if key in integers else v for key, v in params.items()}}

    def __call__(self, data: Bars | pl.DataFrame, **params: object) -> np.ndarray:
        """The positions for ``data`` with ``params`` validated and completed with the defaults."""
        return self.signal(data, **self.validate(params))


_QUANTILE = Param(0.2, 0.05, 0.5, (0.1, 0.2, 0.3), "fraction of the symbols held long, and short")

STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in (
        *(Strategy(f"momentum_{k}d", "momentum", partial(momentum, lookback=k)) for k in (1, 5, 20)),
        Strategy(
            "volume_weighted_momentum",
            "momentum",
            volume_weighted_momentum,
            {"lookback": Param(20, 2, 252, (5, 10, 20), "sessions of returns averaged, weighted by volume")},
        ),
        Strategy(
            "cross_sectional_momentum",
            "momentum",
            cross_sectional_momentum,
            {
                "lookback": Param(60, 1, 252, (20, 60, 120), "sessions in the trailing return"),
                "quantile": _QUANTILE,
            },
        ),
        Strategy(
            "rsi_reversal",
            "mean_reversion",
            rsi_reversal,
            {
                "period": Param(14, 2, 100, (7, 14, 21), "close-to-close changes in Wilder's averages"),
                "low": Param(30.0, 5.0, 50.0, (20.0, 30.0), "RSI below which the symbol is bought"),
                "high": Param(70.0, 50.0, 95.0, (70.0, 80.0), "RSI above which the symbol is sold short"),
            },
        ),
        Strategy(
            "bollinger_reversal",
            "mean_reversion",
            bollinger_reversal,
            {
                "window": Param(20, 5, 252, (10, 20, 40), "closes in the moving mean and std"),
                "k": Param(2.0, 0.5, 4.0, (1.5, 2.0, 2.5), "band width in standard deviations"),
            },
        ),
        Strategy(
            "pair_stat_arb",
            "mean_reversion",
            pair_stat_arb,
            {
                "entry": Param(2.0, 1.0, 4.0, (1.5, 2.0, 2.5), "|z| at which the spread is entered"),
                "exit": Param(0.5, 0.0, 1.0, (0.0, 0.5), "|z| under which the spread is closed"),
            },
            options=("pair", "train", "in_sample"),
            fit=fit_pair,
        ),
        Strategy(
            "volatility_regime_filter",
            "volatility",
            volatility_regime_filter,
            {
                "vol_window": Param(
                    21, 5, 126, (10, 21, 42), "daily returns in the realised vol (or VIX closes averaged)"
                ),
                "median_window": Param(252, 21, 1260, (126, 252), "sessions of volatility in the median"),
            },
            options=("vix",),
        ),
        Strategy(
            "volatility_breakout",
            "volatility",
            volatility_breakout,
            {
                "window": Param(20, 2, 252, (10, 20, 55), "prior sessions whose high/low must be broken"),
                "hold": Param(5, 1, 63, (1, 5, 10), "sessions a breakout position is held"),
            },
        ),
        Strategy(
            "low_volatility_tilt",
            "volatility",
            low_volatility_tilt,
            {
                "window": Param(63, 5, 252, (21, 63, 126), "daily returns in the realised vol"),
                "quantile": _QUANTILE,
            },
        ),
        Strategy(
            "opening_range_breakout",
            "volatility",
            opening_range_breakout,
            {"range_minutes": Param(30, 5, 120, (15, 30, 60), "minutes after the open forming the range")},
            data="minute",
        ),
    )
}


def get(name: str) -> Strategy:
    """The registered strategy ``name``; a ``ValueError`` naming it and the known ones otherwise."""
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}; known: {', '.join(sorted(STRATEGIES))}") from None


def validate(name: str, params: Mapping[str, object]) -> dict[str, object]:
    """Strategy ``name``'s parameters completed with its defaults (see :meth:`Strategy.validate`)."""
    return get(name).validate(params)

"""Walk-forward backtest engine: one shared loop that any strategy plugs a ``decide`` function into.

The ETF domain plugs factor scores and the optimiser in, strategy research plugs signals in; the
engine owns everything else (execution, costs, stop-loss, drift, bookkeeping, metrics), decided
once here:

- **No look-ahead by construction.** At a decision date t, ``decide(t, panel.upto(t))`` sees a
  read-only view of the rows dated ≤ t and nothing else, so extending or changing prices after t
  cannot change any decision, trade or equity value at or before t.
- **Execution** is market-on-close at the decision session's close: buys fill ``slippage_bps``
  above the close, sells below; whole shares (floor of ``weight × equity / close``); an IB-like
  commission per trade. If costs would take cash below zero, the largest buy is trimmed.
- **First allocation.** The book starts in cash and is invested at the first session ≥ ``start``.
  If that session is a scheduled rebalance it counts as one; otherwise it is the "initial"
  allocation (trades with reason ``initial``, metric ``initial_allocations``), decided by the same
  ``decide``. Scheduled rebalances are the period starts of :func:`rebalance_dates`, so their count
  equals the calendar's period starts in the window (quarterly over 5 years = 20).
- **Stop-loss** (checked at every session close after a position's entry, except on a scheduled
  rebalance, whose decision replaces it): a position whose close is ``stop_loss`` or more below its
  entry price is sold at that close. The entry price is the share-weighted average close of the
  buys that built the current position (sells leave it unchanged; it resets when the position is
  closed): the stop measures the market move, not our costs. The stopped symbol's target becomes
  0 and its cash waits for the next scheduled rebalance.
- **Drift** (checked at every session close that is not a scheduled rebalance, after stops): when
  any symbol's weight (market value ÷ equity) is more than ``drift_band`` (absolute) away from its
  target, the whole book is traded back to the targets: an off-cycle rebalance, counted apart.
- **Missing prices.** A symbol with no close on a session is valued (and, if it must be sold,
  sold) at its last close, a stale but known price; ``decide`` may only give weight to symbols
  with a close on t.
- **Marking** is vectorised between events: positions only change on decision, stop and drift
  sessions, so each stretch in between is one matrix product.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Literal

import numpy as np
import polars as pl

from finance_dag.analytics import performance_summary
from finance_dag.core import calendar

__all__ = [
    "DEFAULT_CONFIG",
    "BacktestConfig",
    "BacktestResult",
    "Decide",
    "Frequency",
    "Panel",
    "rebalance_dates",
    "walk_forward",
]

Frequency = Literal["monthly", "bimonthly", "quarterly"]
_PERIOD_MONTHS: dict[str, int] = {"monthly": 1, "bimonthly": 2, "quarterly": 3}
# A close exactly ``stop_loss`` below entry must trigger although ``entry * (1 - stop)`` may round
# a hair above or below it; 1e-12 relative is far below any price tick.
_STOP_ROUNDING = 1e-12
# Target weights may sum to 1 plus float noise (a sum of 30 floats), not more.
_WEIGHT_ROUNDING = 1e-9
_YEAR = 252


@dataclass(frozen=True)
class Panel:
    """Total-return price index of ``symbols`` on ascending sessions ``dates``.

    ``prices`` is T×N float64, NaN where a symbol has no data (not yet listed, gone, or a gap);
    present values must be positive (:func:`walk_forward` checks). The arrays are stored as
    read-only views, so a ``decide`` function cannot alter the data the engine trades on.
    """

    dates: np.ndarray
    symbols: tuple[str, ...]
    prices: np.ndarray

    def __post_init__(self) -> None:
        dates = np.asarray(self.dates, dtype="datetime64[D]")
        prices = np.asarray(self.prices, dtype=np.float64)
        symbols = tuple(self.symbols)
        if dates.ndim != 1 or prices.shape != (dates.size, len(symbols)):
            raise ValueError(
                f"Panel: prices must be (dates, symbols) = ({dates.size}, {len(symbols)}), got {prices.shape}"
            )
        if dates.size > 1 and not (dates[1:] > dates[:-1]).all():
            raise ValueError("Panel: dates must be strictly ascending")
        if len(set(symbols)) != len(symbols):
            raise ValueError("Panel: symbols must be unique")
        for name, array in (("dates", dates), ("prices", prices)):
            view = array.view()
            view.flags.writeable = False
            object.__setattr__(self, name, view)
        object.__setattr__(self, "symbols", symbols)

    def upto(self, t: date | np.datetime64) -> Panel:
        """The rows dated ≤ ``t``: views of this panel's arrays, no copy."""
        k = int(np.searchsorted(self.dates, np.datetime64(t, "D"), side="right"))
        return Panel(self.dates[:k], self.symbols, self.prices[:k])

    def returns(self) -> np.ndarray:
        """Simple returns ``p[t] / p[t-1] - 1`` (T×N); NaN on the first row and wherever either
        close is missing: a return never spans a gap."""
        out = np.full(self.prices.shape, np.nan)
        out[1:] = self.prices[1:] / self.prices[:-1] - 1.0
        return out

    @classmethod
    def from_long(cls, frame: pl.DataFrame) -> Panel:
        """From a long frame with ``date``, ``symbol`` and ``price``: sessions are the distinct dates,
        symbols sorted; a missing, null or non-positive price is NaN. Duplicate (date, symbol) rows
        are an error."""
        missing = {"date", "symbol", "price"} - set(frame.columns)
        if missing:
            raise ValueError(f"Panel.from_long: missing column(s) {sorted(missing)}; it has {frame.columns}")
        long = frame.select(
            pl.col("date").cast(pl.Date),
            pl.col("symbol").cast(pl.String),
            pl.col("price").cast(pl.Float64).fill_null(float("nan")),
        )
        if long["date"].null_count() or long["symbol"].null_count():
            raise ValueError("Panel.from_long: date and symbol must not be null")
        if long.select("date", "symbol").is_duplicated().any():
            raise ValueError("Panel.from_long: duplicate (date, symbol) rows")
        dates, row = np.unique(long["date"].to_numpy(), return_inverse=True)
        symbols, col = np.unique(long["symbol"].to_numpy(), return_inverse=True)
        prices = np.full((dates.size, symbols.size), np.nan)
        price = long["price"].to_numpy()
        prices[row, col] = np.where(price > 0, price, np.nan)
        return cls(dates, tuple(symbols.tolist()), prices)


@dataclass(frozen=True)
class BacktestConfig:
    """Execution and risk rules; the defaults are the ETF seed's parameters.

    - ``initial_capital``: $1,000,000, all cash before the first allocation.
    - ``stop_loss``: 0.12: sell a position whose close is 12 % or more below its entry price
      (average entry close); the cash waits for the next scheduled rebalance. ``None`` disables.
    - ``drift_band``: 0.05: between scheduled rebalances, when any weight is more than 5 percentage
      points (absolute) from its target, trade the book back to the targets. ``None`` disables.
    - ``commission_per_share`` 0.005 with ``min_commission`` 1.0 per trade: Interactive Brokers'
      fixed tier (its 1 %-of-value cap is left out: it never binds on ETF-sized trades).
    - ``slippage_bps``: 5: buys fill 5 bp above the close, sells 5 bp below, a typical half-spread
      plus impact for liquid ETFs traded market-on-close.
    """

    initial_capital: float = 1_000_000.0
    stop_loss: float | None = 0.12
    drift_band: float | None = 0.05
    commission_per_share: float = 0.005
    min_commission: float = 1.0
    slippage_bps: float = 5.0

    def __post_init__(self) -> None:
        if not self.initial_capital > 0:
            raise ValueError(f"initial_capital must be positive, got {self.initial_capital}")
        if self.stop_loss is not None and not 0 < self.stop_loss < 1:
            raise ValueError(f"stop_loss must be in (0, 1) or None, got {self.stop_loss}")
        if self.drift_band is not None and not 0 < self.drift_band < 1:
            raise ValueError(f"drift_band must be in (0, 1) or None, got {self.drift_band}")
        if min(self.commission_per_share, self.min_commission, self.slippage_bps) < 0:
            raise ValueError("commissions and slippage must not be negative")


@dataclass(frozen=True)
class BacktestResult:
    """What a walk-forward run produced.

    - ``equity``: date, equity, cash, invested, drawdown (equity ÷ running peak − 1, the initial
      capital being the first peak); one row per session from the first allocation on.
    - ``weights``: rebalance_date, symbol, weight, reason (``initial`` or ``rebalance``): the
      targets ``decide`` returned (zero weights left out).
    - ``trades``: date, symbol, side, shares, price (the fill), value (shares × fill), commission,
      slippage_cost (shares × |fill − close|), reason (initial, rebalance, drift, stop_loss).
    - ``stops``: date, symbol, shares, price (the close that triggered), entry_price, loss_pct.
    - ``metrics``: :func:`~finance_dag.analytics.performance_summary` of the daily equity returns
      (the first one measured from the initial capital), plus ``rebalances`` (scheduled),
      ``initial_allocations`` (0 or 1), ``drift_rebalances``, ``stop_losses``, ``trade_win_rate``
      (share of closed round trips, open to flat, whose cash flows net of costs are positive; NaN
      without any), ``costs_paid`` (commissions + slippage) and ``turnover`` (annualised one-way:
      traded value after the first allocation ÷ 2 ÷ mean equity, per 252 sessions).
    """

    equity: pl.DataFrame
    weights: pl.DataFrame
    trades: pl.DataFrame
    stops: pl.DataFrame
    metrics: dict[str, float]


DEFAULT_CONFIG = BacktestConfig()
Decide = Callable[[date, Panel], Mapping[str, float]]
# A logged event: session index, symbol indices, and per-symbol (or shared) column values.
_Event = tuple[int, np.ndarray, dict[str, np.ndarray | str]]


def _as_days(days: Iterable[date] | np.ndarray) -> np.ndarray:
    return np.asarray(list(days) if not isinstance(days, np.ndarray) else days, dtype="datetime64[D]")


def rebalance_dates(
    sessions: Sequence[date] | np.ndarray, start: date, end: date, frequency: Frequency
) -> list[date]:
    """Scheduled rebalances: the first session of each calendar period whose first session lies
    in [``start``, ``end``].

    Periods are months, two-month periods (Jan–Feb, Mar–Apr, …) or quarters. Which session opens
    a period is the XNYS calendar's answer (``core.calendar``), so a ``sessions`` list that begins
    mid-period cannot pass its first day off as a period start (periods that open before
    ``sessions[0]`` are not scheduled). Each period start is then taken from ``sessions``
    (typically a panel's dates): the first of them on or after it within the same period and
    ≤ ``end`` (a panel missing that day rebalances on its next one). A ``start``
    that is not a period start is not a rebalance: :func:`walk_forward` invests there as the
    initial allocation.
    """
    if frequency not in _PERIOD_MONTHS:
        raise ValueError(f"frequency must be one of {sorted(_PERIOD_MONTHS)}, got {frequency!r}")
    months = _PERIOD_MONTHS[frequency]
    period_begin = date(start.year, (start.month - 1) // months * months + 1, 1)
    xnys = _as_days(calendar.sessions(period_begin, end))
    period = xnys.astype("datetime64[M]").astype(np.int64) // months  # 1970-01 opens a period
    firsts = xnys[np.r_[True, period[1:] != period[:-1]]] if xnys.size else xnys
    days = _as_days(sessions)
    if not days.size:
        return []
    firsts = firsts[firsts >= max(np.datetime64(start, "D"), days[0])]
    at = np.searchsorted(days, firsts)
    found = at < days.size
    picked, firsts = days[at[found]], firsts[found]
    same = picked.astype("datetime64[M]").astype(np.int64) // months == (
        firsts.astype("datetime64[M]").astype(np.int64) // months
    )
    keep = same & (picked <= np.datetime64(end, "D"))
    return [d.item() for d in picked[keep]]


def forward_fill(prices: np.ndarray) -> np.ndarray:
    """Each missing value replaced by the column's last observed one (NaN before its first)."""
    rows = np.where(np.isnan(prices), 0, np.arange(prices.shape[0])[:, None])
    np.maximum.accumulate(rows, axis=0, out=rows)
    return prices[rows, np.arange(prices.shape[1])]


class _Book:
    """Cash, whole-share positions, entry prices and the trade log of one run."""

    def __init__(self, config: BacktestConfig, n: int) -> None:
        self.config = config
        self.slip = config.slippage_bps / 1e4
        self.cash = float(config.initial_capital)
        self.shares = np.zeros(n)
        self.entry = np.full(n, np.nan)
        self.flow = np.zeros(n)  # cash flows of each open round trip, net of costs
        self.round_trips: list[np.ndarray] = []  # closed round trips' net flows
        self.trades: list[_Event] = []
        self.stops: list[_Event] = []

    def invested(self, mark: np.ndarray) -> float:
        return float(self.shares @ mark)

    def mark_to_market(
        self, marks: np.ndarray, target: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The current book on each row of ``marks`` (sessions × symbols): the held symbols, their
        closes, the equity, and the largest |weight − target| over all symbols (drift)."""
        held = np.flatnonzero(self.shares)
        closes = marks[:, held]
        values = closes * self.shares[held]
        total = self.cash + values.sum(axis=1)
        unheld = np.delete(target, held).max(initial=0.0)  # targeted but not held: weight 0
        deviation = np.abs(values / total[:, None] - target[held]).max(axis=1, initial=0.0)
        return held, closes, total, np.maximum(deviation, unheld)

    def commission(self, shares: np.ndarray) -> np.ndarray:
        return np.maximum(self.config.min_commission, self.config.commission_per_share * shares)

    def rebalance(self, day: int, mark: np.ndarray, target: np.ndarray, reason: str) -> None:
        """Trade to whole-share ``target`` weights of current equity at ``mark`` (the closes)."""
        equity = self.cash + self.invested(mark)
        want = np.zeros_like(self.shares)
        on = target > 0
        want[on] = np.floor(target[on] * equity / mark[on])
        delta = want - self.shares
        traded = np.flatnonzero(delta)
        while traded.size:  # costs may need a few shares of the largest buy back
            d, px = delta[traded], mark[traded]
            spend = d @ px + self.slip * (np.abs(d) @ px) + self.commission(np.abs(d)).sum()
            if spend <= self.cash or not (d > 0).any():
                break
            largest = traded[np.argmax(d * px)]
            short = np.ceil((spend - self.cash) / (mark[largest] * (1 + self.slip)))
            delta[largest] -= min(delta[largest], short)
            traded = np.flatnonzero(delta)
        self.execute(day, traded, delta[traded], mark, reason)

    def stop(self, day: int, symbols: np.ndarray, mark: np.ndarray) -> None:
        entry, close = self.entry[symbols], mark[symbols]
        fields = {"shares": self.shares[symbols].astype(np.int64), "price": close, "entry_price": entry}
        self.stops.append((day, symbols, fields | {"loss_pct": 1.0 - close / entry}))
        self.execute(day, symbols, -self.shares[symbols], mark, "stop_loss")

    def execute(self, day: int, idx: np.ndarray, delta: np.ndarray, mark: np.ndarray, reason: str) -> None:
        """Fill ``delta`` shares of symbols ``idx`` at the close ± slippage; update entries and P&L."""
        if not idx.size:
            return
        close = mark[idx]
        fill = close * (1.0 + self.slip * np.sign(delta))
        size = np.abs(delta)
        commission = self.commission(size)
        self.cash -= float(delta @ fill + commission.sum())
        before = self.shares[idx]
        after = before + delta
        buy = delta > 0
        held_entry = np.nan_to_num(self.entry[idx])
        entry = np.where(
            buy, (held_entry * before + close * delta) / np.where(after > 0, after, 1), self.entry[idx]
        )
        self.entry[idx] = np.where(after > 0, entry, np.nan)
        self.flow[idx] -= delta * fill + commission
        closed = idx[after == 0]
        self.round_trips.append(self.flow[closed].copy())
        self.flow[closed] = 0.0
        self.shares[idx] = after
        self.trades.append(
            (
                day,
                idx,
                {
                    "side": np.where(buy, "buy", "sell"),
                    "shares": size.astype(np.int64),
                    "price": fill,
                    "value": size * fill,
                    "commission": commission,
                    "slippage_cost": size * close * self.slip,
                    "reason": reason,
                },
            )
        )


def _session_indices(dates: np.ndarray, days: Iterable[date]) -> list[int]:
    """Indices of ``days`` in ``dates``; days after the last session are not reached and dropped."""
    wanted = np.unique(_as_days(days))
    wanted = wanted[wanted <= dates[-1]]
    at = np.searchsorted(dates, wanted)
    bad = wanted[(at >= dates.size) | (dates[np.minimum(at, dates.size - 1)] != wanted)]
    if bad.size:
        raise ValueError(f"rebalance dates that are not sessions of the panel: {[str(d) for d in bad[:5]]}")
    return at.tolist()


def _targets(
    weights: Mapping[str, float], index: Mapping[str, int], closes: np.ndarray, day: date
) -> np.ndarray:
    """``decide``'s answer as a dense weight vector, checked: known symbols, finite, ≥ 0, sum ≤ 1,
    and a close on ``day`` for every symbol with weight."""
    target = np.zeros(len(index))
    unknown = [s for s in weights if s not in index]
    if unknown:
        raise ValueError(f"decide({day}) returned symbols not in the panel: {unknown[:5]}")
    for symbol, weight in weights.items():
        target[index[symbol]] = weight
    if not np.isfinite(target).all() or (target < 0).any() or target.sum() > 1 + _WEIGHT_ROUNDING:
        raise ValueError(
            f"decide({day}) must return finite weights ≥ 0 summing to ≤ 1, got sum {target.sum()}"
        )
    unpriced = [s for s, j in index.items() if target[j] > 0 and np.isnan(closes[j])]
    if unpriced:
        raise ValueError(f"decide({day}) gave weight to symbols without a close that day: {unpriced[:5]}")
    return target


def walk_forward(
    panel: Panel,
    rebalance_dates: Sequence[date],
    decide: Decide,
    config: BacktestConfig = DEFAULT_CONFIG,
    *,
    start: date | None = None,
) -> BacktestResult:
    """Run the book from the first session ≥ ``start`` (default: the first rebalance date) to the
    panel's last session.

    ``rebalance_dates`` must be sessions of the panel, none before the start (those after its last
    session are not reached and ignored). On each decision session t, ``decide(t, panel.upto(t))``
    returns target weights (symbol → weight ≥ 0, sum ≤ 1, the rest stays cash). See the module
    docstring for execution, stop-loss and drift rules and :class:`BacktestResult` for the output.
    """
    if not panel.dates.size:
        raise ValueError("walk_forward: empty panel")
    if not np.all(np.isnan(panel.prices) | (panel.prices > 0)):
        raise ValueError("walk_forward: prices must be positive or NaN")
    dates, n_sessions = panel.dates, panel.dates.size
    scheduled = _session_indices(dates, rebalance_dates)
    if start is None and not scheduled:
        raise ValueError("walk_forward: no rebalance date within the panel and no start")
    first = scheduled[0] if start is None else int(np.searchsorted(dates, np.datetime64(start, "D")))
    if first >= n_sessions:
        raise ValueError(f"walk_forward: no session on or after start {start}")
    if scheduled and scheduled[0] < first:
        raise ValueError(f"walk_forward: rebalance date {dates[scheduled[0]]} is before the start {start}")
    mark = np.nan_to_num(forward_fill(panel.prices), nan=0.0)  # the marking price (0 before a first close)
    index = {symbol: j for j, symbol in enumerate(panel.symbols)}
    book = _Book(config, len(panel.symbols))
    # a held position's mark is positive, so a factor of 0 never stops it
    stop_factor = 0.0 if config.stop_loss is None else (1.0 - config.stop_loss) * (1.0 + _STOP_ROUNDING)
    band = np.inf if config.drift_band is None else config.drift_band
    rows = n_sessions - first
    equity, cash = np.empty(rows), np.empty(rows)
    target = np.zeros(len(index))
    decisions: list[tuple[int, np.ndarray, str]] = []
    drifts = 0

    day, deciding = first, True
    while day < n_sessions:
        if deciding:
            t = dates[day].item()
            reason = "rebalance" if day in scheduled else "initial"
            target = _targets(decide(t, panel.upto(t)), index, panel.prices[day], t)
            decisions.append((day, target.copy(), reason))
            book.rebalance(day, mark[day], target, reason)
        equity[day - first], cash[day - first] = book.cash + book.invested(mark[day]), book.cash
        following = bisect.bisect_right(scheduled, day)
        next_decision = scheduled[following] if following < len(scheduled) else n_sessions
        # Positions are constant until the next event: mark the stretch at once, find the event.
        held, closes, total, deviation = book.mark_to_market(mark[day + 1 : next_decision], target)
        hit = closes <= book.entry[held] * stop_factor
        event = hit.any(axis=1) | (deviation > band)
        k = int(np.argmax(event)) if event.any() else next_decision - day - 1
        equity[day + 1 - first : day + 1 + k - first] = total[:k]
        cash[day + 1 - first : day + 1 + k - first] = book.cash
        if day + 1 + k == next_decision:
            day, deciding = next_decision, True
            continue
        day, deciding = day + 1 + k, False
        stopped = held[hit[k]]
        if stopped.size:
            book.stop(day, stopped, mark[day])
            target[stopped] = 0.0
        if book.mark_to_market(mark[day : day + 1], target)[3][0] > band:  # drift after the stops
            drifts += 1
            book.rebalance(day, mark[day], target, "drift")
    return _result(panel, first, equity, cash, decisions, book, len(scheduled), drifts)


_TRADE_SCHEMA = {
    "date": pl.Date,
    "symbol": pl.String,
    "side": pl.String,
    "shares": pl.Int64,
    "price": pl.Float64,
    "value": pl.Float64,
    "commission": pl.Float64,
    "slippage_cost": pl.Float64,
    "reason": pl.String,
}
_STOP_SCHEMA = {
    "date": pl.Date,
    "symbol": pl.String,
    "shares": pl.Int64,
    "price": pl.Float64,
    "entry_price": pl.Float64,
    "loss_pct": pl.Float64,
}


def _log_frame(log: list[_Event], dates: np.ndarray, symbols: np.ndarray, schema: dict) -> pl.DataFrame:
    """One row per symbol of each logged event: its session, its symbol and the event's fields."""
    parts: dict[str, list[np.ndarray]] = {name: [] for name in schema}
    for day, idx, fields in log:
        parts["date"].append(np.repeat(dates[day], idx.size))
        parts["symbol"].append(symbols[idx])
        for name, value in fields.items():
            parts[name].append(np.broadcast_to(value, idx.shape))
    return pl.DataFrame({name: np.concatenate(p) if p else [] for name, p in parts.items()}, schema=schema)


def _result(
    panel: Panel,
    first: int,
    equity: np.ndarray,
    cash: np.ndarray,
    decisions: list[tuple[int, np.ndarray, str]],
    book: _Book,
    scheduled: int,
    drifts: int,
) -> BacktestResult:
    """Frames and metrics from the run's arrays and logs."""
    dates, symbols = panel.dates, np.array(panel.symbols, dtype=object)
    capital = book.config.initial_capital
    curve = np.concatenate(([capital], equity))
    frame = pl.DataFrame(
        {
            "date": dates[first:],
            "equity": equity,
            "cash": cash,
            "invested": equity - cash,
            "drawdown": (curve / np.maximum.accumulate(curve) - 1.0)[1:],
        }
    )
    weights = pl.DataFrame(
        [
            (dates[day].item(), symbols[j], float(target[j]), reason)
            for day, target, reason in decisions
            for j in np.flatnonzero(target)
        ],
        schema={"rebalance_date": pl.Date, "symbol": pl.String, "weight": pl.Float64, "reason": pl.String},
        orient="row",
    )
    trades = _log_frame(book.trades, dates, symbols, _TRADE_SCHEMA)
    stops = _log_frame(book.stops, dates, symbols, _STOP_SCHEMA)
    trips = np.concatenate(book.round_trips or [np.empty(0)])
    later = trades.filter(pl.col("date") > dates[first].item())
    metrics = performance_summary(curve[1:] / curve[:-1] - 1.0) | {
        "rebalances": float(scheduled),
        "initial_allocations": float(any(reason == "initial" for *_, reason in decisions)),
        "drift_rebalances": float(drifts),
        "stop_losses": float(stops.height),
        "trade_win_rate": float(np.mean(trips > 0)) if trips.size else float("nan"),
        "costs_paid": float(trades["commission"].sum() + trades["slippage_cost"].sum()),
        "turnover": float(later["value"].sum() / 2 / equity.mean() * _YEAR / equity.size),
    }
    return BacktestResult(equity=frame, weights=weights, trades=trades, stops=stops, metrics=metrics)

"""The simulated US equity universe: 3,000 stocks whose daily returns follow a KNOWN Barra-style
characteristic factor model, so a risk model built to the shared spec can be checked against truth.

The model is the spec's (``FACTORS``: market, size, value, momentum, volatility, liquidity, plus one
factor per GICS sector of ``finance_dag.sim.market.SECTORS``). The return of stock ``i`` on session
``t`` (simple, close to close) is

    r_it = beta_i * f_market,t + sum_k x_ik,t-1 * f_k,t + f_sector(i),t + e_it,   e_it ~ N(0, s_i)

where ``x_ik,t-1`` are the style exposures computed at the close of ``t-1`` exactly as the spec
computes them from public data (``daily`` and ``fundamentals``):

- size: ln(close x shares outstanding); value: last reported book value / market cap;
- momentum: close[t-1-5] / close[t-1-68] - 1 (63 sessions skipping the latest 5);
- volatility: std (ddof=1) of the last 21 daily returns x sqrt(252);
- liquidity: ln(mean of volume / shares outstanding over the last 21 sessions);

each winsorised at the equal-weighted mean +- 3 standard deviations (ddof=0), then shifted to a
cap-weighted mean of 0 (caps at ``t-1``) and scaled to an equal-weighted standard deviation
(ddof=0) of 1. The market exposure is a static true beta, drawn so that its cap-weighted mean at
the first close is exactly 1 (it drifts a little from 1 as the caps move).

Factor returns are drawn i.i.d. normal with the daily means and volatilities of ``FACTOR_MEAN``
and ``FACTOR_VOL`` (sectors: mean 0, ``SECTOR_VOL``), and the sector returns of each session are
then demeaned with the sectors' cap weights at ``t-1`` so that ``sum_s w_s f_s,t = 0``: the
spec's constraint, which makes the universe's cap-weighted return ``market_proxy`` equal to
``(cap-weighted beta) * f_market`` plus cap-weighted specific noise, i.e. about the market factor.

Warm-up: during the first ``WARMUP`` sessions (before a year of history exists) the exposures are
size and value from the spec's descriptors (they need one close only), liquidity from each stock's
static turnover level, and 0 for momentum and volatility; validation should use later sessions.

Per stock (static unless said): sector (uniform over the 11 sectors), country (``US_SHARE`` "US",
the rest ADRs from ``ADR_COUNTRIES``), shares outstanding (market caps log-normal around $6B,
within $300M-$2T at the first close), a book-to-price characteristic (0.05-2), book value reported
on the first session of each calendar quarter (it moves halfway to the characteristic B/P at the
previous close, with 3 % noise, so B/P stays in range while prices wander), a specific volatility
(0.8 %-3 % a day, larger for small caps), and a turnover level (0.2 %-3 % a day) around which
daily turnover follows an AR(1) in logs (``TURNOVER_AR``, stationary sd ``TURNOVER_SD``).

Prices: the first close is log-uniform $10-$300, then ``close_t = close_t-1 * (1 + r_t)``,
unrounded (so returns from ``daily`` are the model's exactly); no splits and no dividends: the
risk domain's inputs are total-return closes. Volume is ``round(turnover x shares outstanding)``.
Nothing is delisted, so losers keep trading: by mid-2024 (seed 7) about 7 % of caps are below
$300M and about 1 % of closes below $1, as in a real universe's tail of fallen small caps.

Unlike the per-symbol simulators, exposures are cross-sectional, so the universe is generated as
a whole, session by session (vectorised across stocks), once per instance: deterministic per
``(seed, n_stocks)``. An instance built with an earlier ``end`` draws the same random numbers and
reproduces the same history up to ``end``: nothing at ``t`` depends on what comes after.
For 3,000 stocks x 2,513 sessions that takes about 2 s on two cores, peaks near 320 MB of arrays
and keeps 260 MB (closes float64, volumes int64, true style exposures float32).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import date
from functools import cached_property

import numpy as np
import polars as pl

from finance_dag.core import calendar
from finance_dag.sim.market import FACTORS, SECTORS

EQUITY_START = date(2017, 1, 3)  # first simulated session: the first close, no return
EQUITY_UNTIL = date(2026, 12, 31)  # last simulated session
N_STOCKS = 3_000
STYLES: tuple[str, ...] = FACTORS[1:]  # size, value, momentum, volatility, liquidity
WARMUP = 252  # sessions whose exposures come from static characteristics (see module docstring)
FACTOR_MEAN = {"market": 0.0004, "size": -0.0001, "value": 0.0001, "momentum": 0.0002, "volatility": -0.0002, "liquidity": 0.0}  # fmt: skip
FACTOR_VOL = {"market": 0.011, "size": 0.004, "value": 0.003, "momentum": 0.005, "volatility": 0.006, "liquidity": 0.003}  # fmt: skip
SECTOR_VOL = 0.004
US_SHARE = 0.9
ADR_COUNTRIES = ("GB", "JP", "DE", "CN", "CA", "FR", "CH")
CAP_RANGE = (3e8, 2e12)  # market caps at the first close
SPECIFIC_VOL_RANGE = (0.008, 0.03)  # daily, from the largest to the smallest caps
TURNOVER_RANGE = (0.002, 0.03)  # daily turnover levels
TURNOVER_AR = 0.9
TURNOVER_SD = 0.3  # stationary sd of log turnover around its level
BOOK_ADJUST = 0.5  # share of the gap to the characteristic B/P closed at each report
BOOK_NOISE = 0.03
INDEX_START = 100.0  # market_proxy's level on the first session
MOMENTUM_WINDOW, MOMENTUM_SKIP = 63, 5
RECENT_WINDOW = 21  # volatility and liquidity


@dataclass(frozen=True)
class _History:
    """The generated universe; row ``t`` of ``exposures`` drove the returns of session ``t``."""

    close: np.ndarray  # (sessions, stocks) float64
    volume: np.ndarray  # (sessions, stocks) int64
    exposures: np.ndarray  # (sessions, styles, stocks) float32; row 0 is NaN (no return)
    factor_returns: np.ndarray  # (sessions, factors + sectors) float64; row 0 is NaN
    report_sessions: np.ndarray  # session index of each book-value report
    book: np.ndarray  # (reports, stocks) float64


class SimulatedEquityMarket:
    """The deterministic simulated equity universe (see the module docstring for the model)."""

    def __init__(self, seed: int = 7, n_stocks: int = N_STOCKS, end: date = EQUITY_UNTIL) -> None:
        self.seed = seed
        self.n_stocks = n_stocks
        self._all_sessions = calendar.sessions(EQUITY_START, EQUITY_UNTIL)
        self.sessions: list[date] = [d for d in self._all_sessions if d <= end]
        if not self.sessions:
            raise ValueError(f"end {end.isoformat()} is before the first session {EQUITY_START.isoformat()}")
        self._index = {d: i for i, d in enumerate(self.sessions)}
        width = max(4, len(str(n_stocks)))
        self.symbols: tuple[str, ...] = tuple(f"EQ{i:0{width}d}" for i in range(1, n_stocks + 1))
        self._draw_static()

    def _draw_static(self) -> None:
        """Per-stock characteristics, from their own random stream."""
        n = self.n_stocks
        rng = np.random.default_rng([self.seed, 70, n])
        self.sector = rng.integers(0, len(SECTORS), n)
        self.country = np.where(
            rng.uniform(size=n) < US_SHARE,
            "US",
            np.array(ADR_COUNTRIES)[rng.integers(0, len(ADR_COUNTRIES), n)],
        )
        self.first_close = np.exp(rng.uniform(np.log(10.0), np.log(300.0), n))
        log_lo, log_hi = np.log(CAP_RANGE)
        log_cap = np.clip(rng.normal(np.log(6e9), 1.35, n), log_lo, log_hi)
        self.shares = np.maximum(1, np.round(np.exp(log_cap) / self.first_close)).astype(np.int64)
        self.book_to_price = np.exp(np.clip(rng.normal(np.log(0.4), 0.75, n), np.log(0.05), np.log(2.0)))
        cap = self.first_close * self.shares
        raw_beta = np.clip(1.0 + 0.3 * rng.standard_normal(n), 0.3, 2.2)
        self.beta = raw_beta / (cap @ raw_beta / cap.sum())  # cap-weighted mean exactly 1
        smallness = (log_hi - np.log(cap)) / (log_hi - log_lo)  # 0 for the largest cap, 1 the smallest
        spread = np.clip(smallness + 0.15 * rng.standard_normal(n), 0.0, 1.0)
        lo, hi = SPECIFIC_VOL_RANGE
        self.specific_vol = lo * (hi / lo) ** spread
        self.turnover_level = np.exp(rng.uniform(*np.log(TURNOVER_RANGE), n))

    # ---- generation -----------------------------------------------------------------------
    @cached_property
    def _history(self) -> _History:
        """Simulate every session in order; computed once per instance."""
        n, n_all, n_run = self.n_stocks, len(self._all_sessions), len(self.sessions)
        n_sec = len(SECTORS)
        # Draws have the shape of the full calendar whatever ``end`` is, so histories agree.
        draws = np.random.default_rng([self.seed, 71, n]).standard_normal((n_all, len(FACTORS) + n_sec))
        mean = np.array([*FACTOR_MEAN.values(), *[0.0] * n_sec])
        vol = np.array([*FACTOR_VOL.values(), *[SECTOR_VOL] * n_sec])
        factors = (mean + vol * draws)[:n_run]
        noise = np.random.default_rng([self.seed, 72, n]).standard_normal((n_all, n), dtype=np.float32)
        volume, liquidity = self._volume_and_liquidity(n_all, n_run)
        quarter = np.array([(d.year, (d.month - 1) // 3) for d in self.sessions])
        report_sessions = np.flatnonzero(np.r_[True, (quarter[1:] != quarter[:-1]).any(axis=1)])
        n_reports_all = 4 * (EQUITY_UNTIL.year - EQUITY_START.year + 1)
        book_noise = np.random.default_rng([self.seed, 74, n]).standard_normal((n_reports_all, n))
        book = np.empty((len(report_sessions), n))
        book[0] = self.book_to_price * self.first_close * self.shares

        close = np.empty((n_run, n))
        close[0] = self.first_close
        exposures = np.full((n_run, len(STYLES), n), np.nan, dtype=np.float32)
        factors[0] = np.nan
        static_liquidity = np.log(self.turnover_level)
        raw = np.zeros((len(STYLES), n))
        next_report = 1
        for t in range(1, n_run):
            cap = close[t - 1] * self.shares
            weight = cap / cap.sum()
            raw[0] = np.log(cap)
            raw[1] = book[next_report - 1] / cap  # as last reported by t-1
            if t < WARMUP:
                raw[2:4] = 0.0
                raw[4] = static_liquidity
            else:
                raw[2] = close[t - 1 - MOMENTUM_SKIP] / close[t - 1 - MOMENTUM_SKIP - MOMENTUM_WINDOW] - 1
                recent = close[t - RECENT_WINDOW - 1 : t]
                raw[3] = (recent[1:] / recent[:-1]).std(axis=0, ddof=1) * np.sqrt(252)
                raw[4] = liquidity[t - 1]
            x = standardise(raw, weight)  # the warm-up's zero rows stay zero
            exposures[t] = x
            f = factors[t]
            sector_weight = np.bincount(self.sector, weights=weight, minlength=n_sec)
            f[len(FACTORS) :] -= sector_weight @ f[len(FACTORS) :]
            systematic = self.beta * f[0] + f[1 : len(FACTORS)] @ x + f[len(FACTORS) :][self.sector]
            close[t] = close[t - 1] * (1.0 + systematic + self.specific_vol * noise[t])
            if next_report < len(report_sessions) and report_sessions[next_report] == t:
                target = self.book_to_price * cap  # the report uses the previous close
                prior = book[next_report - 1]
                step = BOOK_ADJUST * np.log(target / prior) + BOOK_NOISE * book_noise[next_report]
                book[next_report] = prior * np.exp(step)
                next_report += 1
        return _History(close, volume, exposures, factors, report_sessions, book)

    def _volume_and_liquidity(self, n_all: int, n_run: int) -> tuple[np.ndarray, np.ndarray]:
        """Daily volume (AR(1) log turnover around each stock's level) and the liquidity
        descriptor of each session's close: ln(mean turnover over the last 21 sessions) from the
        integer volumes, NaN before 20 sessions exist."""
        rng = np.random.default_rng([self.seed, 73, self.n_stocks])
        log_dev = rng.standard_normal((n_all, self.n_stocks), dtype=np.float32)[:n_run]  # in place below
        log_dev[0] *= TURNOVER_SD  # stationary start
        scale = TURNOVER_SD * np.sqrt(1 - TURNOVER_AR**2)
        for t in range(1, n_run):
            log_dev[t] *= scale
            log_dev[t] += TURNOVER_AR * log_dev[t - 1]
        turnover = np.exp(log_dev, out=log_dev)
        turnover *= self.turnover_level.astype(np.float32)
        volume = np.rint(turnover * self.shares).astype(np.int64)
        del log_dev, turnover
        summed = np.cumsum(volume / self.shares, axis=0)  # turnover as a reader of ``daily`` sees it
        summed[RECENT_WINDOW:] = summed[RECENT_WINDOW:] - summed[:-RECENT_WINDOW]  # 21-session sums
        summed /= np.minimum(np.arange(1, n_run + 1), RECENT_WINDOW)[:, None]
        liquidity = np.log(summed, out=summed).astype(np.float32)
        liquidity[: RECENT_WINDOW - 2] = np.nan  # needs >= 20 sessions
        return volume, liquidity

    # ---- public data ----------------------------------------------------------------------
    def daily(self, start: date, end: date, symbols: list[str] | None = None) -> pl.DataFrame:
        """Closes (total return, unrounded), volume and shares outstanding per session and symbol
        in [start, end], sorted by date then symbol."""
        lo, hi = self._span(start, end)
        cols = self._columns(symbols)
        h = self._history
        days = np.array(self.sessions[lo:hi], dtype="datetime64[D]")
        k = len(cols)
        return pl.DataFrame(
            {
                "date": pl.Series(np.repeat(days, k)).cast(pl.Date),
                "symbol": np.tile(np.array(self.symbols)[cols], hi - lo),
                "close": h.close[lo:hi, cols].ravel(),
                "volume": h.volume[lo:hi, cols].ravel(),
                "shares_outstanding": np.tile(self.shares[cols], hi - lo),
            }
        )

    def fundamentals(self, day: date, symbols: list[str] | None = None) -> pl.DataFrame:
        """Book value (dollars, as last reported on or before ``day``), shares outstanding, sector
        and country as known on ``day``."""
        t = bisect.bisect_right(self.sessions, day) - 1
        if t < 0:
            raise ValueError(f"no fundamentals before the first session {EQUITY_START.isoformat()}")
        h = self._history
        report = int(np.searchsorted(h.report_sessions, t, side="right")) - 1
        cols = self._columns(symbols)
        return pl.DataFrame(
            {
                "symbol": np.array(self.symbols)[cols],
                "book_value": h.book[report, cols],
                "shares_outstanding": self.shares[cols],
                "sector": np.array(SECTORS)[self.sector[cols]],
                "country": self.country[cols],
            }
        )

    def market_proxy(self, start: date, end: date) -> pl.DataFrame:
        """The cap-weighted total return index of the universe (this universe's "SPY"), starting
        at ``INDEX_START``. Its daily return is ``(cap-weighted beta) * f_market`` plus the
        cap-weighted specific noise: style exposures have cap-weighted mean 0 and sector returns
        are constrained to a cap-weighted sum of 0, so it tracks the market factor."""
        lo, hi = self._span(start, end)
        cap = self._history.close @ self.shares.astype(np.float64)  # shares are constant
        level = INDEX_START * cap / cap[0]
        days = np.array(self.sessions[lo:hi], dtype="datetime64[D]")
        return pl.DataFrame({"date": pl.Series(days).cast(pl.Date), "close": level[lo:hi]})

    # ---- truth ----------------------------------------------------------------------------
    def true_exposures(self, day: date) -> pl.DataFrame:
        """The exposures the returns of ``day`` were drawn on (computed at the previous close):
        ``market`` is the static beta, the styles are standardised descriptors."""
        t = self._index.get(day)
        if t is None or t == 0:
            raise ValueError(f"{day.isoformat()} is not a simulated session with a return")
        x = self._history.exposures[t]
        return pl.DataFrame(
            {"symbol": self.symbols, "market": self.beta, **{s: x[k] for k, s in enumerate(STYLES)}}
        )

    def true_factor_returns(self, start: date, end: date) -> pl.DataFrame:
        """The drawn factor returns of each session in [start, end] after the first: the six
        factors, then one column per sector (sector columns sum to 0 with cap weights at t-1)."""
        lo, hi = self._span(start, end)
        lo = max(lo, 1)
        f = self._history.factor_returns[lo:hi]
        names = [*FACTORS, *SECTORS]
        days = np.array(self.sessions[lo:hi], dtype="datetime64[D]")
        return pl.DataFrame(
            {"date": pl.Series(days).cast(pl.Date), **{c: f[:, k] for k, c in enumerate(names)}}
        )

    def true_specific_vol(self) -> pl.DataFrame:
        """Each stock's daily specific volatility (standard deviation of ``e_it``)."""
        return pl.DataFrame({"symbol": self.symbols, "specific_vol": self.specific_vol})

    # ---- helpers --------------------------------------------------------------------------
    def _span(self, start: date, end: date) -> tuple[int, int]:
        return bisect.bisect_left(self.sessions, start), bisect.bisect_right(self.sessions, end)

    def _columns(self, symbols: list[str] | None) -> np.ndarray:
        if symbols is None:
            return np.arange(self.n_stocks)
        position = {s: i for i, s in enumerate(self.symbols)}
        unknown = [s for s in symbols if s not in position]
        if unknown:
            raise KeyError(f"not simulated equities: {', '.join(unknown[:5])}")
        return np.array(sorted(position[s] for s in symbols), dtype=np.int64)


def standardise(raw: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Each row of ``raw`` winsorised at its mean +- 3 sd, then given cap-weighted (``weight``,
    summing to 1) mean 0 and equal-weighted sd 1 (both sd with ddof=0). Rows with no spread (the
    warm-up's zero columns) come back as zeros."""
    centre = raw.mean(axis=1, keepdims=True)
    sd = raw.std(axis=1, keepdims=True)
    clipped = np.clip(raw, centre - 3 * sd, centre + 3 * sd)
    spread = clipped.std(axis=1, keepdims=True)
    shifted = clipped - (clipped @ weight)[:, None]
    return np.divide(shifted, spread, out=np.zeros_like(shifted), where=spread > 0)

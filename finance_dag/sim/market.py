"""The simulated market: daily prices from a known factor model and minute bars from them.

Everything is a pure function of ``(seed, symbol, session)``: the same inputs give the same
numbers whatever batch they are asked in, so re-running a partition is idempotent and the
loopback vendor fakes can serve exactly what ``SimulatedMarket`` serves.

Daily log returns follow ``r = mu + beta * f_market + sum_k x_k * f_k + s * e`` over the
factors in ``FACTORS``, plus the planted lending term of ``finance_dag.sim.lending`` (returns
that follow high-utilisation fee shocks); true exposures (``exposures``), factor returns
(``factor_returns``) and the lending truth are kept so models can be validated against them. Minute bars follow a Brownian
bridge from the day's open to its close, with U-shaped volume, minutes without trades for
thinly traded names, sparse pre/post-market bars, and per-vendor outages and bad ticks.

Price LEVELS are synthetic too. Each path is pinned at ``PRICE_ANCHOR`` (2024-11-29, the last
session of the demo window 2024-11-15..2024-11-29): symbols listed in ``price_levels`` close
there at an approximate real late-November-2024 level, so SPY shows ~$600 and XLE ~$96 and the
demo numbers look plausible to a quant; any other symbol gets a random level (log-uniform,
$15-$600). Away from the anchor the path follows the factor model backward and forward, so
it does NOT track real history. To keep prices plausible over 2010-2026, the per-symbol drift
``mu`` is zero unless the path would close below ``PRICE_FLOOR`` ($2) in that window; then it
is a constant drift (one before the anchor, one after), 1.25 times the smallest that keeps
every close above the floor: a steadier trend rather than a clipped price.
"""

from __future__ import annotations

import bisect
import zlib
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

import numpy as np
import polars as pl

from finance_dag.core import calendar
from finance_dag.market_data.bars import BAR_SCHEMA
from finance_dag.sim.lending import SimulatedLending
from finance_dag.sim.price_levels import APPROX_CLOSES, LEVELS_DATE

FACTORS: tuple[str, ...] = ("market", "size", "value", "momentum", "volatility", "liquidity")
SECTORS: tuple[str, ...] = (
    "Communication Services", "Consumer Discretionary", "Consumer Staples", "Energy", "Financials",
    "Health Care", "Industrials", "Information Technology", "Materials", "Real Estate", "Utilities",
)  # fmt: skip
_FACTOR_MEAN = np.array([0.0003, 0.0, 0.0001, 0.0002, -0.0001, 0.0])
_FACTOR_VOL = np.array([0.011, 0.004, 0.004, 0.005, 0.004, 0.003])
_NS_PER_MINUTE = 60_000_000  # datetime64[us]
PRICE_ANCHOR = LEVELS_DATE  # each symbol closes at its anchor price on this session
PRICE_FLOOR = 2.0  # no close below this from CALENDAR_START to _FLOOR_UNTIL
_FLOOR_UNTIL = date(2026, 12, 31)  # fixed, so the drift does not move as the calendar grows


@dataclass(frozen=True)
class VendorProfile:
    """How one simulated vendor sees the true tape."""

    extended_hours: bool
    has_vwap: bool
    missing_day_rate: float  # probability a symbol-day is absent altogether
    outages_per_day: float  # mean number of outage windows per symbol-day
    outage_minutes: float  # mean outage length
    bad_tick_rate: float  # probability a bar is corrupted


SIM_VENDORS: dict[str, VendorProfile] = {
    "sim_alpaca": VendorProfile(True, True, 0.03, 0.6, 20.0, 0.0005),
    "sim_alphavantage": VendorProfile(True, False, 0.05, 0.8, 15.0, 0.0003),
    "sim_yahoo": VendorProfile(False, False, 0.04, 0.5, 25.0, 0.0003),
}


@dataclass(frozen=True)
class SymbolProfile:
    exposures: np.ndarray  # one loading per factor; market is the beta
    specific_vol: float  # daily
    anchor_price: float  # close on PRICE_ANCHOR
    trade_probability: float  # chance a regular minute has at least one trade
    minute_volume: float  # mean shares per regular minute


def _level_jitter(seed: int, symbol: str) -> float:
    """About 1 % of deterministic noise on the anchor, so rounded levels do not close on round
    numbers (its own random stream: the other draws of a profile are unchanged)."""
    return float(np.exp(0.01 * np.random.default_rng([seed, 6, _symbol_id(symbol)]).standard_normal()))


def _symbol_id(symbol: str) -> int:
    return zlib.crc32(symbol.encode())


class SimulatedMarket:
    """Deterministic market simulator; see the module docstring for the model."""

    def __init__(self, seed: int = 7) -> None:
        self.seed = seed
        table = calendar.sessions(calendar.CALENDAR_START, date(2100, 1, 1))
        self._sessions = table
        self._index = {d: i for i, d in enumerate(table)}
        draws = np.random.default_rng([seed, 1]).standard_normal((len(table), len(FACTORS)))
        self._factor_returns = _FACTOR_MEAN + draws * _FACTOR_VOL
        self.lending = SimulatedLending(seed)

    # ---- the factor model -------------------------------------------------------------
    @lru_cache(maxsize=8192)  # noqa: B019 - the market lives as long as the process
    def profile(self, symbol: str) -> SymbolProfile:
        rng = np.random.default_rng([self.seed, 2, _symbol_id(symbol)])
        style = rng.standard_normal(len(FACTORS) - 1)
        beta = float(np.clip(1.0 + 0.35 * rng.standard_normal(), 0.2, 3.0))
        thin = rng.uniform() ** 10
        random_level = float(np.exp(rng.uniform(np.log(15), np.log(600))))  # always drawn
        return SymbolProfile(
            exposures=np.concatenate([[beta], style]),
            specific_vol=float(rng.uniform(0.008, 0.025)),
            anchor_price=float(APPROX_CLOSES.get(symbol, random_level) * _level_jitter(self.seed, symbol)),
            trade_probability=float(1.0 - 0.55 * thin),
            minute_volume=float(np.exp(rng.uniform(np.log(300), np.log(60_000))) * (1 - thin)),
        )

    def exposures(self, symbols: list[str]) -> pl.DataFrame:
        """True factor loadings per symbol (``market`` is the beta)."""
        rows = np.array([self.profile(s).exposures for s in symbols])
        return pl.DataFrame({"symbol": symbols, **{f: rows[:, i] for i, f in enumerate(FACTORS)}})

    def fundamentals(self, symbols: list[str]) -> pl.DataFrame:
        """Sector, market cap and book-to-market consistent with the true exposures.

        ``size`` is small-minus-big (a high exposure means a small cap) and ``value`` loads on
        book-to-market, so a risk model's value factor can be built from fundamentals and checked.
        """
        loadings = self.exposures(symbols)
        sector_index = [_symbol_id(s) % len(SECTORS) for s in symbols]
        return loadings.select(
            "symbol",
            sector=pl.Series([SECTORS[i] for i in sector_index]),
            market_cap=(24.0 - 1.3 * pl.col("size")).exp().round(0),
            book_to_market=(-0.7 + 0.5 * pl.col("value")).exp().round(4),
        )

    def factor_returns(self, start: date, end: date) -> pl.DataFrame:
        """True daily factor returns (log) for every session in [start, end]."""
        days = calendar.sessions(start, end)
        rows = self._factor_returns[[self._index[d] for d in days]]
        return pl.DataFrame({"date": days, **{f: rows[:, i] for i, f in enumerate(FACTORS)}})

    @lru_cache(maxsize=8192)  # noqa: B019
    def _daily_path(self, symbol: str) -> tuple[np.ndarray, np.ndarray]:
        """Cent-rounded (open, close) for every simulated session of ``symbol``."""
        prof = self.profile(symbol)
        noise = np.random.default_rng([self.seed, 3, _symbol_id(symbol)]).standard_normal(
            (len(self._sessions), 2)
        )
        log_ret = (
            self._factor_returns @ prof.exposures
            + prof.specific_vol * noise[:, 0]
            + self.lending.planted_returns(symbol, len(self._sessions))  # the lending truth
        )
        level = np.cumsum(log_ret)
        anchor = self._index[PRICE_ANCHOR]
        log_close = np.log(prof.anchor_price) + level - level[anchor]
        floor_end = bisect.bisect_right(self._sessions, _FLOOR_UNTIL)
        close = np.exp(_floor_drift(log_close, anchor, floor_end, np.log(PRICE_FLOOR)))
        prev_close = np.concatenate([[close[0]], close[:-1]])
        gap = 0.3 * (prof.specific_vol + 0.005) * noise[:, 1]
        opened = prev_close * np.exp(gap)
        return _cents(opened), _cents(close)

    def daily_prices(self, symbols: list[str], start: date, end: date) -> pl.DataFrame:
        """Raw daily open/close per symbol and session: cheap for thousands of names."""
        days = calendar.sessions(start, end)
        idx = np.array([self._index[d] for d in days], dtype=np.int64)
        frames = []
        for symbol in symbols:
            opened, close = self._daily_path(symbol)
            frames.append(
                pl.DataFrame({"date": days, "symbol": symbol, "open": opened[idx], "close": close[idx]})
            )
        return pl.concat(frames) if frames else pl.DataFrame()

    # ---- minute bars ------------------------------------------------------------------
    def true_minute_bars(self, symbol: str, day: date) -> dict[str, np.ndarray]:
        """Every bar that traded for ``symbol`` on ``day`` (regular and extended hours)."""
        return self._truth(symbol, day)

    @lru_cache(maxsize=4096)  # noqa: B019
    def _truth(self, symbol: str, day: date) -> dict[str, np.ndarray]:
        prof = self.profile(symbol)
        i = self._index[day]
        opened, close = (a[i] for a in self._daily_path(symbol))
        rng = np.random.default_rng([self.seed, 4, _symbol_id(symbol), i])
        n = calendar.expected_minutes(day)
        minute_vol = (prof.specific_vol + 0.008) / np.sqrt(390)
        walk = np.concatenate([[0.0], np.cumsum(rng.standard_normal(n) * minute_vol)])
        k = np.arange(n + 1) / n
        log_path = np.log(opened) + k * (np.log(close) - np.log(opened)) + walk - k * walk[-1]
        points = _cents(np.exp(log_path))
        points[0], points[-1] = opened, close
        o, c = points[:-1], points[1:]
        wick = np.abs(rng.standard_normal((2, n))) * minute_vol * 0.5
        h = np.maximum(_cents(np.maximum(o, c) * np.exp(wick[0])), np.maximum(o, c))
        low = np.minimum(_cents(np.minimum(o, c) * np.exp(-wick[1])), np.minimum(o, c))
        x = (np.arange(n) + 0.5) / n
        shape = 0.6 + 2.4 * (2 * x - 1) ** 2
        shape[-1] *= 3.0  # closing auction
        vol = np.maximum(1, prof.minute_volume * shape * rng.lognormal(0, 0.5, n)).astype(np.int64)
        traded = rng.uniform(size=n) < prof.trade_probability
        traded[[0, -1]] = True
        regular_ts = calendar.regular_minutes(day)

        ext_ts, ext_o, ext_c, ext_vol = self._extended(rng, prof, day, opened, close)
        ts = np.concatenate([regular_ts[traded], ext_ts])
        order = np.argsort(ts, kind="stable")
        ext_h, ext_l = np.maximum(ext_o, ext_c), np.minimum(ext_o, ext_c)
        bars = {
            "ts": ts,
            "open": np.concatenate([o[traded], ext_o]),
            "high": np.concatenate([h[traded], ext_h]),
            "low": np.concatenate([low[traded], ext_l]),
            "close": np.concatenate([c[traded], ext_c]),
            "volume": np.concatenate([vol[traded], ext_vol]),
        }
        bars = {key: value[order] for key, value in bars.items()}
        bars["vwap"] = np.round((bars["high"] + bars["low"] + 2 * bars["close"]) / 4, 4)
        bars["trade_count"] = np.maximum(1, bars["volume"] // 85)
        bars["regular"] = (bars["ts"] >= regular_ts[0]) & (bars["ts"] <= regular_ts[-1])
        return bars

    def _extended(self, rng, prof: SymbolProfile, day: date, opened: float, close: float):
        """Sparse pre-market bars drifting into the open, post-market bars around the close."""
        pre_start, post_end = calendar.extended_window(day)
        session_open, session_close = calendar.session_open_close(day)
        pre = _minute_range(pre_start, session_open)
        post = _minute_range(session_close, post_end)
        rate = 0.02 + 0.10 * (prof.trade_probability - 0.45) / 0.55
        pre = pre[rng.uniform(size=pre.size) < rate]
        post = post[rng.uniform(size=post.size) < rate]
        drift = prof.specific_vol * 0.2
        pre_px = _cents(opened * np.exp(drift * rng.standard_normal((2, pre.size))))
        post_px = _cents(close * np.exp(drift * rng.standard_normal((2, post.size))))
        ts = np.concatenate([pre, post])
        vol = np.maximum(1, rng.lognormal(np.log(prof.minute_volume * 0.05 + 1), 1.0, ts.size))
        return (
            ts,
            np.concatenate([pre_px[0], post_px[0]]),
            np.concatenate([pre_px[1], post_px[1]]),
            vol.astype(np.int64),
        )

    def vendor_minute_bars(self, vendor: str, symbol: str, day: date) -> dict[str, np.ndarray] | None:
        """What ``vendor`` reports for one symbol-day: ``None`` when it has nothing at all."""
        spec = SIM_VENDORS[vendor]
        rng = np.random.default_rng(
            [self.seed, 5, zlib.crc32(vendor.encode()), _symbol_id(symbol), self._index[day]]
        )
        if rng.uniform() < spec.missing_day_rate:
            return None
        bars = self._truth(symbol, day)
        keep = np.ones(bars["ts"].size, dtype=bool) if spec.extended_hours else bars["regular"]
        minute = (bars["ts"] - bars["ts"][0]).astype(np.int64) // _NS_PER_MINUTE
        for _ in range(rng.poisson(spec.outages_per_day)):
            start = rng.integers(0, int(minute[-1]) + 1)
            length = rng.exponential(spec.outage_minutes)
            keep &= ~((minute >= start) & (minute < start + length))
        out = {key: value[keep].copy() for key, value in bars.items()}
        if not spec.has_vwap:
            out["vwap"] = np.full(out["ts"].size, np.nan)
            out["trade_count"] = np.full(out["ts"].size, -1)
        _corrupt(rng, out, spec.bad_tick_rate)
        return out

    def vendor_frame(
        self, vendor: str, symbols: list[str], start: date, end: date
    ) -> tuple[pl.DataFrame, list[tuple[str, date]]]:
        """Canonical bars from ``vendor`` for symbols x sessions, and the symbol-days it lacked."""
        parts: list[dict[str, np.ndarray]] = []
        owner: list[int] = []
        absent: list[tuple[str, date]] = []
        for day in calendar.sessions(start, end):
            for k, symbol in enumerate(symbols):
                bars = self.vendor_minute_bars(vendor, symbol, day)
                if bars is None:
                    absent.append((symbol, day))
                else:
                    parts.append(bars)
                    owner.append(k)
        if not parts:
            return pl.DataFrame(schema=BAR_SCHEMA), absent
        lengths = [p["ts"].size for p in parts]
        codes = pl.Series(np.repeat(np.array(owner, dtype=np.uint32), lengths))
        cols = {key: np.concatenate([p[key] for p in parts]) for key in _VENDOR_COLUMNS}
        frame = pl.DataFrame(cols).with_columns(
            symbol=pl.Series(symbols, dtype=pl.String).gather(codes),
            ts=pl.col("ts").dt.replace_time_zone("UTC"),
            vwap=pl.col("vwap").fill_nan(None),
            trade_count=pl.when(pl.col("trade_count") >= 0).then(pl.col("trade_count")),
            source=pl.lit(vendor),
        )
        return frame.select(BAR_SCHEMA.names()).cast(BAR_SCHEMA), absent


_VENDOR_COLUMNS = ("ts", "open", "high", "low", "close", "volume", "vwap", "trade_count")


def _corrupt(rng: np.random.Generator, bars: dict[str, np.ndarray], rate: float) -> None:
    """Rare bad ticks: a high below the close, a negative volume or a bar before 04:00."""
    n = bars["ts"].size
    hit = np.flatnonzero(rng.uniform(size=n) < rate)
    for j, kind in zip(hit, rng.integers(0, 3, hit.size), strict=True):
        if kind == 0:
            bars["high"][j] = round(min(bars["open"][j], bars["close"][j]) - 0.05, 2)
        elif kind == 1:
            bars["volume"][j] = -bars["volume"][j]
        else:
            bars["ts"][j] = bars["ts"][0] - np.timedelta64(6, "h")


def _floor_drift(log_close: np.ndarray, anchor: int, end: int, log_floor: float) -> np.ndarray:
    """Add a constant drift on each side of ``anchor`` keeping ``log_close[:end]`` above
    ``log_floor``: ``rate * |i - anchor|`` lifts session ``i``, where ``rate`` is 1.25 times the
    smallest that clears the floor. Nothing moves when the path already clears it, and
    ``log_close[anchor]`` never moves."""
    out = log_close.copy()
    distance = np.abs(np.arange(log_close.size) - anchor)
    for side in (slice(0, anchor), slice(anchor + 1, None)):
        window = np.arange(log_close.size)[side]
        window = window[window < end]
        if window.size == 0:
            continue
        need = float(np.max((log_floor - log_close[window]) / distance[window]))
        rate = 1.25 * max(0.0, need)  # a margin, so lows spread above the floor, not on it
        out[side] += rate * distance[side]
    return out


def _minute_range(start, end) -> np.ndarray:
    first = np.datetime64(start.replace(tzinfo=None), "us")
    count = int((end - start).total_seconds() // 60)
    return first + np.arange(count).astype("timedelta64[m]")


def _cents(values: np.ndarray) -> np.ndarray:
    return np.maximum(np.round(values, 2), 0.01)

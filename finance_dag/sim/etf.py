"""The simulated ETF market: a NASDAQ Trader symbol directory of ~5,000 ETFs (plus stocks and test
issues), a curated category file for ~800 of them, and raw daily prices with dividends and splits.

Everything is a pure function of ``(seed, symbol)``, like the rest of the simulated market, so a
partition re-run or a vendor fake serves the same numbers whatever batch they are asked in.

- Tickers: the real ETFs of ``core.universe.ETF_SYMBOLS`` plus synthetic ones; names follow
  issuer + theme patterns; ``LEVERAGED_SHARE`` of them are leveraged or inverse products
  ("... Bull 3X Shares", "UltraShort ...") as real directories have.
- Listing: each ETF has an inception session; the directory of a day lists what was listed by
  then. Test issues (``ZZZT``-style) and ordinary stocks are in the files too, as in the real ones.
- Prices: log returns from five asset-class factors (US equity, international equity, rates,
  credit, commodities) with per-ETF loadings and specific risk; dividends go ex monthly (fixed
  income) or quarterly at the ETF's yield, and a few ETFs split (leveraged ones reverse-split).
  Stored prices are raw: a dividend drops the close, a split divides it, and
  ``(close * split_ratio + dividend) / previous close`` is the true total return.
- Data problems a quality filter must catch: ``NO_DATA_SHARE`` of ETFs have no price history at
  the vendor, some trade so thinly that the close is stale for days with zero volume, some have
  missing sessions (gaps), and a few carry a bad print (a one-day jump that reverts).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import date, datetime
from functools import cached_property, lru_cache

import numpy as np
import polars as pl

from finance_dag.core import calendar
from finance_dag.core.universe import ETF_SYMBOLS, STOCKS
from finance_dag.market_data.daily import DAILY_PRICE_SCHEMA
from finance_dag.sim.price_levels import APPROX_CLOSES, LEVELS_DATE

ETF_START = date(2016, 1, 4)  # first simulated ETF session
ETF_UNTIL = date(2030, 12, 31)  # last simulated ETF session
PRICE_ANCHOR = LEVELS_DATE  # real ETFs close near their real late-November-2024 level here
N_ETFS = 5_040
N_STOCKS = 3_000
N_CATEGORISED = 800
LEVERAGED_SHARE = 0.015
NO_DATA_SHARE = 0.24
STALE_SHARE = 0.08
GAPPY_SHARE = 0.03
JUMPY_SHARE = 0.015
# The real leveraged and inverse ETFs of the demo universe.
REAL_LEVERAGED = frozenset({"TQQQ", "SOXL", "TMF", "SQQQ", "SOXS", "SPXL", "SPXS", "TNA", "TZA", "FAS", "FAZ", "UPRO", "TMV", "LABU", "LABD", "UVXY"})  # fmt: skip
ASSET_CLASS_FACTORS = ("us_equity", "intl_equity", "rates", "credit", "commodity")
_FACTOR_VOL = np.array([0.011, 0.010, 0.004, 0.003, 0.012])
_FACTOR_MEAN = np.array([0.0004, 0.0002, 0.0, 0.0001, 0.0001])
# (category, asset class, region, factor loadings, annual dividend yield, dividends per year)
CATEGORIES: tuple[tuple[str, str, str, tuple[float, ...], float, int], ...] = (
    ("US Large Cap Blend", "Equity", "US", (1.0, 0.1, 0.0, 0.0, 0.0), 0.014, 4),
    ("US Large Cap Growth", "Equity", "US", (1.15, 0.05, -0.1, 0.0, 0.0), 0.006, 4),
    ("US Large Cap Value", "Equity", "US", (0.9, 0.15, 0.1, 0.1, 0.05), 0.022, 4),
    ("US Small Cap", "Equity", "US", (1.2, 0.1, 0.0, 0.2, 0.0), 0.012, 4),
    ("US Sector - Technology", "Equity", "US", (1.3, 0.05, -0.1, 0.0, 0.0), 0.007, 4),
    ("US Sector - Energy", "Equity", "US", (0.8, 0.1, 0.0, 0.1, 0.8), 0.035, 4),
    ("US Sector - Financials", "Equity", "US", (1.1, 0.1, 0.2, 0.2, 0.0), 0.018, 4),
    ("US Dividend", "Equity", "US", (0.8, 0.1, 0.15, 0.1, 0.05), 0.034, 4),
    ("International Developed", "Equity", "International", (0.5, 0.9, 0.0, 0.0, 0.05), 0.028, 2),
    ("International Dividend", "Equity", "International", (0.4, 0.85, 0.1, 0.1, 0.1), 0.045, 4),
    ("Emerging Markets", "Equity", "Emerging", (0.5, 1.1, 0.0, 0.1, 0.2), 0.025, 2),
    ("US Treasury Long", "Fixed Income", "US", (0.0, 0.0, 2.2, 0.0, 0.0), 0.035, 12),
    ("US Treasury Short", "Fixed Income", "US", (0.0, 0.0, 0.3, 0.0, 0.0), 0.040, 12),
    ("Investment Grade Corporate", "Fixed Income", "US", (0.1, 0.0, 1.0, 0.8, 0.0), 0.042, 12),
    ("High Yield", "Fixed Income", "US", (0.3, 0.05, 0.3, 1.5, 0.0), 0.060, 12),
    ("Gold and Precious Metals", "Commodity", "Global", (0.05, 0.1, 0.3, 0.0, 0.9), 0.0, 0),
    ("Broad Commodities", "Commodity", "Global", (0.2, 0.1, 0.0, 0.0, 1.2), 0.0, 0),
    ("Multi-Asset Allocation", "Multi-Asset", "Global", (0.5, 0.3, 0.6, 0.3, 0.1), 0.025, 4),
)
LEVERAGED_CATEGORIES = (
    ("Trading - Leveraged Equity", 3.0, "Bull 3X Shares"),
    ("Trading - Inverse Equity", -2.0, "UltraShort"),
)
_ISSUERS = ("iShares", "Vanguard", "SPDR", "Invesco", "Schwab", "First Trust", "Global X", "WisdomTree", "VanEck", "Franklin", "JPMorgan", "Dimensional", "Xtrackers", "Pacer", "Hartford", "Columbia", "VictoryShares", "Fidelity")  # fmt: skip
_STYLES = ("Core", "Select", "Quality", "Multifactor", "Enhanced", "Equal Weight", "Dividend", "Momentum", "Low Volatility", "Aristocrats", "Focused", "Broad")  # fmt: skip


@dataclass(frozen=True)
class EtfProfile:
    symbol: str
    name: str
    category: str
    asset_class: str
    region: str
    leverage: float  # 1.0 for ordinary ETFs; 3.0 or -2.0 for leveraged/inverse ones
    loadings: np.ndarray  # one per ASSET_CLASS_FACTORS
    specific_vol: float  # daily
    dividend_yield: float
    dividends_per_year: int
    expense_ratio: float
    inception: date
    exchange: str  # "Q" (NASDAQ), "P" (NYSE Arca), "Z" (Cboe BZX), "N" (NYSE)
    has_data: bool
    stale: bool
    gappy: bool
    jumpy: bool


def _id(symbol: str) -> int:
    return zlib.crc32(symbol.encode())


class SimulatedEtfMarket:
    """The deterministic ETF directory, categories and daily prices (see the module docstring)."""

    def __init__(self, seed: int = 7) -> None:
        self.seed = seed
        self.sessions = calendar.sessions(ETF_START, ETF_UNTIL)
        self._index = {d: i for i, d in enumerate(self.sessions)}
        self._dates = np.array(self.sessions, dtype="datetime64[D]")
        self._anchor = self._index[PRICE_ANCHOR]
        draws = np.random.default_rng([seed, 40]).standard_normal((len(self.sessions), len(_FACTOR_VOL)))
        self.factor_returns = _FACTOR_MEAN + draws * _FACTOR_VOL

    # ---- who exists -----------------------------------------------------------------------
    @cached_property
    def symbols(self) -> tuple[str, ...]:
        """Every simulated ETF ticker, sorted: the real ETFs first chosen, then synthetic ones."""
        rng = np.random.default_rng([self.seed, 41])
        taken = set(ETF_SYMBOLS) | STOCKS | {"ZZZT", "ZXZZT"}
        chosen = list(ETF_SYMBOLS)
        letters = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
        while len(chosen) < N_ETFS:
            ticker = "".join(rng.choice(letters, size=int(rng.choice([3, 4], p=[0.45, 0.55]))))
            if ticker not in taken:
                taken.add(ticker)
                chosen.append(ticker)
        return tuple(sorted(chosen))

    @cached_property
    def categorised(self) -> frozenset[str]:
        """The ~800 ETFs of the curated category file (every real one among them)."""
        rng = np.random.default_rng([self.seed, 42])
        synthetic = sorted(
            s for s in set(self.symbols) - set(ETF_SYMBOLS) if self.profile(s).inception <= PRICE_ANCHOR
        )
        extra = rng.choice(len(synthetic), size=N_CATEGORISED - len(ETF_SYMBOLS), replace=False)
        return frozenset(ETF_SYMBOLS) | {synthetic[i] for i in extra}

    @lru_cache(maxsize=8192)  # noqa: B019 - the market lives as long as the process
    def profile(self, symbol: str) -> EtfProfile:
        rng = np.random.default_rng([self.seed, 43, _id(symbol)])
        leveraged = symbol in REAL_LEVERAGED or (
            symbol not in ETF_SYMBOLS and rng.uniform() < LEVERAGED_SHARE
        )
        base = CATEGORIES[int(rng.integers(len(CATEGORIES)))]
        category, asset_class, region, loadings, yield_, per_year = base
        loadings_arr = np.array(loadings) * rng.uniform(0.8, 1.2, len(loadings))
        issuer = _ISSUERS[int(rng.integers(len(_ISSUERS)))]
        style = _STYLES[int(rng.integers(len(_STYLES)))]
        leverage = 1.0
        name = f"{issuer} {category.replace('US Sector - ', '')} {style} ETF"
        if leveraged:
            category, leverage, label = LEVERAGED_CATEGORIES[int(rng.integers(len(LEVERAGED_CATEGORIES)))]
            issuer = ("Direxion Daily", "ProShares")[int(rng.integers(2))]
            name = f"{issuer} {base[0].replace('US Sector - ', '')} {label}"
            loadings_arr = loadings_arr * leverage
            yield_, per_year = 0.005, 4
        real = symbol in ETF_SYMBOLS
        first = max(0, int(rng.integers(-800, len(self.sessions) - 400))) if not real else 0
        return EtfProfile(
            symbol=symbol,
            name=name,
            category=category,
            asset_class=asset_class if not leveraged else "Equity",
            region=region,
            leverage=leverage,
            loadings=loadings_arr,
            specific_vol=float(rng.uniform(0.002, 0.012) * abs(leverage)),
            dividend_yield=float(yield_ * rng.uniform(0.6, 1.4)),
            dividends_per_year=per_year,
            expense_ratio=round(float(rng.uniform(0.0003, 0.0095 if not leveraged else 0.0110)), 4),
            inception=self.sessions[first],
            exchange=str(rng.choice(["Q", "P", "P", "P", "Z", "N"])),
            has_data=real or rng.uniform() >= NO_DATA_SHARE,
            stale=not real and rng.uniform() < STALE_SHARE,
            gappy=not real and rng.uniform() < GAPPY_SHARE,
            jumpy=not real and rng.uniform() < JUMPY_SHARE,
        )

    def listed(self, day: date) -> list[str]:
        """The ETFs listed on ``day`` (inception on or before it)."""
        return [s for s in self.symbols if self.profile(s).inception <= day]

    # ---- the files a user drops -----------------------------------------------------------
    def directory_files(self, day: date) -> dict[str, str]:
        """``nasdaqlisted.txt`` and ``otherlisted.txt`` as NASDAQ Trader publishes them on ``day``."""
        stamp = datetime(day.year, day.month, day.day, 8, 5).strftime("%m%d%Y%H:%M")
        nasdaq = [
            "Symbol|Security Name|Market Category|Test Issue|Financial Status|Round Lot Size|ETF|NextShares"
        ]
        other = ["ACT Symbol|Security Name|Exchange|CQS Symbol|ETF|Round Lot Size|Test Issue|NASDAQ Symbol"]
        rows = [(s, self.profile(s).name, self.profile(s).exchange, "Y", "N") for s in self.listed(day)]
        rows += [
            (s, f"{s} Inc. Common Stock", "Q" if i % 3 else "N", "N", "N") for i, s in enumerate(self._stocks)
        ]
        rows += [("ZZZT", "NASDAQ TEST STOCK", "Q", "N", "Y"), ("ZXZZT", "NASDAQ TEST ETF", "Q", "Y", "Y")]
        for symbol, name, exchange, etf, test in sorted(rows):
            if exchange == "Q":
                nasdaq.append(f"{symbol}|{name}|G|{test}|N|100|{etf}|N")
            else:
                other.append(f"{symbol}|{name}|{exchange}|{symbol}|{etf}|100|{test}|{symbol}")
        footer = f"File Creation Time: {stamp}"
        return {
            "nasdaqlisted.txt": "\n".join([*nasdaq, footer + "|" * 7, ""]),
            "otherlisted.txt": "\n".join([*other, footer + "|" * 7, ""]),
        }

    @cached_property
    def _stocks(self) -> list[str]:
        rng = np.random.default_rng([self.seed, 44])
        taken = set(self.symbols) | {"ZZZT", "ZXZZT"}
        stocks = set(STOCKS)
        letters = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
        while len(stocks) < N_STOCKS:
            ticker = "".join(rng.choice(letters, size=int(rng.choice([2, 3, 4]))))
            if ticker not in taken:
                stocks.add(ticker)
        return sorted(stocks)

    def category_file(self) -> str:
        """The curated category CSV: symbol, category, asset_class, region, expense_ratio (blank
        where unknown: about a fifth of the rows)."""
        lines = ["symbol,category,asset_class,region,expense_ratio"]
        for symbol in sorted(self.categorised):
            p = self.profile(symbol)
            known = _id(symbol) % 5 != 0
            lines.append(
                f"{symbol},{p.category},{p.asset_class},{p.region},{p.expense_ratio if known else ''}"
            )
        return "\n".join(lines) + "\n"

    # ---- prices ---------------------------------------------------------------------------
    def daily_prices(self, symbols: list[str], start: date, end: date) -> pl.DataFrame:
        """Raw daily bars (``DAILY_PRICE_SCHEMA``, source ``sim_daily``) for every session of
        [start, end] at or after each ETF's inception; ETFs without data give no rows."""
        lo = self._index.get(start) or next(i for i, d in enumerate(self.sessions) if d >= start)
        hi = next((i for i in range(len(self.sessions) - 1, -1, -1) if self.sessions[i] <= end), -1)
        paths = [path for path in (self._path(s, lo, hi) for s in symbols) if path is not None]
        if not paths:
            return pl.DataFrame(schema=DAILY_PRICE_SCHEMA)
        columns = {name: np.concatenate([p[name] for p in paths]) for name in paths[0]}
        symbol = np.repeat([s for s in symbols if self._has_rows(s, lo, hi)], [len(p["date"]) for p in paths])
        frame = pl.DataFrame({**columns, "symbol": symbol, "source": "sim_daily"})
        return frame.select(DAILY_PRICE_SCHEMA.names()).cast(dict(DAILY_PRICE_SCHEMA)).sort("date", "symbol")

    def _has_rows(self, symbol: str, lo: int, hi: int) -> bool:
        p = self.profile(symbol)
        return p.has_data and max(lo, self._index[p.inception]) <= hi

    def _path(self, symbol: str, lo: int, hi: int) -> dict[str, np.ndarray] | None:
        if not self._has_rows(symbol, lo, hi):
            return None
        p = self.profile(symbol)
        first = self._index[p.inception]
        lo = max(lo, first)
        rng = np.random.default_rng([self.seed, 45, _id(symbol)])
        n = len(self.sessions) - first
        noise = rng.standard_normal((n, 3))
        log_ret = self.factor_returns[first:] @ p.loadings + p.specific_vol * noise[:, 0]
        log_ret[0] = 0.0
        div_frac = np.zeros(n)
        if p.dividends_per_year:
            step = 252 // p.dividends_per_year
            div_frac[step::step] = p.dividend_yield / p.dividends_per_year
        split = np.ones(n)
        if rng.uniform() < 0.05:
            split[int(rng.integers(1, n))] = 0.25 if p.leverage != 1.0 else float(rng.choice([2.0, 3.0]))
        level = float(np.exp(rng.uniform(np.log(15), np.log(150))))
        close = np.cumprod(np.exp(log_ret) * (1 - div_frac) / split)
        if symbol in APPROX_CLOSES and first <= self._anchor:  # plausible levels for real ETFs
            level = APPROX_CLOSES[symbol] / close[self._anchor - first]
        close = level * close
        prev = np.concatenate([[close[0]], close[:-1]])
        dividend = np.round(div_frac * prev * np.exp(log_ret), 4)
        volume = np.exp(rng.uniform(np.log(2e3), np.log(5e6)) + 0.4 * noise[:, 1]).astype(np.int64)
        if p.stale:  # a thin ETF: most days without a trade keep the previous close
            idle = rng.uniform(size=n) < 0.6
            idle &= (split == 1) & (div_frac == 0)  # corporate-action days trade
            idle[0] = False
            last_trade = np.maximum.accumulate(np.where(idle, 0, np.arange(n)))
            close = close[last_trade]
            volume[idle] = 0
        close = np.round(close, 2)
        spread = np.abs(noise[:, 2]) * (p.specific_vol + 0.003)
        opened = np.round(prev * np.exp(0.3 * spread * np.sign(noise[:, 1])), 2)
        high = np.round(np.maximum(opened, close) * (1 + spread / 2), 2)
        low = np.round(np.minimum(opened, close) * (1 - spread / 2), 2)
        keep = np.ones(n, dtype=bool)
        if p.gappy:
            keep[1:] = rng.uniform(size=n - 1) > 0.15
        if p.jumpy:
            bad = int(rng.integers(1, n))
            close[bad] = round(close[bad] * 1.8, 2)
            high[bad] = max(high[bad], close[bad])
        window = slice(lo - first, hi - first + 1)
        rows = keep[window]
        columns = {
            "date": self._dates[first:][window],
            "open": opened[window],
            "high": high[window],
            "low": low[window],
            "close": close[window],
            "volume": volume[window],
            "split_ratio": split[window],
            "dividend": dividend[window],
        }
        return {name: values[rows] for name, values in columns.items()}

"""A simulated securities-lending feed with a known truth, tied to the simulated market.

Every symbol has a lending state per session from 2010 to 2030, a pure function of
``(seed, symbol)``:

- utilisation (%) = 100 * sigmoid(x), x an AR(1) (phi 0.97) around a per-name level;
- log borrow fee g (bps) an AR(1) (phi 0.96, innovations 0.06) around a per-name level
  (general collateral ~20 bps to hard-to-borrow ~300 bps), plus fee spikes (+0.5 in log,
  decaying with the AR) that happen on 1 % of the sessions where utilisation is above 80 %;
- short interest, on-loan quantity, average daily volume, re-rate ratio, back-to-back loans
  and lender count: independent processes, unrelated to returns.

**The planted truth.** The standardised fee shock of session t, z_t = (innovation + spike) /
0.06, moves the name's later returns when utilisation is high: ``EFFECT_PER_Z * max(z_t, 0)``
in log return, when utilisation_t > 80 %, spread evenly over sessions t+2 .. t+6 (so it lies in
the alphalens forward window that starts at the close of t+1). ``SimulatedMarket`` adds these
returns to its daily paths, so factors measured on the lake's own prices can recover them.
By construction the borrow-cost shock (BCS, ~z_t) and utilisation persistence (UPI) carry the
relation, and so does any score built on them (SSR v4); short-interest momentum (SIM),
days-to-cover (DTC_z) and the locate proxy (LPF) carry none. The fee trend (FTZ) is partly
collinear with BCS (a 20-session slope includes the last shock), so it is neither.
"""

from __future__ import annotations

import zlib
from datetime import date
from functools import lru_cache
from pathlib import Path

import numpy as np
import polars as pl

from finance_dag.core import calendar
from finance_dag.core.universe import ETF_SYMBOLS
from finance_dag.lending.feed import LENDING_FEED

LENDING_UNTIL = date(2030, 12, 31)
HIGH_UTILISATION = 80.0
SPIKE_PROBABILITY = 0.01  # per session with high utilisation
SPIKE_SIZE = 0.5  # in log fee
FEE_SHOCK_SD = 0.06
EFFECT_PER_Z = 0.015  # log return per unit of positive standardised fee shock, in total
EFFECT_SESSIONS = (2, 3, 4, 5, 6)  # sessions after the shock that carry it
MONTH = 21  # sessions in the feed's "month diff" columns
PLANTED = ("BCS", "UPI", "SSR")  # factors with a planted positive relation to forward returns
UNRELATED = ("SIM", "DTC_z", "LPF")  # factors independent of returns by construction
FEED_COLUMNS = (
    "Date", "ticker", "sec_desc", "industry", "Fee All (BPS)", "Active Utilization (%)",
    "On Loan Quantity", "On Loan Quantity Month Diff", "Fee All Month Diff (BPS)", "Short Interest",
    "Average Daily Volume", "Re-Rate Ratio", "B2B Loans", "Lender Count",
)  # fmt: skip
INDUSTRIES = (
    "Technology", "Financials", "Health Care", "Energy", "Consumer", "Industrials", "Materials",
    "Utilities", "Real Estate", "Communication",
)  # fmt: skip


def ar1(innovations: np.ndarray, phi: float) -> np.ndarray:
    """y_t = phi * y_{t-1} + u_t from y_{-1} = 0 (a linear filter: no Python loop)."""
    from scipy.signal import lfilter  # 0.6 s to import: only when a series is drawn

    return lfilter([1.0], [1.0, -phi], innovations)


def lending_universe(size: int = 1000) -> tuple[str, ...]:
    """The first ``size`` names of the lending universe (``core.universe.LENDING_SYMBOLS``)."""
    from finance_dag.core.universe import LENDING_SYMBOLS

    return LENDING_SYMBOLS[:size]


class SimulatedLending:
    """Deterministic lending state per symbol and session (see the module docstring)."""

    def __init__(self, seed: int = 7) -> None:
        self.seed = seed
        self.sessions = calendar.sessions(calendar.CALENDAR_START, LENDING_UNTIL)
        self._index = {d: i for i, d in enumerate(self.sessions)}

    @lru_cache(maxsize=2048)  # noqa: B019 - lives as long as the market
    def state(self, symbol: str) -> dict[str, np.ndarray]:
        """Every lending field of ``symbol`` for every session, plus the fee shock ``z``."""
        n = len(self.sessions)
        rng = np.random.default_rng([self.seed, 11, zlib.crc32(symbol.encode())])
        level = rng.normal(0.3, 1.1)
        x = level + ar1(0.15 * rng.standard_normal(n), 0.97)
        utilisation = 100.0 / (1.0 + np.exp(-x))
        high = utilisation > HIGH_UTILISATION
        spikes = SPIKE_SIZE * ((rng.uniform(size=n) < SPIKE_PROBABILITY) & high)
        innovation = FEE_SHOCK_SD * rng.standard_normal(n)
        log_fee = rng.uniform(np.log(20), np.log(300)) + ar1(innovation + spikes, 0.96)
        short_interest = np.exp(
            rng.uniform(np.log(2e5), np.log(5e7)) + ar1(0.03 * rng.standard_normal(n), 0.99)
        )
        adv = np.exp(rng.uniform(np.log(1e5), np.log(2e7)) + ar1(0.1 * rng.standard_normal(n), 0.9))
        on_loan = short_interest * np.exp(np.log(0.8) + ar1(0.02 * rng.standard_normal(n), 0.95))
        rerate = 1.0 / (1.0 + np.exp(-(-1.5 + ar1(0.3 * rng.standard_normal(n), 0.8))))
        b2b = np.maximum(0, np.round(np.exp(rng.uniform(0, 5) + ar1(0.1 * rng.standard_normal(n), 0.9))))
        lenders = np.maximum(1, np.round(rng.uniform(5, 120) + ar1(rng.standard_normal(n), 0.98)))
        return {
            "utilisation": np.round(utilisation, 2),
            "fee": np.round(np.exp(log_fee), 2),
            "z": (innovation + spikes) / FEE_SHOCK_SD,
            "short_interest": np.round(short_interest),
            "adv": np.round(adv),
            "on_loan": np.round(on_loan),
            "rerate": np.round(rerate, 4),
            "b2b": b2b,
            "lenders": lenders,
        }

    def planted_returns(self, symbol: str, sessions: int) -> np.ndarray:
        """The planted log returns of ``symbol`` over the market's first ``sessions`` sessions."""
        state = self.state(symbol)
        effect = EFFECT_PER_Z * np.maximum(state["z"], 0.0) * (state["utilisation"] > HIGH_UTILISATION)
        out = np.zeros(sessions + max(EFFECT_SESSIONS))
        for lag in EFFECT_SESSIONS:
            out[lag : lag + effect.size] += effect / len(EFFECT_SESSIONS)
        return out[:sessions]

    def feed(self, symbols: list[str], day: date) -> pl.DataFrame:
        """The day's feed for ``symbols`` in the vendor's column names (the seed's schema)."""
        if day not in self._index:
            raise ValueError(
                f"{day.isoformat()} is not a simulated lending session (2010-{LENDING_UNTIL.year})"
            )
        i = self._index[day]
        back = max(0, i - MONTH)
        states = [self.state(symbol) for symbol in symbols]

        def column(field: str, at: int = i) -> np.ndarray:
            return np.array([state[field][at] for state in states], dtype=float)

        etf = np.array([symbol in ETF_SYMBOLS for symbol in symbols], dtype=bool)
        industry = [INDUSTRIES[zlib.crc32(symbol.encode()) % len(INDUSTRIES)] for symbol in symbols]
        on_loan = column("on_loan")
        return pl.DataFrame(
            {
                "Date": [day.isoformat()] * len(symbols),
                "ticker": list(symbols),
                "sec_desc": [
                    f"{s} {'ETF' if e else 'common stock'}" for s, e in zip(symbols, etf, strict=True)
                ],
                "industry": ["ETF" if e else name for e, name in zip(etf, industry, strict=True)],
                "Fee All (BPS)": column("fee"),
                "Active Utilization (%)": column("utilisation"),
                "On Loan Quantity": on_loan.astype(np.int64),
                "On Loan Quantity Month Diff": (on_loan - column("on_loan", back)).astype(np.int64),
                "Fee All Month Diff (BPS)": np.round(column("fee") - column("fee", back), 2),
                "Short Interest": column("short_interest").astype(np.int64),
                "Average Daily Volume": column("adv").astype(np.int64),
                "Re-Rate Ratio": column("rerate"),
                "B2B Loans": column("b2b").astype(np.int64),
                "Lender Count": column("lenders").astype(np.int64),
            }
        )

    def write_feed_file(self, symbols: list[str], day: date, folder: str | Path, fmt: str = "csv") -> Path:
        """Drop the day's feed into ``folder`` as the vendor does: ``lending_YYYY-MM-DD.csv``
        (or ``.parquet``)."""
        path = Path(folder) / LENDING_FEED.file_name(day, fmt)
        path.parent.mkdir(parents=True, exist_ok=True)
        frame = self.feed(symbols, day)
        tmp = path.with_suffix(f".{fmt}.tmp")
        if fmt == "csv":
            frame.write_csv(tmp)
        elif fmt == "parquet":
            frame.write_parquet(tmp)
        else:
            raise ValueError(f"feed format {fmt!r} is not csv or parquet")
        tmp.replace(path)
        return path

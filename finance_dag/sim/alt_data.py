"""Simulated file drops for the extended lending factors: ETF shares outstanding, ESG scores and
social-mention counts, in the schemas of ``finance_dag.lending.extended`` (``DROPS``).

Every series is a pure function of ``(seed, symbol)`` over the sessions 2010-2030, like the
simulated lending state, and none of them moves prices: they carry no planted signal.

- ``etf_shares``: every ETF of the lending universe (``core.universe.ETF_SYMBOLS``), delivered
  each session. Shares outstanding move by whole creation units of 50,000 shares (a random walk
  of about 1 % a day); ``shares_outstanding_change`` is the day's change.
- ``esg_scores``: a 0-10 score per name (a per-name level with small monthly revisions),
  delivered on the first session of each month.
- ``social_mentions``: daily posts per name, Poisson around a per-name rate that swings with a
  persistent buzz state; names with no posts are left out of the file, as social-listening
  vendors do. The vendor misses ``MENTIONS_OUTAGE`` of the sessions (no file at all).
"""

from __future__ import annotations

import zlib
from datetime import date
from functools import lru_cache

import numpy as np
import polars as pl

from finance_dag.core import calendar
from finance_dag.core.universe import ETF_SYMBOLS
from finance_dag.sim.lending import LENDING_UNTIL, ar1

CREATION_UNIT = 50_000
MENTIONS_OUTAGE = 0.02  # share of sessions with no social-mention file


class SimulatedAltData:
    """Deterministic ETF shares, ESG scores and mention counts (see the module docstring)."""

    def __init__(self, seed: int = 7) -> None:
        self.seed = seed
        self.sessions = calendar.sessions(calendar.CALENDAR_START, LENDING_UNTIL)
        self._index = {d: i for i, d in enumerate(self.sessions)}
        months = np.array([d.year * 12 + d.month for d in self.sessions])
        self._month_first = np.r_[True, months[1:] != months[:-1]]
        self._month_number = np.cumsum(self._month_first) - 1
        outage = np.random.default_rng([seed, 23]).uniform(size=len(self.sessions)) < MENTIONS_OUTAGE
        self._mentions_outage = outage

    def _rng(self, symbol: str, stream: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, stream, zlib.crc32(symbol.encode())])

    @lru_cache(maxsize=256)  # noqa: B019 - lives as long as the simulator
    def _shares(self, symbol: str) -> np.ndarray:
        rng = self._rng(symbol, 17)
        units = np.exp(
            rng.uniform(np.log(2e7), np.log(2e9)) + np.cumsum(0.01 * rng.standard_normal(len(self.sessions)))
        )
        return np.round(units / CREATION_UNIT) * CREATION_UNIT

    @lru_cache(maxsize=2048)  # noqa: B019
    def _esg(self, symbol: str) -> np.ndarray:
        rng = self._rng(symbol, 19)
        revisions = ar1(0.15 * rng.standard_normal(int(self._month_number[-1]) + 1), 0.9)
        return np.clip(np.round(rng.uniform(1.5, 8.5) + revisions, 1), 0.0, 10.0)

    @lru_cache(maxsize=2048)  # noqa: B019
    def _mentions(self, symbol: str) -> np.ndarray:
        rng = self._rng(symbol, 29)
        buzz = ar1(0.25 * rng.standard_normal(len(self.sessions)), 0.9)
        rate = np.exp(rng.normal(1.0, 1.5) + buzz)
        return rng.poisson(rate)

    def _at(self, day: date) -> int:
        if day not in self._index:
            raise ValueError(f"{day.isoformat()} is not a simulated session (2010-{LENDING_UNTIL.year})")
        return self._index[day]

    def etf_shares(self, symbols: list[str], day: date) -> pl.DataFrame:
        """The day's ETF shares-outstanding file for the ETFs among ``symbols``."""
        i = self._at(day)
        etfs = [s for s in symbols if s in ETF_SYMBOLS]
        now = [float(self._shares(s)[i]) for s in etfs]
        before = [float(self._shares(s)[max(i - 1, 0)]) for s in etfs]
        return pl.DataFrame(
            {
                "date": [day] * len(etfs),
                "symbol": etfs,
                "shares_outstanding": now,
                "shares_outstanding_change": [a - b for a, b in zip(now, before, strict=True)],
            },
            schema={"date": pl.Date, "symbol": pl.String, "shares_outstanding": pl.Float64,
                    "shares_outstanding_change": pl.Float64},
        )  # fmt: skip

    def esg_scores(self, symbols: list[str], day: date) -> pl.DataFrame | None:
        """The month's ESG file on its first session; None on other sessions (nothing delivered)."""
        i = self._at(day)
        if not self._month_first[i]:
            return None
        month = int(self._month_number[i])
        scores = [float(self._esg(s)[month]) for s in symbols]
        return pl.DataFrame(
            {"date": [day] * len(symbols), "symbol": list(symbols), "esg_score": scores},
            schema={"date": pl.Date, "symbol": pl.String, "esg_score": pl.Float64},
        )

    def social_mentions(self, symbols: list[str], day: date) -> pl.DataFrame | None:
        """The day's mention counts (names with at least one post); None on an outage day."""
        i = self._at(day)
        if self._mentions_outage[i]:
            return None
        counts = [(s, int(self._mentions(s)[i])) for s in symbols]
        kept = [(s, n) for s, n in counts if n > 0]
        return pl.DataFrame(
            {"date": [day] * len(kept), "symbol": [s for s, _ in kept], "mentions": [n for _, n in kept]},
            schema={"date": pl.Date, "symbol": pl.String, "mentions": pl.Int64},
        )

    def drop(self, dataset: str, symbols: list[str], day: date) -> pl.DataFrame | None:
        """The file the vendor of ``dataset`` delivers for ``day``, or None when it sends none."""
        deliver = {
            "etf_shares": self.etf_shares,
            "esg_scores": self.esg_scores,
            "social_mentions": self.social_mentions,
        }
        if dataset not in deliver:
            raise ValueError(f"no simulated file drop {dataset!r}; known: {', '.join(deliver)}")
        return deliver[dataset](symbols, day)

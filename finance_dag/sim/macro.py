"""Simulated macro series shaped like their FRED namesakes, tied to the simulated market.

- ``VIXCLS``: log VIX is an AR(1) around 19 whose shocks move against the market factor
  return (volatility rises when the market falls); daily on sessions, floored at 9, median
  about 17, mostly 11-30 with spikes past 40, two decimals.
- ``BAMLH0A0HYM2`` (ICE BofA US High Yield OAS, percent): follows log VIX with its own slow
  noise, median about 4.3 %, mostly 3-6 % and up to 8 %, two decimals, daily on sessions (the real series follows the bond
  calendar; sessions are close enough here).
- ``STLFSI4`` (St. Louis Fed Financial Stress Index): weekly on Fridays, a composite of the
  standardised VIX and OAS deviations plus noise, centred on 0 over the whole simulated
  history, mostly -1.5 to 2, four decimals.
- ``SKEW`` (CBOE SKEW index; not a FRED series: Yahoo ``^SKEW`` or a file): an AR(1) around
  135 with its own noise and a small link to VIX (tail hedging gets dearer as volatility
  rises), daily on sessions, mostly 124-143 (up to about 155), two decimals. ``skew()`` serves it.

Everything is a pure function of the market's seed and the date: the whole history is built
once, so any date range gives the same numbers. The FRED fake serves exactly these values.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from functools import cached_property

import numpy as np
import polars as pl

from finance_dag.core import calendar
from finance_dag.sim.market import SimulatedMarket

HY_OAS, VIX, STRESS = "BAMLH0A0HYM2", "VIXCLS", "STLFSI4"
MACRO_SERIES: tuple[str, ...] = (HY_OAS, VIX, STRESS)  # the FRED series
SKEW = "SKEW"  # CBOE SKEW: not on FRED
MACRO_SCHEMA = pl.Schema({"date": pl.Date, "series_id": pl.String, "value": pl.Float64})
_MARKET_VOL = 0.011  # daily volatility of the market factor


class SimulatedMacro:
    """Deterministic macro series for the simulated market (see the module docstring)."""

    def __init__(self, market: SimulatedMarket) -> None:
        self.market = market

    @cached_property
    def _history(self) -> dict[str, pl.DataFrame]:
        factors = self.market.factor_returns(calendar.CALENDAR_START, date(2100, 1, 1))
        days = factors["date"].to_list()
        shock = -factors["market"].to_numpy() / _MARKET_VOL
        rng = np.random.default_rng([self.market.seed, 9])
        noise = rng.standard_normal((len(days), 3))
        mu, phi = np.log(19.0), 0.98
        log_vix = np.empty(len(days))
        spread = np.empty(len(days))
        level, credit = mu, 0.0
        for i in range(len(days)):
            level = mu + phi * (level - mu) + 0.05 * shock[i] + 0.03 * noise[i, 0]
            credit = 0.97 * credit + 0.02 * noise[i, 1]
            log_vix[i], spread[i] = level, credit
        vix = np.round(np.maximum(9.0, np.exp(log_vix)), 2)
        oas = np.round(4.6 * np.exp(0.6 * (log_vix - mu) + spread), 2)
        z = 0.6 * (log_vix - mu) / 0.29 + 0.4 * np.log(oas / 4.6) / 0.2 + 0.1 * noise[:, 2]
        stress = z - z.mean()
        skew_level = np.empty(len(days))
        level = 0.0
        for i in range(len(days)):
            level = 0.95 * level + 1.5 * noise[i, 2] + 0.8 * (log_vix[i] - mu)
            skew_level[i] = level
        skew = np.round(135.0 + skew_level, 2)
        daily = pl.DataFrame(
            {"date": days, "vix": vix, "oas": oas, "stress": np.round(stress, 4), "skew": skew}
        )
        fridays = _fridays(days[0], days[-1])
        weekly = (
            pl.DataFrame({"date": fridays})
            .join_asof(daily.select("date", "stress"), on="date", strategy="backward")
            .drop_nulls()
        )
        return {
            VIX: daily.select("date", value="vix"),
            HY_OAS: daily.select("date", value="oas"),
            STRESS: weekly.select("date", value="stress"),
            SKEW: daily.select("date", value="skew"),
        }

    def skew(self, start: date, end: date) -> pl.DataFrame:
        """CBOE SKEW closes in [start, end]: ``date``, ``close`` (what Yahoo's ``^SKEW`` serves)."""
        frame = self._history[SKEW].filter(pl.col("date").is_between(start, end))
        return frame.rename({"value": "close"})

    def observations(self, series_ids: Sequence[str], start: date, end: date) -> pl.DataFrame:
        """``(date, series_id, value)`` for each series in [start, end], like the FRED source."""
        unknown = sorted(set(series_ids) - set(MACRO_SERIES))
        if unknown:
            raise ValueError(f"no simulated macro series {unknown}; known: {', '.join(MACRO_SERIES)}")
        frames = [
            self._history[sid]
            .filter(pl.col("date").is_between(start, end))
            .with_columns(series_id=pl.lit(sid))
            .select(MACRO_SCHEMA.names())
            for sid in series_ids
        ]
        return pl.concat(frames).cast(MACRO_SCHEMA) if frames else pl.DataFrame(schema=MACRO_SCHEMA)


def _fridays(start: date, end: date) -> list[date]:
    first = start + timedelta(days=(4 - start.weekday()) % 7)
    return [first + timedelta(weeks=k) for k in range((end - first).days // 7 + 1)]

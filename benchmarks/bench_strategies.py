"""Issue 10: the strategy walk-forwards at the seed's scale, pure logic (no Dagster run, no lake).

- P1: every registered daily strategy's walk-forward (train 252, test 63 sessions, its default
  grid, the default ``CostModel`` and default ``Sizing`` on $1M) over 100 symbols × 5 years of
  daily bars (sessions 2019-12-02..2024-11-29) in <= 10 s in all on 2 cores.
- P2: the intraday strategy (``opening_range_breakout``, default grid of 3) over 20 symbols × 1 year
  of regular-session minute bars (2023-12-01..2024-11-29; train 126, test 21) in <= 10 s.

Setup (not timed), from the simulated market (seed 7): for P1 the 96 names of ``FULL_SYMBOLS``
plus synthetic ``SIM001``..``SIM004``; the close is the raw daily close of ``daily_prices``, high
and low are max/min(open, close) (the sim has no cheaper daily range than its minute bars), volume
is the profile's ``minute_volume`` × 390 with a seeded lognormal day-to-day jitter (σ 0.3), all
through ``research.bars_from_daily`` as the strategy group builds its panel. For P2 the 20 demo
symbols' ``true_minute_bars`` concatenated over the sessions, regular rows only, as the lake's
columns (ts ``UTC_MINUTE``, high, low, close, volume); the generation time is printed.

Timed: ``research.evaluate`` per daily strategy (costs and sizing included) and one
``walk_forward_intraday``. Floors, measured in the same run (shared, noisy machines): P1 runs
``evaluate`` once per daily strategy with momentum_1d's signal and as many (empty) parameter sets
as that strategy's grid has — the same paths, costs, sizing, selection, deflated Sharpe and PBO,
i.e. the walk-forward's own bookkeeping with the cheapest rule (pair_stat_arb's refit per window is
strategy work and not in the floor); P2 is one pass over the same minute frames doing the per-row
work no rule avoids: sort, New York session of every row and ``intraday_path`` of an all-zero
position for each symbol × 3 grid values.
"""

import sys
import time
from datetime import date

import numpy as np
import polars as pl

from benchmarks.common import timed, verdict
from finance_dag.backtest.costs import CostModel
from finance_dag.backtest.vectorised import intraday_path
from finance_dag.core import calendar
from finance_dag.core.universe import DEMO_SYMBOLS, FULL_SYMBOLS
from finance_dag.market_data.bars import UTC_MINUTE, ny_date
from finance_dag.sim.market import SimulatedMarket
from finance_dag.strategies import research
from finance_dag.strategies.signals import STRATEGIES, Bars
from finance_dag.strategies.sizing import Sizing
from finance_dag.strategies.walkforward import walk_forward_intraday

SEED = 7
DAILY = (date(2019, 12, 2), date(2024, 11, 29))
MINUTE = (date(2023, 12, 1), date(2024, 11, 29))
N_DAILY, N_MINUTE = 100, 20
TRAIN, TEST = 252, 63
MINUTE_TRAIN, MINUTE_TEST = 126, 21
CAPITAL = 1_000_000.0
TARGET_DAILY = 10.0
TARGET_MINUTE = 10.0
ISSUE = "issue 10"


def daily_symbols() -> list[str]:
    extra = [f"SIM{k:03d}" for k in range(1, N_DAILY - len(FULL_SYMBOLS) + 1)]
    return [*FULL_SYMBOLS, *extra][:N_DAILY]


def daily_bars(market: SimulatedMarket, symbols: list[str]) -> Bars:
    """Closes from ``daily_prices``; high/low = max/min(open, close); volume = minute_volume × 390
    with a seeded lognormal jitter."""
    prices = market.daily_prices(symbols, *DAILY)
    rng = np.random.default_rng([SEED, 10])
    base = pl.DataFrame({"symbol": symbols, "base": [market.profile(s).minute_volume * 390 for s in symbols]})
    frame = prices.join(base, on="symbol", how="left", maintain_order="left").select(
        "symbol",
        "date",
        "close",
        high=pl.max_horizontal("open", "close"),
        low=pl.min_horizontal("open", "close"),
        volume=(pl.col("base") * rng.lognormal(0.0, 0.3, prices.height)).round(0).clip(1),
    )
    return research.bars_from_daily(frame)


def minute_frames(market: SimulatedMarket, symbols: list[str]) -> dict[str, pl.DataFrame]:
    """Each symbol's regular-session minute bars over ``MINUTE``, in the lake's dtypes."""
    days = calendar.sessions(*MINUTE)
    out = {}
    for symbol in symbols:
        parts = [market.true_minute_bars(symbol, day) for day in days]
        keep = np.concatenate([p["regular"] for p in parts])
        columns = {
            k: np.concatenate([p[k] for p in parts])[keep] for k in ("ts", "high", "low", "close", "volume")
        }
        out[symbol] = pl.DataFrame(columns).with_columns(
            pl.col("ts").dt.replace_time_zone("UTC").cast(UTC_MINUTE)
        )
    return out


def main() -> int:
    market = SimulatedMarket(SEED)
    started = time.perf_counter()
    bars = daily_bars(market, daily_symbols())
    daily_setup = time.perf_counter() - started
    started = time.perf_counter()
    minutes = minute_frames(market, list(DEMO_SYMBOLS[:N_MINUTE]))
    minute_setup = time.perf_counter() - started
    rows = sum(f.height for f in minutes.values())
    costs, sizing = CostModel(), Sizing()

    daily = {n: s for n, s in STRATEGIES.items() if s.data == "daily"}
    per_strategy: dict[str, float] = {}
    floor_per: dict[str, float] = {}
    cheapest = STRATEGIES["momentum_1d"]
    for name, strategy in daily.items():
        per_strategy[name] = timed(
            lambda s=strategy: research.evaluate(
                s, bars, TRAIN, TEST, sizing=sizing, costs=costs, capital=CAPITAL
            )
        )
        same_paths = [{} for _ in strategy.grid()]
        floor_per[name] = timed(
            lambda g=same_paths: research.evaluate(
                cheapest, bars, TRAIN, TEST, grid=g, sizing=sizing, costs=costs, capital=CAPITAL
            )
        )
    total_daily, floor_daily = sum(per_strategy.values()), sum(floor_per.values())

    orb = STRATEGIES["opening_range_breakout"]
    grid = orb.grid()
    total_minute = timed(
        lambda: walk_forward_intraday(orb, minutes, MINUTE_TRAIN, MINUTE_TEST, costs=costs, capital=CAPITAL)
    )

    def minute_floor() -> None:
        for frame in minutes.values():
            frame = frame.sort("ts").with_columns(session=ny_date())
            day, close = frame["session"].to_numpy(), frame["close"].to_numpy()
            flat = np.zeros(day.size)
            for _ in grid:
                intraday_path(day, close, flat)

    floor_minute = timed(minute_floor)

    n_paths = sum(len(s.grid()) for s in daily.values())
    print(
        f"setup: daily bars {bars.close.shape[1]} symbols x {bars.close.shape[0]} sessions {daily_setup:.2f} s; "
        f"minute bars {len(minutes)} symbols x {len(calendar.sessions(*MINUTE))} sessions "
        f"({rows:,} regular rows) {minute_setup:.2f} s"
    )
    print(
        f"P1 daily walk-forwards (train {TRAIN}, test {TEST}), {len(daily)} strategies, {n_paths} parameter paths:"
    )
    print(f"  {'strategy':<26} {'paths':>5} {'time':>8} {'floor':>8}")
    for name, strategy in daily.items():
        print(
            f"  {name:<26} {len(strategy.grid()):>5} {per_strategy[name]:>6.2f} s {floor_per[name]:>6.2f} s"
        )
    print(
        f"  all daily strategies {total_daily:.2f} s, floor (momentum_1d x {n_paths} paths) "
        f"{floor_daily:.2f} s, ratio {total_daily / floor_daily:.1f}x"
    )
    print(
        f"P2 opening_range_breakout (train {MINUTE_TRAIN}, test {MINUTE_TEST}, grid {len(grid)}): "
        f"{total_minute:.2f} s, floor (session + flat intraday_path x {len(grid)}) {floor_minute:.2f} s, "
        f"ratio {total_minute / floor_minute:.1f}x"
    )
    ok = verdict(
        f"P1 every daily strategy, {bars.close.shape[1]} symbols x 5 years",
        total_daily,
        TARGET_DAILY,
        "s",
        issue=ISSUE,
        floor=floor_daily,
        floor_note=f"momentum_1d x {n_paths} paths",
    )
    ok &= verdict(
        f"P2 opening_range_breakout, {len(minutes)} symbols x 1 year",
        total_minute,
        TARGET_MINUTE,
        "s",
        issue=ISSUE,
        floor=floor_minute,
        floor_note=f"session + flat intraday_path x {len(grid)}",
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

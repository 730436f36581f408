"""finance_dag.strategies.signals: each family on hand-built series, no look-ahead for every registered
strategy, and the registry's errors.

Daily cases run on the first XNYS sessions of 2023; a position at row t is the one taken at t's close.
"""

from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from finance_dag.core import calendar
from finance_dag.market_data.bars import UTC_MINUTE
from finance_dag.strategies import STRATEGIES, Bars, choose_pair, get, validate
from finance_dag.strategies.signals import rsi, volatility_regime_filter

SESSIONS = calendar.sessions(date(2023, 1, 3), date(2024, 12, 31))


def bars_of(close, high=None, low=None, volume=None) -> Bars:
    """Bars from closes (a vector is one symbol); high = low = close and volume 1 unless given."""
    close = np.asarray(close, dtype=float)
    close = close[:, None] if close.ndim == 1 else close
    shaped = [close if a is None else np.asarray(a, dtype=float).reshape(close.shape) for a in (high, low)]
    volume = np.ones(close.shape) if volume is None else np.asarray(volume, dtype=float).reshape(close.shape)
    symbols = tuple(f"S{j}" for j in range(close.shape[1]))
    return Bars(np.array(SESSIONS[: close.shape[0]], dtype="datetime64[D]"), symbols, close, *shaped, volume)


def minute_frame(day: date, closes: np.ndarray, high=None, low=None) -> pl.DataFrame:
    """One session of regular minute bars from the open, open = close, high/low = close unless given."""
    opened, _ = calendar.session_open_close(day)
    return pl.DataFrame(
        {
            "ts": [opened + timedelta(minutes=m) for m in range(closes.size)],
            "open": closes,
            "high": closes if high is None else high,
            "low": closes if low is None else low,
            "close": closes,
            "volume": np.full(closes.size, 100),
        },
        schema_overrides={"ts": UTC_MINUTE, "volume": pl.Int64},
    )


# --- momentum ---------------------------------------------------------------------------------


def test_momentum_flips_at_the_exact_session():
    close = np.r_[np.arange(100.0, 110.0), np.arange(108.0, 98.0, -1.0)]  # up to row 9, down from row 10
    one, five = (get(name)(bars_of(close))[:, 0] for name in ("momentum_1d", "momentum_5d"))
    np.testing.assert_array_equal(one, np.r_[0, np.ones(9), -np.ones(10)])
    # close[11] = 107 > close[6] = 106, close[12] = 106 < close[7] = 107: the 5-day sign turns on row 12
    np.testing.assert_array_equal(five, np.r_[np.zeros(5), np.ones(7), -np.ones(8)])


def test_volume_weighted_momentum_follows_the_heavy_volume_day():
    close = np.array([100.0, 102.0, 100.98])  # +2 % on volume 1, then -1 % on volume 3
    positions = get("volume_weighted_momentum")(bars_of(close, volume=[1, 1, 3]), lookback=2)
    assert positions[2, 0] == -1.0  # 1·0.02 + 3·(-0.01) < 0, although the 2-day return is +0.98 %
    assert get("momentum_1d").signal(bars_of(close))[1, 0] == 1.0


def test_cross_sectional_rules_go_long_the_top_and_short_the_bottom_quantile():
    base = np.ones(5)
    close = np.vstack([base * 100, 100 * np.array([1.05, 0.90, 1.10, 1.00, 0.95])])  # ranks: 3 0 4 2 1
    positions = get("cross_sectional_momentum")(bars_of(close), lookback=1, quantile=0.2)
    np.testing.assert_array_equal(positions, [[0, 0, 0, 0, 0], [0, -1, 1, 0, 0]])
    rng = np.random.default_rng(3)
    scale = np.array([0.01, 0.05, 0.02, 0.03, 0.04])  # daily vol per symbol
    walks = 100 * np.exp(np.cumsum(rng.normal(0, 1, (70, 5)) * scale, axis=0))
    tilt = get("low_volatility_tilt")(bars_of(walks), window=63, quantile=0.2)
    assert not tilt[:63].any()
    np.testing.assert_array_equal(tilt[63:], np.tile([1, -1, 0, 0, 0], (7, 1)))


# --- mean reversion ---------------------------------------------------------------------------


def test_wilder_rsi_on_a_small_hand_example():
    # changes +1, -0.5, +1, -0.5, +1 with n = 3: seed G = 2/3, L = 1/6 -> RSI 80; then
    # G = (2/3·2 + 0)/3 = 4/9, L = (1/6·2 + 0.5)/3 = 5/18 -> 100·(4/9)/(4/9 + 5/18) = 61.538...;
    # G = (4/9·2 + 1)/3 = 17/27, L = (5/18·2)/3 = 5/27 -> 100·17/22 = 77.27...
    value = rsi(np.array([[10.0], [11.0], [10.5], [11.5], [11.0], [12.0]]), 3)[:, 0]
    np.testing.assert_allclose(value, [np.nan, np.nan, np.nan, 80.0, 800 / 13, 1700 / 22])


def test_rsi_extremes_buy_after_fourteen_falls_and_sell_after_fourteen_rises():
    falling = 100.0 - np.arange(15.0)
    assert rsi(falling[:, None], 14)[14, 0] == 0.0
    np.testing.assert_array_equal(get("rsi_reversal")(bars_of(falling))[:, 0], np.r_[np.zeros(14), 1.0])
    rising = 100.0 + np.arange(15.0)
    np.testing.assert_array_equal(get("rsi_reversal")(bars_of(rising))[:, 0], np.r_[np.zeros(14), -1.0])


def test_bollinger_break_is_held_until_the_mean_is_crossed():
    close = np.array([10, 10.1, 9.9, 10, 10.1, 9.9, 9.0, 9.5, 9.9, 10.4, 10.0, 10.0])
    # z (5 closes): row 5 -1.12, row 6 -1.97 (break of -1.5), row 7 -0.49 (held), row 8 +0.56 (out)
    positions = get("bollinger_reversal")(bars_of(close), window=5, k=1.5)[:, 0]
    np.testing.assert_array_equal(positions, [0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0])
    short = get("bollinger_reversal")(bars_of(20 - close), window=5, k=1.5)[:, 0]
    np.testing.assert_array_equal(short, -positions)


def cointegrated_closes(n: int = 300) -> np.ndarray:
    """S0 = e^0.3 · S1^1.5 · e^(AR(1) noise), S1 and S2 independent random walks."""
    rng = np.random.default_rng(11)
    log_b = np.log(50) + np.cumsum(rng.normal(0, 0.01, n))
    noise = np.zeros(n)
    for t in range(1, n):
        noise[t] = 0.5 * noise[t - 1] + rng.normal(0, 0.004)
    log_c = np.log(80) + np.cumsum(rng.normal(0, 0.01, n))
    return np.exp(np.column_stack([0.3 + 1.5 * log_b + noise, log_b, log_c]))


def test_choose_pair_recovers_the_hedge_ratio_on_the_training_window():
    closes = cointegrated_closes()
    pair = choose_pair(closes, slice(0, 200))
    assert (pair.a, pair.b) == (0, 1)
    assert pair.beta == pytest.approx(1.5, abs=0.03)
    assert pair.statistic < pair.critical_5pct < -3.3
    # the vectorised closed forms against plain least squares on the chosen pair
    y, x = np.log(closes[:200, 0]), np.log(closes[:200, 1])
    (alpha, beta), *_ = np.linalg.lstsq(np.column_stack([np.ones(200), x]), y, rcond=None)
    resid = y - alpha - beta * x
    diff = np.diff(resid)
    design = np.column_stack([resid[1:-1], diff[:-1]])
    coef, rss, *_ = np.linalg.lstsq(design, diff[1:], rcond=None)
    se = np.sqrt(rss[0] / (design.shape[0] - 2) * np.linalg.inv(design.T @ design)[0, 0])
    assert (pair.alpha, pair.beta, pair.statistic) == pytest.approx((alpha, beta, coef[0] / se), rel=1e-9)
    assert pair.critical_5pct == pytest.approx(-3.33613 - 6.1101 / 200 - 6.823 / 200**2)
    closes[200:, 2] = np.nan  # data after the window plays no part
    assert choose_pair(closes, slice(0, 200)) == pair
    with pytest.raises(ValueError, match="1 complete column"):
        choose_pair(np.where(np.arange(3) == 0, closes, np.nan), slice(0, 200))


def test_pair_spread_enters_beyond_entry_and_exits_inside_exit():
    train = slice(0, 200)
    closes = cointegrated_closes(206)
    fit = choose_pair(closes, train)
    z = np.array([0.0, 2.5, 1.0, 0.4, -2.5, -0.3])  # the spread's planted z-scores after the window
    closes[200:, 0] = np.exp(fit.alpha + fit.beta * np.log(closes[200:, 1]) + z * fit.spread_std)
    bars = bars_of(closes)
    positions = get("pair_stat_arb")(bars, train=train, entry=2.0, exit=0.5)
    assert not positions[:200].any() and not positions[:, 2].any()
    spread = np.array(
        [0, -1, -1, 0, 1, 0]
    )  # short at +2.5, held at 1.0, out at 0.4; long at -2.5, out at -0.3
    np.testing.assert_allclose(positions[200:, 0], spread / fit.beta)  # β > 1: the b leg is the full budget
    np.testing.assert_allclose(positions[200:, 1], -spread)
    named = get("pair_stat_arb")(bars, pair=("S0", "S1"), train=train, entry=2.0, exit=0.5)
    np.testing.assert_allclose(named, positions)
    with pytest.raises(ValueError, match="'XX'"):
        get("pair_stat_arb")(bars, pair=("S0", "XX"), train=train)


# --- volatility -------------------------------------------------------------------------------


def test_breakout_above_the_prior_20_day_high_on_the_exact_day():
    close = 100 + 0.2 * np.sin(np.arange(30.0))
    close[25] = 101.0  # prior 20 highs are close + 0.5 <= 100.7
    close[26:] = 100.0
    positions = get("volatility_breakout")(bars_of(close, close + 0.5, close - 0.5), window=20, hold=3)[:, 0]
    np.testing.assert_array_equal(positions, np.r_[np.zeros(25), 1, 1, 1, 0, 0])
    at_the_high = close.copy()
    at_the_high[25] = (close[5:25] + 0.5).max()  # equal to the prior high is no break
    assert not get("volatility_breakout")(bars_of(at_the_high, at_the_high + 0.5, at_the_high - 0.5)).any()


def test_volatility_regime_filter_is_long_only_in_calm_regimes():
    rng = np.random.default_rng(5)
    shocks = rng.normal(0, 1, 400) * np.where(np.arange(400) < 340, 0.01, 0.04)  # turbulence from row 340
    positions = get("volatility_regime_filter")(bars_of(100 * np.exp(np.cumsum(shocks))))[:, 0]
    assert not positions[:272].any()  # vols from row 21 (21 returns), their 252-median from row 272
    assert not positions[360:].any()  # every 21-day window after row 360 is turbulent
    assert positions[272:340].any()


def test_with_vix_the_regime_is_the_markets_for_every_symbol():
    # VIX 15 for 8 sessions, then 30: with vol_window 2 and median_window 4 the 2-day mean VIX is
    # below its 4-session median only where it starts to fall back (rows 12-13 after the spike ends)
    vix = np.array([15.0] * 8 + [30.0] * 4 + [12.0] * 4)
    closes = np.column_stack([np.linspace(100, 110, 16), np.linspace(50, 40, 16)])
    closes[13, 1] = np.nan  # no close: flat there
    positions = volatility_regime_filter(bars_of(closes), vol_window=2, median_window=4, vix=vix)
    mean = np.convolve(vix, [0.5, 0.5])[1:16]  # row t: mean of VIX t-1, t
    expected = np.zeros(16)
    for t in range(4, 16):
        expected[t] = float(mean[t - 1] < np.median(mean[t - 4 : t]))
    np.testing.assert_array_equal(positions[:, 0], expected)
    np.testing.assert_array_equal(positions[:, 1], np.where(np.arange(16) == 13, 0.0, expected))
    assert positions[:, 0].any() and not positions[:, 0].all()
    with pytest.raises(ValueError, match="vix has 3 values for 16 sessions"):
        volatility_regime_filter(bars_of(closes), 2, 4, vix=vix[:3])


# --- intraday ---------------------------------------------------------------------------------


def test_opening_range_breakout_on_hand_built_days():
    quiet = np.full(390, 100.0)
    high, low = quiet + 0.1, quiet - 0.1
    high[10], low[20] = 101.0, 99.0  # the opening range is [99, 101]
    up = quiet.copy()
    up[45] = 101.5  # breaks above at minute 45, then closes inside the range again: still long
    down = quiet.copy()
    down[60], down[200] = 98.5, 101.2  # below at minute 60, reversed above at minute 200
    days = [date(2024, 3, 5), date(2024, 3, 6)]
    frame = pl.concat(
        [minute_frame(days[0], up, np.maximum(high, up), low), minute_frame(days[1], down, high, low)]
    )
    positions = get("opening_range_breakout")(frame)
    first, second = positions[:390], positions[390:]
    np.testing.assert_array_equal(first, np.r_[np.zeros(45), np.ones(344), 0])  # flat on the last minute
    np.testing.assert_array_equal(second, np.r_[np.zeros(60), -np.ones(140), np.ones(189), 0])
    assert not get("opening_range_breakout")(frame, range_minutes=60)[:390].any()  # minute 45 is in range


def test_opening_range_breakout_rejects_bars_outside_the_session():
    frame = minute_frame(date(2024, 3, 5), np.full(5, 100.0))
    early = frame.with_columns(pl.col("ts") - timedelta(hours=1))
    with pytest.raises(ValueError, match="5 bar"):
        get("opening_range_breakout")(early)


# --- every registered strategy ----------------------------------------------------------------


def random_bars(seed: int, n_sessions: int = 300, n_symbols: int = 6) -> Bars:
    rng = np.random.default_rng(seed)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, (n_sessions, n_symbols)), axis=0))
    close[:40, -1] = np.nan  # lists late
    close[150, 2] = np.nan  # a gap
    spread = np.abs(rng.normal(0, 0.01, close.shape))
    return Bars(
        np.array(SESSIONS[:n_sessions], dtype="datetime64[D]"),
        tuple(f"S{j}" for j in range(n_symbols)),
        close,
        close * (1 + spread),
        close * (1 - spread),
        rng.integers(1_000, 100_000, close.shape).astype(float),
    )


def random_minutes(seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    for day in (date(2024, 3, 5), date(2024, 11, 29)):  # a full day and an early close
        closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, calendar.expected_minutes(day))))
        frames.append(minute_frame(day, closes, closes * 1.0005, closes * 0.9995))
    return pl.concat(frames)


def perturbed_after(data: Bars | pl.DataFrame, t: int, rng: np.random.Generator) -> Bars | pl.DataFrame:
    """Every value after row t times random noise e^N(0, 0.05)."""
    if isinstance(data, pl.DataFrame):
        noise = pl.Series(np.r_[np.ones(t + 1), np.exp(rng.normal(0, 0.05, data.height - t - 1))])
        return data.with_columns(pl.col("open", "high", "low", "close") * noise)

    def noisy(array: np.ndarray) -> np.ndarray:
        out = array.copy()
        out[t + 1 :] *= np.exp(rng.normal(0, 0.05, out[t + 1 :].shape))
        return out

    arrays = (noisy(a) for a in (data.close, data.high, data.low, data.volume))
    return Bars(data.dates, data.symbols, *arrays)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_no_look_ahead(name):
    """Positions up to t are unchanged when every value after t is perturbed."""
    strategy = get(name)
    data = random_minutes(1) if strategy.data == "minute" else random_bars(1)
    positions = strategy(data)
    size = data.height if isinstance(data, pl.DataFrame) else data.close.shape[0]
    assert positions.shape[0] == size and np.isfinite(positions).all() and np.abs(positions).max() <= 1
    assert positions.any(), f"{name} never takes a position on the random data"
    rng = np.random.default_rng(2)
    for t in (size // 10, size // 2, size - 40, size - 2):
        again = strategy(perturbed_after(data, t, rng))
        np.testing.assert_array_equal(
            again[: t + 1], positions[: t + 1], err_msg=f"{name} looks ahead of row {t}"
        )


def test_registry_declares_families_defaults_and_small_grids():
    assert {s.family for s in STRATEGIES.values()} == {"momentum", "mean_reversion", "volatility"}
    for name, strategy in STRATEGIES.items():
        assert strategy.name == name
        for params in strategy.grid():
            assert validate(name, params) == {**strategy.defaults, **params}
    assert len(get("rsi_reversal").grid()) == 3 * 2 * 2


def test_unknown_names_and_out_of_range_parameters_are_named():
    with pytest.raises(ValueError, match=r"unknown strategy 'macd'.*momentum_20d"):
        get("macd")
    with pytest.raises(ValueError, match=r"rsi_reversal: parameter period=1 is outside \[2, 100\]"):
        validate("rsi_reversal", {"period": 1})
    with pytest.raises(ValueError, match=r"unknown parameter 'span'.*'period'"):
        validate("rsi_reversal", {"span": 3})
    with pytest.raises(ValueError, match="window=20.5 must be an integer"):
        get("bollinger_reversal")(bars_of(np.ones(30)), window=20.5)
    with pytest.raises(ValueError, match="unknown parameter 'lookback'.*none"):
        validate("momentum_5d", {"lookback": 3})
    assert validate("pair_stat_arb", {"pair": ("A", "B")})["pair"] == ("A", "B")  # options pass through
    assert validate("rsi_reversal", {"period": np.int64(10)})["period"] == 10  # numpy numbers are numbers


@pytest.mark.parametrize("name", [n for n, s in STRATEGIES.items() if s.data == "daily"])
def test_lookbacks_longer_than_the_history_give_flat_positions_not_errors(name):
    """Every grid value on 12 sessions: windows longer than that cannot fill, and nothing fails."""
    bars = bars_of(50 * np.exp(np.cumsum(np.random.default_rng(3).normal(0, 0.02, (12, 4)), axis=0)))
    for params in get(name).grid():
        extra = {"train": slice(0, 10)} if name == "pair_stat_arb" else {}
        positions = get(name)(bars, **params, **extra)
        assert positions.shape == bars.close.shape and np.isfinite(positions).all()


def step_by_step_band_reversal(z: np.ndarray, entry: float, exit: float) -> np.ndarray:
    """The hysteresis rule applied one session at a time, as the docstring states it."""
    out, held = np.zeros(z.shape), np.zeros(z.shape[1])
    for t, row in enumerate(z):
        keep = np.where(held > 0, row < -exit, row > exit) & (held != 0)
        held = np.select([row < -entry, row > entry, keep], [1.0, -1.0, held], 0.0)
        out[t] = held
    return out


@pytest.mark.parametrize("seed", range(20))
def test_vectorised_band_reversal_equals_the_step_by_step_rule(seed):
    from finance_dag.strategies.signals import _band_reversal

    rng = np.random.default_rng(seed)
    z = 0.3 * np.cumsum(rng.normal(0, 0.7, (300, 4)), axis=0)
    z[rng.random(z.shape) < 0.05] = np.nan  # NaNs forget the position
    for entry, exit in ((1.0, 0.0), (1.5, 0.5), (2.0, 1.0), (1.0, 1.0)):
        np.testing.assert_array_equal(
            _band_reversal(z, entry, exit), step_by_step_band_reversal(z, entry, exit)
        )

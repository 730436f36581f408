"""Hand-computed values of the core lending factors on tiny frames.

Expected values are computed here with plain Python (``statistics``), independently of polars:
``z(x) = (x - mean) / stdev`` over the names that have a value, clipped at +/-3.
"""

import math
import statistics
from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from finance_dag.lending.factors import (
    FACTOR_COLUMNS,
    FACTOR_DESCRIPTIONS,
    LOOKBACK,
    borrow_cost_shock,
    core_factors,
    days_to_cover_z,
    fee_trend_z,
    locate_proxy,
    lookback_sessions,
    short_interest_momentum,
    utilization_persistence,
)
from finance_dag.lending.feed import FEED_SCHEMA

NAMES = ("AAA", "BBB", "CCC", "DDD")
DEFAULTS = {
    "fee_bps": 10.0,
    "utilization_pct": 50.0,
    "short_interest": 1000.0,
    "adv": 100.0,
    "on_loan_qty": 100.0,
    "b2b_loans": 10.0,
    "rerate_ratio": 1.0,
}


def sessions(n: int) -> list[date]:
    """``n`` weekdays from 2024-10-01 (any increasing dates are sessions to the factors)."""
    days, day = [], date(2024, 10, 1)
    while len(days) < n:
        if day.weekday() < 5:
            days.append(day)
        day += timedelta(days=1)
    return days


def history(n: int, names=NAMES, drop=(), **columns: dict[str, list]) -> pl.DataFrame:
    """A long history of ``n`` sessions: ``columns[col][symbol][k]`` where given, else the default;
    ``drop`` lists (symbol, k) rows that are absent."""
    rows = []
    for k, day in enumerate(sessions(n)):
        for symbol in names:
            if (symbol, k) in drop:
                continue
            values = {c: columns.get(c, {}).get(symbol, [v] * n)[k] for c, v in DEFAULTS.items()}
            rows.append({"date": day, "symbol": symbol, **values})
    schema = {c: FEED_SCHEMA[c] for c in ("date", "symbol", *DEFAULTS)}
    return pl.DataFrame(rows, schema=schema)


def z(values: dict[str, float]) -> dict[str, float]:
    mean, sd = statistics.mean(values.values()), statistics.stdev(values.values())
    return {k: max(-3.0, min(3.0, (v - mean) / sd)) for k, v in values.items()}


def values(frame: pl.DataFrame, column: str) -> dict[str, float | None]:
    return dict(zip(frame["symbol"], frame[column], strict=True))


def assert_close(got: dict, expected: dict) -> None:
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        if value is None:
            assert got[key] is None, key
        else:
            assert got[key] == pytest.approx(value, abs=1e-12), key


def last(n: int) -> date:
    return sessions(n)[-1]


# ---- SIM --------------------------------------------------------------------------------------
def si_path(start: float, end: float, n: int = 21) -> list[float]:
    """Short interest that starts at ``start`` 20 sessions before the end; noise in between."""
    return [7777.0] * (n - 21) + [start] + [3333.0 + i for i in range(19)] + [end]


def test_sim_is_the_20_session_percent_change_z_scored_across_names():
    si = {
        "AAA": si_path(100, 110),
        "BBB": si_path(100, 100),
        "CCC": si_path(200, 180),
        "DDD": si_path(50, 60),
    }
    out = short_interest_momentum(history(21, short_interest=si), last(21))
    assert out.columns == ["date", "symbol", "sim"] and set(out["date"]) == {last(21)}
    assert_close(values(out, "sim"), z({"AAA": 0.10, "BBB": 0.0, "CCC": -0.10, "DDD": 0.20}))


def test_sim_ignores_sessions_before_its_window():
    si = {"AAA": si_path(100, 110, 25), "BBB": si_path(100, 100, 25), "CCC": si_path(200, 180, 25)}
    si["DDD"] = si_path(50, 60, 25)
    si["AAA"][0] = 1.0  # 24 sessions back: outside the window
    out = short_interest_momentum(history(25, short_interest=si), last(25))
    assert_close(values(out, "sim"), z({"AAA": 0.10, "BBB": 0.0, "CCC": -0.10, "DDD": 0.20}))


def test_sim_is_null_without_the_start_value_or_with_too_short_history():
    si = {"AAA": si_path(100, 110), "BBB": si_path(100, 100), "CCC": si_path(200, 180), "DDD": si_path(0, 60)}
    hist = history(21, short_interest=si, drop={("CCC", 0)})
    out = short_interest_momentum(hist, last(21))
    # CCC has no row 20 sessions back, DDD started at 0: null; z over the two others is undefined
    assert_close(values(out, "sim"), dict.fromkeys(NAMES))
    short = short_interest_momentum(history(21), sessions(21)[19])  # only 20 sessions: t-20 unknown
    assert short["sim"].null_count() == 4 and short.height == 4


# ---- BCS --------------------------------------------------------------------------------------
def test_bcs_is_todays_fee_change_over_the_previous_30_changes_std():
    fees = {
        "AAA": [100.0 + 2 * (k % 2) for k in range(31)] + [105.0],  # +-2 bps see-saw, then +5
        "BBB": [50.0] * 31 + [52.0],  # flat: the std is floored at 1 bp
        "CCC": [10.0 + 0.5 * k for k in range(32)],  # constant drift: std 0 -> floor
        "DDD": [float(k * k % 7) for k in range(32)],
    }
    out = borrow_cost_shock(history(32, fee_bps=fees), last(32))
    expected = {}
    for name, path in fees.items():
        changes = [b - a for a, b in zip(path, path[1:], strict=False)]  # 31 changes
        expected[name] = changes[-1] / max(statistics.stdev(changes[:-1]), 1.0)
    assert expected["AAA"] == pytest.approx(5 / (2 * math.sqrt(30 / 29)))
    assert expected["BBB"] == 2.0 and expected["CCC"] == 0.5
    assert_close(values(out, "bcs"), expected)  # per name: no cross-sectional step


def test_bcs_is_null_on_a_gap_or_short_history():
    out = borrow_cost_shock(history(32, drop={("CCC", 0)}), last(32))
    assert_close(values(out, "bcs"), {"AAA": 0.0, "BBB": 0.0, "CCC": None, "DDD": 0.0})
    assert borrow_cost_shock(history(31), last(31))["bcs"].null_count() == 4


# ---- UPI --------------------------------------------------------------------------------------
def test_upi_is_the_share_of_the_last_20_sessions_at_or_above_80_pct():
    util = {
        "AAA": [0.0] * 5 + [85.0] * 20,  # sessions before the window do not count
        "BBB": [100.0] * 5 + [85.0 if k % 4 == 0 else 50.0 for k in range(20)],
        "CCC": [80.0] * 25,  # the threshold is inclusive
        "DDD": [79.99] * 24 + [100.0],
    }
    out = utilization_persistence(history(25, utilization_pct=util), last(25))
    assert_close(values(out, "upi"), {"AAA": 1.0, "BBB": 0.25, "CCC": 1.0, "DDD": 0.05})


def test_upi_is_null_on_a_gap_or_short_history():
    out = utilization_persistence(history(20, drop={("DDD", 0)}), last(20))
    assert_close(values(out, "upi"), {"AAA": 0.0, "BBB": 0.0, "CCC": 0.0, "DDD": None})
    assert utilization_persistence(history(19), last(19))["upi"].null_count() == 4


# ---- FTZ --------------------------------------------------------------------------------------
def ols_slope(ys: list[float]) -> float:
    ks = range(len(ys))
    k_bar, y_bar = statistics.mean(ks), statistics.mean(ys)
    return sum((k - k_bar) * (y - y_bar) for k, y in zip(ks, ys, strict=True)) / sum(
        (k - k_bar) ** 2 for k in ks
    )


def test_ftz_is_the_20_session_fee_slope_z_scored_across_names():
    window = {
        "AAA": [100.0 + 2 * k for k in range(20)],
        "BBB": [200.0 - k for k in range(20)],
        "CCC": [30.0] * 20,
        "DDD": [float(k * k) for k in range(20)],
    }
    fees = {name: [9999.0] * 4 + path for name, path in window.items()}  # 4 older sessions ignored
    out = fee_trend_z(history(24, fee_bps=fees), last(24))
    slopes = {name: ols_slope(path) for name, path in window.items()}
    assert slopes == pytest.approx({"AAA": 2.0, "BBB": -1.0, "CCC": 0.0, "DDD": 19.0})
    assert_close(values(out, "ftz"), z(slopes))


def test_ftz_is_null_on_a_gap_or_short_history():
    fees = {"AAA": [1.0 * k for k in range(20)], "BBB": [2.0 * k for k in range(20)]}
    fees |= {"CCC": [3.0 * k for k in range(20)], "DDD": [4.0 * k for k in range(20)]}
    out = fee_trend_z(history(20, fee_bps=fees, drop={("AAA", 5)}), last(20))
    assert_close(values(out, "ftz"), {"AAA": None, **z({"BBB": 2.0, "CCC": 3.0, "DDD": 4.0})})
    assert fee_trend_z(history(19), last(19))["ftz"].null_count() == 4


# ---- DTC_z ------------------------------------------------------------------------------------
def test_dtc_z_is_short_interest_over_adv_z_scored_across_names():
    names = (*NAMES, "EEE")
    si = {"AAA": [1000.0], "BBB": [500.0], "CCC": [300.0], "DDD": [900.0], "EEE": [900.0]}
    adv = {"AAA": [100.0], "BBB": [100.0], "CCC": [100.0], "DDD": [0.0], "EEE": [None]}
    out = days_to_cover_z(history(1, names=names, short_interest=si, adv=adv), last(1))
    assert_close(values(out, "dtc_z"), {**z({"AAA": 10.0, "BBB": 5.0, "CCC": 3.0}), "DDD": None, "EEE": None})


def test_cross_sectional_z_is_clipped_at_3_and_null_when_undefined():
    names = tuple(f"N{i:02d}" for i in range(20))
    si = {name: [100.0] for name in names} | {"N00": [10_000.0]}
    out = values(days_to_cover_z(history(1, names=names, short_interest=si), last(1)), "dtc_z")
    assert 19 / math.sqrt(20) > 3 and out["N00"] == 3.0  # unclipped z would be 4.25
    assert out["N01"] == pytest.approx(-1 / math.sqrt(20))
    flat = days_to_cover_z(history(1), last(1))  # every name 10 days: std 0
    assert flat["dtc_z"].null_count() == 4
    two = days_to_cover_z(history(1, names=("AAA", "BBB"), adv={"AAA": [1.0], "BBB": [2.0]}), last(1))
    assert two["dtc_z"].null_count() == 2  # fewer than 3 names


# ---- LPF --------------------------------------------------------------------------------------
def test_lpf_averages_the_z_of_rerate_ratio_and_of_the_b2b_share():
    names = (*NAMES, "EEE")
    rerate = {"AAA": [1.0], "BBB": [2.0], "CCC": [3.0], "DDD": [4.0], "EEE": [2.5]}
    b2b = {"AAA": [10.0], "BBB": [20.0], "CCC": [0.0], "DDD": [30.0], "EEE": [5.0]}
    on_loan = {"EEE": [0.0]}  # no B2B share: null LPF, but its re-rate ratio still counts
    hist = history(1, names=names, rerate_ratio=rerate, b2b_loans=b2b, on_loan_qty=on_loan)
    out = locate_proxy(hist, last(1))
    z_rerate = z({name: path[0] for name, path in rerate.items()})
    z_b2b = z({"AAA": 0.1, "BBB": 0.2, "CCC": 0.0, "DDD": 0.3})
    expected = {name: (z_rerate[name] + z_b2b[name]) / 2 for name in NAMES}
    assert_close(values(out, "lpf"), {**expected, "EEE": None})


# ---- all factors ------------------------------------------------------------------------------
def random_history(n: int, names=NAMES, seed: int = 1) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    columns = {
        "fee_bps": {s: list(rng.uniform(5, 500, n)) for s in names},
        "utilization_pct": {s: list(rng.uniform(40, 100, n)) for s in names},
        "short_interest": {s: list(rng.uniform(1e5, 1e6, n)) for s in names},
        "adv": {s: list(rng.uniform(1e4, 1e5, n)) for s in names},
        "rerate_ratio": {s: list(rng.uniform(0, 3, n)) for s in names},
        "b2b_loans": {s: list(rng.uniform(0, 1e4, n)) for s in names},
    }
    return history(n, names=names, **columns)


def test_core_factors_columns_and_lookbacks():
    hist = random_history(40)
    out = core_factors(hist, last(40))
    assert out.columns == ["date", "symbol", *FACTOR_COLUMNS]
    assert out.schema["sim"] == pl.Float64 and out.height == 4
    assert out.select(FACTOR_COLUMNS).null_count().sum_horizontal().item() == 0
    assert LOOKBACK == {"sim": 20, "bcs": 31, "upi": 19, "ftz": 19, "dtc_z": 0, "lpf": 0}
    assert lookback_sessions() == 31 and lookback_sessions(["upi", "lpf"]) == 19
    assert set(FACTOR_DESCRIPTIONS) == set(FACTOR_COLUMNS)


def test_no_look_ahead_later_rows_never_change_a_day():
    day = sessions(50)[34]
    hist = random_history(50)
    before = core_factors(hist.filter(pl.col("date") <= day), day)
    later = random_history(50, names=(*NAMES, "NEW"), seed=9).filter(pl.col("date") > day)
    assert core_factors(pl.concat([hist, later]), day).equals(before)
    assert core_factors(hist, day).equals(before)


def test_the_lookback_is_all_the_history_a_day_needs():
    hist = random_history(50)
    day = sessions(50)[45]
    window = sessions(50)[45 - lookback_sessions() : 46]
    full = core_factors(hist, day)
    assert core_factors(hist.filter(pl.col("date").is_in(window)), day).equals(full)
    shorter = core_factors(hist.filter(pl.col("date").is_in(window[1:])), day)
    assert shorter["bcs"].null_count() == 4  # one session short: null, not 0
    assert shorter.drop("bcs").equals(full.drop("bcs"))


def test_a_name_missing_from_the_day_gets_no_row_and_bad_input_is_named():
    hist = random_history(35).filter(~((pl.col("symbol") == "DDD") & (pl.col("date") == last(35))))
    assert core_factors(hist, last(35))["symbol"].to_list() == ["AAA", "BBB", "CCC"]
    with pytest.raises(ValueError, match="no rows for 2024-12-31"):
        core_factors(hist, date(2024, 12, 31))
    with pytest.raises(ValueError, match="duplicate"):
        fee_trend_z(pl.concat([hist, hist.tail(1)]), last(35))
    with pytest.raises(ValueError, match="lacks column"):
        fee_trend_z(hist.drop("fee_bps"), last(35))


def test_row_order_of_the_history_does_not_change_a_single_bit():
    hist = random_history(40)
    shuffled = hist.sample(fraction=1.0, shuffle=True, seed=3)
    assert core_factors(shuffled, last(40)).equals(core_factors(hist, last(40)))

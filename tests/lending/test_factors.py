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

from finance_dag.core import calendar
from finance_dag.lending.factors import (
    FACTOR_COLUMNS,
    FACTOR_DESCRIPTIONS,
    LOOKBACK,
    borrow_cost_shock,
    core_factors,
    core_factors_range,
    days_to_cover_z,
    fee_trend_z,
    locate_proxy,
    lookback_sessions,
    short_interest_momentum,
    utilization_persistence,
    zscore,
)
from finance_dag.lending.feed import FEED_SCHEMA, validate_snapshot
from finance_dag.sim.lending import SimulatedLending, lending_universe
from tests.lending.hand import assert_close, values, z

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
def random_history(n: int, names=NAMES, seed: int = 1, drop=()) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    columns = {
        "fee_bps": {s: list(rng.uniform(5, 500, n)) for s in names},
        "utilization_pct": {s: list(rng.uniform(40, 100, n)) for s in names},
        "short_interest": {s: list(rng.uniform(1e5, 1e6, n)) for s in names},
        "adv": {s: list(rng.uniform(1e4, 1e5, n)) for s in names},
        "rerate_ratio": {s: list(rng.uniform(0, 3, n)) for s in names},
        "b2b_loans": {s: list(rng.uniform(0, 1e4, n)) for s in names},
    }
    return history(n, names=names, drop=drop, **columns)


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


# ---- many days at once ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def feed_history() -> pl.DataFrame:
    """50 names of the simulated feed over 45 sessions, validated as the lending asset does."""
    lending = SimulatedLending(7)
    days = calendar.sessions(date(2024, 9, 1), date(2024, 11, 29))[-45:]
    names = list(lending_universe(50))
    return pl.concat(validate_snapshot(lending.feed(names, d), d, "sim") for d in days)


def plain_factors(hist: pl.DataFrame, day: date) -> dict[str, dict[str, float | None]]:
    """The six factors of ``day`` name by name in plain Python and numpy, from the rows <= day."""
    rows = {(r["date"], r["symbol"]): r for r in hist.iter_rows(named=True) if r["date"] <= day}
    days = sorted({d for d, _ in rows})
    names = sorted(s for d, s in rows if d == day)

    def window(name: str, column: str, n: int) -> list[float] | None:
        if len(days) < n or any((d, name) not in rows for d in days[-n:]):
            return None
        return [rows[d, name][column] for d in days[-n:]]

    def cross(raw: dict[str, float | None]) -> dict[str, float | None]:
        present = {k: v for k, v in raw.items() if v is not None}
        zs = z(present) if len(present) >= 3 else {}
        return {name: zs.get(name) for name in names}

    bcs, upi, slope, sim = {}, {}, {}, {}
    for name in names:
        fee = window(name, "fee_bps", 32)
        changes = np.diff(fee) if fee else None
        bcs[name] = None if fee is None else changes[-1] / max(np.std(changes[:-1], ddof=1), 1.0)
        util = window(name, "utilization_pct", 20)
        upi[name] = None if util is None else sum(u >= 80 for u in util) / 20
        fee = window(name, "fee_bps", 20)
        slope[name] = None if fee is None else ols_slope(fee)
        ends = window(name, "short_interest", 21)  # complete here, but SIM needs only the ends
        sim[name] = None if ends is None or ends[0] <= 0 else ends[-1] / ends[0] - 1
    today = {name: rows[day, name] for name in names}
    dtc = cross({n: r["short_interest"] / r["adv"] for n, r in today.items()})
    z_rerate = cross({n: r["rerate_ratio"] for n, r in today.items()})
    z_b2b = cross({n: r["b2b_loans"] / r["on_loan_qty"] for n, r in today.items()})
    lpf = {n: (z_rerate[n] + z_b2b[n]) / 2 for n in names}
    return {"sim": cross(sim), "bcs": bcs, "upi": upi, "ftz": cross(slope), "dtc_z": dtc, "lpf": lpf}


def test_the_range_matches_a_plain_per_day_computation(feed_history):
    days = sorted(set(feed_history["date"]))
    out = core_factors_range(feed_history, days[18:])  # from the day before UPI's first full window
    assert out.columns == ["date", "symbol", *FACTOR_COLUMNS] and out.height == 27 * 50
    assert out.select("date", "symbol").equals(out.select("date", "symbol").sort("date", "symbol"))
    for i in (18, 19, 20, 30, 31, 38, 44):  # around each window's first full day, and later
        got = out.filter(pl.col("date") == days[i])
        for factor, expected in plain_factors(feed_history, days[i]).items():
            assert_close(values(got, factor), expected)
    nulls = out.group_by("date").agg(pl.col(FACTOR_COLUMNS).null_count()).sort("date")
    assert nulls["bcs"].to_list() == [50] * 13 + [0] * 14  # 32 sessions from day 31 on
    assert nulls["sim"].to_list() == [50] * 2 + [0] * 25  # 21 sessions from day 20 on
    assert nulls["upi"].to_list() == nulls["ftz"].to_list() == [50] + [0] * 26  # 20 from day 19 on
    assert nulls["dtc_z"].sum() == nulls["lpf"].sum() == 0


def test_a_day_of_the_range_is_bit_identical_to_the_day_alone(feed_history):
    days = sorted(set(feed_history["date"]))
    out = core_factors_range(feed_history, days)
    assert out.equals(pl.concat(core_factors(feed_history, d) for d in days))
    shuffled = feed_history.sample(fraction=1.0, shuffle=True, seed=5)
    assert core_factors_range(shuffled, days).equals(out)
    for day in (days[0], days[20], days[31], days[40]):
        truncated = feed_history.filter(pl.col("date") <= day)
        assert core_factors_range(truncated, [day]).equals(out.filter(pl.col("date") == day))
    assert core_factors_range(feed_history, [days[40], days[31], days[40]]).equals(
        out.filter(pl.col("date").is_in([days[31], days[40]]))
    )
    assert core_factors_range(feed_history, []).columns == out.columns
    with pytest.raises(ValueError, match="no rows for 2024-12-31"):
        core_factors_range(feed_history, [days[-1], date(2024, 12, 31)])


def test_range_z_scores_are_bit_identical_to_zscore_on_a_frame_of_the_day(feed_history):
    days = sorted(set(feed_history["date"]))[-5:]
    out = core_factors_range(feed_history, days)
    dtc = pl.when(pl.col("adv") > 0).then(pl.col("short_interest") / pl.col("adv"))
    for day in days:
        alone = feed_history.filter(pl.col("date") == day).sort("symbol").select(dtc_z=zscore(dtc))
        assert out.filter(pl.col("date") == day)["dtc_z"].equals(alone["dtc_z"])


def test_a_one_session_gap_voids_exactly_the_windows_that_cover_it():
    n, gap = 75, 35
    hist = random_history(n, drop={("CCC", gap)})
    days = sessions(n)
    out = core_factors_range(hist, days)
    ccc = out.filter(pl.col("symbol") == "CCC")
    assert days[gap] not in ccc["date"].to_list() and ccc.height == n - 1

    def null_days(factor: str) -> set[int]:
        return {days.index(d) for d in ccc.filter(pl.col(factor).is_null())["date"]}

    assert null_days("bcs") == set(range(31)) | set(range(gap + 1, gap + 32))  # t-31 .. t
    assert null_days("upi") == null_days("ftz") == set(range(19)) | set(range(gap + 1, gap + 20))
    assert null_days("sim") == set(range(20)) | {gap + 20}  # only the start point counts
    assert null_days("dtc_z") == null_days("lpf") == set()
    others = out.filter(pl.col("symbol") != "CCC")
    full = core_factors_range(random_history(n), days).filter(pl.col("symbol") != "CCC")
    assert others.select("date", "symbol", "bcs", "upi").equals(full.select("date", "symbol", "bcs", "upi"))

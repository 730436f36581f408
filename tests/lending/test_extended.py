"""Hand-computed values of the extended lending factors on tiny frames, and their properties on
the simulated data.

Expected values are computed here with plain Python (``math``, ``statistics``), independently of
polars: ``z_last(xs) = (xs[-1] - mean) / stdev`` (time series, not clipped) and
``z(x) = (x - mean) / stdev`` over the names that have a value, clipped at +/-3.
"""

import math
import statistics
from datetime import date

import polars as pl
import pytest

from finance_dag.core import calendar
from finance_dag.lending import extended as ex
from finance_dag.lending.feed import FEED_SCHEMA
from tests.lending.hand import assert_close, values, z

SESS = calendar.sessions(date(2024, 11, 1), date(2024, 11, 29))  # 21 weekdays less Thanksgiving
DAY = SESS[-1]
HY = [3.0 + 0.05 * k + 0.1 * (k % 3) for k in range(20)]
SKEW = [120.0 + (7 * k) % 11 for k in range(20)]
FEE_A = [40.0 + 3 * (k % 4) + k for k in range(20)]
UTIL_A = [40.0 + k for k in range(20)]


def z_last(xs: list[float]) -> float:
    return (xs[-1] - statistics.mean(xs)) / statistics.stdev(xs)


def history(fees: dict[str, list[float]], utils: dict[str, list[float]], drop=(), on_loan=None, lenders=None):
    """Lending rows over ``SESS``; ``on_loan`` and ``lenders`` (per symbol) are the same every session."""
    on_loan, lenders = on_loan or {}, lenders or {}
    rows = [
        (day, s, fees[s][k], utils[s][k], on_loan.get(s, 100.0), lenders.get(s, 5))
        for k, day in enumerate(SESS)
        for s in fees
        if (s, k) not in drop
    ]
    columns = ("date", "symbol", "fee_bps", "utilization_pct", "on_loan_qty", "lender_count")
    return pl.DataFrame(rows, schema={c: FEED_SCHEMA[c] for c in columns}, orient="row")


def market(days=SESS, **series: list) -> ex.Market:
    n = len(days)
    frame = {"date": days, "hy_oas": HY, "vix": [15.0] * n, "stress": [0.5] * n, "skew": SKEW}
    return ex.Market(pl.DataFrame(frame | series, schema=ex.MARKET_SCHEMA))


# BBB: no row on the 4th session; CCC: a flat fee (no time-series z)
HIST = history(
    {"AAA": FEE_A, "BBB": [2 * f for f in FEE_A], "CCC": [25.0] * 20},
    {"AAA": UTIL_A, "BBB": UTIL_A, "CCC": UTIL_A[::-1]},
    drop={("BBB", 3)},
)


# ---- market_as_of -----------------------------------------------------------------------------
def test_market_as_of_applies_publication_lags_carries_forward_and_goes_stale():
    obs = [
        ("BAMLH0A0HYM2", date(2024, 11, 11), 3.0),  # usable Tue 12th (lag 1 day)
        ("BAMLH0A0HYM2", date(2024, 11, 14), 4.0),  # Thu: usable Fri 15th
        ("BAMLH0A0HYM2", date(2024, 11, 15), 5.0),  # Fri: usable Sat, so Monday's session
        ("VIXCLS", date(2024, 10, 31), 20.0),  # 14 days old on Thu 14th, 15 on Fri 15th: stale
        ("STLFSI4", date(2024, 11, 1), 0.1),  # week to Fri 1st, released Thu 7th
        ("STLFSI4", date(2024, 11, 8), 0.2),  # usable Thu 14th
        ("STLFSI4", date(2024, 11, 15), 0.3),  # usable Thu 21st: Wed 20th (F+5) still has 0.2
        ("SKEW", date(2024, 11, 12), 130.0),  # same day (lag 0), carried over the null and the gap
        ("SKEW", date(2024, 11, 13), None),
        ("SKEW", date(2024, 11, 15), 131.0),
        ("DGS10", date(2024, 11, 12), 99.0),  # not a market series
    ]
    frame = pl.DataFrame(
        obs, schema={"series_id": pl.String, "date": pl.Date, "value": pl.Float64}, orient="row"
    )
    days = calendar.sessions(date(2024, 11, 12), date(2024, 11, 21))  # Tue 12th .. Thu 21st
    out = ex.market_as_of(frame, days)
    assert out.schema == ex.MARKET_SCHEMA
    assert out.to_dict(as_series=False) == {
        "date": [date(2024, 11, d) for d in (12, 13, 14, 15, 18, 19, 20, 21)],
        "hy_oas": [3.0, 3.0, 3.0, 4.0, 5.0, 5.0, 5.0, 5.0],
        "vix": [20.0, 20.0, 20.0, None, None, None, None, None],
        "stress": [0.1, 0.1, 0.2, 0.2, 0.2, 0.2, 0.2, 0.3],
        "skew": [130.0, 130.0, 130.0, 131.0, 131.0, 131.0, 131.0, 131.0],
    }
    assert ex.market_as_of(frame.head(0), days).drop("date").null_count().sum_horizontal().item() == 32


# ---- time-series factors ----------------------------------------------------------------------
def test_borrow_cds_basis_is_the_fee_z_net_of_the_hy_oas_z_over_20_sessions():
    assert len(SESS) == ex.TS_SESSIONS
    out = ex.borrow_cds_basis(HIST, DAY, market())
    expected = z_last([math.log(f) for f in FEE_A]) - z_last([math.log(v) for v in HY])
    assert_close(values(out, "borrow_cds_basis"), {"AAA": expected, "BBB": None, "CCC": None})
    assert values(out, "why") == {
        "AAA": None,
        "BBB": "lending data missing, or a fee of 0, on some of the 20 sessions",
        "CCC": "fee or utilisation constant over the 20 sessions",
    }


def test_options_skew_divergence_averages_fee_and_utilisation_z_less_the_skew_z():
    out = ex.options_skew_divergence(HIST, DAY, market())
    util_z = 9.5 / math.sqrt(35)  # 40..59: the last is 9.5 above the mean, sample variance 20*21/12
    assert z_last(UTIL_A) == pytest.approx(util_z)
    expected = (z_last([math.log(f) for f in FEE_A]) + util_z) / 2 - z_last(SKEW)
    assert_close(values(out, "options_skew_div"), {"AAA": expected, "BBB": None, "CCC": None})
    assert values(out, "why")["CCC"] == "fee or utilisation constant over the 20 sessions"


def test_a_market_gap_or_failed_source_nulls_every_name_with_the_reason():
    gap = market(hy_oas=[None if k == 7 else v for k, v in enumerate(HY)])
    out = ex.borrow_cds_basis(HIST, DAY, gap)
    assert out["borrow_cds_basis"].null_count() == 3
    assert set(out["why"]) == {"BAMLH0A0HYM2 not published for 1 of the 20 sessions to 2024-11-29"}
    assert values(ex.options_skew_divergence(HIST, DAY, gap), "options_skew_div")["AAA"] is not None
    renamed = ex.Market(gap.frame, series_ids={**ex.MARKET_SERIES, "hy_oas": "MY_OAS"})
    renamed_why = set(ex.borrow_cds_basis(HIST, DAY, renamed)["why"])
    assert renamed_why == {"MY_OAS not published for 1 of the 20 sessions to 2024-11-29"}
    failed = ex.Market(market().frame, missing={"skew": "CBOE source failed: HTTP 503"})
    skew = ex.options_skew_divergence(HIST, DAY, failed)
    assert skew["options_skew_div"].null_count() == 3 and set(skew["why"]) == {"CBOE source failed: HTTP 503"}
    flat = ex.options_skew_divergence(HIST, DAY, market(skew=[130.0] * 20))
    assert set(flat["why"]) == {"SKEW constant over the 20 sessions to 2024-11-29"}
    short = ex.borrow_cds_basis(HIST, SESS[18], market())  # 19 sessions to the 27th
    assert set(short["why"]) == {"fewer than 20 lending sessions to 2024-11-27"}


# ---- ETF flow pressure ------------------------------------------------------------------------
def snapshot(**columns: dict[str, float | None]) -> pl.DataFrame:
    names = sorted(next(iter(columns.values())))
    return pl.DataFrame(
        {"symbol": names, **{c: [v.get(s) for s in names] for c, v in columns.items()}},
        schema={"symbol": pl.String, **{c: FEED_SCHEMA[c] for c in columns}},
    )


def etf_file(rows: list[tuple[str, float, float]]) -> pl.DataFrame:
    data = [(DAY, *row) for row in rows]
    return pl.DataFrame(data, schema=ex.ETF_SHARES.schema.names(), orient="row").cast(ex.ETF_SHARES.schema)


def test_etf_flow_pressure_is_the_z_of_the_on_loan_share_change_from_the_flow():
    on_loan = dict(SPY=1000.0, QQQ=500.0, IWM=300.0, TLT=200.0, AAPL=50.0, BAD=10.0, NIL=10.0)
    files = etf_file(
        [
            ("SPY", 10_000.0, 2_000.0),  # 1000/10000 - 1000/8000 = 0.1 - 0.125 = -0.025
            ("QQQ", 5_000.0, -1_000.0),  # 500/5000 - 500/6000 = 0.1 - 0.08333 = 1/60
            ("IWM", 3_000.0, 0.0),  # no flow: 0
            ("TLT", 4_000.0, 1_000.0),  # 200/4000 - 200/3000 = 0.05 - 0.06667 = -1/60
            ("BAD", 1_000.0, 1_000.0),  # 0 shares before the creation
            ("NIL", 0.0, -10.0),  # 0 shares after the redemption
        ]
    )
    out = ex.etf_flow_pressure(snapshot(on_loan_qty=on_loan), files)
    expected = z({"SPY": -0.025, "QQQ": 1 / 60, "IWM": 0.0, "TLT": -1 / 60})  # mean -0.00625
    assert_close(values(out, "etf_flow_pressure"), {**expected, "AAPL": None, "BAD": None, "NIL": None})
    why = values(out, "why")
    assert "not an ETF" in why["AAPL"] and why["SPY"] is None
    assert why["BAD"] == why["NIL"] == "shares outstanding before or after the flow not positive"
    reason = "no ETF shares-outstanding file for 2024-11-29"
    missing = ex.etf_flow_pressure(snapshot(on_loan_qty=on_loan), reason)
    assert missing["etf_flow_pressure"].null_count() == 7 and set(missing["why"]) == {reason}


def test_etf_flow_pressure_is_clipped_at_3():
    names = [f"E{i:02d}" for i in range(12)]
    files = etf_file([(s, 1000.0, 500.0 if s == "E00" else 0.0) for s in names])
    snap = snapshot(on_loan_qty=dict.fromkeys(names, 100.0))
    out = values(ex.etf_flow_pressure(snap, files), "etf_flow_pressure")
    # E00: 100/1000 - 100/500 = -0.1, the 11 others 0: unclipped z -11/sqrt(12) = -3.18, others 1/sqrt(12)
    assert 11 / math.sqrt(12) > 3 and out["E00"] == -3.0
    assert out["E01"] == pytest.approx(1 / math.sqrt(12))


# ---- macro liquidity stress -------------------------------------------------------------------
def test_macro_stress_is_the_utilisation_z_times_the_stress_index_of_the_day():
    snap = snapshot(utilization_pct={"AAA": 90.0, "BBB": 50.0, "CCC": 10.0, "DDD": 50.0})
    # utilisation deviations +-40, 0, 0: sample sd sqrt(3200/3), z = +-40 / 32.66 = +-sqrt(1.5)
    for stress in (0.5, -2.0):
        out = ex.macro_liquidity_stress(snap, DAY, market(stress=[9.9] * 19 + [stress]))
        s = math.sqrt(1.5) * stress
        assert_close(values(out, "macro_stress"), {"AAA": s, "BBB": 0.0, "CCC": -s, "DDD": 0.0})
    none = ex.macro_liquidity_stress(snap, DAY, market(stress=[0.5] * 19 + [None]))
    assert none["macro_stress"].null_count() == 4
    assert set(none["why"]) == {"STLFSI4 has no value published within 14 days of 2024-11-29"}
    flat = ex.macro_liquidity_stress(snapshot(utilization_pct=dict.fromkeys("ABC", 100.0)), DAY, market())
    assert flat["macro_stress"].null_count() == 3  # every name at 100 %: no z, so null rather than 0
    assert set(flat["why"]) == {"no utilisation z-score"}
    failed = ex.Market(market().frame, missing={"stress": "FRED source failed: 500"})
    assert set(ex.macro_liquidity_stress(snap, DAY, failed)["why"]) == {"FRED source failed: 500"}


# ---- ESG constraint gauge ---------------------------------------------------------------------
def esg_file(scores: dict[str, float]) -> pl.DataFrame:
    rows = [(date(2024, 11, 1), s, v) for s, v in scores.items()]
    return pl.DataFrame(rows, schema=ex.ESG_SCORES.schema.names(), orient="row")


def test_esg_constraint_averages_the_z_of_low_esg_and_of_few_lenders():
    lenders = {"AAA": 0, "BBB": 3, "CCC": 15, "DDD": 1, "EEE": 7}  # ln(1 + n) = (0, 2, 4, 1, 3) * ln 2
    scores = {"AAA": 2.0, "BBB": 5.0, "CCC": 8.0, "EEE": 5.0, "ZZZ": 1.0}  # DDD unscored, ZZZ not lent
    out = ex.esg_constraint_gauge(snapshot(lender_count=lenders), esg_file(scores))
    # z(-esg) over AAA, BBB, CCC, EEE: -2, -5, -8, -5: mean -5, sd sqrt(18/3) -> 3/sqrt(6), 0, -3/sqrt(6), 0
    z_esg = {"AAA": 3 / math.sqrt(6), "BBB": 0.0, "CCC": -3 / math.sqrt(6), "EEE": 0.0}
    assert z_esg == pytest.approx(z({s: -scores[s] for s in z_esg}))
    # z(-ln(1 + lenders)) over all five names: -(0, 2, 4, 1, 3): mean -2, sample var 10/4 = 2.5
    z_lend = {s: (2 - k) / math.sqrt(2.5) for s, k in zip(lenders, (0, 2, 4, 1, 3), strict=True)}
    assert z_lend == pytest.approx(z({s: -math.log(1 + n) for s, n in lenders.items()}))
    expected = {s: (z_esg[s] + z_lend[s]) / 2 for s in z_esg}
    assert_close(values(out, "esg_constraint"), {**expected, "DDD": None})
    assert values(out, "why") == {**dict.fromkeys(z_esg), "DDD": "no ESG score for the name"}
    stale = ex.esg_constraint_gauge(snapshot(lender_count=lenders), "no ESG file within 95 days")
    assert stale["esg_constraint"].null_count() == 5 and set(stale["why"]) == {"no ESG file within 95 days"}


# ---- crowd buzz pulse -------------------------------------------------------------------------
def mentions(counts: dict[str, list[int]], days: list[date]) -> pl.DataFrame:
    rows = [(d, s, n) for s, path in counts.items() for d, n in zip(days, path, strict=True) if n > 0]
    return pl.DataFrame(rows, schema=ex.SOCIAL_MENTIONS.schema.names(), orient="row")


def test_crowd_buzz_is_the_z_of_todays_log_mentions_over_the_5_sessions_before():
    counts = {
        "AAA": [0, 0, 0, 0, 0, 9],  # absent 5 days = 0 mentions: ln 10 - 0
        "BBB": [3, 3, 3, 3, 3, 3],  # 0
        "CCC": [9, 9, 9, 9, 9, 0],  # absent today: 0 - ln 10
        "DDD": [1, 1, 1, 1, 1, 3],  # ln 4 - ln 2 = ln 2
        "ZZZ": [1, 2, 3, 4, 5, 600],  # not in the lending snapshot: not in the z
    }
    outside = mentions({"BBB": [10**6, 10**6]}, [SESS[-7], date(2024, 12, 2)])  # before t-5 and after t
    rows = pl.concat([mentions(counts, SESS[-6:]), outside])
    snap = snapshot(utilization_pct=dict.fromkeys(["AAA", "BBB", "CCC", "DDD"], 50.0))
    out = ex.crowd_buzz_pulse(snap, DAY, ex.Mentions(rows))
    expected = z({"AAA": math.log(10), "BBB": 0.0, "CCC": -math.log(10), "DDD": math.log(2)})
    assert_close(values(out, "crowd_buzz"), expected)
    problems = ("no social-mentions file for 2024-11-25", "social mentions 2024-11-26: bad column")
    gaps = ex.crowd_buzz_pulse(snap, DAY, ex.Mentions(rows, problems))
    assert gaps["crowd_buzz"].null_count() == 4 and set(gaps["why"]) == {"; ".join(problems)}
    short = ex.crowd_buzz_pulse(snap, DAY, ex.Mentions(rows.filter(pl.col("date") > SESS[-6])))
    assert set(short["why"]) == {"fewer than 6 social-mention files to 2024-11-29"}


# ---- all extended factors ---------------------------------------------------------------------
NAMES = ("AAA", "BBB", "CCC", "DDD")
FULL = history(
    {s: [30.0 + (i + 1) * k + 5 * (k % (i + 2)) for k in range(20)] for i, s in enumerate(NAMES)},
    {s: [40.0 + (k * (i + 3)) % 17 for k in range(20)] for i, s in enumerate(NAMES)},
    on_loan={"AAA": 100.0, "BBB": 200.0, "CCC": 300.0},
    lenders={"AAA": 2, "BBB": 4, "CCC": 9, "DDD": 1},
)


def inputs(hist: pl.DataFrame = FULL, esg=None, buzz=None, mkt=None) -> ex.ExtendedInputs:
    etf = etf_file([("AAA", 1000.0, 10.0), ("BBB", 2000.0, -50.0), ("CCC", 500.0, 40.0)])
    esg = esg_file({"AAA": 3.0, "BBB": 6.0, "CCC": 4.5}) if esg is None else esg
    counts = {"AAA": [1, 2, 3, 4, 5, 6], "BBB": [5, 5, 5, 5, 5, 1], "CCC": [0, 0, 0, 0, 1, 2], "DDD": [2] * 6}
    buzz = ex.Mentions(mentions(counts, SESS[-6:])) if buzz is None else buzz
    return ex.ExtendedInputs(hist, mkt or market(), etf, esg, buzz)


def test_extended_factors_columns_and_null_reasons_per_name():
    out = ex.extended_factors(inputs(), DAY)
    assert out.columns == ["date", "symbol", *ex.EXTENDED_COLUMNS, "null_reasons"]
    assert out["symbol"].to_list() == list(NAMES) and set(out["date"]) == {DAY}
    assert values(out, "null_reasons") == {
        **dict.fromkeys(NAMES[:3]),
        "DDD": "etf_flow_pressure: not in the ETF shares-outstanding file (not an ETF); "
        "esg_constraint: no ESG score for the name",
    }
    assert out.head(3).select(ex.EXTENDED_COLUMNS).null_count().row(0) == (0,) * 6
    basis = ex.borrow_cds_basis(FULL, DAY, market()).sort("symbol")["borrow_cds_basis"]
    assert out["borrow_cds_basis"].equals(basis)
    broken = ex.extended_factors(inputs(esg="ESG file 2024-07-01 is 151 days old", buzz="no mentions"), DAY)
    reasons = "esg_constraint: ESG file 2024-07-01 is 151 days old; crowd_buzz: no mentions"
    assert set(broken["null_reasons"].str.replace("etf_flow_pressure: .*?; ", "")) == {reasons}
    with pytest.raises(ValueError, match="no rows for 2024-12-02"):
        ex.extended_factors(inputs(), date(2024, 12, 2))


def test_extended_factors_do_not_look_ahead():
    before = ex.extended_factors(inputs(), DAY)
    later_days = calendar.sessions(date(2024, 12, 2), date(2024, 12, 4))
    later = pl.concat(
        FULL.filter(pl.col("date") == DAY).with_columns(date=pl.lit(d), fee_bps=pl.lit(999.0) * (i + 1))
        for i, d in enumerate(later_days)
    )
    new_name = later.head(1).with_columns(symbol=pl.lit("NEW"))
    more = [9.0, 1.0, 7.0]  # market values after the day
    mkt = market(SESS + later_days, hy_oas=HY + more, stress=[0.5] * 20 + more, skew=SKEW + more)
    counts = {"AAA": [1, 2, 3, 4, 5, 6, 900], "BBB": [5, 5, 5, 5, 5, 1, 0], "CCC": [0, 0, 0, 0, 1, 2, 7]}
    buzz = ex.Mentions(mentions(counts | {"DDD": [2] * 7}, SESS[-6:] + later_days[:1]))
    after = ex.extended_factors(inputs(pl.concat([FULL, later, new_name]), buzz=buzz, mkt=mkt), DAY)
    assert after.equals(before)


# ---- properties on the simulated data ---------------------------------------------------------
@pytest.fixture(scope="module")
def simulated() -> tuple[pl.DataFrame, float, list[str]]:
    """The factors of 100 simulated names on 2024-11-29, the day's stress index, and the names
    whose fee row on one session, lender count, ESG score and on-loan quantity were removed."""
    from finance_dag.lending import feed
    from finance_dag.sim.lending import lending_universe
    from finance_dag.sim.vendors import shared_alt_data, shared_macro, shared_market

    names, macro, alt = list(lending_universe(100)), shared_macro(7), shared_alt_data(7)
    hist = pl.concat(feed.validate_snapshot(shared_market(7).lending.feed(names, d), d, "sim") for d in SESS)
    etf = feed.validate(alt.drop("etf_shares", names, DAY), ex.ETF_SHARES, DAY, "sim")
    removed = [names[0], names[1], names[2], etf["symbol"][0]]
    hist = hist.filter((pl.col("symbol") != removed[0]) | (pl.col("date") != SESS[5])).with_columns(
        lender_count=pl.when(pl.col("symbol") != removed[1]).then("lender_count"),
        on_loan_qty=pl.when(pl.col("symbol") != removed[3]).then("on_loan_qty"),
    )
    ids = [ex.MARKET_SERIES[role] for role in ("hy_oas", "vix", "stress")]
    skew = macro.skew(date(2024, 9, 1), DAY).select("date", series_id=pl.lit("SKEW"), value="close")
    market = ex.market_as_of(pl.concat([macro.observations(ids, date(2024, 9, 1), DAY), skew]), SESS)
    esg = alt.drop("esg_scores", names, date(2024, 11, 1)).filter(pl.col("symbol") != removed[2])
    buzz = ex.Mentions(pl.concat(alt.drop("social_mentions", names, d) for d in SESS[-6:]))
    out = ex.extended_factors(ex.ExtendedInputs(hist, ex.Market(market), etf, esg, buzz), DAY)
    return out, market["stress"][-1], removed


def test_simulated_factors_are_bounded_centred_and_null_where_an_input_is_missing(simulated):
    out, stress, (gap, no_lenders, no_esg, no_loan) = simulated
    assert out.height == 100 and stress is not None and stress != 0
    for column in ("etf_flow_pressure", "esg_constraint", "crowd_buzz", "macro_stress"):
        z_values = out[column].drop_nulls() / (stress if column == "macro_stress" else 1.0)
        assert z_values.len() >= 30, column
        assert z_values.min() >= -3.0 and z_values.max() <= 3.0, column
        assert z_values.mean() == pytest.approx(0.0, abs=0.1), column
    bound = 2 * 19 / math.sqrt(20)  # |z_ts| of the last of 20 values is at most (n - 1) / sqrt(n)
    for column in ("borrow_cds_basis", "options_skew_div"):
        assert out[column].drop_nulls().abs().max() <= bound, column
    for column in ex.EXTENDED_COLUMNS:  # a missing input gives null, never a filled-in 0 or NaN
        assert (out[column] == 0.0).sum() == 0 and out[column].is_nan().sum() == 0, column
    row = {r["symbol"]: r for r in out.iter_rows(named=True)}
    assert row[gap]["borrow_cds_basis"] is None and row[gap]["options_skew_div"] is None
    assert "borrow_cds_basis: lending data missing" in row[gap]["null_reasons"]
    assert row[no_lenders]["esg_constraint"] is None and "no lender count" in row[no_lenders]["null_reasons"]
    assert row[no_esg]["esg_constraint"] is None and "no ESG score" in row[no_esg]["null_reasons"]
    assert row[no_loan]["etf_flow_pressure"] is None and "no on-loan quantity" in row[no_loan]["null_reasons"]
    any_null = out.select(pl.any_horizontal(pl.col(ex.EXTENDED_COLUMNS).is_null())).to_series()
    assert out["null_reasons"].is_not_null().to_list() == any_null.to_list()
    # nulls: the fee gap; 35 names that are not ETFs and the ETF without on-loan; no lenders, no ESG
    assert out.select(ex.EXTENDED_COLUMNS).null_count().row(0) == (1, 1, 35 + 1, 0, 2, 0)


def test_a_zero_fee_in_the_window_gives_null_with_the_reason_not_nan():
    sessions = calendar.sessions(date(2024, 11, 1), date(2024, 11, 29))
    rows = [(d, s, 0.0 if (s == "CCC" and k == 5) else 10.0 + k, 50.0 + k % 4)
            for k, d in enumerate(sessions) for s in ("AAA", "CCC")]  # fmt: skip
    history = pl.DataFrame(
        rows,
        schema={"date": pl.Date, "symbol": pl.String, "fee_bps": pl.Float64, "utilization_pct": pl.Float64},
        orient="row",
    )
    market = ex.Market(
        pl.DataFrame(
            {
                "date": sessions,
                "hy_oas": [3.0 + 0.1 * (k % 5) for k in range(20)],
                "vix": [15.0] * 20,
                "stress": [0.5] * 20,
                "skew": [130.0 + k for k in range(20)],
            },
            schema=ex.MARKET_SCHEMA,
        )  # fmt: skip
    )
    for factor in (ex.borrow_cds_basis, ex.options_skew_divergence):
        out = {r["symbol"]: r for r in factor(history, sessions[-1], market).iter_rows(named=True)}
        value = next(v for k, v in out["CCC"].items() if k not in ("symbol", "why"))
        assert value is None and "a fee of 0" in out["CCC"]["why"]


# ---- a range of days in one pass --------------------------------------------------------------
RANGE_SESSIONS = calendar.sessions(date(2024, 10, 15), date(2024, 11, 29))  # 32 sessions


@pytest.fixture(scope="module")
def simulated_range():
    """Simulated inputs of 60 names over ``RANGE_SESSIONS``: the range inputs (one mentions
    frame shared by every day, as the asset builds them) and, per day, the inputs the one-day
    API reads (the day's own six mention files). One name lacks a session, one has a 0 fee, the
    mention file of ``RANGE_SESSIONS[15]`` is missing and the ETF file of ``RANGE_SESSIONS[25]``
    is absent from the range's mapping."""
    from finance_dag.lending import feed
    from finance_dag.sim.lending import lending_universe
    from finance_dag.sim.vendors import shared_alt_data, shared_macro, shared_market

    names, sessions = list(lending_universe(60)), RANGE_SESSIONS
    macro, alt = shared_macro(7), shared_alt_data(7)
    hist = pl.concat(
        feed.validate_snapshot(shared_market(7).lending.feed(names, d), d, "sim") for d in sessions
    )
    hist = hist.filter((pl.col("symbol") != names[0]) | (pl.col("date") != sessions[8])).with_columns(
        fee_bps=pl.when((pl.col("symbol") == names[1]) & (pl.col("date") == sessions[22]))
        .then(0.0)
        .otherwise("fee_bps")
    )
    ids = [ex.MARKET_SERIES[role] for role in ("hy_oas", "vix", "stress")]
    skew = macro.skew(date(2024, 8, 1), sessions[-1]).select("date", series_id=pl.lit("SKEW"), value="close")
    observations = pl.concat([macro.observations(ids, date(2024, 8, 1), sessions[-1]), skew])
    market = ex.Market(ex.market_as_of(observations, sessions))
    etf = {d: feed.validate(alt.drop("etf_shares", names, d), ex.ETF_SHARES, d, "sim") for d in sessions}
    del etf[sessions[25]]
    monthly = {m: alt.drop("esg_scores", names, m) for m in (date(2024, 10, 1), date(2024, 11, 1))}
    esg = {d: monthly[max(m for m in monthly if m <= d)] for d in sessions}
    files = {d: alt.drop("social_mentions", names, d) for d in sessions}
    files = {
        d: f"no social mentions file for {d}" if f is None or d == sessions[15] else f
        for d, f in files.items()
    }
    shared = pl.concat(f for f in files.values() if not isinstance(f, str))

    def window(day: date) -> list:
        i = sessions.index(day)
        return [files[d] for d in sessions[max(0, i - ex.BUZZ_SESSIONS) : i + 1]]

    def problems(day: date) -> tuple[str, ...]:
        return tuple(f for f in window(day) if isinstance(f, str))

    mentions = {d: ex.Mentions(shared, problems(d)) for d in sessions}
    range_inputs = ex.ExtendedRangeInputs(hist, market, etf, esg, mentions)
    absent_etf = f"no {ex.ETF_SHARES.name} input for {sessions[25]}"
    per_day = {
        d: ex.ExtendedInputs(
            hist.filter(pl.col("date") <= d),
            ex.Market(market.frame.filter(pl.col("date") <= d)),
            etf.get(d, absent_etf),
            esg[d],
            ex.Mentions(pl.concat(f for f in window(d) if not isinstance(f, str)), problems(d)),
        )
        for d in sessions
    }
    return range_inputs, per_day


def test_the_range_equals_each_day_computed_from_its_own_past(simulated_range):
    range_inputs, per_day = simulated_range
    days = RANGE_SESSIONS
    out = ex.extended_factors_range(range_inputs, days[::-1])  # any order of the days
    assert out.equals(pl.concat(ex.extended_factors(per_day[d], d) for d in days))
    assert out.columns == ["date", "symbol", *ex.EXTENDED_COLUMNS, "null_reasons"]
    assert out.height == range_inputs.history.height and out["date"].is_sorted()
    # every path of the reasons is exercised, and every factor has values somewhere
    assert min(out.select(pl.col(ex.EXTENDED_COLUMNS).is_not_null().sum()).row(0)) > 0
    reasons = out["null_reasons"].drop_nulls()
    for text in (
        "borrow_cds_basis: fewer than 20 lending sessions to 2024-11-08",
        "borrow_cds_basis: lending data missing, or a fee of 0, on some of the 20 sessions",
        "crowd_buzz: fewer than 6 social-mention files to 2024-10-21",
        f"crowd_buzz: no social mentions file for {days[15]}",
        f"etf_flow_pressure: no ETF shares outstanding input for {days[25]}",
    ):
        assert reasons.str.contains(text, literal=True).any(), text
    on_day = out.filter(pl.col("date") == days[25])
    assert on_day["etf_flow_pressure"].is_null().all()
    buzz_gap = out.filter(pl.col("date").is_between(days[15], days[20]))
    assert buzz_gap["crowd_buzz"].is_null().all()
    assert out.filter(pl.col("date") == days[21])["crowd_buzz"].is_not_null().all()
    assert out.filter(pl.col("date") == days[19])["borrow_cds_basis"].drop_nulls().len() > 0
    assert ex.extended_factors_range(range_inputs, []).columns == out.columns
    with pytest.raises(ValueError, match="no rows for 2024-12-02"):
        ex.extended_factors_range(range_inputs, [days[-1], date(2024, 12, 2)])


def test_the_range_is_bit_identical_whatever_the_row_order(simulated_range):
    range_inputs, _ = simulated_range
    days = RANGE_SESSIONS[10:]
    out = ex.extended_factors_range(range_inputs, days)

    def shuffle(frame: pl.DataFrame, seed: int) -> pl.DataFrame:
        shuffled = frame.sample(fraction=1.0, shuffle=True, seed=seed)
        assert shuffled["symbol"].to_list() != frame["symbol"].to_list()
        return shuffled

    esg_files = {id(f): shuffle(f, 2) for f in range_inputs.esg.values()}  # one per file: served as one
    mentions = shuffle(next(iter(range_inputs.mentions.values())).rows, 3)
    shuffled = ex.ExtendedRangeInputs(
        shuffle(range_inputs.history, 1),
        range_inputs.market,
        {d: shuffle(f, 4) for d, f in range_inputs.etf_shares.items()},
        {d: esg_files[id(f)] for d, f in range_inputs.esg.items()},
        {d: ex.Mentions(mentions, m.problems) for d, m in range_inputs.mentions.items()},
    )
    assert ex.extended_factors_range(shuffled, days).equals(out)

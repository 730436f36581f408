"""finance_dag.analytics: forward returns (t+1), IC, its summary, quantiles, factor correlation.

The hand-computed case: 4 symbols A..D, 5 sessions d0..d4, factors dated d0, d1, d2.

    close   d0   d1   d2   d3   d4
    A       10   10   14   21   42
    B       10   20   26   26   13
    C       10   40   48   60   66
    D       10   50   55   44   33

A factor dated t earns close[t+1+k] / close[t+1] - 1, so for period 1:
    d0 -> d1->d2:  A 14/10-1=.4   B 26/20-1=.3   C 48/40-1=.2   D 55/50-1=.1
    d1 -> d2->d3:  A 21/14-1=.5   B 0            C 60/48-1=.25  D 44/55-1=-.2
    d2 -> d3->d4:  A 42/21-1=1.0  B 13/26-1=-.5  C 66/60-1=.1   D 33/44-1=-.25
and for period 2:
    d0 -> d1->d3:  A 21/10-1=1.1  B 26/20-1=.3   C 60/40-1=.5   D 44/50-1=-.12
    d1 -> d2->d4:  A 42/14-1=2.0  B 13/26-1=-.5  C 66/48-1=.375 D 33/55-1=-.4
    d2 -> d3->d5:  no d5, null.
The wrong (t -> t+k) alignment would give d0 period 1 = d0->d1 = 0, 1, 3, 4: the same order as the
d0 factor 1, 2, 3, 4 (IC +1), while the right one (.4, .3, .2, .1) is reversed (IC -1).
"""

from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest
from scipy import stats

from finance_dag.analytics import (
    correlated_pairs,
    forward_returns,
    ic_summary,
    information_coefficient,
    quantile_returns,
    rolling_ic,
)

D = [date(2024, 1, 1) + timedelta(days=i) for i in range(6)]
SYMBOLS = ["A", "B", "C", "D"]
CLOSES = {
    "A": [10, 10, 14, 21, 42],
    "B": [10, 20, 26, 26, 13],
    "C": [10, 40, 48, 60, 66],
    "D": [10, 50, 55, 44, 33],
}


def _prices(closes: dict[str, list[float | None]] = CLOSES) -> pl.DataFrame:
    rows = [(D[i], s, c) for s, cs in closes.items() for i, c in enumerate(cs)]
    return pl.DataFrame(
        rows, schema={"date": pl.Date, "symbol": pl.String, "close": pl.Float64}, orient="row"
    )


def _factors(by_date: dict[date, list[float | None]], name: str = "f") -> pl.DataFrame:
    rows = [(d, s, v) for d, vs in by_date.items() for s, v in zip(SYMBOLS, vs, strict=True)]
    return pl.DataFrame(rows, schema={"date": pl.Date, "symbol": pl.String, name: pl.Float64}, orient="row")


HAND = {
    D[0]: [1, 2, 3, 4],
    D[1]: [4, 1, 3, 2],
    D[2]: [1, 1, 2, 3],  # a tie: average ranks 1.5, 1.5, 3, 4
}


def _ic(frame: pl.DataFrame, day: date, period: int, factor: str = "f") -> float | None:
    row = frame.filter((pl.col("date") == day) & (pl.col("period") == period) & (pl.col("factor") == factor))
    assert row.height == 1, row
    return row["ic"].item()


def test_forward_returns_start_at_the_next_close():
    fwd = forward_returns(_prices(), periods=(1, 2)).filter(pl.col("symbol") == "A")
    assert fwd["date"].to_list() == D[:5]
    assert fwd["fwd_1"].to_list()[:3] == pytest.approx([0.4, 0.5, 1.0])
    assert fwd["fwd_1"].to_list()[3:] == [None, None]  # d3 has no d5; d4 has no d5 either
    assert fwd["fwd_2"].to_list()[:2] == pytest.approx([1.1, 2.0])
    assert fwd["fwd_2"].to_list()[2:] == [None, None, None]


def test_hand_computed_ic_with_t_plus_one_alignment():
    ic = information_coefficient(_factors(HAND), _prices(), periods=(1, 2), min_names=4)
    assert ic.columns == ["date", "factor", "period", "ic", "n"]
    assert ic.schema["ic"] == pl.Float64
    # d0: factor ranks 1,2,3,4 vs returns .4,.3,.2,.1 (ranks 4,3,2,1): perfectly reversed.
    # With t -> t+1 alignment the returns would be 0,1,3,4 and this would be +1.
    assert _ic(ic, D[0], 1) == pytest.approx(-1.0, abs=1e-12)
    # d1: factor ranks 4,1,3,2; returns .5,0,.25,-.2 rank 4,2,3,1; d^2 = 0+1+0+1 = 2;
    # rho = 1 - 6*2 / (4*(16-1)) = 0.8
    assert _ic(ic, D[1], 1) == pytest.approx(0.8, abs=1e-12)
    # d2 (tie): factor ranks 1.5,1.5,3,4 (mean 2.5, deviations -1,-1,.5,1.5, sum sq 4.5);
    # returns 1,-.5,.1,-.25 rank 4,1,3,2 (deviations 1.5,-1.5,.5,-.5, sum sq 5);
    # cross = -1.5+1.5+.25-.75 = -.5; rho = -.5 / sqrt(4.5*5) = -1/sqrt(90)
    assert _ic(ic, D[2], 1) == pytest.approx(-1 / np.sqrt(90), abs=1e-12)
    # period 2, d0: returns 1.1,.3,.5,-.12 rank 4,2,3,1 vs 1,2,3,4: d^2 = 9+0+0+9 = 18,
    # rho = 1 - 6*18/60 = -0.8.  d1: returns 2,-.5,.375,-.4 rank 4,1,3,2 == factor ranks: 1.
    assert _ic(ic, D[0], 2) == pytest.approx(-0.8, abs=1e-12)
    assert _ic(ic, D[1], 2) == pytest.approx(1.0, abs=1e-12)
    # d2 has no t+1+2 close: no pairs, so no row.
    assert ic.filter(pl.col("period") == 2)["date"].to_list() == [D[0], D[1]]
    assert ic["n"].to_list() == [4] * 5


def test_ties_use_average_ranks_like_scipy():
    ic = information_coefficient(_factors(HAND), _prices(), periods=(1,), min_names=4)
    expected = stats.spearmanr([1, 1, 2, 3], [1.0, -0.5, 0.1, -0.25]).statistic
    assert _ic(ic, D[2], 1) == pytest.approx(expected, abs=1e-12)
    # a tie on the return side too: B and D both return 0 -> still scipy's number
    closes = {**CLOSES, "D": [10, 50, 55, 55, 33]}
    ic = information_coefficient(_factors(HAND), _prices(closes), periods=(1,), min_names=4)
    expected = stats.spearmanr([4, 1, 3, 2], [0.5, 0.0, 0.25, 0.0]).statistic
    assert _ic(ic, D[1], 1) == pytest.approx(expected, abs=1e-12)


def test_min_names_skips_thin_dates():
    assert information_coefficient(_factors(HAND), _prices(), periods=(1,), min_names=5).is_empty()
    # one missing factor value on d1 leaves 3 pairs there: skipped at min_names=4, kept at 3
    thin = {**HAND, D[1]: [4, None, 3, 2]}
    ic = information_coefficient(_factors(thin), _prices(), periods=(1,), min_names=4)
    assert ic["date"].to_list() == [D[0], D[2]]
    ic3 = information_coefficient(_factors(thin), _prices(), periods=(1,), min_names=3)
    assert _ic(ic3, D[1], 1) == pytest.approx(1.0)  # A,C,D: factor 4,3,2 vs .5,.25,-.2
    assert ic3.filter(pl.col("date") == D[1])["n"].item() == 3


def test_missing_values_are_dropped_pairwise():
    # NaN factor for B on d0, and a missing close for C on d3 (which kills C's d1 and d2 returns).
    factors = _factors({**HAND, D[0]: [1, float("nan"), 3, 4]})
    closes = {**CLOSES, "C": [10, 40, 48, None, 66]}
    ic = information_coefficient(factors, _prices(closes), periods=(1,), min_names=3)
    assert ic["n"].to_list() == [3, 3, 3]
    assert _ic(ic, D[0], 1) == pytest.approx(-1.0)  # A,C,D: 1,3,4 vs .4,.2,.1
    assert _ic(ic, D[1], 1) == pytest.approx(stats.spearmanr([4, 1, 2], [0.5, 0.0, -0.2]).statistic)
    assert _ic(ic, D[2], 1) == pytest.approx(stats.spearmanr([1, 1, 3], [1.0, -0.5, -0.25]).statistic)


def test_an_absent_price_row_is_missing_not_skipped():
    # C has no row on d2: its d0 period-1 return (d1 -> d2) is null, and its d1 return is
    # d2 -> d3 (null), not d1 -> d3 read off C's own shorter series.
    prices = _prices().filter(~((pl.col("symbol") == "C") & (pl.col("date") == D[2])))
    fwd = forward_returns(prices, periods=(1,)).filter(pl.col("symbol") == "C")
    assert fwd["date"].to_list() == D[:5]
    assert fwd["fwd_1"].to_list()[:3] == [None, None, pytest.approx(0.1)]
    # a zero or negative close is not a price either
    fwd = forward_returns(_prices({**CLOSES, "C": [10, 40, 0, 60, 66]}), periods=(1,))
    assert fwd.filter(pl.col("symbol") == "C")["fwd_1"].to_list()[:3] == [None, None, pytest.approx(0.1)]


def test_factor_dates_off_the_price_calendar_get_no_return():
    factors = _factors({**HAND, date(2023, 12, 31): [1, 2, 3, 4]})
    ic = information_coefficient(factors, _prices(), periods=(1,), min_names=4)
    assert ic["date"].to_list() == [D[0], D[1], D[2]]


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="duplicate"):
        information_coefficient(pl.concat([_factors(HAND), _factors(HAND)]), _prices())
    with pytest.raises(ValueError, match="close"):
        forward_returns(_prices().drop("close"))
    with pytest.raises(ValueError, match="periods"):
        forward_returns(_prices(), periods=(0,))


def _random_case(seed: int = 3, n_dates: int = 30, n_names: int = 40):
    rng = np.random.default_rng(seed)
    days = [date(2023, 1, 2) + timedelta(days=i) for i in range(n_dates)]
    names = [f"S{j:02d}" for j in range(n_names)]
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, (n_dates, n_names)), axis=0))
    close[rng.random(close.shape) < 0.03] = np.nan  # sporadic missing prices
    mom = rng.normal(size=(n_dates, n_names))
    tied = np.round(rng.normal(size=(n_dates, n_names)))  # many ties
    tied[rng.random(tied.shape) < 0.1] = np.nan
    prices = pl.DataFrame(
        {"date": [d for d in days for _ in names], "symbol": names * n_dates, "close": close.ravel()}
    )
    factors = pl.DataFrame(
        {
            "date": [d for d in days for _ in names],
            "symbol": names * n_dates,
            "mom": mom.ravel(),
            "tied": tied.ravel(),
        }
    )
    return days, close, {"mom": mom, "tied": tied}, prices, factors


def test_agrees_with_scipy_spearmanr_on_a_random_case():
    days, close, raw, prices, factors = _random_case()
    periods = (1, 5)
    ic = information_coefficient(factors, prices, periods=periods, min_names=10)
    expected = {}
    for k in periods:
        fwd = np.full_like(close, np.nan)
        fwd[: len(days) - 1 - k] = close[1 + k :] / close[1 : len(days) - k] - 1  # independent t+1
        for name, values in raw.items():
            for t, day in enumerate(days):
                ok = ~np.isnan(values[t]) & ~np.isnan(fwd[t])
                if ok.sum() >= 10:
                    r = stats.spearmanr(values[t][ok], fwd[t][ok]).statistic
                    expected[(day, name, k)] = (r, int(ok.sum()))
    got = {(d, f, p): (r, n) for d, f, p, r, n in ic.iter_rows()}
    assert got.keys() == expected.keys()
    assert len(got) > 80
    for key, (r, n) in expected.items():
        assert got[key][1] == n, key
        assert got[key][0] == pytest.approx(r, abs=1e-12), key


def test_ic_summary_matches_numpy_and_scipy():
    values = {"a": [0.1, -0.05, 0.2, 0.15, 0.0, 0.07], "b": [-0.3, -0.1, 0.05]}
    rows = [(date(2024, 1, 1 + i), f, 5, v, 20) for f, vs in values.items() for i, v in enumerate(vs)]
    rows.append((date(2024, 2, 1), "b", 5, None, 20))  # an undefined IC is ignored
    rows.append((date(2024, 1, 1), "c", 1, 0.3, 20))  # a single date: no dispersion
    ic = pl.DataFrame(
        rows,
        schema={"date": pl.Date, "factor": pl.String, "period": pl.Int64, "ic": pl.Float64, "n": pl.Int64},
        orient="row",
    )
    table = ic_summary(ic)
    assert table.columns == [
        "factor", "period", "mean_ic", "ic_std", "ir", "t_stat", "p_value", "hit_rate", "n_dates"
    ]  # fmt: skip
    assert table["factor"].to_list() == ["a", "b", "c"]
    for name, vs in values.items():
        row = table.filter(pl.col("factor") == name).row(0, named=True)
        x = np.array(vs)
        mean, std = x.mean(), x.std(ddof=1)
        test = stats.ttest_1samp(x, 0.0)
        assert row["mean_ic"] == pytest.approx(mean, rel=1e-12)
        assert row["ic_std"] == pytest.approx(std, rel=1e-12)
        assert row["ir"] == pytest.approx(mean / std, rel=1e-12)
        assert row["t_stat"] == pytest.approx(mean / (std / np.sqrt(len(x))), rel=1e-12)
        assert row["t_stat"] == pytest.approx(test.statistic, rel=1e-12)
        assert row["p_value"] == pytest.approx(test.pvalue, rel=1e-9)
        assert row["hit_rate"] == pytest.approx((x > 0).mean())
        assert row["n_dates"] == len(x)
    # by hand for "a": 4 of 6 dates strictly positive (0.0 is not a hit)
    assert table.filter(pl.col("factor") == "a")["hit_rate"].item() == pytest.approx(4 / 6)
    single = table.filter(pl.col("factor") == "c").row(0, named=True)
    assert single["mean_ic"] == 0.3 and single["n_dates"] == 1
    assert single["ic_std"] is None and single["t_stat"] is None and single["p_value"] is None


def test_rolling_ic_is_a_trailing_mean_per_factor_and_period():
    rows = [(date(2024, 1, 1 + i), "f", 1, v, 10) for i, v in enumerate([0.1, 0.2, 0.3, 0.6])]
    rows += [(date(2024, 1, 1 + i), "f", 5, v, 10) for i, v in enumerate([1.0, 0.0, 0.5, 0.5])]
    ic = pl.DataFrame(rows, schema=["date", "factor", "period", "ic", "n"], orient="row")
    out = rolling_ic(ic, window=3)
    assert out.columns == ["date", "factor", "period", "rolling_ic"]
    one = out.filter(pl.col("period") == 1)["rolling_ic"].to_list()
    five = out.filter(pl.col("period") == 5)["rolling_ic"].to_list()
    assert one[:2] == [None, None] and one[2:] == pytest.approx([0.2, 11 / 30])
    assert five[:2] == [None, None] and five[2:] == pytest.approx([0.5, 1 / 3])


def test_quantile_returns_on_a_monotone_case():
    # 10 names on 2 dates; name i (1..10) has factor i and a period-1 return of i% on both dates.
    names = [f"N{i:02d}" for i in range(1, 11)]
    days = [date(2024, 3, 1) + timedelta(days=i) for i in range(4)]
    closes = {
        n: [100.0, 100.0, 100.0 * (1 + i / 100), 100.0 * (1 + i / 100) ** 2] for i, n in enumerate(names, 1)
    }
    prices = pl.DataFrame(
        [(days[j], n, c) for n, cs in closes.items() for j, c in enumerate(cs)],
        schema={"date": pl.Date, "symbol": pl.String, "close": pl.Float64},
        orient="row",
    )
    factors = pl.DataFrame(
        [(d, n, float(i)) for d in days[:2] for i, n in enumerate(names, 1)],
        schema={"date": pl.Date, "symbol": pl.String, "f": pl.Float64},
        orient="row",
    )
    q = quantile_returns(factors, prices, "f", period=1, quantiles=5)
    assert q.columns == ["quantile", "mean_return", "n_dates"]
    assert q["quantile"].to_list() == [1, 2, 3, 4, 5]
    # two names a bucket: (1%+2%)/2, (3%+4%)/2, ... on both dates
    assert q["mean_return"].to_list() == pytest.approx([0.015, 0.035, 0.055, 0.075, 0.095])
    assert q["n_dates"].to_list() == [2] * 5
    # reversing the factor reverses the buckets
    rev = quantile_returns(factors.with_columns(-pl.col("f")), prices, "f", period=1, quantiles=5)
    assert rev["mean_return"].to_list() == pytest.approx([0.095, 0.075, 0.055, 0.035, 0.015])


def test_correlated_pairs_pools_rows_and_flags_strong_pairs():
    _, _, _, _, factors = _random_case(seed=5)
    factors = factors.with_columns(pl.col("tied").fill_nan(None)).with_columns(
        twice=pl.col("mom") * 2 + 1, neg_cube=-(pl.col("mom") ** 3), half=pl.col("mom") + 2 * pl.col("tied")
    )
    matrix, pairs = correlated_pairs(factors, threshold=0.7)
    names = ["mom", "tied", "twice", "neg_cube", "half"]
    assert matrix["factor"].to_list() == names and matrix.columns == ["factor", *names]
    m = matrix.drop("factor").to_numpy()
    assert np.allclose(np.diag(m), 1.0) and np.allclose(m, m.T)
    expected = {}
    for i, a in enumerate(names):
        for j, b in enumerate(names[i + 1 :], i + 1):
            ok = factors.drop_nulls([a, b])  # pairwise deletion, pooled over dates
            expected[frozenset((a, b))] = r = stats.spearmanr(ok[a].to_numpy(), ok[b].to_numpy()).statistic
            assert m[i, j] == pytest.approx(r, abs=1e-12), (a, b)
    flagged = {frozenset((a, b)): r for a, b, r, _ in pairs.iter_rows()}
    assert flagged.keys() == {k for k, r in expected.items() if abs(r) > 0.7}
    assert {frozenset(("mom", "twice")), frozenset(("mom", "neg_cube"))} <= flagged.keys()
    assert frozenset(("mom", "tied")) not in flagged
    assert list(pairs["r"].abs()) == sorted(pairs["r"].abs(), reverse=True)
    assert flagged[frozenset(("mom", "neg_cube"))] == pytest.approx(-1.0)
    assert pairs.filter(pl.col("factor_b") == "twice")["n"].to_list() == [factors.height]


def test_analytics_never_imports_dagster():
    import ast
    import inspect

    import finance_dag.analytics as module

    tree = ast.parse(inspect.getsource(module))
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert "dagster" not in imported


def test_a_constant_side_gives_a_null_ic_that_the_summary_ignores():
    flat = {**HAND, D[1]: [2, 2, 2, 2]}  # no cross-sectional spread on d1: Spearman undefined
    ic = information_coefficient(_factors(flat), _prices(), periods=(1,), min_names=4)
    assert ic["date"].to_list() == [D[0], D[1], D[2]]
    assert _ic(ic, D[1], 1) is None and ic["n"].to_list() == [4, 4, 4]
    row = ic_summary(ic).row(0, named=True)
    assert row["n_dates"] == 2
    assert row["mean_ic"] == pytest.approx((-1.0 - 1 / np.sqrt(90)) / 2)


# ---- performance_summary: empyrical's conventions, by hand ----------------------------------
def test_performance_summary_by_hand():
    import math

    import pandas as pd

    from finance_dag.analytics import performance_summary

    r = [0.01, -0.02, 0.03, -0.01]
    out = performance_summary(pd.Series(r))
    # wealth 1.01, 0.9898, 1.019494, 1.00929906
    assert out["total_return"] == pytest.approx(0.00929906, abs=1e-12)
    assert out["cagr"] == pytest.approx(1.00929906 ** (252 / 4) - 1, rel=1e-12)
    # mean 0.0025; sample std sqrt(((0.0075)^2 + (0.0225)^2 + (0.0275)^2 + (0.0125)^2) / 3) = 0.0221736
    std = math.sqrt((0.0075**2 + 0.0225**2 + 0.0275**2 + 0.0125**2) / 3)
    assert out["volatility"] == pytest.approx(std * math.sqrt(252), rel=1e-12)
    assert out["sharpe"] == pytest.approx(0.0025 / std * math.sqrt(252), rel=1e-12)
    # downside deviation over all 4 periods: sqrt((0.02^2 + 0.01^2) / 4) = 0.0111803
    downside = math.sqrt((0.02**2 + 0.01**2) / 4)
    assert out["sortino"] == pytest.approx(0.0025 * 252 / (downside * math.sqrt(252)), rel=1e-12)  # 3.5497
    assert out["sortino"] == pytest.approx(3.5497, abs=1e-4)
    # peak 1.01 then 0.9898: drawdown 0.9898 / 1.01 - 1 = -0.02
    assert out["max_drawdown"] == pytest.approx(-0.02, abs=1e-12)
    assert out["win_rate"] == 0.5


def test_max_drawdown_counts_a_first_period_loss_and_polars_input_is_accepted():
    from finance_dag.analytics import performance_summary

    out = performance_summary(pl.Series([-0.1, 0.2, -0.05]))
    # wealth 1 (start), 0.9, 1.08, 1.026: the worst is 0.9 / 1 - 1
    assert out["max_drawdown"] == pytest.approx(-0.1, abs=1e-12)
    assert performance_summary([0.1, -0.2, 0.05])["max_drawdown"] == pytest.approx(0.88 / 1.1 - 1, abs=1e-12)


def test_performance_summary_edge_cases():
    from finance_dag.analytics import performance_summary

    flat = performance_summary([0.001] * 252)
    assert flat["cagr"] == pytest.approx(1.001**252 - 1, rel=1e-12) and flat["max_drawdown"] == 0.0
    assert np.isnan(flat["sharpe"]) and np.isnan(flat["sortino"])  # no variation, no downside
    assert all(np.isnan(v) for v in performance_summary([]).values())
    with pytest.raises(ValueError, match="missing values"):
        performance_summary(pl.Series([0.01, None]))

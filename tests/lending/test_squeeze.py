"""SSR v4 by hand on four names (numbers worked in the comments)."""

from datetime import date, timedelta

import polars as pl
import pytest

from finance_dag.lending.squeeze import squeeze_scores

DAY = date(2024, 11, 29)
FACTORS = pl.DataFrame(
    {"symbol": ["A", "B", "C", "D"], "sim": [1.0, 0.0, -1.0, None], "bcs": [4.0, 0.5, -1.0, 2.0],
     "upi": [1.0, 0.5, 0.0, 0.5]}
).with_columns(date=pl.lit(DAY))  # fmt: skip
RETURNS = pl.DataFrame({"symbol": ["A", "B", "C", "D"], "return": [0.02, 0.0, -0.02, 0.0]}).with_columns(
    date=pl.lit(DAY)
)


def test_ssr_v4_by_hand():
    scores = {r["symbol"]: r for r in squeeze_scores(FACTORS, RETURNS).iter_rows(named=True)}
    # upi: mean 0.5, sd sqrt(0.5/3) = 0.408248 -> z_A = 1.224745; returns likewise z_A = 1.224745
    # A: (0.25*1 + 0.30*min(4, 3) + 0.25*1.224745 + 0.10*1.224745) / 0.90 (no buzz) = 1.754067
    assert scores["A"]["ssr_v4"] == pytest.approx(1.754067, abs=1e-6)
    assert scores["A"]["bcs_z"] == 3.0 and scores["A"]["components"] == 4
    assert scores["A"]["uptick_contrib"] == pytest.approx(0.10 * 1.224745 / 0.90, abs=1e-6)
    # D has no SIM: weights 0.30 + 0.25 + 0.10 = 0.65; (0.30*2 + 0 + 0) / 0.65
    assert scores["D"]["ssr_v4"] == pytest.approx(0.6 / 0.65, abs=1e-9) and scores["D"]["components"] == 3
    # contributions add up to the score
    for row in scores.values():
        total = sum(row[f"{c}_contrib"] for c in ("sim", "bcs", "upi", "uptick", "buzz"))
        assert total == pytest.approx(row["ssr_v4"])
    assert scores["A"]["reason"] == "borrow-cost shock 3.0 sd, utilisation persistence 1.2 sd"
    assert scores["C"]["reason"] == ""  # nothing pushes C up


def test_best_first_and_buzz_counts_when_present():
    ranked = squeeze_scores(FACTORS, RETURNS)["symbol"].to_list()
    assert ranked == ["A", "D", "B", "C"]
    # crowd_buzz is already a cross-sectional z (extended_lending_factors): used as it is
    buzz = pl.DataFrame({"symbol": ["A", "B", "C", "D"], "crowd_buzz": [-0.5, -0.5, -0.5, 1.5]}).with_columns(
        date=pl.lit(DAY)
    )
    with_buzz = {r["symbol"]: r for r in squeeze_scores(FACTORS, RETURNS, buzz).iter_rows(named=True)}
    assert with_buzz["D"]["components"] == 4 and with_buzz["D"]["buzz_z"] == 1.5
    # D: (0.30*2 + 0.25*0 + 0.10*0 + 0.10*1.5) / (0.30 + 0.25 + 0.10 + 0.10) = 0.75 / 0.75
    assert with_buzz["D"]["ssr_v4"] == pytest.approx(1.0)


def test_many_sessions_at_once_score_each_session_on_its_own():
    other = DAY - timedelta(days=1)
    shifted = FACTORS.with_columns(date=pl.lit(other), upi=pl.col("upi") * 10)  # z of upi is unchanged
    both = squeeze_scores(
        pl.concat([shifted, FACTORS]), pl.concat([RETURNS.with_columns(date=pl.lit(other)), RETURNS])
    )
    alone = squeeze_scores(FACTORS, RETURNS)
    assert both.filter(pl.col("date") == DAY).equals(alone)
    assert both.filter(pl.col("date") == other).drop("date").equals(alone.drop("date"))
    assert both["date"].to_list() == [other] * 4 + [DAY] * 4

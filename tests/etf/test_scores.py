"""ETF factor scores on hand-built panels: the total-return index, the quality filter's reasons,
cross-sectional percentiles and their weighted blend, value skipped when no expense ratio is known.

Hand panels use alternating daily returns ``mu ± sigma`` (``+`` on odd rows), so the ordering of
every factor is known without computing it: momentum follows ``mu``, Sharpe ``mu / sigma``,
volatility ``sigma``, and the drawdown is one down day (``mu - sigma``) unless the drift is negative.
"""

from datetime import date

import numpy as np
import polars as pl
import pytest

from finance_dag.backtest.engine import Panel
from finance_dag.core import calendar
from finance_dag.etf.scores import quality_filter, score_etfs, total_return_panel
from finance_dag.market_data.daily import DAILY_PRICE_SCHEMA

SESSIONS = calendar.sessions(date(2023, 1, 3), date(2024, 12, 31))
WEIGHTS = {"momentum": 0.35, "quality": 0.30, "value": 0.15, "volatility": 0.20}


def alternating(mu: float, sigma: float, n: int = 300) -> np.ndarray:
    """A total-return index of ``n`` rows whose daily returns alternate ``mu + sigma``, ``mu - sigma``."""
    returns = mu + sigma * np.where(np.arange(1, n) % 2 == 1, 1.0, -1.0)
    return 100.0 * np.concatenate([[1.0], np.cumprod(1.0 + returns)])


def panel_of(**columns: np.ndarray) -> Panel:
    n = len(next(iter(columns.values())))
    return Panel(
        np.array(SESSIONS[:n], dtype="datetime64[D]"), tuple(columns), np.column_stack(list(columns.values()))
    )


# A: fast and wild, B: steady winner, C: middling, D: slow decline with little noise.
HAND = {
    "A": alternating(0.002, 0.02),
    "B": alternating(0.0015, 0.005),
    "C": alternating(0.001, 0.008),
    "D": alternating(-0.0005, 0.003),
}
RATIOS = {"A": 0.0003, "B": 0.0020, "C": None, "D": 0.0009}
# Percentiles by hand from the orderings (4 names: rank / 4; value among the 3 with a ratio: rank / 3).
MOMENTUM = {"A": 1.0, "B": 0.75, "C": 0.5, "D": 0.25}  # mu: A > B > C > D
SHARPE = {"A": 0.5, "B": 1.0, "C": 0.75, "D": 0.25}  # mu/sigma: B .3 > C .125 > A .1 > D < 0
DRAWDOWN = {
    "A": 0.5,
    "B": 1.0,
    "C": 0.75,
    "D": 0.25,
}  # one down day: B -.35 % > C -.7 % > A -1.8 % > D ~ -12 %
QUALITY = {"A": 0.5, "B": 1.0, "C": 0.75, "D": 0.25}  # pct of SHARPE + DRAWDOWN
VOLATILITY = {"A": 0.25, "B": 0.75, "C": 0.5, "D": 1.0}  # lower is better: D .3 % < B .5 % < C .8 % < A 2 %
VALUE = {"A": 1.0, "B": 1 / 3, "C": None, "D": 2 / 3}  # cheaper is better; C unknown


def row(scores, symbol: str) -> dict:
    return scores.table.filter(pl.col("symbol") == symbol).row(0, named=True)


def test_percentiles_are_the_hand_ranks_and_the_blend_is_the_weighted_mean_of_them():
    scores = score_etfs(panel_of(**HAND), RATIOS)
    for s in HAND:
        r = row(scores, s)
        assert r["status"] == "scored" and r["reason"] is None
        assert r["momentum_pct"] == pytest.approx(MOMENTUM[s]), s
        assert r["quality_pct"] == pytest.approx(QUALITY[s]), s
        assert r["volatility_pct"] == pytest.approx(VOLATILITY[s]), s
        assert r["value_pct"] == (None if VALUE[s] is None else pytest.approx(VALUE[s])), s
        pcts = {
            "momentum": MOMENTUM[s],
            "quality": QUALITY[s],
            "value": VALUE[s],
            "volatility": VOLATILITY[s],
        }
        used = {f: w for f, w in WEIGHTS.items() if pcts[f] is not None}
        expected = sum(w * pcts[f] for f, w in used.items()) / sum(used.values())
        assert r["score"] == pytest.approx(expected), s
    # A: .35·1 + .30·.5 + .15·1 + .20·.25 = .70; C has no ratio: (.35·.5 + .30·.75 + .20·.5) / .85
    assert row(scores, "A")["score"] == pytest.approx(0.70)
    assert row(scores, "C")["score"] == pytest.approx(0.5 / 0.85)
    assert scores.table["symbol"].to_list() == ["B", "A", "C", "D"]
    assert scores.table["rank"].to_list() == [1, 2, 3, 4]
    assert scores.weights == pytest.approx(WEIGHTS)
    assert scores.note == "Active factors: momentum=35%, quality=30%, value=15%, volatility=20%"


def test_raw_factors_are_measured_on_the_trailing_window():
    scores = score_etfs(panel_of(**HAND), RATIOS)
    index = HAND["A"]
    window = index[-253:]
    returns = window[1:] / window[:-1] - 1.0
    a = row(scores, "A")
    assert a["momentum"] == pytest.approx(window[-22] / window[0] - 1.0)  # t-252 to t-21
    assert a["volatility"] == pytest.approx(np.std(returns[-63:], ddof=1) * np.sqrt(252))
    assert a["sharpe"] == pytest.approx(0.002 / np.std(returns, ddof=1) * np.sqrt(252))
    assert a["max_drawdown"] == pytest.approx(0.002 - 0.02)  # one down day after an up day
    assert a["expense_ratio"] == 0.0003


def test_without_any_expense_ratio_value_is_skipped_for_all_and_its_weight_redistributed():
    scores = score_etfs(panel_of(**HAND), {"A": None})
    assert "Value: SKIPPED (no expense ratio data available)" in scores.note
    assert scores.note == (
        "Value: SKIPPED (no expense ratio data available); weight redistributed: "
        "momentum=41%, quality=35%, volatility=24%"
    )
    assert scores.weights == pytest.approx(
        {"momentum": 0.35 / 0.85, "quality": 0.30 / 0.85, "volatility": 0.20 / 0.85}
    )
    assert scores.table["value_pct"].null_count() == 4
    for s in HAND:
        expected = (0.35 * MOMENTUM[s] + 0.30 * QUALITY[s] + 0.20 * VOLATILITY[s]) / 0.85
        assert row(scores, s)["score"] == pytest.approx(expected), s


def test_excluded_symbols_keep_their_reason_and_do_not_shift_the_others_percentiles():
    rocket = alternating(0.01, 0.002)  # would top every factor
    scores = score_etfs(panel_of(**HAND, LEV=rocket), RATIOS | {"LEV": 0.0001}, {"LEV": "leveraged/inverse"})
    lev = row(scores, "LEV")
    assert lev["status"] == "excluded" and lev["reason"] == "leveraged/inverse"
    assert lev["score"] is None and lev["rank"] is None
    assert scores.table["symbol"].to_list()[-1] == "LEV"
    for s in HAND:
        assert row(scores, s)["momentum_pct"] == pytest.approx(MOMENTUM[s])


def test_percentiles_and_scores_lie_in_0_1_on_a_random_cross_section():
    rng = np.random.default_rng(3)
    prices = 50 * np.exp(np.cumsum(rng.normal(0.0003, 0.01, (300, 40)), axis=0))
    panel = Panel(
        np.array(SESSIONS[:300], dtype="datetime64[D]"), tuple(f"S{j:02d}" for j in range(40)), prices
    )
    ratios = {f"S{j:02d}": (None if j % 4 == 0 else 0.0005 + j * 1e-4) for j in range(40)}
    table = score_etfs(panel, ratios).table
    assert (table["status"] == "scored").all()
    for column in ("momentum_pct", "quality_pct", "value_pct", "volatility_pct", "score"):
        values = table[column].drop_nulls()
        assert ((values > 0) & (values <= 1)).all(), column
        assert values.max() == 1.0 or column == "score", column
    assert table["value_pct"].null_count() == 10
    assert table["score"].is_sorted(descending=True)
    assert table["rank"].to_list() == list(range(1, 41))


def test_factor_weights_that_are_negative_or_unknown_are_refused():
    with pytest.raises(ValueError, match="non-negative"):
        score_etfs(panel_of(**HAND), RATIOS, weights={"momentum": -1.0, "quality": 2.0})
    with pytest.raises(ValueError, match="use only"):
        score_etfs(panel_of(**HAND), RATIOS, weights={"carry": 1.0})


# ---- total-return panel -----------------------------------------------------------------------
def daily_rows(records: list[tuple]) -> pl.DataFrame:
    """(date, symbol, close, split_ratio, dividend) records as DAILY_PRICE_SCHEMA rows."""
    frame = pl.DataFrame(records, schema=["date", "symbol", "close", "split_ratio", "dividend"], orient="row")
    return frame.with_columns(
        open=pl.col("close"), high=pl.col("close"), low=pl.col("close"), volume=pl.lit(1000), source=pl.lit("test")
    ).select(DAILY_PRICE_SCHEMA.names()).cast(dict(DAILY_PRICE_SCHEMA))  # fmt: skip


def test_total_return_applies_a_2_for_1_split_and_a_dividend_on_their_day():
    d = SESSIONS
    rows = daily_rows(
        [
            (d[3], "X", 51.00, 1.0, 1.00),  # dividend $1: (51 + 1) / 51.5
            (d[0], "X", 100.0, 1.0, 0.0),
            (d[2], "X", 51.50, 2.0, 0.0),  # 2-for-1 split: (51.5 * 2) / 102
            (d[1], "X", 102.0, 1.0, 0.0),
            (d[0], "Y", 10.0, 1.0, 0.0),  # no row on d[1]: a gap
            (d[2], "Y", 11.0, 1.0, 0.0),
            (d[3], "Y", 11.0, 1.0, 0.0),
            (d[2], "Z", 20.0, 1.0, 0.0),  # lists on d[2]
            (d[3], "Z", 21.0, 1.0, 0.0),
        ]
    )
    panel = total_return_panel(rows)
    assert panel.symbols == ("X", "Y", "Z")
    assert panel.dates.tolist() == d[:4]
    x = [1.0, 102 / 100, 102 / 100 * (51.5 * 2) / 102, 102 / 100 * (51.5 * 2) / 102 * (51 + 1) / 51.5]
    assert x == pytest.approx([1.0, 1.02, 1.03, 1.04])
    np.testing.assert_allclose(panel.prices[:, 0], 100.0 * np.array(x))  # from the first close, $100
    np.testing.assert_allclose(panel.prices[:, 1], [10.0, np.nan, 11.0, 11.0])
    np.testing.assert_allclose(panel.prices[:, 2], [np.nan, np.nan, 20.0, 21.0])


def test_total_return_on_given_sessions_leaves_a_session_without_rows_empty():
    d = SESSIONS
    rows = daily_rows([(d[0], "X", 10.0, 1.0, 0.0), (d[2], "X", 12.0, 1.0, 0.0), (d[3], "X", 6.3, 2.0, 0.0)])
    panel = total_return_panel(rows, sessions=d[:5])
    assert panel.dates.tolist() == d[:5]
    np.testing.assert_allclose(panel.prices[:, 0], [10.0, np.nan, 12.0, 12.6, np.nan])


# ---- quality filter ---------------------------------------------------------------------------
N = 300
DATES = np.array(SESSIONS[:N], dtype="datetime64[D]")


def clean() -> np.ndarray:
    return alternating(0.0005, 0.01, N)


def reasons_of(*columns: np.ndarray) -> list[str | None]:
    return quality_filter(np.column_stack(columns), DATES)


def test_a_clean_series_passes_the_quality_filter():
    assert reasons_of(clean()) == [None]
    # exactly 253 rows of history (252 returns) is enough
    late = clean()
    late[: N - 253] = np.nan
    assert reasons_of(late) == [None]


def test_a_short_history_is_too_short():
    late = clean()
    late[:100] = np.nan
    assert reasons_of(late) == ["too short: 200 sessions of history, need 253"]
    assert reasons_of(np.full(N, np.nan)) == ["no prices up to the as-of date"]


def test_no_price_for_more_than_5_sessions_is_stale_naming_the_last_price():
    gone, almost = clean(), clean()
    gone[-6:] = np.nan
    almost[-5:] = np.nan
    assert reasons_of(gone, almost) == [f"stale: no price since {DATES[-7]}", None]


def test_more_than_20_percent_flat_returns_is_stale():
    def flat(count: int) -> np.ndarray:
        returns = np.diff(clean()) / clean()[:-1]
        returns[-252:][np.linspace(0, 251, count).astype(int)] = 0.0
        return 100 * np.concatenate([[1.0], np.cumprod(1 + returns)])

    assert reasons_of(flat(51), flat(50)) == [
        "stale: 20% of the last 252 sessions without a price change",
        None,
    ]
    assert reasons_of(flat(84)) == ["stale: 33% of the last 252 sessions without a price change"]


def test_more_than_5_percent_of_the_window_missing_is_gaps():
    gappy, fine = clean(), clean()
    gappy[100:296:14] = np.nan
    fine[100:292:16] = np.nan
    assert int(np.isnan(gappy[-252:]).sum()) == 14  # 14 > 5 % of 252 = 12.6
    assert int(np.isnan(fine[-252:]).sum()) == 12
    assert reasons_of(gappy, fine) == ["gaps: 14 of the last 252 sessions missing", None]


def jump(series: np.ndarray, at: int, factor: float, until: int | None = None) -> np.ndarray:
    """``series`` with the return into row ``at`` exactly ``factor - 1`` (reverting at ``until``)."""
    out = series.copy()
    out[at:until] *= factor * series[at - 1] / series[at]
    return out


def test_a_daily_move_beyond_40_percent_is_a_jump_naming_its_date():
    spike = jump(clean(), 200, 1.5, until=201)  # a bad print that reverts the next day
    crash = jump(clean(), 250, 0.55)
    mild = jump(clean(), 220, 1.39)
    old = jump(clean(), 20, 2.0)  # before the 252-session window
    assert reasons_of(spike, crash, mild, old) == [
        f"jumps: +50% on {DATES[200]}",
        f"jumps: -45% on {DATES[250]}",
        None,
        None,
    ]


def test_several_problems_are_all_reported():
    bad = jump(clean(), 150, 0.5)
    bad[100:120] = np.nan
    bad[-8:] = np.nan
    reason = reasons_of(bad)[0]
    assert (
        reason
        == f"stale: no price since {DATES[-9]}; gaps: 28 of the last 252 sessions missing; jumps: -50% on {DATES[150]}"
    )


def test_scoring_excludes_a_filtered_symbol_with_its_reason():
    stale = alternating(0.001, 0.01)
    stale[-10:] = np.nan
    scores = score_etfs(panel_of(**HAND, OLD=stale), RATIOS)
    old = row(scores, "OLD")
    assert old["status"] == "excluded" and old["reason"].startswith("stale: no price since")
    assert row(scores, "B")["rank"] == 1

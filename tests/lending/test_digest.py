"""The daily digest: headlines written from the numbers, summary, candidates, moves, HTML."""

import base64
from datetime import date

import polars as pl

from finance_dag.lending.digest import Day, daily_digest

DAY, PREV = date(2024, 11, 29), date(2024, 11, 27)


def snapshot(fees: list[float], utilisation: list[float]) -> pl.DataFrame:
    return pl.DataFrame({"symbol": ["A", "B", "C"], "fee_bps": fees, "utilization_pct": utilisation})


def factors(bcs: list[float], upi: list[float]) -> pl.DataFrame:
    names = ["A", "B", "C"]
    zero = [0.0, 0.0, 0.0]
    return pl.DataFrame(
        {"symbol": names, "sim": zero, "bcs": bcs, "upi": upi, "ftz": zero, "dtc_z": zero, "lpf": zero}
    )


SQUEEZE = pl.DataFrame(
    {"symbol": ["B", "A", "C"], "ssr_v4": [1.5, 0.2, -0.4], "reason": ["borrow-cost shock 3.5 sd", "", ""],
     "sim_contrib": [0.0, 0.0, 0.0], "bcs_contrib": [1.2, 0.1, -0.3], "upi_contrib": [0.3, 0.1, -0.1],
     "uptick_contrib": [0.0, 0.0, 0.0], "buzz_contrib": [None, None, None]}
)  # fmt: skip


def test_headlines_are_written_from_the_data():
    today = Day(snapshot([30.0, 120.0, 60.0], [50.0, 95.0, 70.0]), factors([0.1, 3.5, -0.2], [0.2, 1.0, 0.5]))
    before = Day(snapshot([30.0, 90.0, 60.0], [50.0, 90.0, 70.0]), factors([0.0, 0.5, 0.0], [0.2, 0.9, 0.5]))
    digest = daily_digest(DAY, today, before, SQUEEZE)
    # fees 70 vs 60 bps on average; utilisation 71.67 vs 70
    assert digest.headlines == [
        "The average fee (bps) rose 10.00 to 70.00 on 2024-11-29.",
        "The average utilisation (%) rose 1.67 to 71.67 on 2024-11-29.",
        "B leads the squeeze scores (SSR v4 +1.50): borrow-cost shock 3.5 sd.",
        "1 names had a borrow-cost shock of 3 sd or more (B).",
    ]
    bcs = digest.moves.filter(pl.col("factor") == "bcs").row(0, named=True)
    assert (bcs["symbol"], bcs["change"]) == ("B", 3.0)
    assert digest.markdown.startswith("# Lending digest 2024-11-29") and "| B | 1.5 |" in digest.markdown
    assert "<li>B leads the squeeze scores" in digest.html and "<table>" in digest.html


def test_the_first_session_has_no_day_over_day_change():
    today = Day(snapshot([30.0, 120.0, 60.0], [50.0, 95.0, 70.0]), factors([0.1, 1.0, -0.2], [0.2, 1.0, 0.5]))
    digest = daily_digest(DAY, today, None, SQUEEZE)
    assert digest.summary["previous"].is_null().all() and digest.moves.is_empty()
    assert digest.headlines == ["B leads the squeeze scores (SSR v4 +1.50): borrow-cost shock 3.5 sd."]


def test_the_plot_is_embedded_and_extended_factors_move_too():
    today = factors([0.1, 3.5, -0.2], [0.2, 1.0, 0.5]).with_columns(crowd_buzz=pl.Series([0.0, -1.0, 2.5]))
    before = factors([0.0, 0.5, 0.0], [0.2, 0.9, 0.5]).with_columns(crowd_buzz=pl.Series([0.0, 0.0, 0.0]))
    digest = daily_digest(
        DAY,
        Day(snapshot([30.0, 120.0, 60.0], [50.0, 95.0, 70.0]), today),
        Day(snapshot([30.0, 90.0, 60.0], [50.0, 90.0, 70.0]), before),
        SQUEEZE,
    )
    assert digest.plot.startswith(b"\x89PNG")
    image = base64.b64encode(digest.plot).decode()
    assert (
        f"(data:image/png;base64,{image})" in digest.markdown
        and f"src='data:image/png;base64,{image}'" in digest.html
    )
    buzz = digest.moves.filter(pl.col("factor") == "crowd_buzz").row(0, named=True)
    assert (buzz["symbol"], buzz["change"]) == ("C", 2.5)

"""finance_dag.risk.signals: the factor-adjusted confidence and buy/sell/hold rule on examples
worked by hand."""

import math

import polars as pl
import pytest

from finance_dag.risk.signals import SIGNAL_SCHEMA, factor_adjusted_signals

# Five complete names with volatilities 1 %…3 % (percentiles 0, .25, .5, .75, 1), one with a missing
# exposure and one with nothing.
EXPOSURES = pl.DataFrame(
    {
        "symbol": ["A", "B", "C", "D", "E", "G"],
        "market": [0.2, -0.1, 0.0, 1.1, 0.0, 0.5],
        "size": [-0.3, 0.3, 0.1, -0.8, 0.0, None],
        "momentum": [0.0, 0.25, 1.3, 0.2, -3.3, 0.1],
    }
)
VOLATILITY = {"A": 0.010, "B": 0.030, "C": 0.020, "D": 0.025, "E": 0.015, "G": 0.02}
CONFIDENCE = {"A": 0.70, "B": 0.65, "C": 0.45, "D": 0.80, "E": 0.10, "G": 0.90, "H": 0.75}


def signals() -> dict[str, dict]:
    table = factor_adjusted_signals(CONFIDENCE, EXPOSURES, VOLATILITY)
    assert table.schema == SIGNAL_SCHEMA
    assert table["symbol"].to_list() == list(CONFIDENCE)
    return {row["symbol"]: row for row in table.iter_rows(named=True)}


def test_hand_examples():
    rows = signals()
    # A: least volatile, every exposure within ±0.3 (the band is inclusive): unchanged, 0.70 ≥ 0.6 buys.
    assert rows["A"]["adjusted_confidence"] == 0.70 and rows["A"]["action"] == "buy"
    assert (
        rows["A"]["explanation"]
        == "0.700 → 0.700 buy: volatility at or below the median, exposures within ±0.3"
    )
    # B: most volatile (percentile 1 → penalty 0.10): 0.65 − 0.10 = 0.55, a buy turned into a hold.
    assert rows["B"]["volatility_percentile"] == 1.0 and rows["B"]["volatility_penalty"] == pytest.approx(
        0.10
    )
    assert rows["B"]["adjusted_confidence"] == 0.55 and rows["B"]["action"] == "hold"
    assert rows["B"]["explanation"] == "0.650 → 0.550 hold: volatility percentile 1.00 -0.100"
    # C: median volatility (no penalty), momentum 1.3 is 1.0 beyond the band → 0.05: 0.45 → 0.40, sells (≤ 0.4).
    assert rows["C"]["volatility_penalty"] == 0.0 and rows["C"]["exposure_penalty"] == pytest.approx(0.05)
    assert rows["C"]["adjusted_confidence"] == 0.40 and rows["C"]["action"] == "sell"
    assert rows["C"]["explanation"] == "0.450 → 0.400 sell: momentum +1.30 beyond ±0.3 -0.050"
    # D: percentile 0.75 → 0.05; market 0.8 beyond → 0.04; size 0.5 beyond → 0.025: 0.80 → 0.685 buy.
    assert rows["D"]["adjusted_confidence"] == 0.685 and rows["D"]["action"] == "buy"
    assert rows["D"]["explanation"] == (
        "0.800 → 0.685 buy: volatility percentile 0.75 -0.050; market +1.10 beyond ±0.3 -0.040; "
        "size -0.80 beyond ±0.3 -0.025"
    )
    # E: momentum −3.3 is 3.0 beyond → 0.15 > 0.10: clipped at 0, sell.
    assert rows["E"]["adjusted_confidence"] == 0.0 and rows["E"]["action"] == "sell"


def test_incomplete_names_are_not_adjusted_and_hold():
    rows = signals()
    assert rows["G"]["adjusted_confidence"] is None and rows["G"]["action"] == "hold"
    assert rows["G"]["explanation"] == "not adjusted (missing exposure: size): hold"
    assert rows["H"]["explanation"] == "not adjusted (no factor exposures; no predicted volatility): hold"
    # G's volatility does not enter the percentiles of the complete names.
    assert rows["C"]["volatility_percentile"] == 0.5


def test_buy_threshold_is_inclusive_and_one_name_has_no_volatility_penalty():
    exposures = pl.DataFrame({"symbol": ["X"], "momentum": [0.7]})
    row = factor_adjusted_signals({"X": 0.62}, exposures, {"X": 0.05}).row(0, named=True)
    assert row["volatility_percentile"] == 0.0
    assert row["adjusted_confidence"] == 0.60 and row["action"] == "buy"


def test_tied_volatilities_share_a_percentile():
    exposures = pl.DataFrame({"symbol": ["X", "Y", "Z"], "market": [0.0, 0.0, 0.0]})
    table = factor_adjusted_signals(
        {"X": 0.5, "Y": 0.5, "Z": 0.5}, exposures, {"X": 0.01, "Y": 0.02, "Z": 0.02}
    )
    # Average ranks 1, 2.5, 2.5 → percentiles 0, 0.75, 0.75 → penalties 0, 0.05, 0.05.
    assert table["volatility_percentile"].to_list() == [0.0, 0.75, 0.75]
    assert table["adjusted_confidence"].to_list() == [0.5, 0.45, 0.45]


def test_missing_confidence_and_out_of_range_confidence():
    exposures = pl.DataFrame({"symbol": ["X"], "market": [0.0]})
    row = factor_adjusted_signals({"X": math.nan}, exposures, {"X": 0.01}).row(0, named=True)
    assert row["action"] == "hold" and row["explanation"] == "not adjusted (no confidence): hold"
    with pytest.raises(ValueError, match="outside"):
        factor_adjusted_signals({"X": 1.5}, exposures, {"X": 0.01})

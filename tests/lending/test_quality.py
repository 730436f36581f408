"""The lending data-quality rules by hand, and the checks running with their assets."""

from datetime import date

import dagster as dg
import polars as pl

from finance_dag.lending.extended import EXTENDED_COLUMNS
from finance_dag.lending.factors import FACTOR_COLUMNS
from finance_dag.lending.quality import contribution_errors, empty_extended_factors, factor_range_violations
from tests.lending.test_extended_inputs import LAST, run_lending

DAY = date(2024, 11, 29)


def test_factor_values_out_of_their_documented_range_are_listed():
    frame = pl.DataFrame(
        {"date": [DAY] * 3, "symbol": ["A", "B", "C"], **{c: [0.5, None, 0.1] for c in FACTOR_COLUMNS}}
    ).with_columns(
        upi=pl.Series([0.5, 1.2, 0.0]),  # B: a share above 1
        ftz=pl.Series([3.0, None, -3.5]),  # 3.0 is the cap (fine); C beyond it
        bcs=pl.Series([float("nan"), 9.0, 1.0]),  # per-name z, not capped; NaN is never allowed
    )
    bad = factor_range_violations(frame)
    assert sorted(bad.select("symbol", "factor").rows()) == [("A", "bcs"), ("B", "upi"), ("C", "ftz")]


def test_an_extended_factor_null_for_every_name_of_a_day_is_listed_with_its_reason():
    values = {c: [1.0, -1.0] for c in EXTENDED_COLUMNS} | {"crowd_buzz": [None, None]}
    reason = "crowd_buzz: no social mentions file for 2024-11-29"
    frame = pl.DataFrame(
        {"date": [DAY, DAY], "symbol": ["A", "B"], **values, "null_reasons": [reason, reason]}
    )
    assert empty_extended_factors(frame).rows() == [(DAY, "crowd_buzz", reason)]
    served = frame.with_columns(crowd_buzz=pl.Series([0.3, None]))
    assert empty_extended_factors(served).is_empty()


def test_a_score_that_is_not_the_sum_of_its_contributions_is_listed():
    scores = pl.DataFrame(
        {"date": [DAY] * 2, "symbol": ["A", "B"], "ssr_v4": [1.0, 0.5], "components": [2, 0],
         "sim_contrib": [0.5, 0.5], "bcs_contrib": [0.5, 0.1], "upi_contrib": [0.0, 0.0],
         "uptick_contrib": [0.0, 0.0], "buzz_contrib": [0.0, 0.0]}
    )  # fmt: skip
    bad = contribution_errors(scores)
    assert bad["symbol"].to_list() == ["B"]  # 0.6 != 0.5, and no component


def test_the_checks_run_with_the_lending_job_and_pass_on_the_simulated_data(tmp_path, instance):
    defs = run_lending(tmp_path / "lake", instance)
    results = {}
    for asset, check in (
        ("lending_snapshots", "universe_covered"),
        ("lending_factors", "values_in_range"),
        ("extended_lending_factors", "inputs_served"),
        ("squeeze_scores", "contributions_add_up"),
    ):
        key = dg.AssetCheckKey(dg.AssetKey(asset), check)
        evaluation = instance.event_log_storage.get_latest_asset_check_execution_by_key([key])[key]
        results[check] = evaluation.event.dagster_event.event_specific_data
        assert results[check].metadata["last_partition"].value == LAST.isoformat()
    assert all(results[c].passed for c in ("universe_covered", "values_in_range", "contributions_add_up"))
    # the run starts without the 19 earlier sessions the time-series z-scores read: the warning
    # names those days, and only those, with the reason
    warned = results["inputs_served"]
    assert not warned.passed and warned.severity == dg.AssetCheckSeverity.WARN
    first = defs.load_asset_value("extended_lending_factors", partition_key="2024-10-24", instance=instance)
    assert (
        first["borrow_cds_basis"].is_null().all()
        and "fewer than 20 lending sessions" in first["null_reasons"][0]
    )
    last = defs.load_asset_value(
        "extended_lending_factors", partition_key=LAST.isoformat(), instance=instance
    )
    assert empty_extended_factors(last).is_empty()

"""The market-data checks re-validate what the lake holds, name the partitions they cover,
and run on their own (as the UI's "Execute" on a check does)."""

import dagster as dg
import polars as pl

from finance_dag.core.lake import Lake
from tests.support import THANKSGIVING_WEEK, run_job, session_range_tags

FIRST, LAST = THANKSGIVING_WEEK


def checks_alone(defs: dg.Definitions, instance, *names: str) -> dict[str, dg.AssetCheckEvaluation]:
    """Execute only the named checks, with no partition, as the UI does from a check's page."""
    keys = [dg.AssetCheckKey(dg.AssetKey(asset), name) for asset, name in (n.split(":") for n in names)]
    job = dg.define_asset_job("checks_only", selection=dg.AssetSelection.checks(*keys))
    location = dg.Definitions(
        assets=list(defs.assets), asset_checks=list(defs.asset_checks), jobs=[job], resources=defs.resources
    )
    result = location.resolve_job_def("checks_only").execute_in_process(instance=instance)
    assert result.success
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_checks_cover_the_runs_partitions_and_say_which(defs, instance):
    result = run_job(defs, instance, "minute_bars_job", session_range_tags(FIRST, LAST))
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(evaluations) == {"unique_timestamps", "ohlc_consistent", "in_session", "every_symbol_served"}
    for evaluation in evaluations.values():
        assert evaluation.passed
        assert evaluation.metadata["partitions_checked"].value == 2
        assert evaluation.metadata["first_partition"].value == FIRST.isoformat()
        assert evaluation.metadata["last_partition"].value == LAST.isoformat()


def test_a_check_runs_on_its_own_over_the_latest_session_and_names_the_bad_partition(
    defs, instance, tmp_path
):
    run_job(defs, instance, "minute_bars_job", session_range_tags(FIRST, LAST))
    lake = Lake(str(tmp_path / "lake"))
    path = f"minute_bars/symbol=QQQ/date={LAST}.parquet"
    bars = lake.read_parquet(path)
    lake.write_parquet(path, pl.concat([bars, bars.head(3)]))  # three duplicated minutes
    evaluations = checks_alone(defs, instance, "minute_bars:unique_timestamps", "minute_bars:in_session")
    assert set(evaluations) == {"unique_timestamps", "in_session"}  # run alone, without the others
    duplicates = evaluations["unique_timestamps"]
    assert not duplicates.passed and duplicates.metadata["violations"].value == 3
    assert duplicates.metadata["partitions_checked"].value == 1  # the latest session only
    assert duplicates.metadata["first_partition"].value == LAST.isoformat()
    assert "QQQ" in duplicates.metadata["failing_partitions"].value
    assert evaluations["in_session"].passed


def test_the_coverage_check_runs_on_its_own(defs, instance):
    run_job(defs, instance, "minute_bars_job", session_range_tags(LAST, LAST))
    run_job(defs, instance, "daily_market_data_job", {"dagster/partition": LAST.isoformat()})
    (evaluation,) = checks_alone(defs, instance, "bar_coverage:coverage_above_threshold").values()
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    assert evaluation.metadata["partitions_checked"].value == 1
    assert evaluation.passed == (evaluation.metadata["below_threshold"].value == 0)

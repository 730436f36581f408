"""The market-data assets end to end on the simulated market, in-process on a test instance."""

import itertools
from collections.abc import Callable
from datetime import date

import dagster as dg
import polars as pl
import pytest

from finance_dag.core import calendar
from finance_dag.core.lake import Lake
from finance_dag.defs.market_data import automation
from finance_dag.market_data.bars import MINUTE_BAR_SCHEMA
from finance_dag.platform.partitions import range_tags
from finance_dag.platform.storage import LakeResource
from tests.support import SETTINGS, SYMBOLS, THANKSGIVING_WEEK, make_defs, run_job, session_range_tags

FIRST, LAST = THANKSGIVING_WEEK
MINUTE_BARS = dg.AssetKey("minute_bars")


@pytest.fixture
def lake_root(tmp_path) -> str:
    return str(tmp_path / "lake")


def test_minute_bars_for_a_range_of_sessions_in_one_run(defs, instance, lake_root):
    result = run_job(defs, instance, "minute_bars_job", session_range_tags(FIRST, LAST))
    materialized = instance.get_materialized_partitions(MINUTE_BARS)
    assert materialized == {FIRST.isoformat(), LAST.isoformat()}
    files = {f.path for f in Lake(lake_root).list_files("minute_bars")}
    assert files == {f"minute_bars/symbol={s}/date={d}.parquet" for d in (FIRST, LAST) for s in SYMBOLS}
    assert all(c.passed for c in result.get_asset_check_evaluations())
    assert {c.check_name for c in result.get_asset_check_evaluations()} == {
        "unique_timestamps", "ohlc_consistent", "in_session", "every_symbol_served"
    }  # fmt: skip
    session = defs.load_asset_value("minute_bars", partition_key=LAST.isoformat(), instance=instance)
    assert set(session["symbol"]) == set(SYMBOLS)
    bars = session.filter(pl.col("symbol") == "SPY")
    assert isinstance(bars, pl.DataFrame) and bars.schema == MINUTE_BAR_SCHEMA
    assert bars["ts"].is_unique().all() and bars["ts"].is_sorted()
    pre, post = calendar.extended_window(LAST)
    assert bars["ts"].min() >= pre and bars["ts"].max() < post
    regular = bars.filter("regular")["ts"].dt.replace_time_zone(None).to_numpy()
    assert set(regular.tolist()) <= set(calendar.regular_minutes(LAST).tolist())
    assert 0 < len(regular) <= 210  # early close
    event = instance.get_latest_materialization_event(MINUTE_BARS)
    meta = event.asset_materialization.metadata
    assert {"dagster/row_count", "regular_bars", "symbols_written", "invalid_rows", "preview"} <= set(meta)
    assert meta["dagster/row_count"].value == session.height and meta["symbols_written"].value == len(SYMBOLS)
    assert "| symbol | bars | regular_bars | invalid_rows | sources |" in meta["preview"].value


def test_rerunning_a_partition_rewrites_identical_bytes(defs, instance, lake_root):
    tags = session_range_tags(LAST, LAST)
    run_job(defs, instance, "minute_bars_job", tags)
    lake = Lake(lake_root)
    before = {f.path: lake.read_bytes(f.path) for f in lake.list_files("minute_bars")}
    run_job(defs, instance, "minute_bars_job", tags)
    after = {f.path: lake.read_bytes(f.path) for f in lake.list_files("minute_bars")}
    assert before == after and len(before) == len(SYMBOLS)


def test_downstream_assets_and_their_values(defs, instance, lake_root):
    run_job(defs, instance, "minute_bars_job", session_range_tags(FIRST, LAST))
    daily_run = run_job(
        defs, instance, "daily_market_data_job", range_tags(FIRST.isoformat(), LAST.isoformat())
    )
    (check,) = daily_run.get_asset_check_evaluations()
    assert check.check_name == "coverage_above_threshold" and check.severity == dg.AssetCheckSeverity.WARN
    assert check.passed == (check.metadata["below_threshold"].value == 0)
    run_job(defs, instance, "consolidate_job", range_tags(SYMBOLS[0], SYMBOLS[-1]))
    result = run_job(defs, instance, "coverage_report_job")

    minute = Lake(lake_root).read_parquet(f"minute_bars/symbol=QQQ/date={LAST}.parquet")
    daily = defs.load_asset_value("daily_bars", partition_key=LAST.isoformat(), instance=instance)
    qqq = daily.filter(pl.col("symbol") == "QQQ").row(0, named=True)
    regular = minute.filter("regular")
    assert (qqq["open"], qqq["close"]) == (regular["open"][0], regular["close"][-1])
    assert qqq["volume"] == regular["volume"].sum() and qqq["bars"] == regular.height

    coverage = defs.load_asset_value("bar_coverage", partition_key=LAST.isoformat(), instance=instance)
    assert coverage.height == len(SYMBOLS) and set(coverage["expected_minutes"]) == {210}
    assert coverage["coverage"].is_between(0, 1).all()
    assert coverage.filter(pl.col("symbol") == "QQQ")["bars"].item() == regular.height

    report = defs.load_asset_value("coverage_report", instance=instance)
    assert set(report["symbol"]) == set(SYMBOLS) and (report["days"] == 2).all()
    meta = result.asset_materializations_for_node("coverage_report")[0].metadata
    assert meta["heatmap"].value.startswith("![coverage heatmap](data:image/png;base64,")
    assert (
        "| symbol |" in meta["report"].value
        and meta["ready_for_research"].value == report.filter("ready")["symbol"].to_list()
    )

    consolidated = defs.load_asset_value("consolidated_bars", partition_key="QQQ", instance=instance)
    days = [Lake(lake_root).read_parquet(f"minute_bars/symbol=QQQ/date={d}.parquet") for d in (FIRST, LAST)]
    assert consolidated.equals(pl.concat(days))


def rebuilt(result) -> list[int]:
    return result.asset_materializations_for_node("consolidated_bars")[0].metadata["rebuilt_years"].value


def test_consolidation_rebuilds_only_changed_years(defs, instance, lake_root):
    run_job(defs, instance, "minute_bars_job", session_range_tags(date(2024, 12, 30), date(2025, 1, 2)))
    first = run_job(defs, instance, "consolidate_job", range_tags("SPY", "SPY"))
    assert rebuilt(first) == [2024, 2025]
    again = run_job(defs, instance, "consolidate_job", range_tags("SPY", "SPY"))
    assert rebuilt(again) == []
    run_job(defs, instance, "minute_bars_job", session_range_tags(date(2025, 1, 3), date(2025, 1, 3)))
    third = run_job(defs, instance, "consolidate_job", range_tags("SPY", "SPY"))
    meta = third.asset_materializations_for_node("consolidated_bars")[0].metadata
    assert meta["rebuilt_years"].value == [2025] and meta["unchanged_years"].value == [2024]


@pytest.mark.chaos("vendor faults", faults="503-primary")
def test_a_failing_primary_is_gap_filled_by_the_fallbacks(lake_root, instance):
    defs = make_defs(lake_root, fail_symbol_days=[f"sim_alpaca:SPY:{LAST}"])
    run_job(defs, instance, "minute_bars_job", session_range_tags(LAST, LAST))
    bars = Lake(lake_root).read_parquet(f"minute_bars/symbol=SPY/date={LAST}.parquet")
    assert bars.height > 150 and "sim_alpaca" not in set(bars["source"])
    assert set(bars["source"]) <= {"sim_alphavantage", "sim_yahoo"}


@pytest.mark.chaos("vendor faults", faults="503-every-vendor-symbol-day")
def test_a_symbol_day_no_vendor_serves_costs_only_that_symbol_day_and_is_refilled(lake_root, instance):
    vendors = ("sim_alpaca", "sim_alphavantage", "sim_yahoo")
    defs = make_defs(lake_root, fail_symbol_days=[f"{v}:SPY:{LAST}" for v in vendors])
    result = run_job(defs, instance, "minute_bars_job", session_range_tags(FIRST, LAST))
    assert instance.get_materialized_partitions(MINUTE_BARS) == {FIRST.isoformat(), LAST.isoformat()}
    lake = Lake(lake_root)
    assert not lake.exists(f"minute_bars/symbol=SPY/date={LAST}.parquet")
    assert all(lake.exists(f"minute_bars/symbol={s}/date={LAST}.parquet") for s in SYMBOLS if s != "SPY")
    failed = result.asset_materializations_for_node("minute_bars")[-1].metadata["symbols_failed"].value
    assert list(failed) == ["SPY"]
    message = " ".join(failed["SPY"])
    assert "sim_alpaca: request for SPY on 2024-11-29 failed (HTTP 503" in message and "sim_yahoo" in message
    served = next(e for e in result.get_asset_check_evaluations() if e.check_name == "every_symbol_served")
    assert not served.passed and "SPY" in served.metadata["failing_partitions"].value

    run_job(defs, instance, "daily_market_data_job", session_range_tags(FIRST, LAST))
    refill = automation.build_refill_sensor(SETTINGS)(
        dg.build_sensor_context(instance=instance, resources={"lake": LakeResource(root=lake_root)})
    )
    request = next(r for r in refill.run_requests if r.partition_key == LAST.isoformat())
    assert "SPY" in request.run_config["ops"]["minute_bars"]["config"]["symbols"]
    healthy = make_defs(lake_root)  # the vendors recovered
    job = healthy.resolve_job_def("minute_bars_job")
    assert job.execute_in_process(
        instance=instance, partition_key=request.partition_key, run_config=request.run_config
    ).success
    assert lake.read_parquet(f"minute_bars/symbol=SPY/date={LAST}.parquet").height > 150


@pytest.mark.chaos("vendor faults", faults="503-every-vendor-session")
def test_a_session_no_vendor_serves_at_all_fails_only_that_session(lake_root, instance):
    vendors = ("sim_alpaca", "sim_alphavantage", "sim_yahoo")
    names = ["SPY", "QQQ"]
    defs = make_defs(lake_root, fail_symbol_days=[f"{v}:{s}:{LAST}" for v in vendors for s in names])
    result = defs.resolve_job_def("minute_bars_job").execute_in_process(
        instance=instance,
        tags=session_range_tags(FIRST, LAST),
        run_config={"ops": {"minute_bars": {"config": {"symbols": names}}}},
        raise_on_error=False,
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = str(failure.event_specific_data.error)
    assert "1 of 2 minute_bars partitions got no data from any vendor for any symbol" in message
    assert f"{LAST}: SPY: sim_alpaca: request for SPY" in message and "QQQ: sim_alpaca" in message
    assert instance.get_materialized_partitions(MINUTE_BARS) == {FIRST.isoformat()}


def nth_write(n: int, where: str = "") -> Callable[[str], bool]:
    """True for the ``n``-th written path containing ``where``: where a kill strikes."""
    seen = itertools.count(1)
    return lambda rel: where in rel and next(seen) == n


def kill_mid_write(defs, instance, dies: Callable[[str], bool]) -> None:
    """Run ``minute_bars_job`` over FIRST..LAST killed (KeyboardInterrupt) at the lake write
    of the path ``dies`` picks; the lake writes normally again afterwards."""
    real_write = Lake.write_bytes

    def write(self, rel, data):
        if dies(rel):
            raise KeyboardInterrupt("killed")
        real_write(self, rel, data)

    with pytest.MonkeyPatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(Lake, "write_bytes", write)
        defs.resolve_job_def("minute_bars_job").execute_in_process(
            instance=instance, tags=session_range_tags(FIRST, LAST)
        )


@pytest.mark.chaos("run killed mid-write", faults="interrupt-mid-write")
def test_a_run_killed_mid_write_leaves_whole_files_and_the_next_fills_the_rest(lake_root, instance):
    defs = make_defs(lake_root)
    kill_mid_write(defs, instance, nth_write(len(SYMBOLS) + 7))  # the seventh file of the second session
    files = Lake(lake_root).list_files("minute_bars", suffix="")
    assert all(f.path.endswith(".parquet") for f in files)  # no temporary or partial file
    written = [f.path for f in files if f.path.startswith("minute_bars/")]
    assert sum(f"date={FIRST}" in p for p in written) == len(SYMBOLS)
    assert 0 < sum(f"date={LAST}" in p for p in written) < len(SYMBOLS)
    assert instance.get_materialized_partitions(MINUTE_BARS) == {FIRST.isoformat()}  # the whole session
    run_job(defs, instance, "minute_bars_job", {"dagster/partition": LAST.isoformat()})
    assert instance.get_materialized_partitions(MINUTE_BARS) == {FIRST.isoformat(), LAST.isoformat()}
    assert len(Lake(lake_root).list_files("minute_bars")) == 2 * len(SYMBOLS)


@pytest.mark.chaos("bad price file", faults="corrupt-parquet")
def test_a_corrupt_day_file_costs_only_its_own_partitions_and_is_named(defs, instance, lake_root):
    run_job(defs, instance, "minute_bars_job", session_range_tags(LAST, LAST))
    bad = f"minute_bars/symbol=XLE/date={LAST}.parquet"
    Lake(lake_root).write_bytes(bad, b"PAR1 not really parquet")

    daily = run_job(defs, instance, "daily_market_data_job", range_tags(LAST.isoformat(), LAST.isoformat()))
    meta = daily.asset_materializations_for_node("bar_coverage")[0].metadata
    assert list(meta["unreadable_files"].value) == [Lake(lake_root).uri(bad)]
    coverage = defs.load_asset_value("bar_coverage", partition_key=LAST.isoformat(), instance=instance)
    assert coverage.filter(pl.col("symbol") == "XLE")["coverage"].item() == 0.0
    assert coverage.filter(pl.col("symbol") != "XLE")["coverage"].min() > 0.5

    result = run_job(defs, instance, "consolidate_job", range_tags(SYMBOLS[0], SYMBOLS[-1]), ok=False)
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "XLE: unreadable parquet at" in str(failure.event_specific_data.error) and bad in str(
        failure.event_specific_data.error
    )
    assert instance.get_materialized_partitions(dg.AssetKey("consolidated_bars")) == set(SYMBOLS) - {"XLE"}


@pytest.mark.chaos("run killed mid-write", faults="kill-without-cleanup")
def test_a_chunk_is_recorded_before_the_next_starts_so_a_hard_kill_loses_one_chunk_at_most(
    lake_root, instance, monkeypatch
):
    """SIGKILL runs no cleanup: with that path disabled, a kill in the second chunk still leaves
    the first chunk's sessions recorded."""
    from finance_dag.defs.market_data import assets
    from finance_dag.platform.ranged import PartitionWriter

    monkeypatch.setattr(assets, "CHUNK_SESSIONS", 1)
    monkeypatch.setattr(PartitionWriter, "__exit__", lambda self, *exc: None)  # no cleanup on a kill
    defs = make_defs(lake_root)
    kill_mid_write(defs, instance, nth_write(3, f"date={LAST}"))  # the third file of the second session
    assert instance.get_materialized_partitions(MINUTE_BARS) == {FIRST.isoformat()}

"""Bad input files, then the fix and the re-run: the part the domain tests that refuse bad files
(``tests/lending``, ``tests/etf``, ``tests/market_data``, marked ``chaos`` too) stop short of.

- **lending**: the vendor's feed file for the last session has a negative fee. The run fails that
  day naming the file, the column and the ticker, and writes nothing of it; the other days'
  snapshots are recorded, but the ranged snapshot step failed, so nothing that reads the snapshots
  ran, for any day. The vendor re-delivers a good file; the "missing only" re-run (the day's
  snapshot, then the readers over the range) brings every lending asset to the fault-free lake
  without rewriting the recorded snapshots.
- **universe**: the ETF directory file ``otherlisted.txt`` arrives without its footer. The
  universe run fails naming the file, writes no universe; with the good file re-delivered, the
  re-run writes the fault-free universe.
- **price file**: a minute-bar day file in the lake is corrupt. Daily bars and coverage skip it,
  naming it, and show the symbol-day at coverage 0; the refill sensor requests it; the refill and
  the daily re-run bring minute bars, daily bars and coverage to the fault-free lake.
"""

import shutil
from datetime import date
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from finance_dag.core import calendar
from finance_dag.core.lake import Lake
from finance_dag.defs.etf.resources import EtfFilesResource
from finance_dag.defs.market_data import automation
from finance_dag.platform.storage import LakeResource
from finance_dag.sim.lending import SimulatedLending
from tests.chaos.support import asset_folders, compare, failure_text, object_keys, unreadable
from tests.lending.test_assets import NAMES, lending_defs
from tests.support import (
    ETF_WINDOW,
    SETTINGS,
    THANKSGIVING_WEEK,
    make_defs,
    run_job,
    run_universe,
    session_range_tags,
)

DAY = date(2024, 11, 29)
PARTITIONED_LENDING = [
    "lending_snapshots", "lending_prices", "lending_factors", "extended_lending_factors", "squeeze_scores",
    "daily_digest",
]  # fmt: skip


def materialised(instance, defs: dg.Definitions, job: str) -> set[tuple[str, str]]:
    """(asset, partition) pairs the instance has of the assets of ``job``."""
    keys = defs.resolve_job_def(job).asset_layer.executable_asset_keys
    return {(k.to_user_string(), p) for k in keys for p in instance.get_materialized_partitions(k)}


def lakes_equal(expected: Lake, actual: Lake, folders: list[str]) -> int:
    """Assert every folder equal row for row; the rows lost (0)."""
    lost = 0
    for folder in folders:
        result = compare(expected, actual, folder)
        assert result.equal, (folder, result)
        lost += result.rows_lost
    return lost


@pytest.mark.chaos("bad lending file")
def test_a_bad_lending_file_fails_its_day_and_after_redelivery_the_rerun_reaches_the_fault_free_lake(
    tmp_path, chaos
):
    days = calendar.sessions(date(2024, 11, 25), DAY)
    lending = SimulatedLending(7)

    def deliver(root: Path, bad: bool = False) -> tuple[dg.Definitions, Path]:
        defs, settings = lending_defs(root, LENDING_SOURCE="inbox")
        for day in days:
            lending.write_feed_file(NAMES.split(","), day, settings.lending_inbox)
        path = Path(settings.lending_inbox) / f"lending_{DAY}.csv"
        if bad:
            frame = pl.read_csv(path)
            fee = pl.when(pl.col("ticker") == "TSLA").then(-5.0).otherwise(pl.col("Fee All (BPS)"))
            frame.with_columns(fee.alias("Fee All (BPS)")).write_csv(path)
        return defs, path

    good_defs, _ = deliver(tmp_path / "fault_free")
    with dg.instance_for_test() as instance:
        run_job(good_defs, instance, "lending_job", session_range_tags(days[0], days[-1]))
    defs, bad_file = deliver(tmp_path / "lake", bad=True)
    chaos.inject(f"negative fee for TSLA in {bad_file.name}")
    expected, lake = Lake(str(tmp_path / "fault_free")), Lake(str(tmp_path / "lake"))

    with dg.instance_for_test() as instance:
        failed = run_job(defs, instance, "lending_job", session_range_tags(days[0], days[-1]), ok=False)
        message = failure_text(failed)
        assert str(bad_file) in message and "Fee All (BPS)" in message and "TSLA" in message, message
        chaos.note = "run failed naming the file, the column and the ticker"
        before = materialised(instance, defs, "lending_job")
        assert ("lending_snapshots", str(DAY)) not in before
        assert {p for a, p in before if a == "lending_snapshots"} == {str(d) for d in days[:-1]}
        written = [k for k in object_keys(lake) if not k.startswith("_inbox/")]
        of_the_day = [k for k in written if f"date={DAY}" in k]
        assert [k.split("/")[0] for k in of_the_day] == ["lending_prices"], of_the_day  # not from the feed
        assert unreadable(lake, [k for k in written if k.endswith(".parquet")]) == {}

        # The ranged snapshot step failed, so the run ran none of what reads the snapshots, for any
        # day: a "missing only" re-run is the bad day's snapshot, then the readers over the range.
        targeted = {str(d) for d in days}
        missing = {a: targeted - {p for b, p in before if b == a} for a in PARTITIONED_LENDING}
        missing = {a: m for a, m in missing.items() if m}
        assert missing.pop("lending_snapshots") == {str(DAY)}
        assert missing == dict.fromkeys(missing, targeted) and "lending_factors" in missing
        kept = {k: lake.modified(k) for k in written if k.startswith("lending_snapshots/")}

        lending.write_feed_file(NAMES.split(","), DAY, bad_file.parent)  # the vendor re-delivers
        chaos.inject("good file re-delivered")
        job = defs.resolve_job_def("lending_job")
        snapshot = job.get_subset(asset_selection={dg.AssetKey("lending_snapshots")})
        assert snapshot.execute_in_process(instance=instance, partition_key=str(DAY)).success
        readers = job.get_subset(asset_selection={dg.AssetKey(a) for a in [*missing, "factor_ic_report"]})
        assert readers.execute_in_process(
            instance=instance, tags=session_range_tags(days[0], days[-1])
        ).success
        recovered = materialised(instance, defs, "lending_job") - before
        assert len(recovered) == 1 + len(missing) * len(days)
        assert {k: lake.modified(k) for k in kept} == kept  # the recorded snapshots untouched

    folders = asset_folders(expected)
    assert "lending_snapshots" in folders and asset_folders(lake) == folders
    chaos.partitions_recovered, chaos.rows_lost = len(recovered), lakes_equal(expected, lake, folders)
    assert chaos.rows_lost == 0


@pytest.mark.chaos("bad universe file")
def test_a_directory_file_without_its_footer_writes_no_universe_and_the_rerun_writes_the_fault_free_one(
    tmp_path, chaos
):
    expected_root = str(tmp_path / "fault_free")
    good = make_defs(expected_root, env=ETF_WINDOW)
    with dg.instance_for_test() as instance:
        run_universe(
            good, instance, DAY
        )  # the simulated source drops the files in its inbox, then reads them
    inbox = tmp_path / "inbox"
    shutil.copytree(Path(expected_root) / "_inbox" / "etf", inbox)
    other = inbox / "otherlisted.txt"
    text = other.read_text()
    other.write_text("\n".join(text.splitlines()[:-1]) + "\n")  # the footer line is lost
    chaos.inject("otherlisted.txt without its footer")

    root = str(tmp_path / "lake")
    defs = make_defs(root, env=ETF_WINDOW, etf_files=EtfFilesResource(source="files", inbox=str(inbox)))
    expected, lake = Lake(expected_root), Lake(root)
    with dg.instance_for_test() as instance:
        failed = run_universe(defs, instance, DAY, ok=False)
        message = failure_text(failed)
        assert "otherlisted.txt" in message and "File Creation Time" in message, message
        chaos.note = "run failed naming the file and the missing footer"
        assert not [k for k in object_keys(lake) if k.startswith("etf_universe/")]  # nothing written
        assert not instance.get_materialized_partitions(dg.AssetKey("etf_universe"))

        other.write_text(text)  # re-delivered
        chaos.inject("good file re-delivered")
        run_universe(defs, instance, DAY)
        recovered = instance.get_materialized_partitions(dg.AssetKey("etf_universe"))
        assert recovered == {str(DAY)}

    chaos.partitions_recovered = len(recovered)
    chaos.rows_lost = lakes_equal(expected, lake, ["etf_universe"])
    assert chaos.rows_lost == 0


@pytest.mark.chaos("bad price file")
def test_a_corrupt_minute_bar_file_is_skipped_named_refilled_and_the_lake_ends_fault_free(tmp_path, chaos):
    first, last = THANKSGIVING_WEEK
    expected_root = str(tmp_path / "fault_free")
    with dg.instance_for_test() as instance:
        good = make_defs(expected_root)
        run_job(good, instance, "minute_bars_job", session_range_tags(first, last))
        run_job(good, instance, "daily_market_data_job", session_range_tags(first, last))
    expected = Lake(expected_root)

    root = str(tmp_path / "lake")
    defs, lake = make_defs(root), Lake(root)
    bad = f"minute_bars/symbol=XLE/date={last}.parquet"
    with dg.instance_for_test() as instance:
        run_job(defs, instance, "minute_bars_job", session_range_tags(first, last))
        lake.write_bytes(bad, b"PAR1 not really parquet")
        chaos.inject(f"corrupt {bad}")

        daily = run_job(defs, instance, "daily_market_data_job", session_range_tags(first, last))
        metas = {m.partition: m.metadata for m in daily.asset_materializations_for_node("bar_coverage")}
        assert set(metas) == {str(first), str(last)}  # every session recorded despite the bad file
        assert list(metas[str(last)]["unreadable_files"].value) == [lake.uri(bad)]
        coverage = defs.load_asset_value("bar_coverage", partition_key=str(last), instance=instance)
        assert coverage.filter(pl.col("symbol") == "XLE")["coverage"].item() == 0.0
        chaos.note = "daily bars and coverage skipped it, naming it; the refill sensor re-requested it"

        refill = automation.build_refill_sensor(SETTINGS)(
            dg.build_sensor_context(instance=instance, resources={"lake": LakeResource(root=root)})
        )
        (request,) = [r for r in refill.run_requests if r.partition_key == str(last)]
        assert "XLE" in request.run_config["ops"]["minute_bars"]["config"]["symbols"]
        refilled = defs.resolve_job_def("minute_bars_job").execute_in_process(
            instance=instance, partition_key=request.partition_key, run_config=request.run_config
        )
        assert refilled.success
        run_job(defs, instance, "daily_market_data_job", {"dagster/partition": str(last)})

    chaos.partitions_recovered = 1  # the symbol-day, through its session
    chaos.rows_lost = lakes_equal(expected, lake, ["minute_bars", "daily_bars", "bar_coverage"])
    assert chaos.rows_lost == 0

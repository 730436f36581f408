import os

import polars as pl
import pytest

from finance_dag.core.lake import Lake, StorageError, partition_path

FRAME = pl.DataFrame({"symbol": ["SPY", "QQQ"], "close": [1.5, 2.25]})


def test_partition_paths_are_hive_style():
    assert (
        partition_path("minute_bars", symbol="SPY", date="2024-11-29")
        == "minute_bars/symbol=SPY/date=2024-11-29.parquet"
    )
    assert partition_path("coverage_report") == "coverage_report/coverage_report.parquet"


def test_rewrite_replaces_a_partition_exactly(tmp_path):
    lake = Lake(str(tmp_path))
    path = partition_path("daily_bars", date="2024-11-29")
    lake.write_parquet(path, FRAME)
    lake.write_parquet(path, FRAME.head(1))
    assert lake.read_parquet(path).equals(FRAME.head(1))
    assert [f.path for f in lake.list_files("daily_bars")] == [path]
    assert not list(tmp_path.rglob("*.tmp")), "no temporary file is left behind"


def test_a_write_killed_midway_leaves_the_old_file_and_no_partial_one(tmp_path, monkeypatch):
    lake = Lake(str(tmp_path))
    path = partition_path("daily_bars", date="2024-11-29")
    lake.write_parquet(path, FRAME)

    def killed(src, dst):
        raise KeyboardInterrupt("killed between write and rename")

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        lake.write_parquet(path, FRAME.head(1))
    with pytest.raises(KeyboardInterrupt):
        lake.write_parquet(partition_path("daily_bars", date="2024-12-02"), FRAME)
    monkeypatch.undo()
    assert lake.read_parquet(path).equals(FRAME)
    assert [f.path for f in lake.list_files("daily_bars", suffix="")] == [path]


def test_a_bad_root_is_a_clear_error_naming_the_setting(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(StorageError, match=r"FINANCE_DAG_STORAGE='.*a_file/lake' is not usable"):
        Lake(str(blocker / "lake")).check()


def test_a_corrupt_file_names_the_file(tmp_path):
    lake = Lake(str(tmp_path))
    lake.write_bytes("daily_bars/date=2024-11-29.parquet", b"garbage")
    with pytest.raises(StorageError, match="unreadable parquet at .*date=2024-11-29.parquet"):
        lake.read_parquet("daily_bars/date=2024-11-29.parquet")
    with pytest.raises(StorageError, match="no file at .*date=2024-12-02.parquet"):
        lake.read_parquet("daily_bars/date=2024-12-02.parquet")


def test_a_killed_writers_staged_file_is_swept_when_the_lake_is_next_checked(tmp_path):
    """SIGKILL between write and rename leaves a staged file; the next run start removes it."""
    lake = Lake(str(tmp_path))
    lake.write_parquet(partition_path("daily_bars", date="2024-11-29"), FRAME)
    staged = tmp_path / "_tmp"
    stale, fresh = staged / "dead.tmp", staged / "in-flight.tmp"
    stale.write_bytes(b"half")
    fresh.write_bytes(b"another writer, right now")
    os.utime(stale, (0, 0))
    lake.check()
    assert not stale.exists() and fresh.exists()
    assert [f.path for f in lake.list_files("daily_bars", suffix="")] == [
        "daily_bars/date=2024-11-29.parquet"
    ]

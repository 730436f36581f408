"""The lake on a real S3-API server (moto in server mode on loopback)."""

import polars as pl
import pytest

from finance_dag.core.lake import Lake, StorageError, partition_path
from tests.support import SYMBOLS, THANKSGIVING_WEEK, make_defs, run_job, session_range_tags

pytestmark = pytest.mark.s3


def test_s3_round_trip_list_and_replace(s3_bucket):
    lake = Lake(f"s3://{s3_bucket}/prefix")
    lake.check()
    path = partition_path("daily_bars", date="2024-11-29")
    frame = pl.DataFrame({"symbol": ["SPY"], "close": [601.25]})
    lake.write_parquet(path, frame)
    lake.write_parquet(path, frame.with_columns(close=pl.lit(602.0)))
    assert lake.read_parquet(path)["close"].to_list() == [602.0]
    assert [f.path for f in lake.list_files("daily_bars")] == [path]
    assert lake.uri(path) == f"s3://{s3_bucket}/prefix/{path}"


def test_a_file_written_by_another_process_after_a_listing_is_seen(s3_bucket):
    """s3fs caches listings; the lake must not: a Celery worker or a re-run writes behind our back."""
    here, elsewhere = Lake(f"s3://{s3_bucket}/lake"), Lake(f"s3://{s3_bucket}/lake")
    here.write_parquet("x/one.parquet", pl.DataFrame({"v": [1]}))
    assert [f.path for f in here.list_files("x")] == ["x/one.parquet"]
    elsewhere.write_parquet("x/two.parquet", pl.DataFrame({"v": [2]}))
    assert here.exists("x/two.parquet") and here.read_parquet("x/two.parquet")["v"].to_list() == [2]
    assert [f.path for f in here.list_files("x")] == ["x/one.parquet", "x/two.parquet"]


def test_minute_bars_materialise_to_s3(s3_bucket, instance):
    defs = make_defs(f"s3://{s3_bucket}/lake")
    first, last = THANKSGIVING_WEEK
    run_job(defs, instance, "minute_bars_job", session_range_tags(last, last))
    session = defs.load_asset_value("minute_bars", partition_key=last.isoformat(), instance=instance)
    assert set(session["symbol"]) == set(SYMBOLS)
    bars = session.filter(pl.col("symbol") == SYMBOLS[0])
    assert isinstance(bars, pl.DataFrame) and bars.height > 200
    files = Lake(f"s3://{s3_bucket}/lake").list_files("minute_bars")
    assert len(files) == len(SYMBOLS)


def test_unreachable_endpoint_names_the_settings(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    lake = Lake("s3://nowhere/lake", endpoint_url="http://127.0.0.1:9")
    with pytest.raises(
        StorageError, match=r"FINANCE_DAG_STORAGE='s3://nowhere/lake' \(AWS_ENDPOINT_URL=http://127.0.0.1:9\)"
    ):
        lake.check()


def test_missing_bucket_fails_the_run_at_startup(s3_endpoint, monkeypatch, instance):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    defs = make_defs("s3://no-such-bucket/lake")
    result = run_job(defs, instance, "coverage_report_job", ok=False)
    failure = next(e for e in result.all_events if e.is_failure)
    assert "FINANCE_DAG_STORAGE='s3://no-such-bucket/lake'" in str(failure.event_specific_data)

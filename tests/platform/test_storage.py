"""Lake paths follow the full asset key and the partitions definition's own dimension names."""

import dagster as dg
import polars as pl
import pytest

from finance_dag.core.lake import Lake
from finance_dag.platform.partitions import trading_day_partitions
from finance_dag.platform.ranged import RANGE_TAG, describe_keys
from finance_dag.platform.storage import STATIC_DIMENSION, LakeIOManager, LakeResource, lake_path
from tests.support import PARTS, THANKSGIVING_WEEK, make_defs, run_job, session_range_tags


def test_multi_partitions_put_every_non_time_dimension_first_by_its_own_name():
    strategies = dg.StaticPartitionsDefinition(["momentum", "rsi"])
    defn = dg.MultiPartitionsDefinition({"date": PARTS.trading_days, "strategy": strategies})
    key = dg.AssetKey(["strategies", "backtests"])
    assert (
        lake_path(key, defn, "2024-11-29|rsi") == "strategies/backtests/strategy=rsi/date=2024-11-29.parquet"
    )
    date_symbol = dg.MultiPartitionsDefinition({"date": PARTS.trading_days, "symbol": PARTS.symbol})
    assert (
        lake_path(dg.AssetKey("minute_bars"), date_symbol, "2024-11-29|SPY")
        == "minute_bars/symbol=SPY/date=2024-11-29.parquet"
    )


def test_assets_sharing_a_last_key_component_never_share_a_folder():
    days = PARTS.trading_days
    lending = lake_path(dg.AssetKey(["lending", "scores"]), days, "2024-11-29")
    etf = lake_path(dg.AssetKey(["etf", "scores"]), days, "2024-11-29")
    assert lending == "lending/scores/date=2024-11-29.parquet" and etf == "etf/scores/date=2024-11-29.parquet"


def test_a_static_dimension_is_named_by_the_asset_never_guessed():
    strategies = dg.StaticPartitionsDefinition(["momentum"])
    key = dg.AssetKey("strategy_backtests")
    assert (
        lake_path(key, strategies, "momentum", "strategy") == "strategy_backtests/strategy=momentum.parquet"
    )
    with pytest.raises(ValueError, match=STATIC_DIMENSION):
        lake_path(key, strategies, "momentum")


def test_the_io_manager_writes_and_loads_by_the_same_rule(tmp_path):
    strategies = dg.StaticPartitionsDefinition(["momentum", "rsi"])

    @dg.asset(partitions_def=strategies, metadata={STATIC_DIMENSION: "strategy"}, key_prefix="strategies")
    def scores(context: dg.AssetExecutionContext) -> pl.DataFrame:
        return pl.DataFrame({"strategy": [context.partition_key], "sharpe": [1.0]})

    lake = LakeResource(root=str(tmp_path))
    resources = {"io_manager": LakeIOManager(lake=lake)}
    assert dg.materialize([scores], partition_key="rsi", resources=resources).success
    assert Lake(str(tmp_path)).exists("strategies/scores/strategy=rsi.parquet")
    defs = dg.Definitions(assets=[scores], resources=resources)
    loaded = defs.load_asset_value(["strategies", "scores"], partition_key="rsi")
    assert loaded["strategy"].to_list() == ["rsi"]


def test_trading_day_partitions_use_the_date_dimension():
    days = trading_day_partitions(PARTS.trading_days.start.date())
    assert lake_path(dg.AssetKey("daily_bars"), days, "2024-11-29") == "daily_bars/date=2024-11-29.parquet"


def test_a_run_names_the_partitions_it_covers(tmp_path, instance):
    assert (
        describe_keys(["2024-11-29", "2024-11-27", "2024-12-02"]) == "2024-11-27..2024-12-02 (3 partitions)"
    )
    assert describe_keys(["2024-11-29"]) == "2024-11-29 (1 partition)"
    day = THANKSGIVING_WEEK[1]
    result = run_job(make_defs(str(tmp_path)), instance, "minute_bars_job", session_range_tags(day, day))
    assert instance.get_run_by_id(result.run_id).tags[RANGE_TAG] == f"{day} (1 partition)"

from datetime import date

import pytest

from finance_dag.core.settings import SettingError, load_settings
from finance_dag.core.universe import DEMO_SYMBOLS, FULL_SYMBOLS, resolve_universe
from finance_dag.platform import partitions


def test_trading_day_partitions_are_exactly_the_sessions():
    defn = partitions.trading_day_partitions(date(2024, 11, 20), today=date(2024, 12, 3))
    keys = defn.get_partition_keys()
    window = [k for k in keys if k <= "2024-12-02"]
    assert window == [
        "2024-11-20", "2024-11-21", "2024-11-22", "2024-11-25", "2024-11-26",
        "2024-11-27", "2024-11-29", "2024-12-02",
    ]  # fmt: skip


def test_date_symbol_keys_read_date_then_symbol():
    defn = partitions.date_symbol
    assert set(defn.partition_dimension_names) == {"date", "symbol"}
    key = defn.get_partition_key_from_str("2024-11-29|SPY")
    assert key.keys_by_dimension == {"date": "2024-11-29", "symbol": "SPY"}
    assert partitions.split_key("2024-11-29|SPY") == (date(2024, 11, 29), "SPY")
    assert partitions.split_key(key) == (date(2024, 11, 29), "SPY")
    assert "2024-11-29|SPY" in defn.get_partition_keys()
    assert "2024-11-28|SPY" not in defn.get_partition_keys()


def test_universe_settings(tmp_path):
    assert resolve_universe("demo") == DEMO_SYMBOLS and 15 <= len(DEMO_SYMBOLS) <= 25
    assert resolve_universe("full") == FULL_SYMBOLS and len(FULL_SYMBOLS) >= 90
    assert set(DEMO_SYMBOLS) <= set(FULL_SYMBOLS)
    assert resolve_universe("spy, qqq,SPY") == ("SPY", "QQQ")
    listing = tmp_path / "universe.txt"
    listing.write_text("# my names\nAAPL\nbrk.b  # class B\n\n")
    assert resolve_universe(str(listing)) == ("AAPL", "BRK.B")
    with pytest.raises(SettingError, match="invalid symbols: 1ABC"):
        resolve_universe("SPY,1ABC")


def test_bad_settings_name_the_variable():
    with pytest.raises(SettingError, match="FINANCE_DAG_START_DATE"):
        load_settings({"FINANCE_DAG_START_DATE": "yesterday"})
    with pytest.raises(SettingError, match="FINANCE_DAG_COVERAGE_THRESHOLD"):
        load_settings({"FINANCE_DAG_COVERAGE_THRESHOLD": "85"})
    assert load_settings({}).storage == "./data"

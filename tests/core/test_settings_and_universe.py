from datetime import date

import pytest

from finance_dag.core.settings import SettingError, load_settings
from finance_dag.core.universe import DEMO_SYMBOLS, FULL_SYMBOLS, resolve_universe
from finance_dag.platform import partitions


def test_trading_day_partitions_are_exactly_the_sessions():
    defn = partitions.trading_day_partitions(date(2024, 11, 20), end=date(2024, 12, 3))
    assert defn.get_partition_keys() == [
        "2024-11-20", "2024-11-21", "2024-11-22", "2024-11-25", "2024-11-26",
        "2024-11-27", "2024-11-29", "2024-12-02", "2024-12-03",
    ]  # fmt: skip


def test_every_holiday_the_calendar_knows_is_excluded_ahead_of_time():
    """A code server started before a holiday must not offer it the next day."""
    from datetime import datetime

    from finance_dag.core.calendar import NEW_YORK

    defn = partitions.trading_day_partitions(date(2024, 11, 20))
    the_day_after = datetime(2026, 11, 27, 21, 0, tzinfo=NEW_YORK)  # Thanksgiving 2026 was the 26th
    keys = defn.get_partition_keys(current_time=the_day_after)
    assert "2026-11-25" in keys and "2026-11-27" in keys and "2026-11-26" not in keys
    assert "2025-12-25" not in keys and "2025-01-09" not in keys  # a holiday, a one-off closure


def test_a_session_is_offered_only_once_it_has_traded():
    from datetime import datetime

    from finance_dag.core.calendar import NEW_YORK

    defn = partitions.trading_day_partitions(date(2024, 11, 20))
    before = defn.get_partition_keys(current_time=datetime(2024, 12, 3, 12, 0, tzinfo=NEW_YORK))
    after = defn.get_partition_keys(current_time=datetime(2024, 12, 3, 20, 1, tzinfo=NEW_YORK))
    assert before[-1] == "2024-12-02" and after[-1] == "2024-12-03"


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
    with pytest.raises(SettingError, match="FINANCE_DAG_UNIVERSE=',' names no symbols"):
        load_settings({"FINANCE_DAG_UNIVERSE": ","})
    assert load_settings({}).storage == "./data"


@pytest.mark.parametrize("value", ["", "   ", "s3://"])
def test_an_empty_storage_root_fails_at_load(value):
    with pytest.raises(SettingError, match="FINANCE_DAG_STORAGE is empty"):
        load_settings({"FINANCE_DAG_STORAGE": value})


def test_a_start_date_outside_the_calendar_fails_at_load_naming_the_setting():
    today = date(2026, 11, 23)
    with pytest.raises(SettingError, match=r"FINANCE_DAG_START_DATE='2027-01-04' is in the future"):
        load_settings({"FINANCE_DAG_START_DATE": "2027-01-04"}, today=today)
    with pytest.raises(SettingError, match="FINANCE_DAG_START_DATE='2009-06-01' is before the calendar"):
        load_settings({"FINANCE_DAG_START_DATE": "2009-06-01"}, today=today)
    with pytest.raises(SettingError, match="FINANCE_DAG_END_DATE=2024-11-01 is before"):
        load_settings({"FINANCE_DAG_START_DATE": "2024-11-15", "FINANCE_DAG_END_DATE": "2024-11-01"})


def test_each_domain_window_follows_its_settings():
    settings = load_settings({"FINANCE_DAG_START_DATE": "2024-11-15", "FINANCE_DAG_END_DATE": "2024-11-29"})
    keys = partitions.DomainPartitions(settings.market_data).trading_days.get_partition_keys()
    assert keys[0] == "2024-11-15" and keys[-1] == "2024-11-29" and len(keys) == 10

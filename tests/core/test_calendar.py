from datetime import UTC, date, datetime

import pytest

from finance_dag.core import calendar


def test_sessions_skip_weekends_holidays_and_one_off_closures():
    days = calendar.sessions(date(2024, 11, 25), date(2024, 12, 2))
    assert days == [
        date(2024, 11, 25),
        date(2024, 11, 26),
        date(2024, 11, 27),
        date(2024, 11, 29),
        date(2024, 12, 2),
    ]
    assert not calendar.is_session(date(2025, 1, 9))  # national day of mourning
    assert not calendar.is_session(date(2024, 12, 25))


@pytest.mark.parametrize("day", [date(2024, 7, 3), date(2024, 11, 29), date(2024, 12, 24)])
def test_early_closes_have_210_minutes(day):
    assert calendar.expected_minutes(day) == 210
    minutes = calendar.regular_minutes(day)
    assert len(minutes) == 210 and len(set(minutes.tolist())) == 210


def test_full_day_minutes_follow_dst_in_utc():
    winter, summer = calendar.regular_minutes(date(2024, 3, 8)), calendar.regular_minutes(date(2024, 3, 11))
    assert len(winter) == len(summer) == 390
    assert winter[0].astype(datetime).replace(tzinfo=UTC).hour == 14  # 09:30 EST = 14:30 UTC
    assert summer[0].astype(datetime).hour == 13  # 09:30 EDT = 13:30 UTC
    assert str(summer[-1]).endswith("19:59:00.000000")  # the last minute starts at 15:59 New York


def test_extended_window_runs_from_four_to_close_plus_four_hours():
    pre, post = calendar.extended_window(date(2024, 11, 29))
    assert pre == datetime(2024, 11, 29, 9, 0, tzinfo=UTC)  # 04:00 EST
    assert post == datetime(2024, 11, 29, 22, 0, tzinfo=UTC)  # 13:00 close + 4 h


def test_session_open_close_rejects_non_sessions():
    with pytest.raises(ValueError, match="2024-11-28 is not an XNYS trading session"):
        calendar.session_open_close(date(2024, 11, 28))


def test_closed_weekdays_cache_agrees_with_the_calendar(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = calendar.closed_weekdays(date(2024, 1, 2), date(2025, 12, 31))
    assert list(tmp_path.rglob("*.json")), "the answer is cached for the next import"
    assert calendar.closed_weekdays(date(2024, 1, 2), date(2025, 12, 31)) == first
    assert date(2024, 11, 28) in first and date(2025, 1, 9) in first
    assert all(d.weekday() < 5 and not calendar.is_session(d) for d in first)


def test_sessions_before_is_the_lookback_window_ending_on_the_day():
    from finance_dag.core import calendar

    window = calendar.sessions_before(date(2024, 11, 29), 3)
    assert window == [
        date(2024, 11, 25),
        date(2024, 11, 26),
        date(2024, 11, 27),
        date(2024, 11, 29),
    ]  # no 11-28

"""Freshness expectations follow the schedules that keep the assets current."""

from datetime import timedelta

import dagster as dg
import pytest

from finance_dag.definitions import build_definitions
from finance_dag.platform.freshness import after_schedule, shift_cron
from tests.support import make_defs, settings_for


def minute_of_day(cron: str) -> int:
    minute, hour, *_ = cron.split()
    return int(hour) * 60 + int(minute)


def window(policy: dg.FreshnessPolicy) -> tuple[int, int, str]:
    """Where a cron freshness policy expects a materialisation: (opens, deadline) in minutes of
    the New York day, and its days field."""
    deadline = minute_of_day(policy.deadline_cron)
    opens = deadline - int(policy.lower_bound_delta.total_seconds() // 60)
    return opens, deadline, policy.deadline_cron.split(maxsplit=4)[4]


def test_each_scheduled_asset_is_expected_within_the_hour_after_its_schedule(tmp_path):
    defs = make_defs(str(tmp_path))
    specs = {spec.key: spec for spec in defs.resolve_all_asset_specs()}
    checked = set()
    for schedule in defs.schedules:
        keys = defs.resolve_job_def(schedule.job_name).asset_layer.selected_asset_keys
        tick = minute_of_day(schedule.cron_schedule)
        for key in keys:
            policy = specs[key].freshness_policy
            if policy is None:
                continue
            assert policy.timezone == schedule.execution_timezone == "America/New_York", key
            opens, deadline, days = window(policy)
            assert opens <= tick < deadline and days == schedule.cron_schedule.split(maxsplit=4)[4], key
            checked.add(key.to_user_string())
    lending = {
        "lending_snapshots",
        "lending_factors",
        "extended_lending_factors",
        "squeeze_scores",
        "daily_digest",
    }
    risk = {
        "factor_exposures",
        "factor_returns",
        "factor_covariance",
        "risk_attribution",
        "factor_adjusted_signals",
    }
    assert lending | risk | {"minute_bars", "etf_universe", "etf_prices", "etf_factor_scores"} <= checked


def test_the_market_data_automation_is_expected_after_the_close_schedule(tmp_path):
    defs = make_defs(str(tmp_path))
    after_close = next(s for s in defs.schedules if s.name == "after_close_schedule")
    for name in ("daily_bars", "bar_coverage", "coverage_report", "consolidated_bars"):
        opens, deadline, _ = window(
            defs.resolve_assets_def(name).specs_by_key[dg.AssetKey(name)].freshness_policy
        )
        assert opens == minute_of_day(after_close.cron_schedule) and deadline == 21 * 60 + 30, name


def test_a_fixed_window_expects_nothing_and_crons_shift_within_the_day():
    live = settings_for()
    policy = after_schedule(live, live.risk, "45 19 * * 1-5")
    assert policy.deadline_cron == "45 20 * * 1-5" and policy.lower_bound_delta == timedelta(hours=1)
    pinned = settings_for(RISK_START_DATE="2024-08-20", RISK_END_DATE="2024-11-29")
    assert after_schedule(pinned, pinned.risk, "45 19 * * 1-5") is None  # the domain's window is fixed
    replay = settings_for(END_DATE="2024-11-29")  # the market-data window: a replay of history
    assert after_schedule(replay, replay.risk, "45 19 * * 1-5") is None
    assert shift_cron("15 20 * * 1-5", timedelta(minutes=75)) == "30 21 * * 1-5"
    with pytest.raises(ValueError, match="leaves the day"):
        shift_cron("30 23 * * 1-5", timedelta(hours=1))
    with pytest.raises(ValueError, match="fixed"):
        shift_cron("*/5 * * * *", timedelta(hours=1))


def test_a_domain_on_a_fixed_window_expects_no_freshness_the_others_do(tmp_path):
    defs = build_definitions(
        settings_for(str(tmp_path), LENDING_START_DATE="2024-10-01", LENDING_END_DATE="2024-11-29")
    )
    for spec in defs.resolve_all_asset_specs():
        if spec.group_name == "lending":
            assert spec.freshness_policy is None, spec.key
    assert (
        defs.resolve_assets_def("factor_covariance")
        .specs_by_key[dg.AssetKey("factor_covariance")]
        .freshness_policy
    )

"""The ETF jobs and the daily schedules; ``execute_trades`` (defs/etf/execution.py) is never scheduled.

- ``etf_universe_job``: the universe of a session (materialise it for the end of a history
  backfill first);
- ``etf_history_job``: prices and the research layout for a range of sessions in one run (the
  history backfill; it collects for the newest universe on or before the range's end).
- ``etf_job``: one session end to end: universe, prices, research layout, scores, target
  portfolio, walk-forward backtest.
- ``trade_plan_job``: the session's plan against the broker's account (read-only).
"""

import dagster as dg

from finance_dag.platform.schedules import session_schedule

GROUP = "etf"
JOB = "etf_job"
HISTORY_JOB = "etf_history_job"
UNIVERSE_JOB = "etf_universe_job"
PLAN_JOB = "trade_plan_job"
SCHEDULE = "0 19 * * 1-5"  # 19:00 New York on weekdays: the day's closes are in
PLAN_SCHEDULE = "30 19 * * 1-5"  # after the pipeline


def build_jobs() -> list:
    return [
        dg.define_asset_job(
            UNIVERSE_JOB,
            selection=dg.AssetSelection.assets("etf_universe"),
            description="The ETF universe of a session from the directory and category files (before a history backfill).",
        ),
        dg.define_asset_job(
            HISTORY_JOB,
            selection=dg.AssetSelection.assets("etf_prices", "etf_price_history"),
            description="ETF price history for a range of sessions in one run (materialise etf_universe for the range's end first).",
        ),
        dg.define_asset_job(
            JOB,
            selection=dg.AssetSelection.groups(GROUP) - dg.AssetSelection.assets("trade_plan"),
            description=(
                "One session of the ETF pipeline: universe, prices, research layout, scores, target portfolio, "
                "walk-forward backtest."
            ),
        ),
        dg.define_asset_job(
            PLAN_JOB,
            selection=dg.AssetSelection.assets("trade_plan"),
            description="The session's trade plan against the broker's account (read-only): one session per run.",
        ),
    ]


def build_schedules() -> list[dg.ScheduleDefinition]:
    return [
        session_schedule(
            "etf_daily", JOB, SCHEDULE, "Every session at 19:00 New York: the day's ETF pipeline."
        ),
        session_schedule(
            "trade_plan_daily",
            PLAN_JOB,
            PLAN_SCHEDULE,
            "Every session at 19:30 New York: the plan against the account.",
        ),
    ]

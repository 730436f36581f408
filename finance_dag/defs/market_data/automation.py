"""Jobs, the after-close schedule, the low-coverage refill sensor and declarative automation."""

import json

import dagster as dg

from finance_dag.core import calendar
from finance_dag.defs.market_data.assets import (
    GROUP,
    bar_coverage,
    coverage_report,
    daily_bars,
    minute_bars,
)
from finance_dag.market_data.coverage import refill_candidates
from finance_dag.platform.partitions import SETTINGS, session_rectangle_tags
from finance_dag.platform.storage import LakeResource

REFILL_SESSIONS = 5  # sessions the refill sensor looks back over
REFILL_MAX_ATTEMPTS = 2
REFILL_PER_TICK = 25

minute_bars_job = dg.define_asset_job(
    "minute_bars_job",
    selection=[minute_bars],
    description="Gap-fill minute bars for a date x symbol range.",
)
daily_market_data_job = dg.define_asset_job(
    "daily_market_data_job",
    selection=[daily_bars, bar_coverage],
    description="Daily bars and coverage for a range of sessions.",
)
coverage_report_job = dg.define_asset_job("coverage_report_job", selection=[coverage_report])
consolidate_job = dg.define_asset_job(
    "consolidate_job",
    selection=["consolidated_bars"],
    description="Compact the lake per symbol-year.",
)


@dg.schedule(
    job=minute_bars_job,
    cron_schedule="30 17 * * 1-5",
    execution_timezone=calendar.NEW_YORK.key,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="After the close: gap-fill the session that just ended for every symbol in one run.",
)
def after_close_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    day = context.scheduled_execution_time.astimezone(calendar.NEW_YORK).date()
    if not calendar.is_session(day):
        return dg.SkipReason(f"{day.isoformat()} is not an XNYS session")
    return dg.RunRequest(run_key=day.isoformat(), tags=session_rectangle_tags(day, day))


@dg.sensor(
    job=minute_bars_job,
    minimum_interval_seconds=600,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description=(
        "Re-requests minute_bars partitions of the last sessions whose coverage is below "
        "FINANCE_DAG_COVERAGE_THRESHOLD, at most twice each, so vendors can fill late data."
    ),
)
def low_coverage_refill(context: dg.SensorEvaluationContext, lake: LakeResource) -> dg.SensorResult:
    files = lake.lake.list_files("bar_coverage")[-REFILL_SESSIONS:]
    if not files:
        return dg.SensorResult(skip_reason="no bar_coverage partitions yet")
    daily = lake.lake.read_many(f.path for f in files)
    attempts: dict[str, int] = json.loads(context.cursor) if context.cursor else {}
    keys = refill_candidates(
        daily, SETTINGS.coverage_threshold, attempts, REFILL_MAX_ATTEMPTS, REFILL_PER_TICK
    )
    if not keys:
        return dg.SensorResult(skip_reason="every recent symbol-day is above threshold or already retried")
    for key in keys:
        attempts[key] = attempts.get(key, 0) + 1
    recent = {f.path.rsplit("date=", 1)[1].removesuffix(".parquet") for f in files}
    attempts = {k: v for k, v in attempts.items() if k.split("|")[0] in recent}
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=f"refill-{k}-{attempts[k]}", partition_key=k) for k in keys],
        cursor=json.dumps(attempts, sort_keys=True),
    )


market_data_automation = dg.AutomationConditionSensorDefinition(
    "market_data_automation",
    target=dg.AssetSelection.groups(GROUP),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Keeps daily bars, coverage and the research layout up to date after new minute bars.",
)

"""Jobs, the after-close schedule, the low-coverage refill sensor and declarative automation."""

import json

import dagster as dg

from finance_dag.core.settings import Settings
from finance_dag.market_data.coverage import refill_candidates
from finance_dag.platform.schedules import session_schedule
from finance_dag.platform.storage import LakeResource

GROUP = "market_data"
REFILL_SESSIONS = 5  # sessions the refill sensor looks back over
REFILL_MAX_ATTEMPTS = 2
REFILL_PER_TICK = 25
AFTER_CLOSE = "15 20 * * 1-5"  # 20:15 New York: post-market (until 20:00) is over


def build_jobs() -> list:
    return [
        dg.define_asset_job(
            "minute_bars_job",
            selection=["minute_bars"],
            description="Gap-fill minute bars of every symbol for a range of sessions, in one run.",
        ),
        dg.define_asset_job(
            "daily_market_data_job",
            selection=["daily_bars", "bar_coverage"],
            description="Daily bars and coverage for a range of sessions, in one run.",
        ),
        dg.define_asset_job(
            "coverage_report_job",
            selection=["coverage_report"],
            description="Per-symbol coverage over every materialised session, tiers and heatmap.",
        ),
        dg.define_asset_job(
            "consolidate_job",
            selection=["consolidated_bars"],
            description="Compact the lake per symbol-year for research reads.",
        ),
    ]


def build_after_close_schedule() -> dg.ScheduleDefinition:
    return session_schedule(
        "after_close_schedule",
        "minute_bars_job",
        AFTER_CLOSE,
        "After post-market ends (20:15 New York): gap-fill the session that just closed, regular and "
        "extended hours, for every symbol in one run.",
    )


def build_refill_sensor(settings: Settings) -> dg.SensorDefinition:
    threshold = settings.coverage_threshold

    @dg.sensor(
        job_name="minute_bars_job",
        minimum_interval_seconds=600,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description=(
            "Re-requests the symbol-days of the last sessions whose coverage is below "
            "FINANCE_DAG_COVERAGE_THRESHOLD (one run per session, naming the symbols), at most twice "
            "each, so vendors can fill late data."
        ),
    )
    def low_coverage_refill(context: dg.SensorEvaluationContext, lake: LakeResource) -> dg.SensorResult:
        files = lake.lake.list_files("bar_coverage")[-REFILL_SESSIONS:]
        if not files:
            return dg.SensorResult(skip_reason="no bar_coverage partitions yet")
        daily = lake.lake.read_many(f.path for f in files)
        attempts: dict[str, int] = json.loads(context.cursor) if context.cursor else {}
        keys = refill_candidates(daily, threshold, attempts, REFILL_MAX_ATTEMPTS, REFILL_PER_TICK)
        if not keys:
            return dg.SensorResult(
                skip_reason="every recent symbol-day is above threshold or already retried"
            )
        by_day: dict[str, list[str]] = {}
        for key in keys:
            attempts[key] = attempts.get(key, 0) + 1
            day, symbol = key.split("|")
            by_day.setdefault(day, []).append(symbol)
        recent = {f.path.rsplit("date=", 1)[1].removesuffix(".parquet") for f in files}
        attempts = {k: v for k, v in attempts.items() if k.split("|")[0] in recent}
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    run_key="refill-"
                    + ",".join(f"{day}|{s}-{attempts[f'{day}|{s}']}" for s in sorted(names)),
                    partition_key=day,
                    run_config={"ops": {"minute_bars": {"config": {"symbols": sorted(names)}}}},
                )
                for day, names in sorted(by_day.items())
            ],
            cursor=json.dumps(attempts, sort_keys=True),
        )

    return low_coverage_refill


def build_automation_sensor() -> dg.AutomationConditionSensorDefinition:
    return dg.AutomationConditionSensorDefinition(
        "market_data_automation",
        target=dg.AssetSelection.groups(GROUP),
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Keeps daily bars, coverage and the research layout up to date after new minute bars.",
    )

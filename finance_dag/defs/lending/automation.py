"""The lending job, the daily schedule and the inbox sensor."""

import json

import dagster as dg

from finance_dag.core import calendar
from finance_dag.core.lake import Lake
from finance_dag.core.settings import Settings
from finance_dag.lending.feed import LENDING_FEED
from finance_dag.platform.schedules import session_schedule

GROUP = "lending"
JOB = "lending_job"
SCHEDULE = "30 20 * * 1-5"  # 20:30 New York on weekdays: the vendor's file has landed


def build_jobs() -> list:
    return [
        dg.define_asset_job(
            JOB,
            selection=dg.AssetSelection.groups(GROUP),
            description="Validate the lending feed and compute the lending factors for a range of sessions, in one run.",
        )
    ]


def build_schedule() -> dg.ScheduleDefinition:
    return session_schedule(
        "lending_daily",
        JOB,
        SCHEDULE,
        "Every session at 20:30 New York: the day's lending assets, in one run.",
    )


def build_inbox_sensor(settings: Settings) -> dg.SensorDefinition:
    inbox = settings.lending_inbox

    @dg.sensor(
        job_name=JOB,
        minimum_interval_seconds=120,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description=f"Starts a session's lending run when its file (lending_YYYY-MM-DD.csv/.parquet) lands in {inbox}.",
    )
    def lending_inbox_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        requests = []
        for info in Lake(inbox).list_files("", suffix=""):
            name = info.path.rsplit("/", 1)[-1]
            day = LENDING_FEED.file_day(name)
            if day is None or not calendar.is_session(day) or seen.get(name) == info.version:
                continue
            seen[name] = info.version
            requests.append(dg.RunRequest(run_key=f"{name}@{info.version}", partition_key=day.isoformat()))
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(seen, sort_keys=True))

    return lending_inbox_sensor

"""Schedules every domain shares: one run for the session of the day, on sessions only."""

import dagster as dg

from finance_dag.core import calendar


def session_schedule(name: str, job_name: str, cron: str, description: str) -> dg.ScheduleDefinition:
    """At ``cron`` (New York), request ``job_name`` for that day's session partition; skip days
    that are not XNYS sessions (holidays, closures). Starts stopped."""

    @dg.schedule(
        name=name,
        job_name=job_name,
        cron_schedule=cron,
        execution_timezone=calendar.NEW_YORK.key,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=description,
    )
    def schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        day = context.scheduled_execution_time.astimezone(calendar.NEW_YORK).date()
        if not calendar.is_session(day):
            return dg.SkipReason(f"{day.isoformat()} is not an XNYS session")
        return dg.RunRequest(run_key=day.isoformat(), partition_key=day.isoformat())

    return schedule

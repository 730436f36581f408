"""The risk jobs and the daily schedule.

- ``risk_history_job``: exposures and factor returns for a range of sessions in one run (the
  covariance reads 252 sessions of factor returns);
- ``risk_job``: one session of the whole group (after the ETF domain's session, whose books it
  attributes).
"""

import dagster as dg

from finance_dag.platform.schedules import session_schedule

GROUP = "risk"
JOB = "risk_job"
HISTORY_JOB = "risk_history_job"
SCHEDULE = "45 19 * * 1-5"  # 19:45 New York, after the ETF pipeline and its plan


def build_jobs() -> list:
    return [
        dg.define_asset_job(
            HISTORY_JOB,
            selection=dg.AssetSelection.assets("factor_exposures", "factor_returns"),
            description="Exposures and factor returns for a range of sessions in one run.",
        ),
        dg.define_asset_job(
            JOB,
            selection=dg.AssetSelection.groups(GROUP),
            description="One session of the risk group: exposures, factor returns, covariance, attribution, signals.",
        ),
    ]


def build_schedules() -> list[dg.ScheduleDefinition]:
    return [session_schedule("risk_daily", JOB, SCHEDULE, "Every session at 19:45 New York: the risk group.")]

"""The executor every job of the code location runs its steps with, chosen by settings
(``FINANCE_DAG_EXECUTOR``): Dagster's multiprocess executor by default, in-process, or Celery
workers for the production profile (deploy/prod, docs/production.md).

With ``celery``, a run's steps are queued on the broker ``FINANCE_DAG_CELERY_BROKER`` and executed
by ``dagster-celery worker`` processes on any machine that has the code, the instance
(``DAGSTER_HOME``) and the settings; results come back through ``FINANCE_DAG_CELERY_BACKEND``.
Both URLs are read from the environment when a run starts (a password in them never shows in the
UI). Concurrency pools still apply per step, so a vendor's pool admits one step across all workers.

The broker is RabbitMQ: a step is acknowledged only when it ends, so when a whole worker dies its
connection closes and RabbitMQ gives the step to another worker at once (Redis as a broker would
hold it for its ``visibility_timeout``, an hour). A step whose own process dies while its worker
lives fails the run instead (``WorkerLostError``), so a step that kills its process is retried by
Dagster's run retries, a bounded number of times, never redelivered for ever.
"""

import dagster as dg

from finance_dag.core.settings import Settings

CELERY_BROKER = "FINANCE_DAG_CELERY_BROKER"
CELERY_BACKEND = "FINANCE_DAG_CELERY_BACKEND"


def executor_for(settings: Settings) -> dg.ExecutorDefinition | None:
    """The executor of ``settings.executor`` (None: Dagster's default multiprocess executor)."""
    if settings.executor == "in_process":
        return dg.in_process_executor
    if settings.executor == "celery":
        from dagster_celery import celery_executor

        return celery_executor.configured(
            {
                "broker": {"env": CELERY_BROKER},
                "backend": {"env": CELERY_BACKEND},
                # one step at a time per worker process, acknowledged when done: a step whose
                # worker dies is redelivered instead of lost (deploy/prod/celery.yaml, the same)
                "config_source": {"worker_prefetch_multiplier": 1, "task_acks_late": True},
            },
            name="celery",
        )
    return None

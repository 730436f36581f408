"""A backfill launched exactly as the Dagster UI launches it, for tests and benchmarks
(private Dagster APIs: the daemon's iteration and dagster-graphql's test executor).

The UI's materialise dialog sends the GraphQL mutation ``launchPartitionBackfill`` with the
selected assets and partition names; the backfill daemon then turns it into runs. ``ui_backfill``
sends the same mutation through dagster-graphql and drives the daemon's iteration in-process
until the backfill ends (no 30 s daemon sleep), so tests can count the runs it produced.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from dagster._core.execution.backfill import BulkActionStatus
from dagster._core.storage.dagster_run import DagsterRunStatus, RunsFilter
from dagster._core.storage.tags import BACKFILL_ID_TAG
from dagster._daemon.backfill import execute_backfill_iteration
from dagster_graphql.test.utils import execute_dagster_graphql

MUTATION = """
mutation LaunchPartitionBackfill($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
  }
}"""
# An instance that launches runs at once (no queue daemon here), pools limited as in deploy/.
INSTANCE_OVERRIDES = {
    "run_coordinator": {"module": "dagster._core.run_coordinator", "class": "DefaultRunCoordinator"},
    "concurrency": {"pools": {"default_limit": 1}},
    "telemetry": {"enabled": False},
}


@dataclass
class BackfillOutcome:
    seconds: float
    runs: int
    status: str  # the backfill's final status, e.g. COMPLETED_SUCCESS


def ui_backfill(workspace, assets: Sequence[str], partitions: Sequence[str]) -> BackfillOutcome:
    """Launch a backfill of ``assets`` over ``partitions`` as the UI does and run it to the end.

    ``workspace`` is a daemon workspace context (``create_test_daemon_workspace_context``).
    """
    finished = {
        BulkActionStatus.COMPLETED,
        BulkActionStatus.COMPLETED_SUCCESS,
        BulkActionStatus.COMPLETED_FAILED,
        BulkActionStatus.FAILED,
        BulkActionStatus.CANCELED,
    }
    run_finished = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
    started = time.perf_counter()
    params = {
        "tags": [{"key": "dagster/from_ui", "value": "true"}],
        "assetSelection": [{"path": [asset]} for asset in assets],
        "partitionNames": list(partitions),
        "fromFailure": False,
    }
    answer = execute_dagster_graphql(workspace.create_request_context(), MUTATION, {"backfillParams": params})
    launched = answer.data["launchPartitionBackfill"]
    if launched["__typename"] != "LaunchBackfillSuccess":
        raise RuntimeError(f"launchPartitionBackfill: {launched}")
    backfill_id = launched["backfillId"]
    instance = workspace.instance
    by_backfill = RunsFilter(tags={BACKFILL_ID_TAG: backfill_id})
    while instance.get_backfill(backfill_id).status not in finished:
        list(execute_backfill_iteration(workspace, logging.getLogger("BackfillDaemon")))
        while any(r.status not in run_finished for r in instance.get_runs(by_backfill)):
            time.sleep(0.05)
    return BackfillOutcome(
        time.perf_counter() - started,
        len(instance.get_runs(by_backfill)),
        instance.get_backfill(backfill_id).status.value,
    )

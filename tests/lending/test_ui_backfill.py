"""A history backfill of the lending group launched from the UI (the materialise dialog's
GraphQL mutation, the backfill daemon) is one run, not one per session.

The window ends with the backfill, as in `make dev`: a backfill that ends earlier also targets
the sessions after it whose lookback reads it (Dagster follows the time-window partition
mappings downstream), in runs of their own (docs/operations.md)."""

import dagster as dg
import pytest

from finance_dag.platform.ui_backfill import ui_backfill
from tests.support import ui_workspace

pytestmark = pytest.mark.cli  # starts a code server, as `dagster dev` does
SESSIONS = ["2024-11-22", "2024-11-25", "2024-11-26", "2024-11-27", "2024-11-29"]
PARTITIONED = (
    "lending_snapshots", "lending_factors", "extended_lending_factors", "lending_prices",
    "squeeze_scores", "daily_digest",
)  # fmt: skip


def test_a_ui_backfill_of_the_lending_group_is_one_run(tmp_path, monkeypatch):
    env = {
        "LENDING_UNIVERSE": "SPY,QQQ,AAPL,MSFT,TSLA",
        "LENDING_START_DATE": "2024-11-01",
        "LENDING_END_DATE": SESSIONS[-1],
    }
    with ui_workspace(tmp_path, monkeypatch, **env) as (workspace, instance):
        outcome = ui_backfill(workspace, list(PARTITIONED), SESSIONS)
        assert (outcome.runs, outcome.status) == (1, "COMPLETED_SUCCESS")
        for name in PARTITIONED:
            assert instance.get_materialized_partitions(dg.AssetKey(name)) == set(SESSIONS), name

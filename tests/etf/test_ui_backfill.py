"""An ETF price-history backfill launched from the UI (the materialise dialog's GraphQL
mutation, the backfill daemon) is one run, not one per session."""

import dagster as dg
import pytest

from finance_dag.platform.ui_backfill import ui_backfill
from tests.support import ui_workspace

pytestmark = pytest.mark.cli  # starts a code server, as `dagster dev` does
SESSIONS = ["2024-11-22", "2024-11-25", "2024-11-26", "2024-11-27", "2024-11-29"]


def test_a_ui_backfill_of_etf_prices_is_one_run(tmp_path, monkeypatch):
    env = {"ETF_START_DATE": "2024-11-01", "ETF_END_DATE": SESSIONS[-1]}
    with ui_workspace(tmp_path, monkeypatch, **env) as (workspace, instance):
        assert ui_backfill(workspace, ["etf_universe"], SESSIONS[-1:]).status == "COMPLETED_SUCCESS"
        outcome = ui_backfill(workspace, ["etf_prices"], SESSIONS)
        assert (outcome.runs, outcome.status) == (1, "COMPLETED_SUCCESS")
        assert instance.get_materialized_partitions(dg.AssetKey("etf_prices")) == set(SESSIONS)

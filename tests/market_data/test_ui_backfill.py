"""A backfill launched from the UI (the materialise dialog's GraphQL mutation, the backfill
daemon) is one run for any selection of sessions, as the dialog promises."""

import dagster as dg
import pytest

from finance_dag.core.lake import Lake
from finance_dag.platform.ui_backfill import ui_backfill
from tests.support import SYMBOLS, ui_workspace

pytestmark = pytest.mark.cli  # starts a code server, as `dagster dev` does
SESSIONS = ["2024-11-25", "2024-11-26", "2024-11-27", "2024-11-29"]


def test_a_ui_backfill_of_sessions_and_their_daily_assets_is_one_run_each(tmp_path, monkeypatch):
    with ui_workspace(tmp_path, monkeypatch, START_DATE="2024-11-01") as (workspace, instance):
        bars = ui_backfill(workspace, ["minute_bars"], SESSIONS)
        daily = ui_backfill(workspace, ["daily_bars", "bar_coverage"], SESSIONS)
        assert (bars.runs, bars.status) == (1, "COMPLETED_SUCCESS")
        assert (daily.runs, daily.status) == (1, "COMPLETED_SUCCESS")
        assert instance.get_materialized_partitions(dg.AssetKey("minute_bars")) == set(SESSIONS)
        assert instance.get_materialized_partitions(dg.AssetKey("bar_coverage")) == set(SESSIONS)
    assert len(Lake(str(tmp_path / "lake")).list_files("minute_bars")) == len(SESSIONS) * len(SYMBOLS)

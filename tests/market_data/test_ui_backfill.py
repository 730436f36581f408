"""A backfill launched from the UI (the materialise dialog's GraphQL mutation, the backfill
daemon) is one run for any selection of sessions, as the dialog promises."""

import os

import dagster as dg
import pytest
from dagster._core.test_utils import create_test_daemon_workspace_context
from dagster._core.workspace.load_target import ModuleTarget

from finance_dag.core.lake import Lake
from finance_dag.platform.ui_backfill import INSTANCE_OVERRIDES, ui_backfill
from tests.support import SYMBOLS

pytestmark = pytest.mark.cli  # starts a code server, as `dagster dev` does
SESSIONS = ["2024-11-25", "2024-11-26", "2024-11-27", "2024-11-29"]


def test_a_ui_backfill_of_sessions_and_their_daily_assets_is_one_run_each(tmp_path, monkeypatch):
    lake = tmp_path / "lake"
    monkeypatch.setenv("FINANCE_DAG_STORAGE", str(lake))  # the code server inherits it
    monkeypatch.setenv("FINANCE_DAG_START_DATE", "2024-11-01")
    os.makedirs(tmp_path / "home")
    target = ModuleTarget("finance_dag.definitions", None, os.getcwd(), "finance_dag")
    with (
        dg.instance_for_test(temp_dir=str(tmp_path / "home"), overrides=INSTANCE_OVERRIDES) as instance,
        create_test_daemon_workspace_context(target, instance) as workspace,
    ):
        assert workspace.create_request_context().get_code_location_error("finance_dag") is None
        bars = ui_backfill(workspace, ["minute_bars"], SESSIONS)
        daily = ui_backfill(workspace, ["daily_bars", "bar_coverage"], SESSIONS)
        assert (bars.runs, bars.status) == (1, "COMPLETED_SUCCESS")
        assert (daily.runs, daily.status) == (1, "COMPLETED_SUCCESS")
        assert instance.get_materialized_partitions(dg.AssetKey("minute_bars")) == set(SESSIONS)
        assert instance.get_materialized_partitions(dg.AssetKey("bar_coverage")) == set(SESSIONS)
    assert len(Lake(str(lake)).list_files("minute_bars")) == len(SESSIONS) * len(SYMBOLS)

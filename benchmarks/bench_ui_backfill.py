"""§6: a backfill launched as the UI launches it vs the CLI range run of the same partitions.

The UI path is the UI's own GraphQL mutation (``launchPartitionBackfill`` with the params the
materialise dialog sends), then the backfill daemon driven in-process until the backfill ends,
each run in its own process (DefaultRunLauncher, as under ``dagster dev``), pools limited to
one step as in deploy/dagster.yaml. The CLI path is ``dagster asset materialize
--partition-range``. Both on the demo universe (20 symbols) over 10 sessions, each on its own
empty lake and instance; the daily assets (daily_bars + bar_coverage) are measured the same way
on top. Target: UI wall time <= 1.5 x CLI, in one run.

    .venv/bin/python -m benchmarks.bench_ui_backfill
"""

import os
import subprocess
import sys
import tempfile
import time
from datetime import date

import dagster as dg
from dagster._core.test_utils import create_test_daemon_workspace_context
from dagster._core.workspace.load_target import ModuleTarget

from benchmarks.common import verdict
from finance_dag.core import calendar
from finance_dag.platform.ui_backfill import INSTANCE_OVERRIDES, ui_backfill

FIRST, LAST = "2024-11-15", "2024-11-29"
TARGET = 1.5
ISSUE = "issue 6"
SELECTIONS = {"minute_bars": ["minute_bars"], "daily": ["daily_bars", "bar_coverage"]}


def environment(lake: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FINANCE_DAG_")}
    return {**clean, "FINANCE_DAG_STORAGE": lake, "FINANCE_DAG_START_DATE": "2024-11-01"}


def cli_range(env: dict[str, str], assets: list[str]) -> float:
    command = [
        sys.executable, "-m", "dagster", "asset", "materialize", "-m", "finance_dag.definitions",
        "--select", ",".join(assets), "--partition-range", f"{FIRST}...{LAST}",
    ]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"CLI run failed: {done.stderr[-2000:]}")
    return time.perf_counter() - started


def main() -> int:
    sessions = [d.isoformat() for d in calendar.sessions(date.fromisoformat(FIRST), date.fromisoformat(LAST))]
    ok = True
    with tempfile.TemporaryDirectory(prefix="finance_dag_bench_") as work:
        cli_env = environment(os.path.join(work, "lake_cli"))
        os.makedirs(cli_env.setdefault("DAGSTER_HOME", os.path.join(work, "home_cli")))
        cli = {name: cli_range(cli_env, assets) for name, assets in SELECTIONS.items()}

        os.environ.update(environment(os.path.join(work, "lake_ui")))  # the code server inherits it
        os.makedirs(os.path.join(work, "home_ui"))
        target = ModuleTarget("finance_dag.definitions", None, os.getcwd(), "finance_dag")
        with (
            dg.instance_for_test(
                temp_dir=os.path.join(work, "home_ui"), overrides=INSTANCE_OVERRIDES
            ) as instance,
            create_test_daemon_workspace_context(target, instance) as wpc,
        ):
            error = wpc.create_request_context().get_code_location_error("finance_dag")
            assert error is None, error
            for name, assets in SELECTIONS.items():
                outcome = ui_backfill(wpc, assets, sessions)
                seconds, runs, status = outcome.seconds, outcome.runs, outcome.status
                print(
                    f"{name}: {len(sessions)} sessions x 20 symbols; UI backfill {seconds:.1f} s in {runs} run(s) "
                    f"({status}); CLI --partition-range {cli[name]:.1f} s"
                )
                ok &= runs == 1 and status == "COMPLETED_SUCCESS"
                ok &= verdict(
                    f"{name} UI backfill / CLI range run, {len(sessions)} sessions x 20 symbols",
                    seconds / cli[name],
                    TARGET,
                    "x",
                    f"(UI {seconds:.2f} s)",
                    issue=ISSUE,
                    floor=cli[name],
                    floor_unit="s",
                    floor_note="CLI --partition-range run",
                )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

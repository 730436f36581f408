"""The deployment end to end through its API: ``dagster-webserver`` and ``dagster-daemon run`` as
subprocesses on deploy/dagster.yaml, driven over GraphQL as the UI and scripts drive it.

deploy/dagster.yaml sets no run coordinator, so Dagster's default, the queued run coordinator,
applies: a submitted run waits in the queue until the daemon launches it, and a backfill's runs
are requested by the daemon's backfill loop (every 30 s) and launched by the same queue.
"""

import time

import pytest

from finance_dag.core.lake import Lake
from finance_dag.platform.ui_backfill import MUTATION as LAUNCH_PARTITION_BACKFILL
from tests.e2e.servers import LOCATION, SESSIONS, WINDOW, deployment, wait_until

pytestmark = [
    pytest.mark.cli,
    pytest.mark.e2e,
    # DagsterGraphQLClient still calls gql the pre-4.0 way
    pytest.mark.filterwarnings("ignore:Using a DocumentNode is deprecated"),
]

ASSET_GRAPH = """
query {
  assetNodes {
    assetKey { path }
    groupName
    dependencyKeys { path }
    dependedByKeys { path }
  }
}"""
BACKFILL = """
query Backfill($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { status numPartitions runs { id status tags { key value } } }
    ... on PythonError { message }
  }
}"""
BACKFILL_ENDED = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}
RUN_ENDED = {"SUCCESS", "FAILURE", "CANCELED"}
SYMBOLS = WINDOW["UNIVERSE"].split(",")
GROUPS = {
    "minute_bars": "market_data",
    "coverage_report": "market_data",
    "squeeze_scores": "lending",
    "target_portfolio": "etf",
    "trade_plan": "etf",
    "risk_attribution": "risk",
    "strategy_report": "strategies",
}


def test_the_api_serves_the_asset_graph_runs_a_job_and_a_ui_backfill_through_the_daemon(tmp_path):
    started = time.monotonic()
    with deployment(tmp_path) as dagster:
        client = dagster.client()

        # The asset graph as the UI's lineage view reads it.
        nodes = {"/".join(n["assetKey"]["path"]): n for n in dagster.graphql(ASSET_GRAPH)["assetNodes"]}
        assert {n["groupName"] for n in nodes.values()} == {
            "market_data",
            "lending",
            "etf",
            "risk",
            "strategies",
        }
        assert {name: nodes[name]["groupName"] for name in GROUPS} == GROUPS

        def upstream(name: str) -> set[str]:
            return {"/".join(k["path"]) for k in nodes[name]["dependencyKeys"]}

        def downstream(name: str) -> set[str]:
            return {"/".join(k["path"]) for k in nodes[name]["dependedByKeys"]}

        # trade_plan <- target_portfolio <- etf_factor_scores <- etf_prices <- etf_universe
        chain = ["trade_plan", "target_portfolio", "etf_factor_scores", "etf_prices", "etf_universe"]
        for child, parent in zip(chain, chain[1:], strict=False):
            assert parent in upstream(child), (child, upstream(child))
        assert upstream("etf_universe") == set()
        assert {"daily_bars", "bar_coverage", "consolidated_bars"} <= downstream("minute_bars")
        assert "daily_bars" in upstream("strategy_backtests")
        assert upstream("strategy_report") == {"strategy_backtests"}
        assert {"target_portfolio", "factor_covariance"} <= upstream("risk_attribution")

        # The backfill first: the daemon's backfill loop wakes every 30 s, so the job run below
        # goes through the queue while the backfill waits for its next tick.
        params = {
            "tags": [{"key": "dagster/from_ui", "value": "true"}, {"key": "e2e", "value": "backfill"}],
            "assetSelection": [{"path": ["minute_bars"]}, {"path": ["daily_bars"]}],
            "partitionNames": SESSIONS,
            "fromFailure": False,
        }
        launched = dagster.graphql(LAUNCH_PARTITION_BACKFILL, {"backfillParams": params})
        launched = launched["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        backfill_id = launched["backfillId"]

        # A job run for one session, submitted with tags through the Python client.
        run_id = client.submit_job_execution(
            "minute_bars_job",
            repository_location_name=LOCATION,
            tags={"dagster/partition": SESSIONS[0], "e2e": "job"},
        )

        def run_ended():
            dagster.check_alive()
            status = client.get_run_status(run_id).value
            return status if status in RUN_ENDED else None

        assert wait_until(run_ended, 120, f"run {run_id} of minute_bars_job") == "SUCCESS"

        def backfill_ended():
            dagster.check_alive()
            answer = dagster.graphql(BACKFILL, {"id": backfill_id})["partitionBackfillOrError"]
            assert answer["__typename"] == "PartitionBackfill", answer
            if answer["status"] in BACKFILL_ENDED and all(r["status"] in RUN_ENDED for r in answer["runs"]):
                return answer
            return None

        backfill = wait_until(backfill_ended, 180, f"backfill {backfill_id}", every=1)
        assert backfill["status"] == "COMPLETED_SUCCESS", backfill
        assert backfill["runs"], backfill
        assert {r["status"] for r in backfill["runs"]} == {"SUCCESS"}, backfill["runs"]
        for run in backfill["runs"]:
            tags = {t["key"]: t["value"] for t in run["tags"]}
            assert tags["dagster/backfill"] == backfill_id and tags["e2e"] == "backfill", tags

    lake = Lake(str(tmp_path / "lake"))
    minute = {f.path for f in lake.list_files("minute_bars")}
    daily = {f.path for f in lake.list_files("daily_bars")}
    for day in SESSIONS:
        assert {p for p in minute if day in p and any(s in p for s in SYMBOLS)}, (day, sorted(minute))
        assert {p for p in daily if day in p}, (day, sorted(daily))
    print(f"e2e API test: {time.monotonic() - started:.0f} s")

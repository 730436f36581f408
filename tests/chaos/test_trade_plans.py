"""A stale and a drifted trade plan, then the re-plan and the execution: the part the execution
tests that refuse them (``tests/etf``, marked ``chaos`` too) stop short of.

The ETF domain is materialised once; each case runs on a copy of that lake (its simulated broker
account lives in the lake). The fault-free result is the account after executing the day's plan
live. A stale plan (``max_plan_age_hours=0``) and a drifted account (someone bought 5 shares of a
planned symbol at the broker after planning) are refused, naming why, with nothing placed; the
re-planned day executes live, each order placed once (a retry finds them all), and the account
ends exactly where the re-plan said: for the stale plan that is the fault-free account (positions
and cash); after the drift, the same symbols, sized from the cash the by-hand buy left.
"""

import json
import shutil
from collections import Counter

import dagster as dg
import pytest

from finance_dag.brokers.base import OrderRequest
from finance_dag.core.lake import Lake
from finance_dag.defs.etf.resources import BrokerResource
from finance_dag.etf import trades
from tests.etf.test_assets import DAY, KEY, PLAN, execute, outcomes
from tests.support import ETF_WINDOW, failure_messages, make_defs, materialise_etf, run_job

ACCOUNT = "brokers/simulated/account.json"


@pytest.fixture(scope="module")
def etf_lake(tmp_path_factory) -> str:
    """The ETF domain materialised once (universe, prices, scores, portfolio, the day's plan)."""
    root = str(tmp_path_factory.mktemp("chaos_etf") / "lake")
    materialise_etf(make_defs(root, env=ETF_WINDOW), dg.DagsterInstance.ephemeral(), DAY)
    return root


def copy_of(etf_lake: str, folder) -> tuple[dg.Definitions, dg.DagsterInstance, Lake]:
    root = str(folder / "lake")
    shutil.copytree(etf_lake, root)
    return make_defs(root, env=ETF_WINDOW), dg.DagsterInstance.ephemeral(), Lake(root)


def promised(lake: Lake) -> dict[str, float]:
    """The positions the day's plan leads to: those it was made on, plus its trades."""
    state, data = trades.read_plan(lake, PLAN)
    quantities = Counter({p["symbol"]: p["quantity"] for p in state["positions"]})
    for trade in trades.parse_plan_csv(data):
        quantities[trade.symbol] += trade.quantity if trade.side == "buy" else -trade.quantity
    return {s: q for s, q in quantities.items() if q}


def holdings(lake: Lake) -> tuple[dict[str, float], float]:
    account = json.loads(lake.read_bytes(ACCOUNT))
    positions = {s: p["quantity"] for s, p in account["positions"].items() if p["quantity"]}
    return positions, round(account["cash"], 2)


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param("stale-plan", marks=pytest.mark.chaos("stale trade plan")),
        pytest.param("drifted-account", marks=pytest.mark.chaos("drifted trade plan")),
    ],
)
def test_a_refused_plan_places_nothing_and_the_replanned_day_reaches_the_fault_free_account(
    etf_lake, tmp_path, chaos, fault
):
    defs, instance, lake = copy_of(etf_lake, tmp_path / "fault_free")
    planned = len(trades.parse_plan_csv(lake.read_bytes(f"{PLAN}/trade_plan.csv")))
    assert outcomes(execute(defs, instance, live=True)) == {"placed": planned}
    expected = holdings(lake)

    defs, instance, lake = copy_of(etf_lake, tmp_path / "faulty")
    config: dict = {"live": True}
    if fault == "stale-plan":
        config["max_plan_age_hours"] = 0.0
        why = "the plan is stale"
        chaos.inject("plan older than max_plan_age_hours (0 h)")
    else:
        state, plan_bytes = trades.read_plan(lake, PLAN)
        symbol = next(t.symbol for t in trades.parse_plan_csv(plan_bytes) if t.side == "buy")
        broker = BrokerResource(storage=lake.root).connect("trade", prices=state["prices"])
        broker.place_order(OrderRequest("by-hand-1", symbol, "buy", 5))
        why = f"the position in {symbol} changed"
        chaos.inject(f"5 shares of {symbol} bought at the broker after planning")
    before = lake.read_bytes(ACCOUNT)
    refused = execute(defs, instance, ok=False, **config)
    messages = failure_messages(refused)
    assert any(why in m and "nothing was placed" in m for m in messages), messages
    assert lake.read_bytes(ACCOUNT) == before  # nothing placed, nothing cancelled
    chaos.note = f"refused: {why}; re-planned and executed once"

    run_job(defs, instance, "trade_plan_job", {"dagster/partition": KEY})  # the re-plan
    chaos.inject("re-planned")
    replanned = len(trades.parse_plan_csv(lake.read_bytes(f"{PLAN}/trade_plan.csv")))
    assert outcomes(execute(defs, instance, live=True)) == {"placed": replanned}
    assert outcomes(execute(defs, instance, live=True)) == {"already_placed": replanned}  # a retry
    orders = Counter(o["client_order_id"] for o in json.loads(lake.read_bytes(ACCOUNT))["orders"])
    assert max(orders.values()) == 1  # no order placed twice
    positions, cash = holdings(lake)
    target = promised(lake)
    chaos.partitions_recovered = 1  # the day's plan
    chaos.rows_lost = sum(positions.get(s) != q for s, q in target.items())  # positions not reached
    # every trade of the re-plan filled once, nothing else
    assert chaos.rows_lost == 0 and positions == target
    if fault == "stale-plan":
        assert (positions, cash) == expected  # the same plan again: the fault-free account
    else:  # the by-hand buy spent cash the plan's buys are scaled to: the re-plan sizes from what is left
        assert set(positions) == set(expected[0]) and cash >= trades.RESERVE

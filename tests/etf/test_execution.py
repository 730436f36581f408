"""Guarded execution against the simulated broker: plans the world moved away from are refused with
the reason, a dry run touches nothing, and a live run retried after a disconnect places every
order exactly once."""

import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from finance_dag.brokers.base import BrokerError, OrderRequest
from finance_dag.brokers.simulated import STATE_PATH, SimulatedBroker, starting_account
from finance_dag.core.lake import Lake
from finance_dag.etf.execution import ExecutionError, check_plan, execute_plan
from finance_dag.etf.trades import (
    build_plan,
    cleanup_proposal,
    parse_plan_csv,
    plan_csv,
    plan_hash,
    portfolio_state,
    read_plan,
    write_plan,
)

PRICES = {"SPY": 500.0, "QQQ": 400.0, "IWM": 200.0, "TLT": 90.0, "GLD": 180.0, "EFA": 75.0}
TARGET = {"SPY": 0.3, "GLD": 0.3, "EFA": 0.3}
PLANNED = datetime(2025, 3, 3, 22, tzinfo=UTC)
NOW = PLANNED + timedelta(hours=12)
CALLS = {"account", "positions", "open_orders", "find_order", "cancel", "place_order", "fills"}


class DropsAfter(SimulatedBroker):
    """Loses the connection at the (``orders`` + 1)-th ``place_order``: before the order leaves,
    or, with ``lost_answer``, after the broker took it (the answer never arrives)."""

    def __init__(self, lake: Lake, orders: int, lost_answer: bool = False) -> None:
        super().__init__(lake, PRICES.__getitem__, clock=lambda: NOW)
        self.left, self.lost_answer = orders, lost_answer

    def place_order(self, request: OrderRequest):
        if self.left == 0:
            if self.lost_answer:
                super().place_order(request)
            raise BrokerError("simulated: place_order: connection lost")
        self.left -= 1
        return super().place_order(request)


def sim(lake: Lake, **kwargs) -> SimulatedBroker:
    start = starting_account(list(PRICES), PRICES.__getitem__)
    return SimulatedBroker(lake, PRICES.__getitem__, start, clock=lambda: NOW, **kwargs)


@pytest.fixture
def lake(tmp_path) -> Lake:
    """A simulated account after the cleanup phase, with a plan written beside it."""
    lake = Lake(str(tmp_path / "lake"))
    broker = sim(lake)
    cleanup = cleanup_proposal(broker.positions(), broker.open_orders())
    for order in cleanup.cancel:
        broker.cancel(order.order_id)
    execute_plan(cleanup.cover, broker, live=True)
    account, positions = broker.account(), broker.positions()
    plan = build_plan(TARGET, account, positions, PRICES)
    data = plan_csv(plan)
    write_plan(
        lake, "etf/plan", plan, portfolio_state(plan, account, positions, PRICES, plan_hash(data), PLANNED)
    )
    return lake


def test_the_cleanup_left_a_clean_account(lake):
    broker = sim(lake)
    assert broker.open_orders() == [] and all(p.quantity > 0 for p in broker.positions())
    assert broker.account().cash == 190_000.0  # 191,980 - covering 22 TLT at 90


def test_an_untouched_plan_passes_its_checks(lake):
    state, data = read_plan(lake, "etf/plan")
    assert check_plan(state, data, sim(lake), NOW) == []


@pytest.mark.chaos("drifted trade plan", faults="position-drift cash-drift")
def test_drifted_positions_are_refused_naming_symbol_and_quantities(lake):
    state, data = read_plan(lake, "etf/plan")
    sim(lake).place_order(OrderRequest("by-hand", "SPY", "buy", 5))
    assert check_plan(state, data, sim(lake), NOW) == [
        "the position in SPY changed: 40 shares at planning, 45 now",
        "cash changed by $-2,500.00: $190,000.00 at planning, $187,500.00 now (tolerance $250.00)",
    ]


def credit(lake: Lake, amount: float) -> None:
    """Cash arriving outside the plan (a dividend, a transfer), straight into the account."""
    account = json.loads(lake.read_bytes(STATE_PATH))
    account["cash"] += amount
    lake.write_bytes(STATE_PATH, json.dumps(account).encode())


@pytest.mark.chaos("drifted trade plan", faults="cash-drift")
def test_cash_beyond_the_tolerance_is_refused(lake):
    state, data = read_plan(lake, "etf/plan")
    credit(lake, 200.0)
    assert check_plan(state, data, sim(lake), NOW) == []
    assert check_plan(state, data, sim(lake), NOW, cash_tolerance=100.0) == [
        "cash changed by $200.00: $190,000.00 at planning, $190,200.00 now (tolerance $100.00)"
    ]


@pytest.mark.chaos("edited trade plan", faults="edited-plan")
def test_an_edited_plan_file_is_refused(lake):
    state, data = read_plan(lake, "etf/plan")
    edited = data.replace(b",buy,85,", b",buy,850,")
    assert edited != data
    [reason] = check_plan(state, edited, sim(lake), NOW)
    assert reason.startswith("the plan file was edited after planning: its sha256 is ")


@pytest.mark.chaos("stale trade plan", faults="stale-plan other-account")
def test_a_stale_plan_and_another_account_are_refused(lake):
    state, data = read_plan(lake, "etf/plan")
    reasons = check_plan({**state, "account_id": "U123"}, data, sim(lake), PLANNED + timedelta(hours=25))
    assert reasons == [
        "the plan is stale: created 2025-03-03T22:00:00+00:00, 1 day, 1:00:00 before now, "
        "more than the 1 day, 0:00:00 allowed",
        "the plan was made for account U123, the broker is on SIM-0001",
    ]


def test_a_dry_run_lists_the_orders_and_touches_no_broker(lake):
    state, data = read_plan(lake, "etf/plan")
    before = lake.read_bytes(STATE_PATH)
    report = execute_plan(parse_plan_csv(data), sim(lake, fail_on=CALLS), live=False)
    assert [(r.symbol, r.side, r.quantity, r.outcome) for r in report.rows] == [
        ("IWM", "sell", 100, "dry_run"),
        ("QQQ", "sell", 50, "dry_run"),
        ("EFA", "buy", 780, "dry_run"),
        ("GLD", "buy", 324, "dry_run"),
        ("SPY", "buy", 85, "dry_run"),
    ]
    assert report.account is None and report.fills == () and lake.read_bytes(STATE_PATH) == before


def test_a_live_run_places_sells_then_buys_and_reports_fills_and_the_end_state(lake):
    _, data = read_plan(lake, "etf/plan")
    trades = parse_plan_csv(data)
    report = execute_plan(sorted(trades, key=lambda t: t.symbol), sim(lake), live=True)  # order restored
    assert [(r.symbol, r.outcome, r.filled_quantity, r.avg_price) for r in report.rows] == [
        ("IWM", "placed", 100, 200.0),
        ("QQQ", "placed", 50, 400.0),
        ("EFA", "placed", 780, 75.0),
        ("GLD", "placed", 324, 180.0),
        ("SPY", "placed", 85, 500.0),
    ]
    assert {f.client_order_id for f in report.fills} == {t.client_order_id for t in trades}
    assert {p.symbol: p.quantity for p in report.positions} == {"EFA": 780, "GLD": 324, "SPY": 125}
    assert report.account.cash == 70_680.0  # the reserve kept: 190,000 + 40,000 - 159,320


@pytest.mark.chaos("order never placed twice", faults="disconnect")
@pytest.mark.parametrize("lost_answer", [False, True], ids=["before-sending", "answer-lost"])
def test_a_retried_live_run_places_each_order_exactly_once(lake, lost_answer):
    state, data = read_plan(lake, "etf/plan")
    trades = parse_plan_csv(data)
    with pytest.raises(ExecutionError, match=r"stopped at trade 3 of 5 \(buy 780 EFA") as failed:
        execute_plan(trades, DropsAfter(lake, orders=2, lost_answer=lost_answer), live=True)
    first = failed.value.report
    assert [(r.symbol, r.outcome) for r in first.rows] == [
        ("IWM", "placed"),
        ("QQQ", "placed"),
        ("EFA", "failed"),
    ]
    assert "2 trades placed or found before it, 2 not attempted" in first.error

    broker = sim(lake)
    assert check_plan(state, data, broker, NOW) == []  # the plan's own fills are expected
    second = execute_plan(trades, broker, live=True)
    efa = "already_placed" if lost_answer else "placed"
    assert [(r.symbol, r.outcome) for r in second.rows] == [
        ("IWM", "already_placed"),
        ("QQQ", "already_placed"),
        ("EFA", efa),
        ("GLD", "placed"),
        ("SPY", "placed"),
    ]
    orders = Counter(o["client_order_id"] for o in json.loads(lake.read_bytes(STATE_PATH))["orders"])
    assert all(orders[t.client_order_id] == 1 for t in trades) and len(second.fills) == 5
    assert {p.symbol: p.quantity for p in second.positions} == {"EFA": 780, "GLD": 324, "SPY": 125}


@pytest.mark.chaos("order never placed twice", faults="disconnect-on-lookup")
def test_a_disconnect_while_looking_up_an_order_stops_before_placing_it(lake):
    _, data = read_plan(lake, "etf/plan")
    with pytest.raises(ExecutionError, match="find_order: connection lost") as failed:
        execute_plan(parse_plan_csv(data), sim(lake, fail_on={"find_order"}), live=True)
    assert [r.outcome for r in failed.value.report.rows] == ["failed"]
    assert sim(lake).find_order(parse_plan_csv(data)[0].client_order_id) is None

"""The simulated broker: a deterministic starting account, immediate market fills, open limit
orders, refused duplicates, simulated disconnects, and one account shared by every instance on a
lake."""

from datetime import UTC, datetime

import pytest

from finance_dag.brokers.base import BrokerError, OrderRequest, Position
from finance_dag.brokers.simulated import STATE_PATH, SimulatedBroker, StartingAccount, starting_account
from finance_dag.core.lake import Lake

PRICES = {"SPY": 500.0, "QQQ": 400.0, "IWM": 200.0, "TLT": 90.0, "GLD": 180.0}
T0 = datetime(2025, 3, 3, 15, tzinfo=UTC)


def broker(lake: Lake, **kwargs) -> SimulatedBroker:
    start = starting_account(list(PRICES), PRICES.__getitem__)
    return SimulatedBroker(lake, PRICES.__getitem__, start, clock=lambda: T0, **kwargs)


@pytest.fixture
def lake(tmp_path) -> Lake:
    return Lake(str(tmp_path / "lake"))


def test_the_starting_account_is_250k_with_longs_a_short_and_a_stale_order(lake):
    sim = broker(lake)
    assert sim.account().net_liquidation == 250_000.0
    # $20,000 each in the first three symbols bought 10 % below today, a $2,000 short in the fourth
    assert sim.positions() == [
        Position("IWM", 100, 180.0, 200.0),
        Position("QQQ", 50, 360.0, 400.0),
        Position("SPY", 40, 450.0, 500.0),
        Position("TLT", -22, 90.0, 90.0),
    ]
    assert sim.account().cash == 250_000 - 100 * 200 - 50 * 400 - 40 * 500 + 22 * 90
    [stale] = sim.open_orders()
    assert (stale.symbol, stale.side, stale.quantity, stale.limit_price) == ("SPY", "buy", 10, 250.0)


def test_no_symbols_start_all_cash(lake):
    sim = SimulatedBroker(lake, PRICES.__getitem__)
    assert sim.account().cash == sim.account().net_liquidation == 250_000.0
    assert sim.positions() == [] and sim.open_orders() == []


def test_market_orders_fill_at_once_and_update_cash_and_average_cost(lake):
    sim = broker(lake)
    order = sim.place_order(OrderRequest("a-1", "SPY", "buy", 10))
    assert (order.status, order.filled_quantity) == ("filled", 10)
    spy = next(p for p in sim.positions() if p.symbol == "SPY")
    assert (spy.quantity, spy.avg_cost) == (50, (40 * 450 + 10 * 500) / 50)
    sim.place_order(OrderRequest("a-2", "TLT", "buy", 30))  # covers the 22 short and goes long 8
    tlt = next(p for p in sim.positions() if p.symbol == "TLT")
    assert (tlt.quantity, tlt.avg_cost) == (8, 90.0)
    sim.place_order(OrderRequest("a-3", "IWM", "sell", 100))  # sold out: the position disappears
    assert "IWM" not in {p.symbol for p in sim.positions()}
    assert sim.account().cash == 191_980 - 5_000 - 2_700 + 20_000
    [fill] = [f for f in sim.fills() if f.client_order_id == "a-1"]
    assert (fill.quantity, fill.price, fill.time) == (10, 500.0, T0)
    assert sim.fills(since=datetime(2025, 3, 4, tzinfo=UTC)) == []


def test_limit_orders_fill_only_when_marketable(lake):
    sim = broker(lake)
    resting = sim.place_order(OrderRequest("l-1", "GLD", "buy", 5, "limit", 170.0))
    crossing = sim.place_order(OrderRequest("l-2", "GLD", "sell", 5, "limit", 175.0))
    assert (resting.status, crossing.status) == ("open", "filled")
    assert {o.client_order_id for o in sim.open_orders()} == {"manual-stale-1", "l-1"}
    sim.cancel(resting.order_id)
    assert sim.find_order("l-1").status == "cancelled"
    with pytest.raises(BrokerError, match="is cancelled, not open"):
        sim.cancel(resting.order_id)


def test_a_duplicate_client_order_id_is_refused_and_nothing_changes(lake):
    sim = broker(lake)
    sim.place_order(OrderRequest("dup", "SPY", "buy", 1))
    before = lake.read_bytes(STATE_PATH)
    with pytest.raises(BrokerError, match="'dup' already used"):
        sim.place_order(OrderRequest("dup", "SPY", "buy", 1))
    assert lake.read_bytes(STATE_PATH) == before


@pytest.mark.parametrize(
    "request_",
    [
        OrderRequest("x", "SPY", "buy", 0),
        OrderRequest("x", "SPY", "buy", 1, "limit"),
        OrderRequest("x", "ZZZ", "buy", 1),
    ],
)
def test_malformed_or_unpriced_requests_are_refused(lake, request_):
    with pytest.raises(BrokerError, match="simulated: place_order"):
        broker(lake).place_order(request_)


def test_fail_on_names_the_calls_that_disconnect(lake):
    sim = broker(lake, fail_on={"place_order"})
    assert sim.account().account_id == "SIM-0001"  # other calls answer
    with pytest.raises(BrokerError, match="simulated: place_order: connection lost"):
        sim.place_order(OrderRequest("f-1", "SPY", "buy", 1))
    sim.fail_on.clear()
    assert sim.find_order("f-1") is None


def test_the_account_persists_across_instances_on_one_lake(lake):
    first = broker(lake)
    placed = first.place_order(OrderRequest("p-1", "GLD", "buy", 10))
    first.close()
    other_start = StartingAccount("OTHER", 1.0)  # ignored: the lake already holds an account
    second = SimulatedBroker(lake, PRICES.__getitem__, other_start)
    assert second.account() == first.account()
    assert second.find_order("p-1") == placed
    assert second.positions() == first.positions()
    assert second.fills() == first.fills()
    with pytest.raises(BrokerError, match="already used"):
        second.place_order(OrderRequest("p-1", "GLD", "buy", 10))

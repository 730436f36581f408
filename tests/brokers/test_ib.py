"""IbBroker through the real ib_async client against the loopback fake IB Gateway."""

import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from finance_dag.brokers.base import Account, BrokerError, OrderRequest, Position
from finance_dag.brokers.ib import IbBroker
from finance_dag.market_data.daily import DAILY_PRICE_SCHEMA
from finance_dag.testing.ib_gateway import FakeIbGateway

pytestmark = pytest.mark.vendors

QUOTES = {"SPY": 500.0, "AGG": 98.5, "TLT": 90.25}
NOW = datetime(2024, 6, 28, 14, 30, tzinfo=UTC)
ACCOUNT = "DU1234567"


def no_history(symbol: str, start: date, end: date) -> pl.DataFrame:
    return pl.DataFrame(schema=DAILY_PRICE_SCHEMA)


def quote(symbol: str) -> float:
    if symbol not in QUOTES:
        raise LookupError(symbol)
    return QUOTES[symbol]


@pytest.fixture
def fake() -> Iterator[FakeIbGateway]:
    positions = {"SPY": (10, 480.0), "AGG": (-20, 99.0)}
    with FakeIbGateway(no_history, quote=quote, account=ACCOUNT, cash=50_000.0, positions=positions,
                       clock=lambda: NOW) as gateway:  # fmt: skip
        yield gateway


def broker(fake: FakeIbGateway, client_id: int = 11, **kwargs) -> IbBroker:
    return IbBroker(port=fake.port, client_id=client_id, timeout=kwargs.pop("timeout", 3.0), **kwargs)


def test_reads_account_positions_and_open_orders(fake) -> None:
    ib = broker(fake)
    try:
        net = 50_000.0 + 10 * 500.0 - 20 * 98.5
        assert ib.account() == Account(ACCOUNT, 50_000.0, net, "USD")
        assert ib.positions() == [Position("AGG", -20, 99.0), Position("SPY", 10, 480.0)]
        assert ib.open_orders() == []
        resting = ib.place_order(OrderRequest("plan-1:TLT", "TLT", "buy", 7, "limit", 85.0))
        assert (resting.status, resting.filled_quantity, resting.limit_price) == ("open", 0, 85.0)
        assert ib.open_orders() == [resting]
    finally:
        ib.close()


def test_market_order_fills_with_order_ref_and_utc_time(fake) -> None:
    ib = broker(fake)
    try:
        placed = ib.place_order(OrderRequest("plan-1:SPY", "SPY", "buy", 4))
        assert (placed.client_order_id, placed.symbol, placed.side, placed.quantity) == (
            "plan-1:SPY",
            "SPY",
            "buy",
            4,
        )
        [fill] = ib.fills()
        assert (fill.client_order_id, fill.order_id, fill.quantity, fill.price) == (
            "plan-1:SPY",
            placed.order_id,
            4,
            500.0,
        )
        assert fill.time == NOW and fill.time.tzinfo == UTC
        assert ib.fills(since=NOW - timedelta(minutes=5)) == [fill]
        assert ib.fills(since=NOW + timedelta(minutes=5)) == []
        assert fake.executions[0].order.order_ref == "plan-1:SPY"
        assert ib.positions()[1] == Position(
            "SPY", 14, (10 * 480.0 + 4 * 500.0 + 1.0) / 14
        )  # IB folds commission in
        assert ib.account().cash == 50_000.0 - 4 * 500.0 - 1.0
    finally:
        ib.close()


def test_find_order_after_reconnect_under_a_new_client_id(fake) -> None:
    first = broker(fake, client_id=11)
    filled = first.place_order(OrderRequest("plan-2:SPY", "SPY", "sell", 3))
    resting = first.place_order(OrderRequest("plan-2:TLT", "TLT", "buy", 5, "limit", 80.0))
    cancelled = first.place_order(OrderRequest("plan-2:AGG", "AGG", "buy", 5, "limit", 80.0))
    first.cancel(cancelled.order_id)
    first.close()

    second = broker(fake, client_id=12)
    try:
        found = second.find_order("plan-2:SPY")
        assert found is not None and (found.order_id, found.status, found.filled_quantity) == (
            filled.order_id,
            "filled",
            3,
        )
        assert second.find_order("plan-2:TLT") == resting
        assert second.find_order("plan-2:AGG").status == "cancelled"
        assert second.find_order("never-placed") is None
        with pytest.raises(BrokerError, match="placed by client id 11"):
            second.cancel(resting.order_id)
    finally:
        second.close()


def test_find_order_falls_back_to_executions(fake) -> None:
    ib = broker(fake)
    try:
        placed = ib.place_order(OrderRequest("plan-3:SPY", "SPY", "buy", 2))
        fake.orders.clear()  # IB no longer lists the order itself (an earlier session's)
        found = ib.find_order("plan-3:SPY")
        assert found is not None and (found.order_id, found.status, found.quantity) == (
            placed.order_id,
            "filled",
            2,
        )
    finally:
        ib.close()


def test_cancel_and_rejection(fake) -> None:
    ib = broker(fake)
    try:
        order = ib.place_order(OrderRequest("plan-4:TLT", "TLT", "buy", 5, "limit", 80.0))
        ib.cancel(order.order_id)
        assert ib.find_order("plan-4:TLT").status == "cancelled"
        assert ib.open_orders() == []
        ib.cancel(order.order_id)  # already done: nothing to do
        with pytest.raises(BrokerError, match="no open or completed order"):
            ib.cancel("999")
        rejected = ib.place_order(OrderRequest("plan-4:SPY", "SPY", "buy", 1_000))  # more than the cash
        assert (rejected.status, rejected.filled_quantity) == ("rejected", 0)
        with pytest.raises(BrokerError, match="not accepted: .*No security definition"):
            ib.place_order(OrderRequest("plan-4:ZZZ", "ZZZ", "buy", 1))
    finally:
        ib.close()


def test_readonly_refuses_to_place(fake) -> None:
    ib = broker(fake, readonly=True)
    try:
        with pytest.raises(BrokerError, match="ib: place order 'plan-5:SPY'.*readonly"):
            ib.place_order(OrderRequest("plan-5:SPY", "SPY", "buy", 1))
        assert ib.positions()  # reading is fine
        assert fake.requests["placeOrder"] == 0
    finally:
        ib.close()


def test_disconnect_mid_call_is_a_broker_error_and_the_next_call_reconnects(fake) -> None:
    ib = broker(fake)
    try:
        ib.positions()
        fake.disconnect_after(messages=1)  # the first position goes out, then the socket drops
        with pytest.raises(
            BrokerError, match=r"ib: positions: connection to 127\.0\.0\.1:\d+ \(client id 11\) lost"
        ):
            ib.positions()
        fake.disconnect_after(request="reqExecutions")
        with pytest.raises(BrokerError, match="ib: executions: connection .* lost"):
            ib.fills()
        assert len(ib.positions()) == 2
        assert fake.requests["startApi"] == 3
    finally:
        ib.close()


def test_timeouts_refusals_and_client_id_clashes(fake) -> None:
    slow = broker(fake, timeout=0.3)
    holder = broker(fake, client_id=21)
    try:
        fake.ignore("reqAccountSummary")
        with pytest.raises(BrokerError, match=r"ib: account summary: no complete answer within 0\.3 s"):
            slow.account()
        holder.positions()
        with pytest.raises(BrokerError, match="client id 21.*IB error 326"):
            broker(fake, client_id=21).positions()
    finally:
        slow.close()
        holder.close()
    with pytest.raises(BrokerError, match="ib: positions: cannot connect to .*ConnectionRefused"):
        IbBroker(port=_closed_port(), client_id=1, timeout=1.0).positions()
    elsewhere = broker(fake, account="U999")
    with pytest.raises(BrokerError, match="account U999 is not managed by this login"):
        elsewhere.positions()
    elsewhere.close()


def test_usable_from_worker_threads_without_an_event_loop(fake) -> None:
    ib = broker(fake)
    results: list[object] = []
    try:
        worker = threading.Thread(target=lambda: results.append(ib.account()))
        worker.start()
        worker.join()
        results.append(ib.account())  # same session, now from the main thread
        assert results[0] == results[1]
    finally:
        ib.close()


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]

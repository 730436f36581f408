"""The Alpaca broker against the loopback fake Trading API: account and positions, fills, the
idempotent client order id, cancels, faults as ``BrokerError`` naming the call, secrets kept out."""

import socket
from datetime import UTC, datetime, timedelta

import pytest

from finance_dag.brokers.alpaca import AlpacaBroker
from finance_dag.brokers.base import Account, BrokerError, Fill, OrderRequest, Position
from finance_dag.core.http import RateLimiter, RetryPolicy
from finance_dag.testing.alpaca_trading import ORDERS_PATH, POSITIONS_PATH, FakeAlpacaTrading

pytestmark = pytest.mark.vendors

KEY, SECRET = "PKFAKEKEY789", "sk-trading-secret-012"
PRICES = {"SPY": 500.0, "QQQ": 400.0, "TLT": 90.0}
T0 = datetime(2025, 3, 3, 15, 0, tzinfo=UTC)


class Clock:
    """The fake's clock: one second later at every reading."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def fake():
    start = {"SPY": (10, 450.0), "TLT": (-20, 95.0)}
    with FakeAlpacaTrading(
        PRICES.__getitem__, cash=50_000.0, positions=start, api_key=KEY, secret_key=SECRET, clock=Clock()
    ) as server:
        server.slow_seconds = 1.5
        yield server


def broker(url: str, attempts: int = 3, key: str = KEY, secret: str = SECRET) -> AlpacaBroker:
    policy = RetryPolicy(attempts=attempts, initial_wait=0.0, jitter=0.0, timeout=1.0, sleep=lambda s: None)
    return AlpacaBroker(key, secret, base_url=url, policy=policy, limiter=RateLimiter([(10_000, 60.0)]))


def test_account_and_positions_are_read_with_shorts_negative(fake) -> None:
    alpaca = broker(fake.url)
    assert alpaca.name == "alpaca"
    assert alpaca.account() == Account("PA3FAKE0001", 50_000.0, 50_000.0 + 10 * 500 - 20 * 90)
    assert alpaca.positions() == [Position("SPY", 10, 450.0, 500.0), Position("TLT", -20, 95.0, 90.0)]
    assert alpaca.open_orders() == []
    headers = fake.log[0].headers
    assert (headers["APCA-API-KEY-ID"], headers["APCA-API-SECRET-KEY"]) == (KEY, SECRET)


def test_market_order_fills_at_once_and_shows_in_account_positions_and_fills(fake) -> None:
    alpaca = broker(fake.url)
    order = alpaca.place_order(OrderRequest("fd-p1-QQQ-b", "QQQ", "buy", 5))
    assert (order.client_order_id, order.symbol, order.side, order.quantity) == (
        "fd-p1-QQQ-b",
        "QQQ",
        "buy",
        5,
    )
    assert (order.status, order.filled_quantity, order.order_type, order.is_open) == (
        "filled",
        5,
        "market",
        False,
    )
    sent = next(r for r in fake.log if r.method == "POST")
    assert sent.path == ORDERS_PATH
    assert alpaca.account().cash == 50_000.0 - 5 * 400
    assert Position("QQQ", 5, 400.0, 400.0) in alpaca.positions()
    (fill,) = alpaca.fills()
    assert (
        fill == Fill(order.order_id, order.order_id, "fd-p1-QQQ-b", "QQQ", "buy", 5, 400.0, fill.time)
        and fill.time.tzinfo is not None
    )
    assert alpaca.fills(since=fill.time + timedelta(seconds=1)) == []
    assert alpaca.fills(since=fill.time) == [fill]


def test_a_client_order_id_is_placed_once_and_found_afterwards(fake) -> None:
    alpaca = broker(fake.url)
    assert alpaca.find_order("fd-p1-SPY-s") is None  # 404: not placed yet
    first = alpaca.place_order(OrderRequest("fd-p1-SPY-s", "SPY", "sell", 4))
    with pytest.raises(BrokerError) as raised:
        alpaca.place_order(OrderRequest("fd-p1-SPY-s", "SPY", "sell", 4))
    assert str(raised.value).startswith(
        "alpaca: POST /v2/orders fd-p1-SPY-s (sell 4 SPY market) failed after 1"
    )
    assert "client_order_id already used (HTTP 422)" in str(raised.value)
    assert alpaca.find_order("fd-p1-SPY-s") == first
    assert fake.submitted == 1
    assert Position("SPY", 6, 450.0, 500.0) in alpaca.positions()


def test_a_lost_answer_to_an_accepted_order_is_retried_without_a_second_order(fake) -> None:
    alpaca = broker(fake.url)
    fake.inject("truncated", match=lambda r: r.method == "POST")  # placed, answer cut in half
    order = alpaca.place_order(OrderRequest("fd-p2-QQQ-b", "QQQ", "buy", 3))
    assert (order.client_order_id, order.status, order.filled_quantity) == ("fd-p2-QQQ-b", "filled", 3)
    assert fake.submitted == 1 and fake.requests[ORDERS_PATH] == 2  # the retry was refused as a duplicate


def test_resting_limit_order_is_open_until_cancelled(fake) -> None:
    alpaca = broker(fake.url)
    order = alpaca.place_order(OrderRequest("fd-p3-SPY-b", "SPY", "buy", 2, "limit", 480.0))
    assert (order.status, order.order_type, order.limit_price, order.filled_quantity) == (
        "open",
        "limit",
        480.0,
        0,
    )
    assert alpaca.open_orders() == [order]
    alpaca.cancel(order.order_id)
    assert alpaca.open_orders() == []
    cancelled = alpaca.find_order("fd-p3-SPY-b")
    assert cancelled is not None and cancelled.status == "cancelled"
    with pytest.raises(BrokerError, match=rf"alpaca: DELETE /v2/orders/{order.order_id} failed .*HTTP 422"):
        alpaca.cancel(order.order_id)
    assert alpaca.fills() == []


def test_a_request_that_cannot_be_sent_sends_nothing(fake) -> None:
    with pytest.raises(BrokerError, match="a limit price goes with a limit order"):
        broker(fake.url).place_order(OrderRequest("fd-p4-SPY-b", "SPY", "buy", 2, "limit"))
    assert fake.total() == 0


def test_server_errors_are_retried_then_raised_naming_broker_and_call(fake) -> None:
    alpaca = broker(fake.url)
    fake.inject("500", match=lambda r: r.path == POSITIONS_PATH)
    assert len(alpaca.positions()) == 2  # one 500, retried
    fake.inject("500", times=None, match=lambda r: r.path == POSITIONS_PATH)
    with pytest.raises(BrokerError) as raised:
        alpaca.positions()
    assert str(raised.value).startswith("alpaca: GET /v2/positions failed after 3 attempt(s) (HTTP 500)")


@pytest.mark.parametrize("kind", ["truncated", "malformed", "slow", "echo", "503"])
def test_every_failure_is_a_broker_error_without_the_secrets(fake, kind) -> None:
    fake.inject(kind, times=None)
    with pytest.raises(BrokerError) as raised:
        broker(fake.url, attempts=2).account()
    message = str(raised.value)
    assert message.startswith("alpaca: GET /v2/account failed after")
    assert KEY not in message and SECRET not in message


def test_a_partial_answer_is_retried_then_raised_never_half_an_account(fake, monkeypatch) -> None:
    answer = fake._position
    monkeypatch.setattr(fake, "_position", lambda symbol, *rest: {"symbol": symbol})  # valid JSON, no qty
    with pytest.raises(BrokerError) as raised:
        broker(fake.url).positions()
    assert "failed after 3 attempt(s) (HTTP 200): malformed or partial answer (ValidationError" in str(
        raised.value
    )
    monkeypatch.setattr(fake, "_position", answer)
    assert len(broker(fake.url).positions()) == 2


def test_wrong_keys_and_refused_connections_fail_without_leaking_secrets(fake) -> None:
    with pytest.raises(BrokerError) as wrong:
        broker(fake.url, key="PKWRONGKEY", secret="sk-wrong-secret").account()
    assert "HTTP 403" in str(wrong.value) and "after 1 attempt(s)" in str(wrong.value)  # not retried
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"  # bound, not listening: refused
        with pytest.raises(BrokerError) as refused:
            broker(closed, attempts=2).open_orders()
    assert str(refused.value).startswith(
        "alpaca: GET /v2/orders (open) failed after 2 attempt(s) (no HTTP response"
    )
    for message in (str(wrong.value), str(refused.value)):
        assert all(secret not in message for secret in (KEY, SECRET, "PKWRONGKEY", "sk-wrong-secret"))

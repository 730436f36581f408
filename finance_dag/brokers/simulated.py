"""The simulated broker: the default of the embedded environment, an account kept in the lake.

The whole account (id, cash, positions with average cost, every order with its
``client_order_id`` and status, every fill) is one JSON document at ``STATE_PATH``, read at the
start of every call and written atomically after every change. Two instances on the same lake (a
retried run, another process) therefore see one account, as two connections to a real broker do.
Read-modify-write is not locked: one writer at a time (the execution job) is assumed.

Market orders fill at once, whole, at ``prices(symbol)`` rounded to the cent (the ETF domain
passes the last simulated close). A limit order fills the same way when it is marketable (a buy
limit at or above the price, a sell limit at or below) and otherwise stays open until cancelled;
open limit orders are not re-examined when prices move. The account is a margin account without
limits: a sell beyond the position opens a short, cash may go negative. Like Alpaca (HTTP 422), a
``client_order_id`` already used is refused with ``BrokerError``, as is a malformed request.

A fresh lake starts from ``starting_account`` (deterministic, so tests and demos agree on it);
``fail_on`` names calls that raise ``BrokerError`` as a disconnect would, for tests.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from math import floor

from finance_dag.brokers.base import Account, BrokerError, Fill, Order, OrderRequest, Position
from finance_dag.core.lake import Lake

NAME = "simulated"
STATE_PATH = "brokers/simulated/account.json"
ACCOUNT_ID = "SIM-0001"
START_NLV = 250_000.0
START_LONG_VALUE = 20_000.0  # per starting long position
START_LONG_COST = 0.9  # starting longs were bought 10 % below today's price
START_SHORT_VALUE = 2_000.0  # the small starting short
STALE_ORDER_SHARES = 10  # the stale limit buy, at half the price: never marketable


@dataclass(frozen=True)
class StartingAccount:
    """What a fresh simulated account holds before its first call: ``open_orders`` are placed
    through the normal order path when the account is created (so they get ids and, if not
    marketable, stay open)."""

    account_id: str
    cash: float
    positions: tuple[Position, ...] = ()
    open_orders: tuple[OrderRequest, ...] = ()


def starting_account(symbols: Sequence[str], prices: Callable[[str], float]) -> StartingAccount:
    """The documented seed account: $250,000 net liquidation value, of which about $20,000 each
    in the first three ``symbols`` (bought 10 % below today's price), a short of about $2,000 in
    the fourth, and a stale limit buy of 10 shares of the first at half its price, so the cleanup
    phase has an order to cancel and a short to cover. Fewer symbols give fewer of these; no
    symbols give $250,000 in cash. Positions are whole shares (at least one)."""
    longs = [_position(s, START_LONG_VALUE, prices(s), START_LONG_COST) for s in symbols[:3]]
    shorts = [_position(s, -START_SHORT_VALUE, prices(s), 1.0) for s in symbols[3:4]]
    positions = tuple(longs + shorts)
    market_value = sum(p.quantity * _cents(prices(p.symbol)) for p in positions)
    stale = tuple(
        OrderRequest("manual-stale-1", s, "buy", STALE_ORDER_SHARES, "limit", _cents(prices(s) / 2))
        for s in symbols[:1]
    )
    return StartingAccount(ACCOUNT_ID, round(START_NLV - market_value, 2), positions, stale)


def _position(symbol: str, value: float, price: float, cost_ratio: float) -> Position:
    quantity = max(1, floor(abs(value) / price))
    return Position(symbol, quantity if value > 0 else -quantity, _cents(price * cost_ratio))


def _cents(price: float) -> float:
    return round(price, 2)


def _now() -> datetime:
    return datetime.now(UTC)


class SimulatedBroker:
    """The ``Broker`` interface over an account document in ``lake`` (see the module docstring).

    ``start`` is used only when the lake holds no account yet (``None``: all cash,
    ``starting_account([], prices)``); ``clock`` stamps fills (tz-aware UTC)."""

    name = NAME

    def __init__(
        self,
        lake: Lake,
        prices: Callable[[str], float],
        start: StartingAccount | None = None,
        *,
        fail_on: Iterable[str] = (),
        path: str = STATE_PATH,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.lake = lake
        self.prices = prices
        self.start = start or starting_account([], prices)
        self.fail_on = set(fail_on)
        self.path = path
        self.clock = clock

    # ---- the Broker interface -------------------------------------------------------------
    def account(self) -> Account:
        state = self._load("account")
        value = sum(p["quantity"] * self._price("account", s) for s, p in state["positions"].items())
        return Account(state["account_id"], state["cash"], round(state["cash"] + value, 2))

    def positions(self) -> list[Position]:
        state = self._load("positions")
        return [
            Position(s, p["quantity"], p["avg_cost"], self._price("positions", s))
            for s, p in sorted(state["positions"].items())
        ]

    def open_orders(self) -> list[Order]:
        return [o for o in self._orders(self._load("open_orders")) if o.is_open]

    def find_order(self, client_order_id: str) -> Order | None:
        found = [o for o in self._orders(self._load("find_order")) if o.client_order_id == client_order_id]
        return found[0] if found else None

    def cancel(self, order_id: str) -> None:
        state = self._load("cancel")
        order = next((o for o in state["orders"] if o["order_id"] == order_id), None)
        if order is None:
            raise BrokerError(f"{NAME}: cancel: no order {order_id}")
        if order["status"] != "open":
            raise BrokerError(f"{NAME}: cancel: order {order_id} is {order['status']}, not open")
        order["status"] = "cancelled"
        self._save(state)

    def place_order(self, request: OrderRequest) -> Order:
        state = self._load("place_order")
        order = self._place(state, request)
        self._save(state)
        return order

    def fills(self, since: datetime | None = None) -> list[Fill]:
        state = self._load("fills")
        fills = [Fill(**{**f, "time": datetime.fromisoformat(f["time"])}) for f in state["fills"]]
        return [f for f in fills if since is None or f.time >= since]

    def close(self) -> None:
        """Nothing to release: every change is already in the lake."""

    # ---- the account document -------------------------------------------------------------
    def _load(self, call: str) -> dict:
        """The account document, created from ``start`` on first use; ``call`` in ``fail_on``
        raises as a dropped connection would."""
        if call in self.fail_on:
            raise BrokerError(f"{NAME}: {call}: connection lost (simulated fault)")
        if self.lake.exists(self.path):
            return json.loads(self.lake.read_bytes(self.path))
        start = self.start
        state = {
            "account_id": start.account_id,
            "currency": "USD",
            "cash": start.cash,
            "positions": {
                p.symbol: {"quantity": p.quantity, "avg_cost": p.avg_cost} for p in start.positions
            },
            "orders": [],
            "fills": [],
        }
        for request in start.open_orders:
            self._place(state, request)
        self._save(state)
        return state

    def _save(self, state: dict) -> None:
        self.lake.write_bytes(self.path, json.dumps(state, indent=1, sort_keys=True).encode())

    @staticmethod
    def _orders(state: dict) -> list[Order]:
        return [Order(**o) for o in state["orders"]]

    def _price(self, call: str, symbol: str) -> float:
        try:
            return _cents(self.prices(symbol))
        except Exception as exc:  # any failure of the price source: the call cannot answer
            raise BrokerError(f"{NAME}: {call}: no price for {symbol}: {exc}") from exc

    def _place(self, state: dict, request: OrderRequest) -> Order:
        """Record ``request`` as an order in ``state`` and fill it if it is marketable."""
        if any(o["client_order_id"] == request.client_order_id for o in state["orders"]):
            raise BrokerError(
                f"{NAME}: place_order: client_order_id {request.client_order_id!r} already used"
            )
        if request.quantity <= 0 or request.side not in ("buy", "sell"):
            raise BrokerError(f"{NAME}: place_order: bad side/quantity {request.side} {request.quantity}")
        if (request.order_type == "limit") != (request.limit_price is not None):
            raise BrokerError(f"{NAME}: place_order: a limit price goes with a limit order, and only there")
        price = self._price("place_order", request.symbol)
        limit = request.limit_price
        marketable = limit is None or (price <= limit if request.side == "buy" else price >= limit)
        order = Order(
            order_id=f"SIM-{len(state['orders']) + 1:06d}",
            client_order_id=request.client_order_id,
            symbol=request.symbol,
            side=request.side,
            quantity=request.quantity,
            filled_quantity=request.quantity if marketable else 0,
            status="filled" if marketable else "open",
            order_type=request.order_type,
            limit_price=limit,
        )
        state["orders"].append(asdict(order))
        if marketable:
            self._fill(state, order, price)
        return order

    def _fill(self, state: dict, order: Order, price: float) -> None:
        """Book a whole fill: cash, the position and its average cost (which changes only when
        the position grows or flips side), and the fill record."""
        delta = order.quantity if order.side == "buy" else -order.quantity
        held = state["positions"].get(order.symbol, {"quantity": 0, "avg_cost": 0.0})
        before, after = held["quantity"], held["quantity"] + delta
        if before == 0 or (before > 0) == (delta > 0):
            avg_cost = (abs(before) * held["avg_cost"] + abs(delta) * price) / abs(after)
        elif abs(delta) <= abs(before):
            avg_cost = held["avg_cost"]
        else:
            avg_cost = price
        if after:
            state["positions"][order.symbol] = {"quantity": after, "avg_cost": round(avg_cost, 4)}
        else:
            state["positions"].pop(order.symbol, None)
        state["cash"] = round(state["cash"] - delta * price, 2)
        fill = Fill(
            execution_id=f"SIMX-{len(state['fills']) + 1:06d}",
            order_id=order.order_id,
            client_order_id=order.client_order_id,
            symbol=order.symbol,
            side=order.side,
            quantity=order.quantity,
            price=price,
            time=self.clock(),
        )
        state["fills"].append({**asdict(fill), "time": fill.time.isoformat()})

"""Fake Alpaca Trading API v2: one in-memory paper account (cash, positions, orders).

Serves what ``AlpacaBroker`` uses: ``GET /v2/account``, ``GET /v2/positions``, ``GET /v2/orders``
(``status`` open/closed/all, ``after``, ``direction``, ``limit``), ``POST /v2/orders``,
``GET /v2/orders:by_client_order_id`` and ``DELETE /v2/orders/{id}``, with Alpaca's JSON shapes
(numbers as strings) and error bodies (``{"code": ..., "message": ...}``). Checks the key
headers when configured.

A market order fills at once, whole, at ``prices(symbol)``; a limit order fills at once at that
price when it is marketable (a buy limit at or above it, a sell limit at or below), else rests
open until cancelled. Fills move cash and positions (a sell beyond the position goes short). Like
Alpaca, a ``client_order_id`` already used is refused with HTTP 422 (what makes our
deterministic client ids idempotent), a buy costing more than the cash with 403, and cancelling
an order that is no longer open with 422. ``submitted`` counts the orders accepted, so a test can
assert "placed exactly once". The generic faults of ``FakeServer`` apply to every endpoint.

``FakeServer`` keeps neither a request's body nor the DELETE method, so this fake's handler reads
the body (the order's JSON) into a per-thread slot before the shared handling and adds DELETE.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler

from finance_dag.testing.server import FakeServer, Reply, Request

ORDERS_PATH = "/v2/orders"
BY_CLIENT_ID_PATH = "/v2/orders:by_client_order_id"
POSITIONS_PATH = "/v2/positions"
ACCOUNT_PATH = "/v2/account"


@dataclass
class FakeOrder:
    id: str
    client_order_id: str
    symbol: str
    side: str
    qty: int
    type: str
    limit_price: float | None
    submitted_at: datetime
    status: str = "new"
    filled_qty: int = 0
    filled_avg_price: float | None = None
    filled_at: datetime | None = None
    canceled_at: datetime | None = None
    updated_at: datetime | None = None  # None: not since submitted

    def as_json(self) -> dict:
        def stamp(moment: datetime | None) -> str | None:
            return moment.isoformat().replace("+00:00", "Z") if moment else None

        return {
            "id": self.id,
            "client_order_id": self.client_order_id,
            "created_at": stamp(self.submitted_at),
            "updated_at": stamp(self.updated_at or self.submitted_at),
            "submitted_at": stamp(self.submitted_at),
            "filled_at": stamp(self.filled_at),
            "canceled_at": stamp(self.canceled_at),
            "asset_id": str(uuid.uuid5(uuid.NAMESPACE_OID, self.symbol)),
            "symbol": self.symbol,
            "asset_class": "us_equity",
            "qty": str(self.qty),
            "filled_qty": str(self.filled_qty),
            "filled_avg_price": None if self.filled_avg_price is None else str(self.filled_avg_price),
            "order_class": "simple",
            "order_type": self.type,
            "type": self.type,
            "side": self.side,
            "time_in_force": "day",
            "limit_price": None if self.limit_price is None else str(self.limit_price),
            "stop_price": None,
            "status": self.status,
            "extended_hours": False,
        }


class FakeAlpacaTrading(FakeServer):
    """The account starts with ``cash`` and ``positions`` (``{symbol: (shares, avg_cost)}``);
    ``prices`` gives the fill and market price of a symbol; ``clock`` stamps orders and fills."""

    def __init__(
        self,
        prices: Callable[[str], float],
        *,
        cash: float = 100_000.0,
        positions: dict[str, tuple[int, float]] | None = None,
        api_key: str | None = None,
        secret_key: str | None = None,
        account_number: str = "PA3FAKE0001",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._body = threading.local()  # the request body of the thread serving it
        super().__init__()
        self.prices = prices
        self.cash = cash
        self.positions: dict[str, tuple[int, float]] = dict(positions or {})
        self.orders: list[FakeOrder] = []
        self.credentials = (api_key, secret_key)
        self.account_number = account_number
        self.clock = clock
        self.submitted = 0  # orders accepted

    def error_body(self, status: int, message: str) -> bytes:
        return json.dumps({"code": 40000000 + status, "message": message}).encode()

    def _error(self, status: int, message: str) -> Reply:
        return Reply(status, self.error_body(status, message))

    # ---- serving -----------------------------------------------------------------------
    def serve(self, request: Request, fault: str | None) -> Reply:
        key, secret = self.credentials
        if key and (
            request.headers.get("APCA-API-KEY-ID") != key
            or request.headers.get("APCA-API-SECRET-KEY") != secret
        ):
            return self._error(403, "forbidden")
        with self._lock:
            route = (request.method, request.path)
            if route == ("GET", ACCOUNT_PATH):
                return _json(self._account())
            if route == ("GET", POSITIONS_PATH):
                return _json([self._position(s, q, c) for s, (q, c) in sorted(self.positions.items())])
            if route == ("GET", ORDERS_PATH):
                return _json([o.as_json() for o in self._listed(request.query)])
            if route == ("POST", ORDERS_PATH):
                return self._submit(json.loads(self._body.value or b"{}"))
            if route == ("GET", BY_CLIENT_ID_PATH):
                order = self._by_client_id(request.query.get("client_order_id", ""))
                return _json(order.as_json()) if order else self._error(404, "order not found")
            if request.method == "DELETE" and request.path.startswith(ORDERS_PATH + "/"):
                return self._cancel(request.path.rsplit("/", 1)[-1])
        return self._error(404, "endpoint not found")

    def _account(self) -> dict:
        equity = self.cash + sum(q * self.prices(s) for s, (q, _) in self.positions.items())
        return {
            "id": str(uuid.uuid5(uuid.NAMESPACE_OID, self.account_number)),
            "account_number": self.account_number,
            "status": "ACTIVE",
            "currency": "USD",
            "cash": str(round(self.cash, 2)),
            "equity": str(round(equity, 2)),
            "portfolio_value": str(round(equity, 2)),
            "buying_power": str(round(max(self.cash, 0.0), 2)),
        }

    def _position(self, symbol: str, qty: int, cost: float) -> dict:
        price = self.prices(symbol)
        return {
            "asset_id": str(uuid.uuid5(uuid.NAMESPACE_OID, symbol)),
            "symbol": symbol,
            "exchange": "ARCA",
            "asset_class": "us_equity",
            "avg_entry_price": str(cost),
            "qty": str(qty),
            "side": "long" if qty > 0 else "short",
            "market_value": str(round(qty * price, 2)),
            "cost_basis": str(round(qty * cost, 2)),
            "current_price": str(price),
        }

    def _listed(self, q: dict[str, str]) -> list[FakeOrder]:
        """Orders filtered like Alpaca: ``status`` open (default), closed or all; submitted after
        ``after``; by submission time, newest first unless ``direction=asc``; ``limit`` (50)."""
        status = q.get("status", "open")
        after = datetime.fromisoformat(q["after"].replace("Z", "+00:00")) if q.get("after") else None
        chosen = [
            o
            for o in self.orders
            if (status == "all" or (o.status in OPEN_STATUSES) == (status == "open"))
            and (after is None or o.submitted_at > after)
        ]
        chosen.sort(key=lambda o: o.submitted_at, reverse=q.get("direction", "desc") == "desc")
        return chosen[: int(q.get("limit") or 50)]

    def _by_client_id(self, client_order_id: str) -> FakeOrder | None:
        return next((o for o in self.orders if o.client_order_id == client_order_id), None)

    def _submit(self, body: dict) -> Reply:
        client_order_id = body.get("client_order_id") or str(uuid.uuid4())
        if self._by_client_id(client_order_id):
            return self._error(422, "client_order_id must be unique")
        qty = int(body["qty"])
        price = self.prices(body["symbol"])
        if body["side"] == "buy" and qty * price > self.cash:
            return self._error(403, "insufficient buying power")
        limit = float(body["limit_price"]) if body.get("limit_price") is not None else None
        now = self.clock()
        order = FakeOrder(
            str(uuid.uuid4()), client_order_id, body["symbol"], body["side"], qty, body["type"], limit, now
        )
        marketable = limit is None or (price <= limit if order.side == "buy" else price >= limit)
        if marketable:
            self._fill(order, price, now)
        self.orders.append(order)
        self.submitted += 1
        return _json(order.as_json())

    def _fill(self, order: FakeOrder, price: float, now: datetime) -> None:
        signed = order.qty if order.side == "buy" else -order.qty
        held, cost = self.positions.get(order.symbol, (0, 0.0))
        after = held + signed
        if after == 0:
            self.positions.pop(order.symbol, None)
        elif held == 0 or (held > 0) != (after > 0):
            self.positions[order.symbol] = (after, price)  # opened, or crossed through zero
        elif abs(after) > abs(held):
            self.positions[order.symbol] = (after, (held * cost + signed * price) / after)
        else:
            self.positions[order.symbol] = (after, cost)  # reduced: the cost of what is left stays
        self.cash -= signed * price
        order.status, order.filled_qty, order.filled_avg_price = "filled", order.qty, price
        order.filled_at = order.updated_at = now

    def _cancel(self, order_id: str) -> Reply:
        order = next((o for o in self.orders if o.id == order_id), None)
        if order is None:
            return self._error(404, "order not found")
        if order.status not in OPEN_STATUSES:
            return self._error(422, f'order is already in "{order.status}" state')
        order.status = "canceled"
        order.canceled_at = order.updated_at = self.clock()
        return Reply(204, b"")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        base = super()._handler()
        fake = self

        class Handler(base):  # type: ignore[valid-type, misc]
            def _handle_with_body(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                fake._body.value = self.rfile.read(length) if length else b""
                del self.headers["Content-Length"]  # read here; the shared handling reads none
                base._handle(self)

            do_GET = do_POST = do_DELETE = _handle_with_body

        return Handler


OPEN_STATUSES = frozenset({"new", "accepted", "pending_new", "partially_filled"})


def _json(payload: dict | list) -> Reply:
    return Reply(200, json.dumps(payload).encode())

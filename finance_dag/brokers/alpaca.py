"""The Alpaca broker through alpaca-py's ``TradingClient`` (paper trading unless told otherwise).

Every call goes through the vendor plumbing the market-data adapters use (``VendorClient``):
Alpaca's Trading API limit of 200 requests a minute, retries of transient failures (429, 5xx,
timeouts, refused connections, a malformed or partial answer) with backoff, a request timeout,
and messages with the keys redacted. A call that still fails raises ``BrokerError`` naming the
broker and the call (``alpaca: GET /v2/positions failed after 3 attempt(s) (HTTP 500): ...``);
the SDK's own retry (a fixed 3 s sleep) and its timeout-less session are replaced, as in
``AlpacaBars``.

Orders are day orders sent under our ``client_order_id``. Alpaca refuses a second order under
an id it already holds (HTTP 422), which is what makes a retried POST safe: when the answer to
an accepted order is lost and the retry is refused as a duplicate, ``place_order`` returns the
order placed instead of placing a second one or reporting a failure.

Fills: alpaca-py 0.44 has no method for the account-activities endpoint, so fills are read
from the closed orders (``GET /v2/orders?status=closed``): one ``Fill`` per order that filled
any shares, at its average price and ``filled_at``, with the order id as ``execution_id``.
Partial executions are therefore aggregated per order, and an order still open shows its fill
once it closes (for day orders, by the end of the session).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from itertools import count
from typing import Any, TypeVar
from uuid import UUID

from alpaca.common.enums import Sort
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, PositionSide, QueryOrderStatus, TimeInForce
from alpaca.trading.requests import GetOrdersRequest, LimitOrderRequest, MarketOrderRequest

from finance_dag.brokers.base import Account, BrokerError, Fill, Order, OrderRequest, Position
from finance_dag.core.http import (
    PermanentError,
    RateLimiter,
    RetryPolicy,
    RoutedSession,
    TransientError,
    VendorClient,
    redact,
    shared_limiter,
)
from finance_dag.market_data.bars import VendorError
from finance_dag.market_data.vendors.alpaca import api_error

T = TypeVar("T")
NAME = "alpaca"
TRADING_LIMITS = ((200, 60.0),)  # Trading API requests per minute per account
ORDERS_PAGE_LIMIT = 500  # Alpaca's maximum orders per answer
# Alpaca filters orders by submission time; a day order submitted this long before ``since``
# (a Friday evening order filled after a long weekend) may still have filled after it.
FILL_LOOKBACK = timedelta(days=5)
# Alpaca's order statuses that are final, normalised; every other status is still "open".
_FINAL_STATUS = {"filled": "filled", "canceled": "cancelled", "expired": "cancelled", "replaced": "cancelled",
                 "rejected": "rejected", "suspended": "rejected"}  # fmt: skip


class AlpacaBroker:
    """``Broker`` for Alpaca; ``base_url`` points it elsewhere (a fake), ``paper`` picks the host."""

    name = NAME

    def __init__(
        self,
        api_key: str,
        secret_key: str,
        *,
        paper: bool = True,
        base_url: str | None = None,
        policy: RetryPolicy | None = None,
        limiter: RateLimiter | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        policy = policy or RetryPolicy()
        self.secrets = (api_key, secret_key)
        self.wall_clock = wall_clock  # for X-RateLimit-Reset, an epoch
        self.client = TradingClient(api_key, secret_key, paper=paper, url_override=base_url)
        self.client._retry = 0
        self.client._session = RoutedSession(timeout=policy.timeout)
        limiter = limiter or shared_limiter(f"{NAME} trading", TRADING_LIMITS)
        self.http = VendorClient(NAME, limiter, policy, self.secrets)

    # ---- reads ---------------------------------------------------------------------------
    def account(self) -> Account:
        def read() -> Account:
            raw: Any = self.client.get_account()
            currency = raw.currency or "USD"
            return Account(raw.account_number, float(raw.cash), float(raw.equity), currency)

        return self._call("GET /v2/account", read)

    def positions(self) -> list[Position]:
        return self._call(
            "GET /v2/positions", lambda: [_position(p) for p in self.client.get_all_positions()]
        )

    def open_orders(self) -> list[Order]:
        def read() -> list[Order]:
            query = GetOrdersRequest(
                status=QueryOrderStatus.OPEN, limit=ORDERS_PAGE_LIMIT, direction=Sort.ASC
            )
            raw: Any = self.client.get_orders(query)
            if len(raw) >= ORDERS_PAGE_LIMIT:
                raise PermanentError(
                    f"{len(raw)} open orders, the most one answer holds: the list may be partial"
                )
            return [_order(o) for o in raw]

        return self._call("GET /v2/orders (open)", read)

    def find_order(self, client_order_id: str) -> Order | None:
        """The order we sent under ``client_order_id`` in any state; ``None`` when Alpaca has none."""

        def read() -> Order | None:
            try:
                return _order(self.client.get_order_by_client_id(client_order_id))
            except APIError as error:
                if error.status_code == 404:
                    return None
                raise

        return self._call(f"GET /v2/orders:by_client_order_id {client_order_id}", read)

    def fills(self, since: datetime | None = None) -> list[Fill]:
        """Fills at or after ``since`` (all when ``None``), oldest first: one per closed order
        that filled shares (see the module notes). Orders are asked for from ``FILL_LOOKBACK``
        before ``since``, ``ORDERS_PAGE_LIMIT`` a page, each page after the last one's
        submission time."""
        after = since - FILL_LOOKBACK if since else None
        fills: list[Fill] = []
        for page in count(1):
            what = f"GET /v2/orders (closed, submitted after {after or 'any time'}, page {page})"
            query = GetOrdersRequest(
                status=QueryOrderStatus.CLOSED, after=after, direction=Sort.ASC, limit=ORDERS_PAGE_LIMIT
            )

            def read(q: GetOrdersRequest = query) -> tuple[list[Fill], datetime | None, bool]:
                raw: Any = self.client.get_orders(q)
                filled = [_fill(o) for o in raw if o.filled_at and _shares(o.filled_qty or 0) > 0]
                return filled, raw[-1].submitted_at if raw else None, len(raw) == ORDERS_PAGE_LIMIT

            batch, after, more = self._call(what, read)
            fills += [f for f in batch if since is None or f.time >= since]
            if not more:
                break
        return sorted(fills, key=lambda f: f.time)

    # ---- writes --------------------------------------------------------------------------
    def place_order(self, request: OrderRequest) -> Order:
        """Send ``request`` as a day order under its ``client_order_id``.

        A ``client_order_id`` Alpaca already holds is refused (``BrokerError``, as every broker
        here does; callers ask ``find_order`` first), except when an earlier attempt of this very
        call placed it and its answer was lost (a 5xx, a timeout, a cut body): then the retry's
        HTTP 422 means "placed", and the order placed is returned.
        """
        trade = f"{request.side} {request.quantity} {request.symbol} {request.order_type}"
        what = f"POST /v2/orders {request.client_order_id} ({trade})"
        sdk_request = _order_request(request, what)
        attempts = 0

        def submit() -> Order | None:
            nonlocal attempts
            attempts += 1
            try:
                return _order(self.client.submit_order(sdk_request))
            except APIError as error:
                if error.status_code != 422 or "client_order_id" not in str(error):
                    raise
                if attempts == 1:
                    raise PermanentError("client_order_id already used (HTTP 422)", 422) from None
                return None  # placed by the attempt whose answer was lost

        placed = self._call(what, submit)
        return placed if placed is not None else self._placed(request, what)

    def _placed(self, request: OrderRequest, what: str) -> Order:
        """The order an earlier attempt of ``what`` placed under ``request``'s client id."""
        existing = self.find_order(request.client_order_id)
        if existing is None or (existing.symbol, existing.side, existing.quantity) != (
            request.symbol,
            request.side,
            request.quantity,
        ):
            raise BrokerError(
                f"{NAME}: {what}: HTTP 422 on a retry, but the order under the id is {existing}"
            )
        return existing

    def cancel(self, order_id: str) -> None:
        """Cancel an open order; an order Alpaca no longer holds open is a ``BrokerError`` (HTTP 422)."""
        what = f"DELETE /v2/orders/{order_id}"
        try:
            uuid = UUID(order_id)
        except ValueError:
            raise BrokerError(f"{NAME}: {what}: not an Alpaca order id; nothing sent") from None
        self._call(what, lambda: self.client.cancel_order_by_id(uuid))

    def close(self) -> None:
        self.client._session.close()

    # ---- plumbing ------------------------------------------------------------------------
    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """``fn()`` rate-limited and retried while transient; any failure ends as ``BrokerError``.

        An HTTP error is classified by status; an answer that does not parse into what ``fn``
        builds (truncated JSON, an HTML page, a missing or mistyped field) is transient, so a
        caller never gets half an account.
        """

        def attempt() -> T:
            try:
                return fn()
            except APIError as error:
                raise api_error(error, self.wall_clock()) from None
            except (ValueError, KeyError, TypeError, AttributeError, InvalidOperation) as exc:
                detail = str(exc).splitlines()[0][:200] if str(exc) else ""
                raise TransientError(
                    f"malformed or partial answer ({type(exc).__name__}: {detail})", 200
                ) from None

        try:
            return self.http.call(what, attempt)
        except VendorError as error:
            raise BrokerError(str(error)) from None
        except Exception as exc:  # whatever else the SDK or the transport raised
            raise BrokerError(
                redact(f"{NAME}: {what} failed: {type(exc).__name__}: {exc}", self.secrets)
            ) from None


def _shares(quantity: Any) -> int:
    """A quantity Alpaca sends as a string (``"10"``) as whole shares; fractional ones are refused."""
    shares = Decimal(str(quantity))
    if shares != shares.to_integral_value():
        raise PermanentError(f"fractional quantity {quantity}: this interface speaks whole shares")
    return int(shares)


def _position(raw: Any) -> Position:
    shares = abs(_shares(raw.qty))
    market_price = float(raw.current_price) if raw.current_price is not None else None
    return Position(
        raw.symbol,
        -shares if raw.side == PositionSide.SHORT else shares,
        float(raw.avg_entry_price),
        market_price,
    )


def _order(raw: Any) -> Order:
    status = raw.status.value
    return Order(
        order_id=str(raw.id),
        client_order_id=raw.client_order_id,
        symbol=raw.symbol,
        side=OrderSide(raw.side).value,
        quantity=_shares(raw.qty),
        filled_quantity=_shares(raw.filled_qty or 0),
        status=_FINAL_STATUS.get(status, "open"),
        order_type=raw.type.value,
        limit_price=float(raw.limit_price) if raw.limit_price is not None else None,
    )


def _fill(raw: Any) -> Fill:
    return Fill(
        execution_id=str(raw.id),
        order_id=str(raw.id),
        client_order_id=raw.client_order_id,
        symbol=raw.symbol,
        side=OrderSide(raw.side).value,
        quantity=_shares(raw.filled_qty),
        price=float(raw.filled_avg_price),
        time=raw.filled_at.astimezone(UTC),
    )


def _order_request(request: OrderRequest, what: str) -> MarketOrderRequest | LimitOrderRequest:
    """alpaca-py's request for ``request``: a day order, market or limit, under our client id; a
    request that cannot be sent is a ``BrokerError`` naming ``what`` and sends nothing."""
    if request.quantity <= 0 or request.side not in ("buy", "sell"):
        raise BrokerError(f"{NAME}: {what}: side must be buy or sell and quantity a positive whole number")
    if (request.order_type == "limit") != (request.limit_price is not None):
        raise BrokerError(f"{NAME}: {what}: a limit price goes with a limit order, and only there")
    fields = {
        "symbol": request.symbol,
        "qty": request.quantity,
        "side": OrderSide(request.side),
        "time_in_force": TimeInForce.DAY,
        "client_order_id": request.client_order_id,
    }
    if request.limit_price is None:
        return MarketOrderRequest(**fields)
    return LimitOrderRequest(**fields, limit_price=request.limit_price)

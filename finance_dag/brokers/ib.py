"""Interactive Brokers through ib_async, against TWS or IB Gateway (``IbBroker``, ``IbConnection``).

``IbConnection`` is the one way this code base talks to IB (the broker here, daily prices in
``market_data.vendors.ib``): a lazily opened API session on an event loop of its own, driven
with ``run_until_complete`` for each call. ib_async's blocking methods run on the calling
thread's current loop instead, which ties an ``IB`` object to whichever thread touched it
first and leaves a loop installed on Dagster's worker threads; a private loop works from any
thread (one call at a time) as long as that thread is not itself running a loop. Each call is
bounded by ``timeout``; a dropped socket, a timeout, an IB error tied to the request or a
refused connection all end as ``BrokerError`` naming IB and the call, and the next call opens a
fresh session. Only ``positions`` is fetched on connect (``StartupFetchNONE``): every method asks
IB afresh rather than trusting ib_async's cached state.

Ids: ``Order.order_id`` is IB's ``permId`` — global and stable across sessions, unlike the
``orderId`` that each client id numbers on its own. ``client_order_id`` travels as ``orderRef``.
IB lets only the client id that placed an order (or the master client) cancel it, so ``cancel``
refuses, with a clear error, an order placed under another client id. Positions are US stocks
and ETFs (``secType`` STK); contracts are ``Stock(symbol, 'SMART', 'USD')`` without a conId,
which IB resolves for unambiguous symbols (an ambiguous one is rejected by IB, not guessed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

from ib_async import IB, ExecutionFilter, LimitOrder, MarketOrder, StartupFetchNONE, Stock
from ib_async import Fill as IbFill
from ib_async import Trade as IbTrade
from ib_async.objects import TradeLogEntry
from ib_async.util import UNSET_DOUBLE
from ib_async.wrapper import RequestError

from finance_dag.brokers.base import Account, BrokerError, Fill, Order, OrderRequest, Position, Side

NAME = "ib"
DEFAULT_PORT = 4001  # IB Gateway, live; 4002 paper, TWS 7496/7497
SUMMARY_TAGS = "NetLiquidation,TotalCashValue"
_STATUS = {
    "PendingSubmit": "open", "ApiPending": "open", "PreSubmitted": "open", "Submitted": "open",
    "PendingCancel": "open", "ApiUpdate": "open", "ValidationError": "open",
    "Filled": "filled", "Cancelled": "cancelled", "ApiCancelled": "cancelled", "Inactive": "rejected",
}  # fmt: skip
REJECTED_CODES = frozenset({201, 203})  # order rejected; security not available for this account
_POLL = 0.01  # seconds between looks at an order's state while waiting for IB
T = TypeVar("T")


class IbUnreachable(BrokerError):
    """No API session could be opened (refused, no handshake, client id in use): nothing was asked."""


class IbConnection:
    """A lazily opened IB API session on its own event loop; reconnects on the call after a drop."""

    def __init__(
        self, host: str, port: int, client_id: int, *, readonly: bool = False, timeout: float = 10.0
    ) -> None:
        self.host, self.port, self.client_id = host, port, client_id
        self.readonly = readonly
        self.timeout = timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ib: IB | None = None

    def __repr__(self) -> str:
        return f"IbConnection({self.host}:{self.port}, client id {self.client_id})"

    def call(self, what: str, work: Callable[[IB], Awaitable[T]]) -> T:
        """``work(ib)`` within ``timeout``; every failure is ``BrokerError`` naming ``what``."""
        ib = self._connected(what)
        try:
            return self._run(work(ib), self.timeout)
        except BrokerError:
            raise
        except TimeoutError:
            raise BrokerError(f"{NAME}: {what}: no complete answer within {self.timeout:g} s") from None
        except RequestError as error:
            raise BrokerError(f"{NAME}: {what}: IB error {error.code}: {error.message}") from None
        except (ConnectionError, OSError) as error:
            raise BrokerError(f"{NAME}: {what}: connection to {self._where()} lost ({error})") from None

    def close(self) -> None:
        if self._loop is None:
            return
        if self._ib is not None:
            self._ib.disconnect()
        self._run(asyncio.sleep(0), None)  # let the transport close on its loop
        self._loop.close()
        self._loop, self._ib = None, None

    def _where(self) -> str:
        return f"{self.host}:{self.port} (client id {self.client_id})"

    def _run(self, work: Awaitable[T], timeout: float | None) -> T:
        assert self._loop is not None
        return self._loop.run_until_complete(asyncio.wait_for(work, timeout))

    def _connected(self, what: str) -> IB:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        if self._ib is not None:
            self._run(asyncio.sleep(0), None)  # let a pending disconnect land before trusting the session
            if self._ib.isConnected():
                return self._ib
        ib = IB()
        ib.RaiseRequestErrors = True  # an IB error tied to a request raises instead of answering empty
        try:
            self._run(self._connect(ib), None)
        except BrokerError as error:
            self._ib = ib
            self.close()  # nothing left open until the next call tries again
            raise IbUnreachable(f"{NAME}: {what}: {error}") from None
        self._ib = ib
        return ib

    async def _connect(self, ib: IB) -> None:
        """``ib.connectAsync``, ended early (with IB's reason) when the gateway closes the socket."""
        notices: list[str] = []
        closed = asyncio.get_running_loop().create_future()

        def on_error(req_id: int, code: int, message: str, _contract: object) -> None:
            if not 2100 <= code < 2200:  # 21xx: farm status notices
                notices.append(f"IB error {code}: {message}")

        def on_api_error(message: str) -> None:
            notices.append(message)
            if not closed.done():
                closed.set_result(None)

        ib.errorEvent += on_error
        ib.client.apiError += on_api_error
        connecting = asyncio.ensure_future(
            ib.connectAsync(
                self.host, self.port, self.client_id, timeout=self.timeout, readonly=self.readonly,
                fetchFields=StartupFetchNONE,
            )
        )  # fmt: skip
        try:
            await asyncio.wait(
                [connecting, closed], timeout=self.timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if connecting.done() and connecting.exception() is None:
                return
            reason = "; ".join(dict.fromkeys(notices)) or _describe(
                connecting.exception() if connecting.done() else TimeoutError()
            )
            raise BrokerError(f"cannot connect to {self._where()}: {reason}")
        finally:
            if not connecting.done():
                connecting.cancel()
                await asyncio.gather(connecting, return_exceptions=True)
            ib.errorEvent -= on_error
            ib.client.apiError -= on_api_error


class IbBroker:
    """``Broker`` over an ``IbConnection``: account, positions, orders and fills of one IB account."""

    name = NAME

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        client_id: int = 1,
        account: str | None = None,
        *,
        readonly: bool = False,
        timeout: float = 10.0,
    ) -> None:
        self.connection = IbConnection(host, port, client_id, readonly=readonly, timeout=timeout)
        self.readonly = readonly
        self._account = account

    # ---- reads -------------------------------------------------------------------------
    def account(self) -> Account:
        async def work(ib: IB) -> Account:
            account = self._account_id(ib)
            req_id = ib.client.getReqId()
            answered = ib.wrapper.startReq(req_id)  # ib_async's reqAccountSummaryAsync, keeping the id
            ib.wrapper.acctSummary.clear()
            ib.client.reqAccountSummary(req_id, "All", SUMMARY_TAGS)
            await answered
            ib.client.cancelAccountSummary(req_id)  # IB allows two open summaries per client
            values = {v.tag: v for v in ib.wrapper.acctSummary.values() if v.account == account}
            missing = [tag for tag in SUMMARY_TAGS.split(",") if tag not in values]
            if missing:
                raise BrokerError(f"{NAME}: account {account}: summary lacks {', '.join(missing)}")
            net = values["NetLiquidation"]
            return Account(account, float(values["TotalCashValue"].value), float(net.value), net.currency)

        return self.connection.call("account summary", work)

    def positions(self) -> list[Position]:
        async def work(ib: IB) -> list[Position]:
            account = self._account_id(ib)
            held = await ib.reqPositionsAsync()
            return [
                Position(p.contract.symbol, round(p.position), p.avgCost)
                for p in held
                if p.account == account and p.contract.secType == "STK" and p.position
            ]

        return sorted(self.connection.call("positions", work), key=lambda p: p.symbol)

    def open_orders(self) -> list[Order]:
        async def work(ib: IB) -> list[Order]:
            account = self._account_id(ib)
            trades = await ib.reqAllOpenOrdersAsync()
            return [o for o in (_order(t) for t in trades if t.order.account == account) if o.is_open]

        return self.connection.call("open orders", work)

    def find_order(self, client_order_id: str) -> Order | None:
        """Open orders (every client's), then today's completed orders, then executions by orderRef.

        Only executions left (IB lists completed orders for the current session): the order
        comes back ``filled`` with the executed quantity, the rest of it unknown to IB's answer.
        """

        async def work(ib: IB) -> Order | None:
            account = self._account_id(ib)
            for trades in (await ib.reqAllOpenOrdersAsync(), await ib.reqCompletedOrdersAsync(False)):
                mine = [
                    t for t in trades if t.order.orderRef == client_order_id and t.order.account == account
                ]
                if mine:
                    return _order(max(mine, key=lambda t: t.order.permId))
            executions = await ib.reqExecutionsAsync(ExecutionFilter(acctCode=account))
            fills = [f for f in executions if f.execution.orderRef == client_order_id]
            return _order_from_fills(fills) if fills else None

        return self.connection.call(f"find order {client_order_id!r}", work)

    def fills(self, since: datetime | None = None) -> list[Fill]:
        """Executions at or after ``since``, to the second: IB stamps executions (and filters
        them) in whole seconds, so a fill in the same second as ``since`` is included."""
        cutoff = since.replace(microsecond=0) if since else None

        async def work(ib: IB) -> list[Fill]:
            account = self._account_id(ib)
            after = cutoff.astimezone(UTC).strftime("%Y%m%d-%H:%M:%S") if cutoff else ""
            executions = await ib.reqExecutionsAsync(ExecutionFilter(acctCode=account, time=after))
            return [_fill(f) for f in executions]

        found = self.connection.call("executions", work)
        return sorted((f for f in found if cutoff is None or f.time >= cutoff), key=lambda f: f.time)

    # ---- writes ------------------------------------------------------------------------
    def place_order(self, request: OrderRequest) -> Order:
        """Sends the order and returns it once IB has acknowledged it (perm id known), or raises."""
        what = (
            f"place order {request.client_order_id!r} ({request.side} {request.quantity} "
            f"{request.symbol} {request.order_type})"
        )
        if self.readonly:
            raise BrokerError(f"{NAME}: {what}: refused, the broker was created readonly")
        if request.quantity <= 0 or request.quantity != int(request.quantity):
            raise BrokerError(f"{NAME}: {what}: quantity must be a positive whole number of shares")
        if request.order_type == "limit" and request.limit_price is None:
            raise BrokerError(f"{NAME}: {what}: a limit order needs limit_price")

        async def work(ib: IB) -> Order:
            account = self._account_id(ib)
            action = "BUY" if request.side == "buy" else "SELL"
            fields = {"orderRef": request.client_order_id, "account": account, "tif": "DAY"}
            if request.order_type == "market":
                order = MarketOrder(action, request.quantity, **fields)
            else:
                order = LimitOrder(action, request.quantity, request.limit_price, **fields)
            trade = ib.placeOrder(Stock(request.symbol, "SMART", "USD"), order)
            while not (trade.order.permId or trade.orderStatus.permId or trade.isDone()):
                _check_connected(ib)
                await asyncio.sleep(_POLL)
            if not (trade.order.permId or trade.orderStatus.permId):
                error = _last_error(trade)
                raise BrokerError(
                    f"{NAME}: {what}: not accepted: {error.message if error else trade.orderStatus.status}"
                )
            return _order(trade)

        return self.connection.call(what, work)

    def cancel(self, order_id: str) -> None:
        """Cancels the open order with perm id ``order_id``; an order already done is left as it is."""
        what = f"cancel order {order_id}"

        async def work(ib: IB) -> None:
            open_trades = [t for t in await ib.reqAllOpenOrdersAsync() if str(t.order.permId) == order_id]
            if not open_trades:
                if any(str(t.order.permId) == order_id for t in await ib.reqCompletedOrdersAsync(False)):
                    return
                raise BrokerError(f"{NAME}: {what}: IB knows no open or completed order with that perm id")
            trade = open_trades[0]
            if trade.order.clientId != self.connection.client_id:
                raise BrokerError(
                    f"{NAME}: {what}: placed by client id {trade.order.clientId}; IB lets only that "
                    f"client (or the master client) cancel it, this is client id {self.connection.client_id}"
                )
            before = len(trade.log)
            ib.cancelOrder(trade.order)
            while True:  # an IB error marks the trade Cancelled too, so errors are looked at first
                error = _last_error(trade, since=before)
                if error and error.errorCode != 202:  # 202: "Order Canceled", the confirmation
                    raise BrokerError(f"{NAME}: {what}: {error.message}")
                if trade.orderStatus.status in ("Cancelled", "ApiCancelled", "Filled"):
                    return
                _check_connected(ib)
                await asyncio.sleep(_POLL)

        self.connection.call(what, work)

    def close(self) -> None:
        self.connection.close()

    def _account_id(self, ib: IB) -> str:
        managed = ib.managedAccounts()
        if self._account is None:
            if not managed:
                raise BrokerError(f"{NAME}: {self.connection!r} manages no account")
            return managed[0]
        if self._account not in managed:
            raise BrokerError(f"{NAME}: account {self._account} is not managed by this login ({managed})")
        return self._account


# ---- conversions --------------------------------------------------------------------------
def _describe(error: BaseException | None) -> str:
    if isinstance(error, TimeoutError):
        return "no API handshake in time (is the API port open and the gateway logged in?)"
    return f"{type(error).__name__}: {error}"


def _check_connected(ib: IB) -> None:
    if not ib.isConnected():
        raise ConnectionError("Socket disconnect")


def _last_error(trade: IbTrade, since: int = 0) -> TradeLogEntry | None:
    """The last IB error ib_async recorded on the trade (from log entry ``since``), if any."""
    errors = [entry for entry in trade.log[since:] if entry.errorCode]
    return errors[-1] if errors else None


def _status(trade: IbTrade) -> str:
    if any(entry.errorCode in REJECTED_CODES for entry in trade.log):
        return "rejected"
    return _STATUS.get(trade.orderStatus.status, "open")


def _side(action: str) -> Side:
    return "buy" if action in ("BUY", "BOT") else "sell"


def _order(trade: IbTrade) -> Order:
    o = trade.order
    filled = o.filledQuantity if o.filledQuantity not in (UNSET_DOUBLE, None) else trade.orderStatus.filled
    limit = o.lmtPrice if o.orderType == "LMT" and o.lmtPrice not in (UNSET_DOUBLE, None) else None
    return Order(
        order_id=str(o.permId or trade.orderStatus.permId),
        client_order_id=o.orderRef,
        symbol=trade.contract.symbol,
        side=_side(o.action),
        quantity=round(o.totalQuantity),
        filled_quantity=round(filled),
        status=_status(trade),
        order_type={"MKT": "market", "LMT": "limit"}.get(o.orderType, o.orderType.lower()),
        limit_price=float(limit) if limit is not None else None,
    )


def _order_from_fills(fills: list[IbFill]) -> Order:
    first = fills[0].execution
    shares = round(sum(f.execution.shares for f in fills))
    symbol = fills[0].contract.symbol
    return Order(str(first.permId), first.orderRef, symbol, _side(first.side), shares, shares, "filled")


def _fill(fill: IbFill) -> Fill:
    e = fill.execution
    return Fill(
        execution_id=e.execId,
        order_id=str(e.permId),
        client_order_id=e.orderRef,
        symbol=fill.contract.symbol,
        side=_side(e.side),
        quantity=round(e.shares),
        price=e.price,
        time=e.time.astimezone(UTC),
    )

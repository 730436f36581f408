"""A fake IB Gateway on loopback that speaks the TWS API socket protocol (server version 178).

Enough of the protocol for ib_async 2.1.0's ``IB.connect`` (any ``readonly`` / startup fetch)
and for the calls ``finance_dag.brokers.ib`` and ``finance_dag.market_data.vendors.ib`` make:

- handshake (``API\\0`` + ``v157..178``; answers server version 178 and the connection time),
  ``startApi`` (``nextValidId``, ``managedAccounts``, the 2104/2106/2158 farm notices; error 326
  and a dropped socket when the client id is already connected), ``reqIds``, ``reqCurrentTime``,
  ``reqManagedAccts``
- account: ``reqAccountSummary`` (NetLiquidation, TotalCashValue, AccountType),
  ``reqAccountUpdates`` and ``reqAccountUpdatesMulti`` (account values and portfolio)
- ``reqPositions`` (quantity and average cost per share, commission included, as IB keeps it)
- orders: ``placeOrder`` for US stocks (``Stock(symbol, 'SMART', 'USD')``, no conId needed),
  MKT and LMT, DAY/GTC. A market order, or a marketable limit order, fills at once in full at
  ``quote(symbol)``; a limit order away from the quote rests. A fill sends ``openOrder`` and
  ``orderStatus`` (Submitted), ``execDetails``, ``openOrder`` and ``orderStatus`` (Filled) and a
  ``commissionReport`` (IB fixed pricing: $0.005 a share, $1 minimum). The account is a cash
  account: a buy costing more than the cash is rejected (error 201, status Inactive). A
  symbol without a quote, or a non-STK/USD contract, gets error 200. ``cancelOrder`` cancels
  the caller's own open order (``orderStatus`` Cancelled, error 202), else errors 10147/10148.
- ``reqOpenOrders`` (the caller's), ``reqAllOpenOrders`` (every client's), ``reqCompletedOrders``
  and ``reqExecutions`` (filtered by client id, account, time, symbol, side), all carrying the
  ``orderRef`` the order was placed with; order ids belong to the client id that placed them
  and perm ids are global, like IB's.
- ``reqHistoricalData`` for daily bars (``1 day``, ``formatDate=1``) from ``prices`` (raw
  ``DAILY_PRICE_SCHEMA`` rows with ``split_ratio`` and ``dividend``). Like IB, ``TRADES`` bars are
  adjusted for splits (every split up to today, whatever ``endDateTime``, volume scaled up)
  but not for dividends, and ``ADJUSTED_LAST`` bars are adjusted for splits and dividends (the
  usual multiplicative factor ``1 - dividend / previous close`` for each ex date) and must be
  asked with an empty ``endDateTime`` (error 321 otherwise, as IB answers). ``durationStr`` is
  ``N D|W|M|Y`` calendar days/weeks/months(30 d)/years(365 d) back from the end date. A window
  without rows is IB's error 162 "HMDS query returned no data".

Messages are encoded field by field as ib_async's ``decoder.py`` reads them at server version
178; fields that the fake has no value for are sent empty (the decoder's "unset").

Faults: ``disconnect_after(messages=n)`` drops the connection after the gateway has sent ``n``
more messages (mid-answer), ``disconnect_after(request="reqPositions")`` drops it when that
request arrives (no answer); ``ignore(request)`` swallows requests (the client times out);
``fail_history(symbol)`` answers that symbol's historical requests with an IB error (162 by
default). Not supported: contract details (``qualifyContracts``), market data, order
modification (a reused order id is error 103), partial fills, shorting checks, what-if orders.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import struct
import threading
import zlib
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import polars as pl

SERVER_VERSION = 178
NEW_YORK = ZoneInfo("America/New_York")
UNSET_DOUBLE = "1.7976931348623157E308"
COMMISSION_PER_SHARE, MIN_COMMISSION = 0.005, 1.0
DONE = frozenset({"Filled", "Cancelled", "ApiCancelled", "Inactive"})
NO_DATA = "Historical Market Data Service error message:HMDS query returned no data: {symbol}@SMART Trades"

# Incoming message ids (client -> gateway) by the name the fault hooks and ``requests`` use.
REQUESTS = {
    3: "placeOrder", 4: "cancelOrder", 5: "reqOpenOrders", 6: "reqAccountUpdates", 7: "reqExecutions",
    8: "reqIds", 15: "reqAutoOpenOrders", 16: "reqAllOpenOrders", 17: "reqManagedAccts",
    20: "reqHistoricalData", 25: "cancelHistoricalData", 49: "reqCurrentTime", 61: "reqPositions",
    62: "reqAccountSummary", 63: "cancelAccountSummary", 64: "cancelPositions", 71: "startApi",
    76: "reqAccountUpdatesMulti", 77: "cancelAccountUpdatesMulti", 99: "reqCompletedOrders",
}  # fmt: skip

PricesFn = Callable[[str, date, date], pl.DataFrame]
Message = list[str]


@dataclass
class FakeOrder:
    client_id: int
    order_id: int
    perm_id: int
    account: str
    symbol: str
    action: str  # BUY / SELL
    quantity: float
    order_type: str  # MKT / LMT
    limit_price: float | None
    tif: str
    order_ref: str
    status: str = "Submitted"
    filled: float = 0.0
    avg_fill_price: float = 0.0
    completed_time: str = ""

    @property
    def is_open(self) -> bool:
        return self.status not in DONE


@dataclass
class FakeExecution:
    exec_id: str
    order: FakeOrder
    shares: float
    price: float
    time: datetime  # UTC
    commission: float
    realized_pnl: float | None  # None: an opening trade (IB sends "unset")


@dataclass
class HistoryRequest:
    symbol: str
    what_to_show: str
    end_date_time: str
    duration: str
    bar_size: str


@dataclass
class _Faults:
    messages_left: int | None = None  # drop the connection once this many more messages went out
    drop_on: set[str] = field(default_factory=set)
    ignore: Counter[str] = field(default_factory=Counter)
    history: dict[str, tuple[int, str]] = field(default_factory=dict)


class FakeIbGateway:
    """A threaded TWS API server on 127.0.0.1 (ephemeral ``port``); ``start``/``stop`` or ``with``."""

    def __init__(
        self,
        prices: PricesFn,
        *,
        quote: Callable[[str], float] | None = None,
        account: str = "DU1234567",
        cash: float = 100_000.0,
        positions: dict[str, tuple[int, float]] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.prices = prices
        self.quote = quote or self._last_close
        self.account = account
        self.cash = cash
        self.positions: dict[str, tuple[float, float]] = dict(positions or {})  # symbol -> (qty, avg cost)
        self.clock = clock
        self.orders: list[FakeOrder] = []
        self.executions: list[FakeExecution] = []
        self.requests: Counter[str] = Counter()
        self.history_requests: list[HistoryRequest] = []
        self.lock = threading.RLock()
        self._faults = _Faults()
        self._sessions: dict[int, _Session] = {}  # client id -> live session
        self._next_perm_id = 1_861_000_001
        self._server = _Server(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    # ---- lifecycle ---------------------------------------------------------------------
    @property
    def host(self) -> str:
        return self._server.server_address[0]

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> FakeIbGateway:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        with self.lock:
            sessions = list(self._sessions.values())
        for session in sessions:
            session.drop()

    def __enter__(self) -> FakeIbGateway:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- faults ------------------------------------------------------------------------
    def disconnect_after(self, messages: int | None = None, *, request: str | None = None) -> None:
        """Drop the connection after ``messages`` more sent messages, or when ``request`` arrives."""
        if (messages is None) == (request is None):
            raise ValueError("give exactly one of messages= or request=")
        with self.lock:
            if request is None:
                self._faults.messages_left = messages
            else:
                self._faults.drop_on.add(request)

    def ignore(self, request: str, times: int = 1) -> None:
        """Swallow the next ``times`` requests named ``request`` without answering."""
        with self.lock:
            self._faults.ignore[request] += times

    def fail_history(self, symbol: str, code: int = 162, message: str | None = None) -> None:
        """Answer every historical request for ``symbol`` with IB error ``code``."""
        with self.lock:
            self._faults.history[symbol] = (code, message or NO_DATA.format(symbol=symbol))

    def clear_faults(self) -> None:
        with self.lock:
            self._faults = _Faults()

    # ---- account state -----------------------------------------------------------------
    def net_liquidation(self) -> float:
        with self.lock:
            return self.cash + sum(qty * self.quote(s) for s, (qty, _) in self.positions.items())

    def _last_close(self, symbol: str) -> float:
        today = self.clock().astimezone(NEW_YORK).date()
        frame = self.prices(symbol, today - timedelta(days=10), today)
        if frame.is_empty():
            raise LookupError(f"no price for {symbol}")
        return float(frame.sort("date")["close"][-1])

    # ---- dispatch ----------------------------------------------------------------------
    def _handle(self, session: _Session, fields: Message) -> None:
        name = REQUESTS.get(int(fields[0]), f"msg{fields[0]}")
        with self.lock:
            self.requests[name] += 1
            if name in self._faults.drop_on:
                self._faults.drop_on.discard(name)
                session.drop()
                return
            if self._faults.ignore[name] > 0:
                self._faults.ignore[name] -= 1
                return
        handler = getattr(self, f"_on_{name}", None)
        if handler is not None:
            handler(session, fields)

    def _send(self, session: _Session, messages: Iterable[Message]) -> None:
        """Send ``messages`` in one write, or the part the ``disconnect_after`` budget allows."""
        batch = list(messages)
        with self.lock:
            left = self._faults.messages_left
            if left is not None:  # one drop per disconnect_after
                self._faults.messages_left = left - len(batch) if left >= len(batch) else None
        if left is not None and left < len(batch):
            session.write(batch[:left])
            session.drop()
            return
        session.write(batch)

    def _on_startApi(self, session: _Session, fields: Message) -> None:
        client_id = int(fields[2])
        with self.lock:
            taken = client_id in self._sessions
            if not taken:
                session.client_id = client_id
                self._sessions[client_id] = session
            next_id = 1 + max((o.order_id for o in self.orders if o.client_id == client_id), default=0)
        if taken:
            text = "Unable to connect as the client id is already in use. Retry with a unique client id."
            session.write([_error(-1, 326, text)])
            session.drop()
            return
        farms = [
            _error(-1, 2104, "Market data farm connection is OK:usfarm"),
            _error(-1, 2106, "HMDS data farm connection is OK:ushmds"),
            _error(-1, 2158, "Sec-def data farm connection is OK:secdefnj"),
        ]
        self._send(session, [["9", "1", str(next_id)], ["15", "1", self.account], *farms])

    def _on_reqIds(self, session: _Session, fields: Message) -> None:
        with self.lock:
            next_id = 1 + max(
                (o.order_id for o in self.orders if o.client_id == session.client_id), default=0
            )
        self._send(session, [["9", "1", str(next_id)]])

    def _on_reqCurrentTime(self, session: _Session, fields: Message) -> None:
        self._send(session, [["49", "1", str(int(self.clock().timestamp()))]])

    def _on_reqManagedAccts(self, session: _Session, fields: Message) -> None:
        self._send(session, [["15", "1", self.account]])

    # ---- account -----------------------------------------------------------------------
    def _account_values(self) -> list[tuple[str, str, str]]:
        """(tag, value, currency) of the account, as IB reports them."""
        return [
            ("AccountCode", self.account, ""),
            ("AccountType", "INDIVIDUAL", ""),
            ("NetLiquidation", _num(self.net_liquidation()), "USD"),
            ("TotalCashValue", _num(self.cash), "USD"),
            ("CashBalance", _num(self.cash), "USD"),
        ]

    def _on_reqAccountSummary(self, session: _Session, fields: Message) -> None:
        req_id, tags = fields[2], set(fields[4].split(","))
        with self.lock:
            rows = [
                ["63", "1", req_id, self.account, tag, value, currency]
                for tag, value, currency in self._account_values()
                if tag in tags
            ]
        self._send(session, [*rows, ["64", "1", req_id]])

    def _on_reqAccountUpdates(self, session: _Session, fields: Message) -> None:
        if fields[2] != "1":
            return  # unsubscribe
        with self.lock:
            values = [["6", "2", tag, value, ccy, self.account] for tag, value, ccy in self._account_values()]
            portfolio = []
            for symbol, (qty, avg) in sorted(self.positions.items()):
                price = self.quote(symbol)
                contract = [
                    str(_con_id(symbol)),
                    symbol,
                    "STK",
                    "",
                    "0.0",
                    "",
                    "",
                    "NASDAQ",
                    "USD",
                    symbol,
                    symbol,
                ]
                unrealized = qty * (price - avg)
                row = [
                    _qty(qty),
                    _num(price),
                    _num(qty * price),
                    _num(avg),
                    _num(unrealized),
                    "0",
                    self.account,
                ]
                portfolio.append(["7", "8", *contract, *row])
            stamp = self.clock().astimezone(NEW_YORK).strftime("%H:%M")
        self._send(session, [*values, *portfolio, ["8", "1", stamp], ["54", "1", self.account]])

    def _on_reqAccountUpdatesMulti(self, session: _Session, fields: Message) -> None:
        req_id, model = fields[2], fields[4]
        with self.lock:
            rows = [["73", "1", req_id, self.account, model, *value] for value in self._account_values()]
        self._send(session, [*rows, ["74", "1", req_id]])

    def _on_reqPositions(self, session: _Session, fields: Message) -> None:
        with self.lock:
            rows = [
                [
                    "61",
                    "3",
                    self.account,
                    str(_con_id(symbol)),
                    symbol,
                    "STK",
                    "",
                    "0.0",
                    "",
                    "",
                    "",
                    "USD",
                    symbol,
                    symbol,
                    _qty(qty),
                    _num(avg),
                ]  # fmt: skip
                for symbol, (qty, avg) in sorted(self.positions.items())
            ]
        self._send(session, [*rows, ["62", "1"]])

    # ---- orders ------------------------------------------------------------------------
    def _on_placeOrder(self, session: _Session, fields: Message) -> None:
        order_id = int(fields[1])
        symbol, sec_type, currency = fields[3], fields[4], fields[11]
        action, quantity, order_type = fields[16], float(fields[17]), fields[18]
        limit = float(fields[19]) if fields[19] else None
        with self.lock:
            if any(o.client_id == session.client_id and o.order_id == order_id for o in self.orders):
                self._send(session, [_error(order_id, 103, "Duplicate order id")])
                return
            try:
                price = self.quote(symbol) if sec_type == "STK" and currency == "USD" else None
            except LookupError:
                price = None
            if price is None:
                self._send(
                    session, [_error(order_id, 200, "No security definition has been found for the request")]
                )
                return
            if order_type not in ("MKT", "LMT") or (order_type == "LMT" and limit is None):
                self._send(
                    session,
                    [_error(order_id, 387, "Unsupported order type for this exchange and security type.")],
                )
                return
            order = FakeOrder(
                session.client_id, order_id, self._next_perm_id, fields[23] or self.account, symbol, action,
                quantity, order_type, limit, fields[21] or "DAY", fields[26],
            )  # fmt: skip
            self._next_perm_id += 1
            self.orders.append(order)
            marketable = order_type == "MKT" or (limit >= price if action == "BUY" else limit <= price)
            if action == "BUY" and marketable and quantity * price + _commission(quantity) > self.cash:
                order.status, order.completed_time = "Inactive", self._stamp()
                reason = f"Order rejected - reason:insufficient cash: {_num(self.cash)} USD available"
                self._send(session, [_open_order(order), _order_status(order), _error(order_id, 201, reason)])
                return
            messages = [_open_order(order), _order_status(order)]
            if marketable:
                execution = self._fill(order, price)
                messages += [
                    _exec_details(-1, execution),
                    _open_order(order),
                    _order_status(order),
                    _commission_report(execution),
                ]
            self._send(session, messages)

    def _fill(self, order: FakeOrder, price: float) -> FakeExecution:
        """Fill ``order`` in full at ``price``: position, average cost, cash, execution."""
        shares = order.quantity
        commission = _commission(shares)
        signed = shares if order.action == "BUY" else -shares
        held, avg = self.positions.get(order.symbol, (0.0, 0.0))
        realized = None
        if held == 0 or (held > 0) == (signed > 0):  # opening or adding
            cost = abs(held) * avg + shares * price + (commission if signed > 0 else -commission)
            new_avg = cost / abs(held + signed)
        else:  # reducing, closing or flipping
            closed = min(abs(held), shares)
            realized = closed * (price - avg) * (1 if held > 0 else -1) - commission
            new_avg = avg if abs(signed) <= abs(held) else price
        if held + signed == 0:
            self.positions.pop(order.symbol, None)
        else:
            self.positions[order.symbol] = (held + signed, new_avg)
        self.cash -= signed * price + commission
        order.status, order.filled, order.avg_fill_price = "Filled", shares, price
        order.completed_time = self._stamp()
        execution = FakeExecution(
            f"0000e0d5.{order.perm_id:08x}.01.01", order, shares, price, self.clock(), commission, realized
        )
        self.executions.append(execution)
        return execution

    def _stamp(self) -> str:
        return self.clock().astimezone(NEW_YORK).strftime("%Y%m%d %H:%M:%S US/Eastern")

    def _on_cancelOrder(self, session: _Session, fields: Message) -> None:
        order_id = int(fields[2])
        with self.lock:
            order = next(
                (o for o in self.orders if o.client_id == session.client_id and o.order_id == order_id), None
            )
            if order is None:
                text = f"OrderId {order_id} that needs to be cancelled is not found."
                self._send(session, [_error(order_id, 10147, text)])
            elif not order.is_open:
                state = order.status
                text = f"OrderId {order_id} that needs to be cancelled cannot be cancelled, state: {state}."
                self._send(session, [_error(order_id, 10148, text)])
            else:
                order.status, order.completed_time = "Cancelled", self._stamp()
                self._send(session, [_order_status(order), _error(order_id, 202, "Order Canceled - reason:")])

    def _open_orders(self, session: _Session, every_client: bool) -> None:
        with self.lock:
            orders = [
                o for o in self.orders if o.is_open and (every_client or o.client_id == session.client_id)
            ]
            messages = [m for o in orders for m in (_open_order(o), _order_status(o))]
        self._send(session, [*messages, ["53", "1"]])

    def _on_reqOpenOrders(self, session: _Session, fields: Message) -> None:
        self._open_orders(session, every_client=False)

    def _on_reqAllOpenOrders(self, session: _Session, fields: Message) -> None:
        self._open_orders(session, every_client=True)

    def _on_reqCompletedOrders(self, session: _Session, fields: Message) -> None:
        with self.lock:
            messages = [_completed_order(o) for o in self.orders if not o.is_open]
        self._send(session, [*messages, ["102"]])

    def _on_reqExecutions(self, session: _Session, fields: Message) -> None:
        req_id, client_id, account, since, symbol, _sec_type, _exchange, side = fields[2:10]
        after = _parse_ib_time(since) if since else None
        with self.lock:
            chosen = [
                e
                for e in self.executions
                if (client_id in ("", "0") or e.order.client_id == int(client_id))
                and (not account or e.order.account == account)
                and (after is None or e.time >= after)
                and (not symbol or e.order.symbol == symbol)
                and (not side or _side(e.order.action) == side or e.order.action == side)
            ]
            messages = [m for e in chosen for m in (_exec_details(int(req_id), e), _commission_report(e))]
        self._send(session, [*messages, ["55", "1", req_id]])

    # ---- history -----------------------------------------------------------------------
    def _on_reqHistoricalData(self, session: _Session, fields: Message) -> None:
        req_id, symbol = int(fields[1]), fields[3]
        end_text, bar_size, duration, what = fields[15], fields[16], fields[17], fields[19]
        with self.lock:
            self.history_requests.append(HistoryRequest(symbol, what, end_text, duration, bar_size))
            failure = self._faults.history.get(symbol)
        if failure is not None:
            self._send(session, [_error(req_id, *failure)])
            return
        if bar_size != "1 day" or what not in ("TRADES", "ADJUSTED_LAST"):
            cause = f"the fake serves '1 day' TRADES/ADJUSTED_LAST, not {bar_size!r} {what}"
            text = f"Error validating request.-'bP' : cause - {cause}"
            self._send(session, [_error(req_id, 321, text)])
            return
        if what == "ADJUSTED_LAST" and end_text:
            text = "Error validating request.-'bP' : cause - End date not supported with adjusted last"
            self._send(session, [_error(req_id, 321, text)])
            return
        today = self.clock().astimezone(NEW_YORK).date()
        end = _parse_ib_time(end_text).astimezone(NEW_YORK).date() if end_text else today
        first = end - timedelta(days=_duration_days(duration) - 1)
        bars = _daily_bars(self.prices(symbol, first, max(end, today)), first, end, what == "ADJUSTED_LAST")
        if not bars:
            self._send(session, [_error(req_id, 162, NO_DATA.format(symbol=symbol))])
            return
        span = [f"{first:%Y%m%d} 00:00:00 US/Eastern", f"{end:%Y%m%d} 23:59:59 US/Eastern"]
        self._send(session, [["17", str(req_id), *span, str(len(bars)), *(f for bar in bars for f in bar)]])


# ---- the socket side ----------------------------------------------------------------------
class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Session:
    """One client connection: length-prefixed messages of NUL-terminated fields."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.client_id: int | None = None
        self._write_lock = threading.Lock()
        self.dropped = False

    def write(self, messages: list[Message]) -> None:
        payload = b"".join(_frame("".join(f"{v}\0" for v in m).encode()) for m in messages)
        with self._write_lock:
            if self.dropped or not payload:
                return
            try:
                self.sock.sendall(payload)
            except OSError:
                self.dropped = True

    def drop(self) -> None:
        with self._write_lock:
            self.dropped = True
            with contextlib.suppress(OSError):  # already closed by the client
                self.sock.shutdown(socket.SHUT_RDWR)

    def read(self, size: int) -> bytes | None:
        data = b""
        while len(data) < size:
            try:
                chunk = self.sock.recv(size - len(data))
            except OSError:
                return None
            if not chunk:
                return None
            data += chunk
        return data

    def read_message(self) -> bytes | None:
        header = self.read(4)
        return None if header is None else self.read(struct.unpack(">I", header)[0])


def _handler(fake: FakeIbGateway) -> type[socketserver.BaseRequestHandler]:
    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            session = _Session(self.request)
            try:
                if session.read(4) != b"API\0":
                    return
                hello = session.read_message()
                if hello is None:
                    return
                low, high = (int(v) for v in hello.decode().split()[0].lstrip("v").split(".."))
                if not low <= SERVER_VERSION <= high:
                    return
                connected = fake.clock().astimezone(NEW_YORK).strftime("%Y%m%d %H:%M:%S %Z")
                session.sock.sendall(_frame(f"{SERVER_VERSION}\0{connected}\0".encode()))
                while not session.dropped:
                    message = session.read_message()
                    if message is None:
                        break
                    fake._handle(session, message.decode().split("\0")[:-1])
            finally:
                with fake.lock:
                    if session.client_id is not None and fake._sessions.get(session.client_id) is session:
                        del fake._sessions[session.client_id]

    return Handler


# ---- encoding -----------------------------------------------------------------------------
def _frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def _num(value: float) -> str:
    return repr(float(value))


def _qty(value: float) -> str:
    """A share quantity as IB's Decimal text: ``100``, not ``100.0``."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _con_id(symbol: str) -> int:
    return 10_000 + zlib.crc32(symbol.encode()) % 900_000_000


def _commission(shares: float) -> float:
    return max(MIN_COMMISSION, COMMISSION_PER_SHARE * shares)


def _side(action: str) -> str:
    return "BOT" if action == "BUY" else "SLD"


def _error(req_id: int, code: int, text: str) -> Message:
    return ["4", "2", str(req_id), str(code), text, ""]  # last: advancedOrderRejectJson (>= 166)


def _contract(symbol: str, exchange: str = "SMART") -> list[str]:
    """conId, symbol, secType, lastTradeDate, strike, right, multiplier, exchange, currency, localSymbol,
    tradingClass: a US stock as IB describes it."""
    return [str(_con_id(symbol)), symbol, "STK", "", "0.0", "", "", exchange, "USD", symbol, symbol]


def _order_status(o: FakeOrder) -> Message:
    avg = _num(o.avg_fill_price) if o.filled else "0"
    return ["3", str(o.order_id), o.status, _qty(o.filled), _qty(o.quantity - o.filled), avg,
            str(o.perm_id), "0", avg, str(o.client_id), "", "0"]  # fmt: skip


def _order_head(o: FakeOrder) -> list[str]:
    """action .. orderRef: the fields openOrder and completedOrder share after the contract."""
    limit = _num(o.limit_price) if o.limit_price is not None else ""
    return [o.action, _qty(o.quantity), o.order_type, limit, "", o.tif, "", o.account, "O", "0", o.order_ref]


def _open_order(o: FakeOrder) -> Message:
    """openOrder (5) at server version 178, in the order ib_async's ``Decoder.openOrder`` reads."""
    return [
        "5", str(o.order_id), *_contract(o.symbol), *_order_head(o),
        # clientId, permId, outsideRth, hidden, discretionaryAmt, goodAfterTime, sharesAllocation
        str(o.client_id), str(o.perm_id), "0", "0", "0", "", "",
        "", "", "",  # faGroup, faMethod, faPercentage (no faProfile at >= 177)
        # modelCode, goodTillDate, rule80A, percentOffset, settlingFirm, shortSaleSlot, designatedLocation,
        # exemptCode
        "", "", "", "", "", "0", "", "-1",
        # auctionStrategy, startingPrice, stockRefPrice, delta, stockRangeLower/Upper, displaySize
        "0", "", "", "", "", "", "0",
        # blockOrder, sweepToFill, allOrNone, minQty, ocaType, eTradeOnly, firmQuoteOnly, nbboPriceCap
        "0", "0", "0", "", "0", "0", "0", "",
        # parentId, triggerMethod, volatility, volatilityType, deltaNeutralOrderType (none),
        # deltaNeutralAuxPrice
        "0", "0", "", "", "", "",
        # continuousUpdate, referencePriceType, trailStopPrice, trailingPercent, basisPoints, basisPointsType,
        # comboLegsDescrip
        "0", "", "", "", "", "", "",
        "0", "0", "0",  # combo legs, order combo legs, smart combo routing params
        "", "", "",  # scaleInitLevelSize, scaleSubsLevelSize, scalePriceIncrement (unset: no scale fields)
        "",  # hedgeType (none: no hedgeParam)
        "0", "", "", "0", "0",  # optOutSmartRouting, clearingAccount, clearingIntent, notHeld, deltaNeutral
        "",  # algoStrategy (none)
        "0", "0", o.status, "", "", "", "", "", "", "", "", "",  # solicited, whatIf, status, 9 margin fields
        "", "", "", "", "",  # commission, minCommission, maxCommission, commissionCurrency, warningText
        "0", "0",  # randomizeSize, randomizePrice
        "0",  # conditions
        # adjustedOrderType, triggerPrice, trailStopPrice, lmtPriceOffset, adjustedStopPrice,
        # adjustedStopLimitPrice, adjustedTrailingAmount, adjustableTrailingUnit
        "", "", "", "", "", "", "", "0",
        "", "", "", "",  # softDollarTier name, val, displayName; cashQty
        # dontUseAutoPriceForHedge, isOmsContainer, discretionaryUpToLimitPrice, usePriceMgmtAlgo
        "0", "0", "0", "0",
        "", "", "0",  # duration (>= 159), postToAts (>= 160), autoCancelParent (>= 162)
        # minTradeQty, minCompeteSize, competeAgainstBestOffset, midOffsetAtWhole/Half (>= 170)
        "", "", "", "", "",
    ]  # fmt: skip


def _completed_order(o: FakeOrder) -> Message:
    """completedOrder (101) at server version 178, as ib_async's ``Decoder.completedOrder`` reads it."""
    status_text = {"Filled": "Filled", "Cancelled": "Cancelled by Trader", "Inactive": "Rejected"}.get(
        o.status, o.status
    )
    return [
        "101", *_contract(o.symbol), *_order_head(o),
        str(o.perm_id), "0", "0", "0", "",  # permId, outsideRth, hidden, discretionaryAmt, goodAfterTime
        "", "", "",  # faGroup, faMethod, faPercentage
        # modelCode, goodTillDate, rule80A, percentOffset, settlingFirm, shortSaleSlot, designatedLocation,
        # exemptCode
        "", "", "", "", "", "0", "", "-1",
        "", "", "", "", "", "0",  # startingPrice, stockRefPrice, delta, stockRangeLower/Upper, displaySize
        # sweepToFill, allOrNone, minQty, ocaType, triggerMethod, volatility, volatilityType,
        # deltaNeutralOrderType (none), deltaNeutralAuxPrice
        "0", "0", "", "0", "0", "", "", "", "",
        # continuousUpdate, referencePriceType, trailStopPrice, trailingPercent, comboLegsDescrip
        "0", "", "", "", "",
        "0", "0", "0",  # combo legs, order combo legs, smart combo routing params
        "", "", "",  # scale sizes and increment
        "",  # hedgeType
        "", "", "0", "0",  # clearingAccount, clearingIntent, notHeld, deltaNeutralContract present
        "",  # algoStrategy
        "0", o.status, "0", "0",  # solicited, status, randomizeSize, randomizePrice
        "0",  # conditions
        # trailStopPrice, lmtPriceOffset, cashQty, dontUseAutoPriceForHedge, isOmsContainer, autoCancelDate
        "", "", "", "0", "0", "",
        # filledQuantity, refFuturesConId, autoCancelParent, shareholder, imbalanceOnly, routeMarketableToBbo,
        # parentPermId
        _qty(o.filled), "0", "0", "", "0", "0", "",
        o.completed_time, status_text,  # completedTime, completedStatus
        # minTradeQty, minCompeteSize, competeAgainstBestOffset, midOffsetAtWhole/Half (>= 170)
        "", "", "", "", "",
    ]  # fmt: skip


def _exec_details(req_id: int, e: FakeExecution) -> Message:
    o = e.order
    stamp = e.time.astimezone(NEW_YORK).strftime("%Y%m%d %H:%M:%S US/Eastern")
    return [
        "11", str(req_id), str(o.order_id), *_contract(o.symbol, "ISLAND"),
        e.exec_id, stamp, o.account, "ISLAND", _side(o.action), _qty(e.shares), _num(e.price),
        str(o.perm_id), str(o.client_id), "0", _qty(o.filled), _num(o.avg_fill_price), o.order_ref,
        # evRule, evMultiplier, modelCode, lastLiquidity (2: removed), pendingPriceRevision (>= 178)
        "", "", "", "2", "0",
    ]  # fmt: skip


def _commission_report(e: FakeExecution) -> Message:
    pnl = UNSET_DOUBLE if e.realized_pnl is None else _num(e.realized_pnl)
    return ["59", "1", e.exec_id, _num(e.commission), "USD", pnl, UNSET_DOUBLE, ""]


# ---- history ------------------------------------------------------------------------------
def _duration_days(duration: str) -> int:
    count, unit = duration.split()
    return int(count) * {"D": 1, "W": 7, "M": 30, "Y": 365}[unit]


def _parse_ib_time(text: str) -> datetime:
    """``yyyymmdd-hh:mm:ss`` (UTC) or ``yyyymmdd hh:mm:ss [zone]`` (New York without a zone)."""
    if "-" in text[:9]:
        return datetime.strptime(text, "%Y%m%d-%H:%M:%S").replace(tzinfo=UTC)
    day, clock, *zone = text.split()
    local = datetime.strptime(f"{day} {clock}", "%Y%m%d %H:%M:%S")
    return local.replace(tzinfo=ZoneInfo(zone[0]) if zone else NEW_YORK)


def _daily_bars(raw: pl.DataFrame, first: date, end: date, dividends_too: bool) -> list[list[str]]:
    """IB daily bars in [first, end] from raw rows reaching to today: split- (and dividend-) adjusted.

    Walking back from the newest row, a price is divided by the splits after it; with
    ``dividends_too`` it is also multiplied by ``1 - dividend / previous close`` for each ex date
    after it (dividend and close in the same share basis). Volume is multiplied by the splits.
    """
    rows = raw.sort("date").to_dicts()
    splits, factor = 1.0, 1.0
    adjusted: list[tuple[dict, float, float]] = []
    for i in range(len(rows) - 1, -1, -1):
        row = rows[i]
        adjusted.append((row, splits, factor))
        if dividends_too and i > 0 and row["dividend"] > 0:
            factor *= 1 - row["dividend"] * row["split_ratio"] / rows[i - 1]["close"]
        splits *= row["split_ratio"]
    bars = []
    for row, splits, factor in reversed(adjusted):
        if not first <= row["date"] <= end:
            continue
        scale = (factor if dividends_too else 1.0) / splits
        o, h, lo, c = (row[k] * scale for k in ("open", "high", "low", "close"))
        volume = int(round(row["volume"] * splits))
        bars.append([f"{row['date']:%Y%m%d}", _num(o), _num(h), _num(lo), _num(c), _qty(volume),
                     _num((h + lo + c) / 3), str(max(1, volume // 100))])  # fmt: skip
    return bars

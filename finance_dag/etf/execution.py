"""Guarded execution of a trade plan (the seed's ``02_execute_trades`` notebook as functions).

``check_plan`` compares what the plan assumed (``portfolio_state.json``) with the plan file and
the broker now, and returns every reason to refuse it: the file edited after planning, a stale
plan, another account, a position that changed, cash that moved beyond a tolerance. Fills of the
plan's own orders (a run that stopped part-way) are expected changes, so the retry is allowed.
The caller executes only when that list is empty.

``execute_plan`` then places the trades, sells first. It is safe to retry: before each trade it
asks the broker for an order under the trade's deterministic ``client_order_id`` and, if one
exists in any state, records it as already placed instead of placing it again. A ``BrokerError``
stops the run at the trade it hit; ``ExecutionError`` carries the report of what was placed so
far, and running the same plan again continues from there without duplicates. A dry run touches
no broker at all and lists what would be placed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from finance_dag.brokers.base import Account, Broker, BrokerError, Fill, Order, OrderRequest, Position, Side
from finance_dag.etf.trades import Trade, parse_plan_csv, plan_hash

MAX_AGE = timedelta(hours=24)  # a plan made after one close is executed before the next
CASH_TOLERANCE = 250.0  # dollars: interest and small fees pass, a fill or a transfer does not

Outcome = Literal["dry_run", "placed", "already_placed", "failed"]


@dataclass(frozen=True)
class ExecutionRow:
    client_order_id: str
    symbol: str
    side: Side
    quantity: int
    outcome: Outcome
    order_id: str | None = None
    filled_quantity: int = 0
    avg_price: float | None = None  # volume-weighted over the fills seen


@dataclass(frozen=True)
class ExecutionReport:
    """What happened to each trade attempted (a failed run stops at its ``failed`` row), the
    fills under our client order ids, and the account and positions afterwards (``None`` and
    empty for a dry run or when the broker failed)."""

    live: bool
    rows: tuple[ExecutionRow, ...]
    fills: tuple[Fill, ...] = ()
    account: Account | None = None
    positions: tuple[Position, ...] = ()
    error: str | None = None


class ExecutionError(RuntimeError):
    """A live run stopped on a broker error; ``report`` says what was placed before it."""

    def __init__(self, report: ExecutionReport) -> None:
        super().__init__(report.error)
        self.report = report


def check_plan(
    state: dict,
    csv_bytes: bytes,
    broker: Broker,
    now: datetime,
    max_age: timedelta = MAX_AGE,
    cash_tolerance: float = CASH_TOLERANCE,
) -> list[str]:
    """The reasons to refuse executing the plan, one sentence each; empty when it is safe.

    Fills under the plan's own client order ids (a run that stopped part-way) are expected
    changes: positions and cash are compared with the planning snapshot plus those fills, so a
    retry is not refused for the orders it placed itself."""
    reasons = []
    actual = plan_hash(csv_bytes)
    edited = actual != state["plan_sha256"]
    if edited:
        reasons.append(
            f"the plan file was edited after planning: its sha256 is {actual[:12]}…, "
            f"the state recorded {state['plan_sha256'][:12]}…"
        )
    created = datetime.fromisoformat(state["created_at"])
    if now - created > max_age:
        reasons.append(
            f"the plan is stale: created {created.isoformat()}, {now - created} before now, "
            f"more than the {max_age} allowed"
        )
    account = broker.account()
    if account.account_id != state["account_id"]:
        reasons.append(
            f"the plan was made for account {state['account_id']}, the broker is on {account.account_id}"
        )
    ours = set() if edited else {t.client_order_id for t in parse_plan_csv(csv_bytes)}
    own_fills = [f for f in broker.fills(since=created) if f.client_order_id in ours]
    filled = Counter[str]()
    for fill in own_fills:
        filled[fill.symbol] += _signed(fill)
    then = {p["symbol"]: p["quantity"] for p in state["positions"]}
    held = {p.symbol: p.quantity for p in broker.positions() if p.quantity}
    for symbol in sorted(set(then) | set(held)):
        before, after, own = then.get(symbol, 0), held.get(symbol, 0), filled[symbol]
        if before + own != after:
            by_plan = f" and {own:+d} filled by this plan" if own else ""
            reasons.append(
                f"the position in {symbol} changed: {before} shares at planning{by_plan}, {after} now"
            )
    expected_cash = state["cash"] - sum(_signed(f) * f.price for f in own_fills)
    if abs(account.cash - expected_cash) > cash_tolerance:
        by_plan = f" (${expected_cash:,.2f} after this plan's fills)" if own_fills else ""
        reasons.append(
            f"cash changed by ${account.cash - expected_cash:,.2f}: ${state['cash']:,.2f} at planning{by_plan}, "
            f"${account.cash:,.2f} now (tolerance ${cash_tolerance:,.2f})"
        )
    return reasons


def _signed(fill: Fill) -> int:
    """The shares a fill added to the position (negative for a sale)."""
    return fill.quantity if fill.side == "buy" else -fill.quantity


def execute_plan(trades: Sequence[Trade], broker: Broker, live: bool) -> ExecutionReport:
    """Place ``trades`` (sells first, then buys, otherwise in plan order) as market orders, each
    at most once across runs; a dry run (``live`` False) makes no broker call. Raises
    ``ExecutionError`` with the partial report on a ``BrokerError`` while placing; one while
    reading the fills or the end state afterwards propagates as is (every order is placed).
    Orders are sent one after another without waiting for fills."""
    ordered = sorted(trades, key=lambda t: t.side != "sell")
    if not live:
        return ExecutionReport(False, tuple(_row(t, "dry_run") for t in ordered))
    done: list[tuple[Trade, Outcome, Order]] = []
    for number, trade in enumerate(ordered, 1):
        try:
            existing = broker.find_order(trade.client_order_id)
            if existing is not None:
                done.append((trade, "already_placed", existing))
                continue
            request = OrderRequest(trade.client_order_id, trade.symbol, trade.side, trade.quantity)
            done.append((trade, "placed", broker.place_order(request)))
        except BrokerError as exc:
            rows = tuple(_row(t, outcome, order) for t, outcome, order in done) + (_row(trade, "failed"),)
            error = (
                f"execution stopped at trade {number} of {len(ordered)} ({trade.side} {trade.quantity} "
                f"{trade.symbol}, {trade.client_order_id}): {exc}; {len(done)} trades placed or found "
                f"before it, {len(ordered) - number} not attempted. Run the same plan again to continue: "
                "orders already placed are found by their client order id and not placed twice."
            )
            raise ExecutionError(ExecutionReport(True, rows, error=error)) from exc
    ours = {t.client_order_id for t in ordered}
    fills = tuple(f for f in broker.fills() if f.client_order_id in ours)
    rows = tuple(_row(t, outcome, order, fills) for t, outcome, order in done)
    return ExecutionReport(True, rows, fills, broker.account(), tuple(broker.positions()))


def _row(
    trade: Trade, outcome: Outcome, order: Order | None = None, fills: Sequence[Fill] = ()
) -> ExecutionRow:
    """The report row of one trade: filled quantity and average price from its fills when there
    are any, else as the order reported it."""
    mine = [f for f in fills if f.client_order_id == trade.client_order_id]
    filled = sum(f.quantity for f in mine) if mine else (order.filled_quantity if order else 0)
    avg_price = sum(f.quantity * f.price for f in mine) / filled if mine else None
    return ExecutionRow(
        client_order_id=trade.client_order_id,
        symbol=trade.symbol,
        side=trade.side,
        quantity=trade.quantity,
        outcome=outcome,
        order_id=order.order_id if order else None,
        filled_quantity=filled,
        avg_price=avg_price,
    )

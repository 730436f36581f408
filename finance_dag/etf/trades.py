"""The trade plan (section 6 of the ETF seed): cleanup, sizing, and the plan files execution trusts.

Three phases, each a pure function here; the broker calls happen in the execution job.

1. **Cleanup** (``cleanup_proposal``): every open order is cancelled and every short is bought
   back, so the plan starts from a clean account.
2. **Plan** (``build_plan``): target weights against the live positions give whole-share trades,
   sells first. Two modes, as in the seed:

   - *cash reserve* (``deploy_cash=None``): positions are sized to the net liquidation value
     (NLV) and buys are capped so that cash after all trades stays at or above ``reserve``;
   - *deploy cash* (``deploy_cash=X``): positions are sized to (invested + X), where invested is
     the market value of the positions held, and buys spend at most X plus the sale proceeds.

   When the buys wanted cost more than the budget, every buy (new or increased position) is
   scaled by the same factor budget / wanted and rounded down to whole shares: each buy keeps its
   share of the budget, the budget is never exceeded, and rounding leaves less than one share's
   price per buy unspent. Sells and covers are never scaled: exits are sold in full, and a short
   (normally gone after the cleanup) is bought back to its target in full before any other buy.
   Trades worth less than ``min_trade_value`` are dropped, except exits and covers.
3. **Snapshot** (``portfolio_state``, ``write_plan``): the plan as CSV and, beside it,
   ``portfolio_state.json`` with what the plan assumed (account, cash, positions, prices, the CSV's
   sha256), so execution can refuse a plan the world has moved away from (``etf.execution``).

Every trade carries a deterministic ``client_order_id``, ``fd-<plan id>-<SYMBOL>-<b|s>``: the plan
id is the first 12 hex digits of the sha256 of the plan's content (account, mode, and each trade's
symbol, side, quantity and price), so the same plan always gives the same ids, a retried execution
finds orders it already placed, and two plans made on different days (different prices or
positions) do not share ids. The ids stay far below Alpaca's 128-character limit.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from math import floor
from typing import Literal, NamedTuple

from finance_dag.brokers.base import Account, Order, Position, Side
from finance_dag.core.lake import Lake

Action = Literal["new", "increase", "decrease", "exit", "cover"]
Mode = Literal["cash_reserve", "deploy_cash"]

RESERVE = 70_000.0  # the seed's cash reserve
MIN_TRADE_VALUE = 100.0  # smaller rebalancing trades cost more attention than they are worth
ID_PREFIX = "fd"
ID_HEX = 12
PLAN_FILE = "trade_plan.csv"
STATE_FILE = "portfolio_state.json"
STATE_VERSION = 1
WEIGHT_SLACK = 1e-9  # float noise allowed in the sum of weights and in shares = value / price


@dataclass(frozen=True)
class Trade:
    """One whole-share order of the plan; ``target_shares`` is what is held after it."""

    client_order_id: str
    symbol: str
    side: Side
    quantity: int
    price: float
    value: float  # quantity x price, rounded to the cent
    current_shares: int
    target_shares: int
    target_weight: float
    action: Action


@dataclass(frozen=True)
class Cleanup:
    """Phase 1: the open orders to cancel and the buy-to-cover trades for every short."""

    cancel: tuple[Order, ...]
    cover: tuple[Trade, ...]


@dataclass(frozen=True)
class Transition:
    """How the holdings change: kept, sold out of, and bought into (symbols, sorted)."""

    retained: tuple[str, ...]
    exiting: tuple[str, ...]
    new: tuple[str, ...]


@dataclass(frozen=True)
class TradePlan:
    account_id: str
    mode: Mode
    sizing_basis: float  # NLV (cash reserve) or invested + deploy cash
    reserve: float
    deploy_cash: float | None
    cash_before: float
    buy_scale: float  # 1.0 unless buys were capped by the budget
    trades: tuple[Trade, ...]  # sells first, then buys; by symbol within each side
    transition: Transition
    plan_id: str  # the content hash the client order ids carry

    @property
    def buys(self) -> float:
        return round(sum(t.value for t in self.trades if t.side == "buy"), 2)

    @property
    def sells(self) -> float:
        return round(sum(t.value for t in self.trades if t.side == "sell"), 2)

    @property
    def cash_after(self) -> float:
        return round(self.cash_before + self.sells - self.buys, 2)

    @property
    def summary(self) -> dict:
        """The figures the seed prints under the plan."""
        return {
            "mode": self.mode,
            "sizing_basis": self.sizing_basis,
            "reserve": self.reserve,
            "deploy_cash": self.deploy_cash,
            "cash_before": self.cash_before,
            "buys": self.buys,
            "sells": self.sells,
            "cash_after": self.cash_after,
            "buy_scale": self.buy_scale,
            "trades": len(self.trades),
        }


class _Move(NamedTuple):
    """One symbol from ``current`` to ``target`` shares, before it becomes a ``Trade``."""

    symbol: str
    current: int
    target: int
    price: float
    weight: float

    @property
    def value(self) -> float:
        return abs(self.target - self.current) * self.price


# ---- phase 1 ------------------------------------------------------------------------------
def cleanup_proposal(positions: Sequence[Position], open_orders: Sequence[Order]) -> Cleanup:
    """Cancel every open order and cover every short with a market buy. A cover's price is the
    position's market price (its average cost when the broker gave none): an estimate, for the
    report. The ids hash the shorts and the orders, so a retried cleanup finds its covers."""
    shorts = sorted((p for p in positions if p.quantity < 0), key=lambda p: p.symbol)
    covers = [
        _Move(p.symbol, p.quantity, 0, p.avg_cost if p.market_price is None else p.market_price, 0.0)
        for p in shorts
    ]
    orders = [o.order_id for o in open_orders]
    key = _content_id(["cleanup"] + [f"{p.symbol}:{p.quantity}:{p.avg_cost!r}" for p in shorts] + orders)
    return Cleanup(tuple(open_orders), tuple(_trade(key, m) for m in covers))


# ---- phase 2 ------------------------------------------------------------------------------
def transition_summary(target: Mapping[str, float], positions: Iterable[Position]) -> Transition:
    """Held and still targeted (retained), held but not targeted (exiting), targeted but not held
    (new). A target weight of 0 counts as not targeted."""
    held = {p.symbol for p in positions if p.quantity}
    wanted = {s for s, w in target.items() if w > 0}
    return Transition(
        tuple(sorted(held & wanted)), tuple(sorted(held - wanted)), tuple(sorted(wanted - held))
    )


def build_plan(
    target: Mapping[str, float],
    account: Account,
    positions: Sequence[Position],
    prices: Mapping[str, float],
    reserve: float = RESERVE,
    deploy_cash: float | None = None,
    min_trade_value: float = MIN_TRADE_VALUE,
) -> TradePlan:
    """The whole-share trades from ``positions`` to ``target`` (symbol -> weight of the sizing
    basis), in the mode ``deploy_cash`` selects (see the module docstring). A held position
    without a price in ``prices`` is valued at its broker market price; a target symbol without
    a price is an error naming it."""
    _check_inputs(target, reserve, deploy_cash)
    mode: Mode = "cash_reserve" if deploy_cash is None else "deploy_cash"
    held = {p.symbol: p for p in positions if p.quantity}
    price = {s: _price(s, prices, held.get(s)) for s in sorted(set(target) | set(held))}
    invested = sum(p.quantity * price[s] for s, p in held.items())
    basis = account.net_liquidation if deploy_cash is None else invested + deploy_cash
    spendable = account.cash - reserve if deploy_cash is None else deploy_cash
    moves = [
        _Move(
            symbol,
            held[symbol].quantity if symbol in held else 0,
            floor(target.get(symbol, 0.0) * basis / price[symbol] + WEIGHT_SLACK),
            price[symbol],
            target.get(symbol, 0.0),
        )
        for symbol in price
    ]
    covers = [m for m in moves if m.current < 0]
    sells = [m for m in moves if m.target < m.current and (m.target == 0 or m.value >= min_trade_value)]
    buys = [m for m in moves if 0 <= m.current < m.target]
    budget = spendable + sum(m.value for m in sells) - sum(m.value for m in covers)
    wanted = sum(m.value for m in buys)
    scale = 1.0 if wanted <= budget else max(budget, 0.0) / wanted
    if scale < 1.0:
        buys = [m._replace(target=m.current + floor((m.target - m.current) * scale)) for m in buys]
    buys = [m for m in buys if m.target > m.current and m.value >= min_trade_value]

    ordered = sells + sorted(covers + buys)
    key = _content_id(
        [account.account_id, mode] + [f"{m.symbol}:{m.target - m.current}:{m.price!r}" for m in ordered]
    )
    return TradePlan(
        account_id=account.account_id,
        mode=mode,
        sizing_basis=round(basis, 2),
        reserve=reserve,
        deploy_cash=deploy_cash,
        cash_before=account.cash,
        buy_scale=scale,
        trades=tuple(_trade(key, m) for m in ordered),
        transition=transition_summary(target, positions),
        plan_id=key,
    )


def _check_inputs(target: Mapping[str, float], reserve: float, deploy_cash: float | None) -> None:
    negative = sorted(s for s, w in target.items() if w < 0)
    if negative:
        raise ValueError(f"target weights must not be negative: {', '.join(negative)}")
    if sum(target.values()) > 1 + WEIGHT_SLACK:
        raise ValueError(f"target weights sum to {sum(target.values()):.6f}, more than 1")
    if reserve < 0 or (deploy_cash is not None and deploy_cash < 0):
        raise ValueError(f"reserve ({reserve}) and deploy_cash ({deploy_cash}) must not be negative")


def _price(symbol: str, prices: Mapping[str, float], position: Position | None) -> float:
    found = prices.get(symbol, position.market_price if position else None)
    if found is None or not found > 0:
        raise ValueError(f"no usable price for {symbol} (got {found!r}): the plan needs one for every symbol")
    return found


def _trade(key: str, move: _Move) -> Trade:
    """The order that carries ``move`` out, with its id under the plan id ``key``."""
    current, target = move.current, move.target
    if current < 0:
        action: Action = "cover"
    elif target == 0:
        action = "exit"
    elif current == 0:
        action = "new"
    else:
        action = "increase" if target > current else "decrease"
    side: Side = "buy" if target > current else "sell"
    return Trade(
        client_order_id=client_order_id(key, move.symbol, side),
        symbol=move.symbol,
        side=side,
        quantity=abs(target - current),
        price=move.price,
        value=round(move.value, 2),
        current_shares=current,
        target_shares=target,
        target_weight=move.weight,
        action=action,
    )


def _content_id(parts: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:ID_HEX]


def client_order_id(plan_id: str, symbol: str, side: Side) -> str:
    """``fd-<plan id>-<SYMBOL>-<b|s>``: unique within a plan (one trade per symbol)."""
    return f"{ID_PREFIX}-{plan_id}-{symbol}-{side[0]}"


# ---- phase 3 ------------------------------------------------------------------------------
COLUMNS = tuple(f.name for f in fields(Trade))


def plan_csv(plan: TradePlan) -> bytes:
    """The plan as CSV (one row per trade, ``COLUMNS``, execution order); floats as Python's
    shortest round-trip text, so ``parse_plan_csv`` gives back the same trades."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows([getattr(t, c) for c in COLUMNS] for t in plan.trades)
    return buffer.getvalue().encode()


def parse_plan_csv(data: bytes) -> tuple[Trade, ...]:
    """The trades of a plan CSV written by ``plan_csv`` (what execution reads back)."""
    rows = list(csv.DictReader(io.StringIO(data.decode())))
    ints = {"quantity", "current_shares", "target_shares"}
    floats = {"price", "value", "target_weight"}
    return tuple(
        Trade(**{k: int(v) if k in ints else float(v) if k in floats else v for k, v in row.items()})
        for row in rows
    )


def plan_hash(data: bytes) -> str:
    """The sha256 of the plan file's bytes, recorded in the state to detect later edits."""
    return hashlib.sha256(data).hexdigest()


def portfolio_state(
    plan: TradePlan,
    account: Account,
    positions: Sequence[Position],
    prices: Mapping[str, float],
    csv_hash: str,
    created_at: datetime,
) -> dict:
    """The contract between planning and execution: what the plan assumed, as JSON-ready data.
    ``created_at`` must be tz-aware; it is stored in UTC."""
    if created_at.tzinfo is None:
        raise ValueError("created_at must be tz-aware")
    return {
        "version": STATE_VERSION,
        "account_id": account.account_id,
        "created_at": created_at.astimezone(UTC).isoformat(),
        "mode": plan.mode,
        "reserve": plan.reserve,
        "deploy_cash": plan.deploy_cash,
        "cash": account.cash,
        "net_liquidation": account.net_liquidation,
        "positions": [
            {"symbol": p.symbol, "quantity": p.quantity, "avg_cost": p.avg_cost}
            for p in sorted(positions, key=lambda p: p.symbol)
        ],
        "prices": dict(sorted(prices.items())),
        "plan_file": PLAN_FILE,
        "plan_sha256": csv_hash,
        "plan_id": plan.plan_id,
        "trades": len(plan.trades),
        "summary": plan.summary,
        "transition": asdict(plan.transition),
    }


def write_plan(lake: Lake, folder: str, plan: TradePlan, state: Mapping) -> tuple[str, str]:
    """Write ``trade_plan.csv`` then ``portfolio_state.json`` under ``folder``, each atomically;
    the state goes last, so its presence means the plan is complete. Returns both paths. A state
    whose recorded hash is not that of this plan's CSV is refused."""
    data = plan_csv(plan)
    if state.get("plan_sha256") != plan_hash(data):
        raise ValueError("the state's plan_sha256 is not the hash of this plan's CSV")
    csv_rel, state_rel = f"{folder}/{PLAN_FILE}", f"{folder}/{STATE_FILE}"
    lake.write_bytes(csv_rel, data)
    lake.write_bytes(state_rel, json.dumps(state, indent=1).encode())
    return csv_rel, state_rel


def read_plan(lake: Lake, folder: str) -> tuple[dict, bytes]:
    """The state and the plan file's bytes, as ``write_plan`` left them (state first: without it
    there is no complete plan, and ``StorageError`` names the missing file)."""
    state = json.loads(lake.read_bytes(f"{folder}/{STATE_FILE}"))
    return state, lake.read_bytes(f"{folder}/{state['plan_file']}")

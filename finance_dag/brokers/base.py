"""The broker interface every implementation follows, and the values it speaks in.

Quantities are whole shares (positive; the side says buy or sell, a short position has a
negative ``quantity``). ``client_order_id`` is ours: deterministic per planned trade, sent as
Alpaca's ``client_order_id`` and IB's ``orderRef``, so ``find_order`` can tell whether a trade
was already placed before placing it again. Every call either answers completely or raises
``BrokerError`` naming the call (a disconnect, a timeout, a partial answer): callers never see
half an account.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

Side = Literal["buy", "sell"]


class BrokerError(RuntimeError):
    """The broker did not answer a call completely; the message names the broker and the call."""


@dataclass(frozen=True)
class Account:
    account_id: str
    cash: float
    net_liquidation: float
    currency: str = "USD"


@dataclass(frozen=True)
class Position:
    symbol: str
    quantity: int  # negative: short
    avg_cost: float
    market_price: float | None = None


@dataclass(frozen=True)
class OrderRequest:
    client_order_id: str
    symbol: str
    side: Side
    quantity: int
    order_type: Literal["market", "limit"] = "market"
    limit_price: float | None = None


@dataclass(frozen=True)
class Order:
    order_id: str  # the broker's id
    client_order_id: str
    symbol: str
    side: Side
    quantity: int
    filled_quantity: int
    status: str  # "open", "filled", "cancelled", "rejected" (normalised across brokers)
    order_type: str = "market"
    limit_price: float | None = None

    @property
    def is_open(self) -> bool:
        return self.status == "open"


@dataclass(frozen=True)
class Fill:
    execution_id: str
    order_id: str
    client_order_id: str
    symbol: str
    side: Side
    quantity: int
    price: float
    time: datetime  # tz-aware UTC


class Broker(Protocol):
    """What planning and execution need from a broker; one adapter per broker implements it."""

    name: str

    def account(self) -> Account: ...

    def positions(self) -> list[Position]: ...

    def open_orders(self) -> list[Order]: ...

    def find_order(self, client_order_id: str) -> Order | None:
        """The order we sent under ``client_order_id`` in any state (open, filled, cancelled)."""
        ...

    def cancel(self, order_id: str) -> None: ...

    def place_order(self, request: OrderRequest) -> Order: ...

    def fills(self, since: datetime | None = None) -> list[Fill]: ...

    def close(self) -> None: ...

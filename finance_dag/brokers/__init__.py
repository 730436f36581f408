"""Brokers behind one interface: the simulated broker (default), Alpaca and Interactive Brokers.

``base`` holds the interface and its value types; each implementation is a thin adapter to one
broker's SDK. Nothing here decides what to trade: the ETF domain plans, the execution job places.
"""

from finance_dag.brokers.base import (
    Account,
    Broker,
    BrokerError,
    Fill,
    Order,
    OrderRequest,
    Position,
)

__all__ = ["Account", "Broker", "BrokerError", "Fill", "Order", "OrderRequest", "Position"]

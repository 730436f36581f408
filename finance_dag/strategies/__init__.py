"""Strategy research, pure logic (no Dagster): strategy families as registered pure functions of the
data up to t (``signals``: momentum, mean reversion, volatility, an intraday opening-range rule)."""

from finance_dag.strategies.signals import (
    STRATEGIES,
    Bars,
    Family,
    Pair,
    Param,
    Strategy,
    choose_pair,
    get,
    validate,
)

__all__ = ["STRATEGIES", "Bars", "Family", "Pair", "Param", "Strategy", "choose_pair", "get", "validate"]

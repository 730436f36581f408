"""Strategy research, pure logic (no Dagster): strategy families as registered pure functions of the
data up to t (``signals``: momentum, mean reversion, volatility, an intraday opening-range rule),
position sizing and risk controls (``sizing``), walk-forward evaluation (``walkforward``) and the
comparison of strategies on the lake (``research``)."""

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
from finance_dag.strategies.sizing import Sizer, Sizing, size_positions
from finance_dag.strategies.walkforward import WalkForward, walk_forward, walk_forward_intraday

__all__ = [
    "STRATEGIES",
    "Bars",
    "Family",
    "Pair",
    "Param",
    "Sizer",
    "Sizing",
    "Strategy",
    "WalkForward",
    "choose_pair",
    "get",
    "size_positions",
    "validate",
    "walk_forward",
    "walk_forward_intraday",
]

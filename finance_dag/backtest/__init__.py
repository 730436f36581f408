"""Walk-forward backtesting, pure logic (no Dagster): one engine (``engine``) that the ETF domain
and strategy research plug their decisions into. A decision at t sees the data up to t only."""

from finance_dag.backtest.engine import (
    DEFAULT_CONFIG,
    BacktestConfig,
    BacktestResult,
    Decide,
    Frequency,
    Panel,
    rebalance_dates,
    walk_forward,
)

__all__ = [
    "DEFAULT_CONFIG",
    "BacktestConfig",
    "BacktestResult",
    "Decide",
    "Frequency",
    "Panel",
    "rebalance_dates",
    "walk_forward",
]

"""Walk-forward backtesting, pure logic (no Dagster): one engine that the ETF domain and strategy
research plug their decisions into, in two modes over the same conventions: an event loop
(``engine``: whole shares, stops, drift bands) and a vectorised mode (``vectorised``: signed weights
paths and intraday minute paths), priced by one cost model (``costs``). A decision at t sees the
data up to t only."""

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
from finance_dag.backtest.vectorised import IntradayPath, intraday_path, turnover, weights_returns

__all__ = [
    "DEFAULT_CONFIG",
    "BacktestConfig",
    "BacktestResult",
    "Decide",
    "Frequency",
    "IntradayPath",
    "Panel",
    "intraday_path",
    "rebalance_dates",
    "turnover",
    "walk_forward",
    "weights_returns",
]

"""ETF domain, pure logic (no Dagster): the symbol directory (``directory``). Issue 8 builds the
rest (prices, factor scores, portfolio, backtest, trade plan) on it."""

"""Loopback fakes of the real vendors, backed by ``SimulatedMarket`` (see each module)."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl

from finance_dag.market_data.bars import BAR_SCHEMA
from finance_dag.sim import SimulatedMarket


def truth_frame(
    market: SimulatedMarket,
    symbols: list[str],
    days: list[date],
    source: str,
    with_vwap: bool = True,
    regular_only: bool = False,
) -> pl.DataFrame:
    """What the fakes serve for ``symbols`` x ``days``: the market's true bars, canonical schema."""
    frames = []
    for symbol in symbols:
        for day in days:
            truth = market.true_minute_bars(symbol, day)
            keep = truth["regular"] if regular_only else np.ones(truth["ts"].size, dtype=bool)
            cols = {k: truth[k][keep] for k in ("ts", "open", "high", "low", "close", "volume")}
            frame = pl.DataFrame(cols).with_columns(
                symbol=pl.lit(symbol),
                ts=pl.col("ts").dt.replace_time_zone("UTC"),
                vwap=pl.Series(truth["vwap"][keep]) if with_vwap else pl.lit(None, pl.Float64),
                trade_count=pl.Series(truth["trade_count"][keep]) if with_vwap else pl.lit(None, pl.Int64),
                source=pl.lit(source),
            )
            frames.append(frame.select(BAR_SCHEMA.names()).cast(BAR_SCHEMA))
    return pl.concat(frames).sort("symbol", "ts") if frames else pl.DataFrame(schema=BAR_SCHEMA)

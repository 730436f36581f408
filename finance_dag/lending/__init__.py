"""Securities-lending domain, pure logic (no Dagster): the feed and file drops (schemas,
readers, validation) in ``feed``, the core factors in ``factors``, the extended factors in
``extended``, SSR v4 in ``squeeze`` and the daily digest in ``digest``. Formulas and rules:
docs/lending.md."""

from finance_dag.lending.extended import (
    ExtendedInputs,
    ExtendedRangeInputs,
    extended_factors,
    extended_factors_range,
)
from finance_dag.lending.factors import FACTOR_COLUMNS, core_factors, core_factors_range, lookback_sessions
from finance_dag.lending.feed import (
    FEED_SCHEMA,
    LendingFeedError,
    LendingSourceError,
    read_feed_file,
    read_feed_sql,
    validate_snapshot,
)
from finance_dag.lending.squeeze import squeeze_scores

__all__ = [
    "FACTOR_COLUMNS",
    "FEED_SCHEMA",
    "ExtendedInputs",
    "ExtendedRangeInputs",
    "LendingFeedError",
    "LendingSourceError",
    "core_factors",
    "core_factors_range",
    "extended_factors",
    "extended_factors_range",
    "lookback_sessions",
    "read_feed_file",
    "read_feed_sql",
    "squeeze_scores",
    "validate_snapshot",
]

"""Securities-lending domain, pure logic (no Dagster): the feed (schema, readers, validation) in
``feed`` and the core factors in ``factors``. Formulas and rules: docs/lending.md."""

from finance_dag.lending.factors import FACTOR_COLUMNS, core_factors, lookback_sessions
from finance_dag.lending.feed import (
    FEED_SCHEMA,
    LendingFeedError,
    LendingSourceError,
    read_feed_file,
    read_feed_sql,
    validate_snapshot,
)

__all__ = [
    "FACTOR_COLUMNS",
    "FEED_SCHEMA",
    "LendingFeedError",
    "LendingSourceError",
    "core_factors",
    "lookback_sessions",
    "read_feed_file",
    "read_feed_sql",
    "validate_snapshot",
]

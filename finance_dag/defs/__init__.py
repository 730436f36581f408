"""Dagster assets, one module per domain; each asset loads, calls a plain function, writes."""

import warnings

import dagster as dg

# backfill_policy and MultiToSingleDimensionPartitionMapping are "beta" in 1.13 and used on purpose.
warnings.filterwarnings("ignore", category=dg.BetaWarning)

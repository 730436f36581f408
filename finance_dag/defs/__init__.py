"""Dagster wiring, one package per domain (``defs/<domain>/``), each exposing
``build_defs(settings) -> dg.Definitions``. ``finance_dag.definitions`` finds and merges them:
adding a domain is adding its package here, nothing else."""

import warnings

import dagster as dg

# backfill_policy, MultiToSingleDimensionPartitionMapping and partitioned checks are beta/preview
# in 1.13 and used on purpose.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

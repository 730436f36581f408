"""Data-quality checks of the risk lake:

- ``factor_covariance.positive_semidefinite`` (error): no eigenvalue of the factor covariance
  below -1e-12 and every specific variance positive;
- ``factor_exposures.standardised`` (warn): every style but beta has a cap-weighted mean of 0
  and a standard deviation of 1 (within 1e-6) among the names that have it.
"""

import dagster as dg
import numpy as np
import polars as pl

from finance_dag.platform.checks import check_result, checked_keys
from finance_dag.platform.partitions import DomainPartitions
from finance_dag.platform.storage import LakeResource, lake_path
from finance_dag.risk.model import FACTORS

EXPOSURES = dg.AssetKey("factor_exposures")
COVARIANCE = dg.AssetKey("factor_covariance")
TOLERANCE = 1e-6


def build_checks(parts: DomainPartitions) -> list[dg.AssetChecksDefinition]:
    days = parts.trading_days

    @dg.asset_check(
        asset=COVARIANCE, description="Factor covariance positive semi-definite; specific variances > 0."
    )
    def positive_semidefinite(
        context: dg.AssetCheckExecutionContext, lake: LakeResource
    ) -> dg.AssetCheckResult:
        from finance_dag.defs.risk.assets import specific_path

        keys = checked_keys(context, COVARIANCE, days)
        rows = []
        for key in keys:
            matrix = lake.lake.read_parquet(lake_path(COVARIANCE, days, key))
            smallest = float(np.linalg.eigvalsh(matrix.drop("factor").to_numpy()).min())
            specific = lake.lake.read_parquet(specific_path(key))["specific_variance"]
            if smallest < -1e-12 or (specific <= 0).any():
                rows.append((key, smallest, int((specific <= 0).sum())))
        failing = pl.DataFrame(
            rows, schema=["partition", "min_eigenvalue", "non_positive_specific"], orient="row"
        )
        return check_result(keys, failing)

    @dg.asset_check(asset=EXPOSURES, description="Styles standardised: cap-weighted mean 0, std 1.")
    def standardised(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
        keys = checked_keys(context, EXPOSURES, days)
        rows = []
        for key in keys:
            frame = lake.lake.read_parquet(lake_path(EXPOSURES, days, key))
            for factor in FACTORS[1:]:
                have = frame.filter(pl.col(factor).is_not_null())
                mean = float((have[factor] * have["cap"]).sum() / have["cap"].sum())
                std = float(have[factor].std(ddof=0))
                if abs(mean) > TOLERANCE or abs(std - 1) > TOLERANCE:
                    rows.append((key, factor, mean, std))
        failing = pl.DataFrame(rows, schema=["partition", "factor", "cap_weighted_mean", "std"], orient="row")
        return check_result(keys, failing, dg.AssetCheckSeverity.WARN)

    return [positive_semidefinite, standardised]

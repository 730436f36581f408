"""Risk domain, pure logic (no Dagster): the six-factor fundamental risk model (``model``:
descriptors, standardised exposures, factor returns, factor covariance, specific variances)."""

from finance_dag.risk.model import (
    FACTORS,
    CrossSection,
    FactorReturns,
    RiskModel,
    daily_returns,
    descriptors,
    descriptors_range,
    exposures_range,
    factor_covariance,
    factor_returns,
    factor_returns_range,
    risk_model,
    specific_variance,
    standardise,
)

__all__ = [
    "FACTORS",
    "CrossSection",
    "FactorReturns",
    "RiskModel",
    "daily_returns",
    "descriptors",
    "descriptors_range",
    "exposures_range",
    "factor_covariance",
    "factor_returns",
    "factor_returns_range",
    "risk_model",
    "specific_variance",
    "standardise",
]

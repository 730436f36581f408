"""Process-wide settings read from the environment, in one place.

Only plain values live here (no secrets): the storage root, the universe, the first partition
date and the coverage threshold. Secrets are read by resources through ``dg.EnvVar``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date

DEFAULT_STORAGE = "./data"
DEFAULT_START_DATE = "2024-01-02"
DEFAULT_COVERAGE_THRESHOLD = 0.85
DEFAULT_BAR_VENDORS = {
    "sim": "sim_alpaca,sim_alphavantage,sim_yahoo",
    "prod": "alpaca,alphavantage,yahoo",
}


class SettingError(ValueError):
    """A setting has a value we cannot use; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    storage: str
    universe: str
    start_date: date
    coverage_threshold: float
    environment: str
    bar_vendors: tuple[str, ...]  # primary first, then fallbacks in order


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Read and validate ``FINANCE_DAG_*`` variables, naming the variable on a bad value."""
    env = dict(os.environ if env is None else env)
    start_raw = env.get("FINANCE_DAG_START_DATE", DEFAULT_START_DATE)
    try:
        start = date.fromisoformat(start_raw)
    except ValueError as exc:
        raise SettingError(f"FINANCE_DAG_START_DATE={start_raw!r} is not an ISO date (YYYY-MM-DD)") from exc
    threshold_raw = env.get("FINANCE_DAG_COVERAGE_THRESHOLD", str(DEFAULT_COVERAGE_THRESHOLD))
    try:
        threshold = float(threshold_raw)
    except ValueError:
        threshold = -1.0
    if not 0.0 <= threshold <= 1.0:
        raise SettingError(
            f"FINANCE_DAG_COVERAGE_THRESHOLD={threshold_raw!r} must be a fraction between 0 and 1"
        )
    environment = env.get("FINANCE_DAG_ENV", "sim")
    if environment not in ("sim", "prod"):
        raise SettingError(f"FINANCE_DAG_ENV={environment!r} must be 'sim' or 'prod'")
    vendors = tuple(
        v.strip() for v in env.get("FINANCE_DAG_BAR_VENDORS", DEFAULT_BAR_VENDORS[environment]).split(",")
    )
    if not all(vendors):
        raise SettingError(
            f"FINANCE_DAG_BAR_VENDORS={env['FINANCE_DAG_BAR_VENDORS']!r} has an empty vendor name"
        )
    return Settings(
        storage=env.get("FINANCE_DAG_STORAGE", DEFAULT_STORAGE),
        universe=env.get("FINANCE_DAG_UNIVERSE", "demo"),
        start_date=start,
        coverage_threshold=threshold,
        environment=environment,
        bar_vendors=vendors,
    )

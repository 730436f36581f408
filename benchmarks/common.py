"""Shared benchmark helpers: a quiet in-process run, timing, and the target verdict."""

import os
import time
from collections.abc import Callable

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def use_full_universe() -> None:
    """Benchmarks need more symbols than the demo: set before finance_dag is imported."""
    os.environ.setdefault("FINANCE_DAG_UNIVERSE", "full")


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def verdict(name: str, value: float, target: float, unit: str, detail: str = "") -> bool:
    ok = value <= target
    print(
        f"{name}: {value:.3f} {unit} (target <= {target} {unit}) {'OK' if ok else 'MISSED'} {detail}".rstrip()
    )
    return ok

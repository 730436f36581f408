"""Shared benchmark helpers: a quiet in-process run, timing, and the target verdict."""

import time
from collections.abc import Callable

from finance_dag.core.settings import Settings, load_settings

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def bench_settings(root: str, **env: str) -> Settings:
    """Pinned settings (the developer's FINANCE_DAG_* variables play no part) on lake ``root``."""
    return load_settings({"FINANCE_DAG_STORAGE": root, **{f"FINANCE_DAG_{k}": v for k, v in env.items()}})


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

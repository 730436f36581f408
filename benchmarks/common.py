"""Shared benchmark helpers: a quiet in-process run, timing, and the target verdict.

``verdict`` prints a figure against its target and, when ``benchmarks/__main__.py`` runs the
module (it sets ``BENCH_RESULTS_FILE``), records it with its floor as one JSON line for the
results table (benchmarks/RESULTS.md).
"""

import json
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime

from finance_dag.core.settings import Settings, load_settings

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
RESULTS_FILE = "BENCH_RESULTS_FILE"  # environment variable: where verdict appends its JSON lines


def bench_settings(root: str, **env: str) -> Settings:
    """Pinned settings (the developer's FINANCE_DAG_* variables play no part) on lake ``root``."""
    return load_settings({"FINANCE_DAG_STORAGE": root, **{f"FINANCE_DAG_{k}": v for k, v in env.items()}})


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def verdict(
    name: str,
    value: float,
    target: float,
    unit: str,
    detail: str = "",
    *,
    issue: str = "",
    floor: float | None = None,
    floor_unit: str | None = None,
    floor_note: str = "",
) -> bool:
    """Print ``name: value unit (target <= target unit) OK|MISSED detail`` and record the figure.

    ``issue`` prefixes the figure's name in the results table ("issue 10"); ``floor`` is the floor
    measured in the same run, in ``floor_unit`` (default ``unit``; a ratio's floor is in seconds,
    so it passes "s"), with ``floor_note`` saying what it is."""
    ok = value <= target
    print(
        f"{name}: {number(value)} {unit} (target <= {target} {unit}) {'OK' if ok else 'MISSED'} {detail}".rstrip()
    )
    record(
        {
            "figure": f"{issue} {name}".strip(),
            "value": value,
            "target": target,
            "unit": unit,
            "ok": ok,
            "floor": floor,
            "floor_unit": (floor_unit or unit) if floor is not None else None,
            "floor_note": floor_note if floor is not None else "",
            "detail": detail,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    )
    return ok


def number(value: float) -> str:
    """A count as it is, a measurement to three decimals."""
    return str(value) if isinstance(value, int) else f"{value:.3f}"


def record(figure: dict[str, object]) -> None:
    """Append ``figure`` as a JSON line to the file named by ``BENCH_RESULTS_FILE``, if set."""
    path = os.environ.get(RESULTS_FILE)
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(figure, default=lambda o: o.item() if hasattr(o, "item") else str(o)) + "\n")

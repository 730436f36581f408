"""Run every benchmark, each in its own process, and fail if a target is missed."""

import subprocess
import sys

SCRIPTS = [
    "benchmarks.bench_import",
    "benchmarks.bench_read",
    "benchmarks.bench_vendor_requests",
    "benchmarks.bench_backfill",
    "benchmarks.bench_ui_backfill",
    "benchmarks.bench_lending",
    "benchmarks.bench_lending_backfill",
    "benchmarks.bench_etf",
    "benchmarks.bench_risk",
    "benchmarks.bench_strategies",
]


def main() -> int:
    failed = []
    for module in SCRIPTS:
        print(f"== {module}", flush=True)
        if subprocess.run([sys.executable, "-m", module]).returncode != 0:
            failed.append(module)
    print("all targets met" if not failed else f"targets missed in: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

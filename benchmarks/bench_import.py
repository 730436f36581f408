"""P4: `import finance_dag.definitions` minus `import dagster`, median of fresh processes."""

import statistics
import subprocess
import sys

from benchmarks.common import verdict

ISSUE = "issue 2"

PROBE = (
    "import time; t0 = time.perf_counter(); import dagster; t1 = time.perf_counter(); "
    "import finance_dag.definitions; t2 = time.perf_counter(); print(t1 - t0, t2 - t1)"
)


def main() -> int:
    subprocess.run([sys.executable, "-c", PROBE], check=True, capture_output=True)  # warm caches
    samples = []
    for _ in range(5):
        out = subprocess.run([sys.executable, "-c", PROBE], check=True, capture_output=True, text=True)
        dagster_s, ours_s = map(float, out.stdout.split())
        samples.append((dagster_s, ours_s))
    ours = statistics.median(s[1] for s in samples)
    floor = statistics.median(s[0] for s in samples)
    return (
        0
        if verdict(
            "P4 import finance_dag.definitions - import dagster",
            ours,
            1.0,
            "s",
            f"(import dagster itself: {floor:.3f} s)",
            issue=ISSUE,
            floor=floor,
            floor_note="import dagster itself",
        )
        else 1
    )


if __name__ == "__main__":
    sys.exit(main())

"""The chaos suite's results as a markdown table, one row per case.

    CHAOS_REPORT=.chaos.jsonl pytest -n 2 -q -m chaos
    python tests/chaos/report.py .chaos.jsonl            # the table (path defaults to $CHAOS_REPORT)
    python tests/chaos/report.py .chaos.jsonl --details  # and one row per test

Reads the JSON lines the collector (``tests/chaos/conftest.py``) appends, keeping the latest line
of each test. Per case: the tests, how many passed (an expected failure is counted apart), the
faults injected (each recorded injection; a marked test elsewhere counts the fault kinds its marker
names), the partitions a re-run recovered and the rows lost (``—`` where no test of the case
measures them). Tests that did not pass are listed under the table with their note. Exits 1 when
any test lost rows, 0 otherwise.
"""

from __future__ import annotations

import json
import os
import sys
from collections import defaultdict

ORDER = [
    "vendor faults",
    "S3 outage mid-backfill",
    "PostgreSQL restart mid-run",
    "run worker SIGKILL",
    "run killed mid-write",
    "Celery worker SIGKILL",
    "bad lending file",
    "bad universe file",
    "bad price file",
    "stale trade plan",
    "edited trade plan",
    "drifted trade plan",
    "order never placed twice",
]


def load(path: str) -> list[dict]:
    """The latest record of each test, in the order first seen."""
    latest: dict[str, dict] = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                record = json.loads(line)
                latest[record["test"]] = record
    return list(latest.values())


def _sum(values: list[int | None]) -> str:
    measured = [v for v in values if v is not None]
    return str(sum(measured)) if measured else "—"


def table(records: list[dict]) -> str:
    by_case: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        by_case[record["case"]].append(record)
    cases = [c for c in ORDER if c in by_case] + sorted(c for c in by_case if c not in ORDER)
    lines = [
        "| case | tests | passed | faults injected | partitions recovered | rows lost |",
        "|---|---:|---:|---:|---:|---:|",
    ]

    def row(name: str, group: list[dict]) -> str:
        passed = sum(r["outcome"] == "passed" for r in group)
        xfailed = sum(r["outcome"] == "xfailed" for r in group)
        shown = f"{passed} (+{xfailed} xfail)" if xfailed else str(passed)
        faults = sum(len(r["faults"]) for r in group)
        recovered = _sum([r["partitions_recovered"] for r in group])
        lost = _sum([r["rows_lost"] for r in group])
        return f"| {name} | {len(group)} | {shown} | {faults} | {recovered} | {lost} |"

    lines += [row(case, by_case[case]) for case in cases]
    lines.append(row("**all**", records))
    others = [r for r in records if r["outcome"] != "passed"]
    if others:
        lines.append("")
        lines += [
            f"- {r['outcome']}: `{r['test']}`" + (f": {r['note']}" if r["note"] else "") for r in others
        ]
    return "\n".join(lines)


def details(records: list[dict]) -> str:
    lines = ["| test | case | faults | outcome | seconds | note |", "|---|---|---|---|---:|---|"]
    for r in records:
        faults = "; ".join(r["faults"]) or "—"
        lines.append(
            f"| `{r['test']}` | {r['case']} | {faults} | {r['outcome']} | {r['seconds']} | {r['note']} |"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    args = [a for a in argv if not a.startswith("--")]
    path = args[0] if args else os.environ.get("CHAOS_REPORT")
    if not path:
        print("usage: report.py PATH [--details]  (or set CHAOS_REPORT)", file=sys.stderr)
        return 2
    records = load(path)
    print(table(records))
    if "--details" in argv:
        print()
        print(details(records))
    lost = [r["test"] for r in records if (r["rows_lost"] or 0) > 0]
    if lost:
        print(f"\nrows lost in: {', '.join(lost)}", file=sys.stderr)
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Run the benchmarks, each in its own process, record their figures and fail if a target is missed.

    .venv/bin/python -m benchmarks                                   # every benchmark (make bench)
    .venv/bin/python -m benchmarks bench_strategies bench_import     # only these

Each module's ``verdict`` calls append their figures (with the floor measured in the same run) as
JSON lines to the file named by ``BENCH_RESULTS_FILE``, one temporary file per module. After each
module its figures replace that module's entry in ``benchmarks/results.json`` (the source of truth:
a subset run keeps the other modules' entries), and ``benchmarks/RESULTS.md`` is rendered from it;
both are written atomically. Exit code 1 if any module run missed a target or failed.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.common import RESULTS_FILE, number

SCRIPTS = [
    "bench_import",
    "bench_read",
    "bench_vendor_requests",
    "bench_backfill",
    "bench_ui_backfill",
    "bench_lending",
    "bench_lending_backfill",
    "bench_etf",
    "bench_risk",
    "bench_strategies",
    "bench_scale",
    "bench_full_year",
]
HERE = Path(__file__).resolve().parent
RESULTS_JSON = HERE / "results.json"
RESULTS_MD = HERE / "RESULTS.md"

HEADER = """\
# Benchmark results

Produced by `make bench` (`.venv/bin/python -m benchmarks`), which runs every benchmark module in
its own process and renders this table from `benchmarks/results.json`; do not edit it by hand.
`.venv/bin/python -m benchmarks bench_strategies bench_import` reruns only those modules and
replaces only their rows, so rows can come from different dates and machines. Each figure is
checked against its target (MISSED when it is over). Where a benchmark has a floor (the cost no
implementation avoids: a no-op Dagster run, a raw pyarrow read or write, the cheapest rule over the
same paths; see each module's docstring), the floor was measured in the same run on the same
machine as the figure, so compare a figure with its own floor rather than with another run's. The
machines are shared and noisy: timings vary by tens of percent from run to run, so rerun a missed
target before reading much into it.
"""


def machine() -> str:
    """Cores, RAM, CPU model, OS and Python: no host or user names."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 0
    quota = _read("/sys/fs/cgroup/cpu.max").split()
    if len(quota) == 2 and quota[0] != "max":
        cores = min(cores, max(1, round(int(quota[0]) / int(quota[1]))))
    ram = 0
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            ram = int(line.split()[1]) * 1024
    limit = _read("/sys/fs/cgroup/memory.max").strip()
    if limit.isdigit():
        ram = min(ram, int(limit)) if ram else int(limit)
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in _read("/proc/cpuinfo").splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or platform.machine(),
    )
    memory = f"{ram / 2**30:.0f} GiB RAM" if ram else "RAM unknown"
    return (
        f"{cores} cores, {memory}, {model}, {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()}"
    )


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError:
        return ""


def run_module(name: str, work: str, host: str) -> dict[str, object]:
    """Run ``benchmarks.<name>`` in its own process and return its entry for results.json."""
    lines = os.path.join(work, f"{name}.jsonl")
    started = datetime.now(UTC).isoformat(timespec="seconds")
    code = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{name}"], env={**os.environ, RESULTS_FILE: lines}
    ).returncode
    figures = []
    if os.path.exists(lines):
        with open(lines, encoding="utf-8") as f:
            figures = [json.loads(line) for line in f if line.strip()]
    return {"run_at": started, "machine": host, "exit_code": code, "figures": figures}


def load() -> dict[str, dict[str, object]]:
    if not RESULTS_JSON.exists():
        return {}
    modules = json.loads(RESULTS_JSON.read_text(encoding="utf-8")).get("modules", {})
    return {name: entry for name, entry in modules.items() if name in SCRIPTS}


def render(modules: dict[str, dict[str, object]]) -> str:
    rows = [
        "| figure | target | measured | floor | date | machine |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name in SCRIPTS:
        entry = modules.get(name)
        if entry is None:
            rows.append(_row(f"{name} (not run yet: `python -m benchmarks {name}`)", *"-----"))
            continue
        date, host = str(entry["run_at"])[:10], str(entry["machine"])
        figures = entry["figures"]
        for f in figures:
            measured = f"{number(f['value'])} {f['unit']}" + ("" if f["ok"] else " MISSED")
            floor = "-"
            if f.get("floor") is not None:
                floor = f"{number(f['floor'])} {f['floor_unit']}"
                floor += f" ({f['floor_note']})" if f.get("floor_note") else ""
            target = f"<= {f['target']} {f['unit']}"
            rows.append(_row(f["figure"], target, measured, floor, str(f["at"])[:10], host))
        if entry["exit_code"] and all(f["ok"] for f in figures):
            outcome = f"exited with code {entry['exit_code']}, see its output"
            rows.append(_row(f"{name} (run failed)", "-", outcome, "-", date, host))
    return HEADER + "\n" + "\n".join(rows) + "\n"


def _row(*cells: str) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def save(modules: dict[str, dict[str, object]]) -> None:
    ordered = {name: modules[name] for name in SCRIPTS if name in modules}
    write_atomically(RESULTS_JSON, json.dumps({"modules": ordered}, indent=2) + "\n")
    write_atomically(RESULTS_MD, render(ordered))


def selection(names: list[str]) -> list[str]:
    """``names`` as module names (``bench_read``, ``benchmarks.bench_read`` or ``read``), in
    SCRIPTS order; every module when empty."""
    wanted = set()
    for name in names:
        short = name.removeprefix("benchmarks.").removesuffix(".py")
        short = short if short.startswith("bench_") else f"bench_{short}"
        if short not in SCRIPTS:
            raise ValueError(f"unknown benchmark {name!r}; one of: {', '.join(SCRIPTS)}")
        wanted.add(short)
    return [s for s in SCRIPTS if s in wanted] if wanted else list(SCRIPTS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("benchmarks", nargs="*", help=f"a subset of: {' '.join(SCRIPTS)} (default: all)")
    try:
        chosen = selection(parser.parse_args(argv).benchmarks)
    except ValueError as error:
        parser.error(str(error))
    modules, host = load(), machine()
    failed = []
    with tempfile.TemporaryDirectory(prefix="finance_dag_bench_results_") as work:
        for name in chosen:
            print(f"== benchmarks.{name}", flush=True)
            modules[name] = run_module(name, work, host)
            if modules[name]["exit_code"] != 0:
                failed.append(name)
            save(modules)
    print(f"results: {RESULTS_MD.relative_to(HERE.parent)}")
    print("all targets met" if not failed else f"targets missed in: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Helpers of the chaos suite: a minute_bars range run in-process, a lake compared with the
fault-free one (files, rows lost, duplicates), every object of a lake, unreadable files, and the
full text of a run's failures."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import dagster as dg
import polars as pl

from finance_dag.core.lake import Lake
from tests.platform.test_production import lake_files
from tests.support import session_range_tags


def run_minute_bars(defs: dg.Definitions, instance, first: str, last: str) -> dg.ExecuteInProcessResult:
    """``minute_bars_job`` over sessions ``first``..``last`` in one in-process run, failures kept."""
    return defs.resolve_job_def("minute_bars_job").execute_in_process(
        instance=instance,
        tags=session_range_tags(date.fromisoformat(first), date.fromisoformat(last)),
        raise_on_error=False,
    )


@dataclass
class Comparison:
    """``actual`` against ``expected`` for the files under one folder."""

    files: int = 0
    rows: int = 0
    rows_lost: int = 0  # rows of the fault-free lake the other lake does not hold
    rows_duplicated: int = 0  # rows held more than once, or in files the fault-free lake has not
    missing_files: list[str] = field(default_factory=list)
    extra_files: list[str] = field(default_factory=list)
    unequal_files: list[str] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        return not (
            self.rows_lost
            or self.rows_duplicated
            or self.missing_files
            or self.extra_files
            or self.unequal_files
        )


def fresh(lake: Lake) -> Lake:
    """The same lake with no listing cached: s3fs answers "no such file" from a cached listing of
    its folder, so a ``Lake`` that listed before another process wrote would miss the new files."""
    return Lake(lake.root, lake.endpoint)


def compare(expected: Lake, actual: Lake, folder: str) -> Comparison:
    """Every file under ``folder`` of both lakes: parquet row for row, CSV byte for byte, others
    (reports carrying times: HTML, markdown, PNG, JSON) by presence, as the production test does."""
    expected, actual = fresh(expected), fresh(actual)
    mine = {rel for rel in lake_files(expected) if rel.startswith(f"{folder}/")}
    theirs = {rel for rel in lake_files(actual) if rel.startswith(f"{folder}/")}
    if not mine:
        raise AssertionError(f"the fault-free lake {expected.root} has no file under {folder}/")
    out = Comparison(files=len(mine))
    for rel in sorted(theirs - mine):
        out.extra_files.append(rel)
        out.rows_duplicated += actual.row_count(rel) if rel.endswith(".parquet") else 0
    for rel in sorted(mine):
        parquet = rel.endswith(".parquet")
        left = expected.read_parquet(rel) if parquet else None
        out.rows += left.height if parquet else 0
        if rel not in theirs:
            out.missing_files.append(rel)
            out.rows_lost += left.height if parquet else 0
        elif rel.endswith(".csv") and expected.read_bytes(rel) != actual.read_bytes(rel):
            out.unequal_files.append(rel)
        elif parquet:
            right = actual.read_parquet(rel)
            if not left.equals(right):
                out.unequal_files.append(rel)
                found = left.join(right.unique(), on=left.columns, how="semi", nulls_equal=True)
                out.rows_lost += left.height - found.height
                out.rows_duplicated += right.height - right.unique().height
    return out


def asset_folders(lake: Lake) -> list[str]:
    """The lake's top-level folders of asset files (not ``_inbox``, ``_tmp`` and the like)."""
    return sorted(
        {rel.split("/", 1)[0] for rel in lake_files(fresh(lake)) if "/" in rel and not rel.startswith("_")}
    )


def object_keys(lake: Lake) -> list[str]:
    """Every object (or file) under the lake's root, scratch space included, relative to it."""
    lake = fresh(lake)
    base = lake._abs("").rstrip("/") + "/"
    return sorted(path.removeprefix(base) for path in lake.fs.find(lake._abs("")))


def unreadable(lake: Lake, rels: list[str]) -> dict[str, str]:
    """The files of ``rels`` that do not read back as whole parquet, with the error."""
    bad, lake = {}, fresh(lake)
    for rel in rels:
        try:
            frame = lake.read_parquet(rel)
            assert isinstance(frame, pl.DataFrame)
        except Exception as error:  # the point: any failure to read is a partial file
            bad[rel] = f"{type(error).__name__}: {error}"
    return bad


def assert_nothing_partial(expected: Lake, lake: Lake, folder: str = "minute_bars") -> list[str]:
    """After a fault: nothing staged (``_tmp/``, ``_probe``), every object of ``folder`` a whole
    readable file equal to the fault-free one, and no file the fault-free lake lacks. Returns the
    lake's keys under ``folder``."""
    keys = object_keys(lake)
    assert not [k for k in keys if k.startswith(("_tmp/", "_probe"))], keys
    written = [k for k in keys if k.startswith(f"{folder}/")]
    assert unreadable(lake, written) == {}
    after_fault = compare(expected, lake, folder)
    assert after_fault.unequal_files == [] and after_fault.extra_files == []
    return written


def failure_text(result) -> str:
    """Every failure of a run with the whole chain of errors behind it (the step's exception and
    its causes), as the UI shows them."""
    lines = []
    for event in result.all_events:
        if not event.is_failure:
            continue
        lines.append(event.message or "")
        error = getattr(event.event_specific_data, "error", None)
        if error is not None:
            lines.append(error.to_string())
    return "\n".join(lines)

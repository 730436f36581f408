"""Research layout of the lake: one parquet file per symbol and year, rebuilt incrementally.

``minute_bars`` keeps one small file per symbol-day (one writer per partition). Research wants
a symbol-year in one read, so ``consolidate_symbol`` compacts the day files into
``consolidated_bars/symbol=S/year=Y.parquet``. Each year file records the version of every
day file it was built from (as a digest, 64 bytes instead of ~10 KB a year); a year is
rebuilt only when that manifest changes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date

import polars as pl

from finance_dag.core.lake import Lake, StorageError, partition_path
from finance_dag.market_data.bars import BAR_ENCODINGS, MINUTE_BAR_SCHEMA, compact_for_storage, ny_date

SOURCE_ASSET = "minute_bars"
ASSET = "consolidated_bars"
MANIFEST_KEY = "finance_dag.manifest_sha256"
READ_THREADS = 4  # day files read at once: about 2x faster on 2 cores
RESEARCH_COMPRESSION = 19  # zstd level: year files are written once and read many times


@dataclass
class ConsolidationReport:
    symbol: str
    rebuilt_years: list[int]
    unchanged_years: list[int]
    rows: int  # rewritten
    bytes: int  # written
    rows_by_year: dict[int, int]  # every year file, rebuilt or not


def day_path(symbol: str, day: date) -> str:
    """Lake path of one symbol-day of minute bars."""
    return partition_path(SOURCE_ASSET, symbol=symbol, date=day.isoformat())


def day_glob(day: str) -> str:
    """Glob of every symbol's file of one session (``day`` may be a ``{partition}`` template)."""
    return f"{SOURCE_ASSET}/symbol=*/date={day}.parquet"


def year_path(symbol: str, year: int) -> str:
    return partition_path(ASSET, symbol=symbol, year=str(year))


def consolidate_symbol(lake: Lake, symbol: str) -> ConsolidationReport:
    """Rebuild the year files of ``symbol`` whose day files changed since the last build."""
    day_files = lake.list_files(f"{SOURCE_ASSET}/symbol={symbol}")
    by_year: dict[int, dict[str, str]] = {}
    paths: dict[str, str] = {}
    for info in day_files:
        day = info.path.rsplit("date=", 1)[1].removesuffix(".parquet")
        by_year.setdefault(int(day[:4]), {})[day] = info.version
        paths[day] = info.path
    rebuilt, unchanged, rows, size = [], [], 0, 0
    for year, manifest in sorted(by_year.items()):
        target = year_path(symbol, year)
        if lake.exists(target) and lake.read_metadata(target).get(MANIFEST_KEY) == _digest(manifest):
            unchanged.append(year)
            continue
        frame = lake.read_many(paths[d] for d in sorted(manifest)).sort("ts")
        size += lake.write_parquet(
            target,
            compact_for_storage(frame),
            metadata={MANIFEST_KEY: _digest(manifest)},
            encodings=BAR_ENCODINGS,
            compression_level=RESEARCH_COMPRESSION,
        )
        rows += frame.height
        rebuilt.append(year)
    rows_by_year = {year: lake.row_count(year_path(symbol, year)) for year in sorted(by_year)}
    return ConsolidationReport(symbol, rebuilt, unchanged, rows, size, rows_by_year)


def read_day_bars(lake: Lake, symbols: Sequence[str], day: date) -> tuple[pl.DataFrame, dict[str, str]]:
    """Every symbol's minute bars of one session, and ``{path: error}`` for unreadable files.

    Absent symbol-days are skipped; an unreadable file is reported, not raised, so one bad file
    costs its own symbol-day only.
    """
    paths = [path for path in (day_path(symbol, day) for symbol in symbols) if lake.exists(path)]

    def read(path: str) -> pl.DataFrame | StorageError:
        try:
            return lake.read_parquet(path)
        except StorageError as error:
            return error

    frames, unreadable = [pl.DataFrame(schema=MINUTE_BAR_SCHEMA)], {}
    with ThreadPoolExecutor(READ_THREADS) as pool:  # parquet decoding releases the GIL
        for path, frame in zip(paths, pool.map(read, paths), strict=True):
            if isinstance(frame, StorageError):
                unreadable[lake.uri(path)] = str(frame)
            else:
                frames.append(frame)
    return pl.concat(frames, how="diagonal_relaxed"), unreadable


def _digest(manifest: dict[str, str]) -> str:
    """The manifest (day -> file version) as a SHA-256 of its canonical JSON."""
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()


def load_symbol_bars(lake: Lake, symbol: str, start: date, end: date) -> pl.DataFrame:
    """Minute bars of ``symbol`` from ``start`` to ``end`` inclusive: one read per year."""
    frames = [
        lake.read_parquet(year_path(symbol, year))
        for year in range(start.year, end.year + 1)
        if lake.exists(year_path(symbol, year))
    ]
    if not frames:
        return pl.DataFrame()
    bars = pl.concat(frames)
    return bars.filter(ny_date().is_between(start, end))

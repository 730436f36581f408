"""NASDAQ Trader symbol-directory files (``nasdaqlisted.txt``, ``otherlisted.txt``): parsing and
validation, the first input of the ETF universe.

Both files are pipe-delimited with a header line and end with a footer line
``File Creation Time: MMDDYYYYHH:MM`` (followed by empty fields). ``nasdaqlisted.txt`` lists
NASDAQ securities (``Symbol``, ``Market Category``, ``Financial Status``, ``NextShares``...),
``otherlisted.txt`` those of the other exchanges (``ACT Symbol``, ``Exchange``, ``CQS Symbol``...);
both carry the ``ETF`` and ``Test Issue`` flags (``Y``/``N``).

``parse_directory(text, name)`` returns one row per security: ``symbol``, ``name``, ``exchange``
(``Q`` for NASDAQ, else the file's code: ``A`` NYSE American, ``N`` NYSE, ``P`` NYSE Arca, ``Z``
Cboe BZX, ``V`` IEX), ``etf``, ``test_issue`` (booleans), ``source`` (the file name), and the
footer's creation time. A malformed file raises ``DirectoryError`` naming the file, the line and
the column: an unknown header, a line with the wrong number of fields, a flag value outside its
set, an empty symbol, duplicate symbols (with their lines), a missing footer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import polars as pl

FOOTER = "File Creation Time:"
NASDAQ = ("Symbol", "Security Name", "Market Category", "Test Issue", "Financial Status", "Round Lot Size", "ETF", "NextShares")  # fmt: skip
OTHER = ("ACT Symbol", "Security Name", "Exchange", "CQS Symbol", "ETF", "Round Lot Size", "Test Issue", "NASDAQ Symbol")  # fmt: skip
YES_NO = frozenset({"Y", "N"})
FLAGS: dict[str, frozenset[str]] = {
    "ETF": YES_NO,
    "Test Issue": YES_NO,
    "NextShares": YES_NO,
    "Market Category": frozenset({"Q", "G", "S"}),
    "Financial Status": frozenset({"N", "D", "E", "Q", "H", "J", "K", "G", ""}),
    "Exchange": frozenset({"A", "N", "P", "Z", "V"}),
}
SCHEMA = pl.Schema(
    {
        "symbol": pl.String,
        "name": pl.String,
        "exchange": pl.String,
        "etf": pl.Boolean,
        "test_issue": pl.Boolean,
        "source": pl.String,
    }
)


class DirectoryError(ValueError):
    """A symbol-directory file is malformed; the message names the file, the line and the column."""


@dataclass(frozen=True)
class Directory:
    securities: pl.DataFrame  # SCHEMA
    created: datetime  # the footer's File Creation Time (exchange-local, naive)


def parse_directory(text: str, name: str) -> Directory:
    """One symbol-directory file (``nasdaqlisted.txt`` or ``otherlisted.txt``), validated."""
    lines = [(number, line.rstrip("\r")) for number, line in enumerate(text.split("\n"), start=1)]
    lines = [(number, line) for number, line in lines if line.strip()]
    if not lines:
        raise DirectoryError(f"{name}: empty file")
    header_number, header = lines[0]
    columns = tuple(c.strip() for c in header.split("|"))
    if columns not in (NASDAQ, OTHER):
        raise DirectoryError(
            f"{name}:{header_number}: header is not nasdaqlisted ({'|'.join(NASDAQ)}) or otherlisted "
            f"({'|'.join(OTHER)}): {header!r}"
        )
    footer_number, footer = lines[-1]
    if not footer.startswith(FOOTER):
        raise DirectoryError(f"{name}: no '{FOOTER} MMDDYYYYHH:MM' footer line (the file may be truncated)")
    stamp = footer.removeprefix(FOOTER).split("|")[0].strip()
    try:
        created = datetime.strptime(stamp, "%m%d%Y%H:%M")
    except ValueError:
        raise DirectoryError(f"{name}:{footer_number}: footer time {stamp!r} is not MMDDYYYYHH:MM") from None
    symbol_column = columns[0]
    rows: list[dict[str, str]] = []
    seen: dict[str, int] = {}
    for number, line in lines[1:-1]:
        fields = [f.strip() for f in line.split("|")]
        if len(fields) != len(columns):
            raise DirectoryError(
                f"{name}:{number}: {len(fields)} fields, the header has {len(columns)}: {line!r}"
            )
        row = dict(zip(columns, fields, strict=True))
        for column, allowed in FLAGS.items():
            if column in row and row[column] not in allowed:
                expected = ", ".join(sorted(repr(v) for v in allowed))
                raise DirectoryError(
                    f"{name}:{number}: column '{column}' has {row[column]!r}, expected one of {expected}"
                )
        symbol = row[symbol_column]
        if not symbol:
            raise DirectoryError(f"{name}:{number}: column '{symbol_column}' is empty")
        if symbol in seen:
            raise DirectoryError(
                f"{name}:{number}: column '{symbol_column}' repeats {symbol!r} (first on line {seen[symbol]})"
            )
        seen[symbol] = number
        rows.append(row)
    frame = pl.DataFrame(
        {
            "symbol": [r[symbol_column] for r in rows],
            "name": [r["Security Name"] for r in rows],
            "exchange": [r.get("Exchange", "Q") for r in rows],
            "etf": [r["ETF"] == "Y" for r in rows],
            "test_issue": [r["Test Issue"] == "Y" for r in rows],
            "source": [name] * len(rows),
        },
        schema=SCHEMA,
    )
    return Directory(frame, created)


def symbol_directory(files: dict[str, str]) -> pl.DataFrame:
    """Every security of several directory files (name -> text), one row per symbol; a symbol
    listed by two files is an error naming both."""
    frames = [parse_directory(text, name).securities for name, text in files.items()]
    everything = pl.concat(frames) if frames else pl.DataFrame(schema=SCHEMA)
    twice = everything.filter(pl.col("symbol").is_duplicated())
    if twice.height:
        symbol = twice["symbol"][0]
        sources = " and ".join(twice.filter(pl.col("symbol") == symbol)["source"].to_list())
        raise DirectoryError(
            f"{symbol!r} is listed by {sources} ({twice['symbol'].n_unique()} symbols in both)"
        )
    return everything.sort("symbol")

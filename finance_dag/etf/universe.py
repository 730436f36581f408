"""The ETF universe: the symbol directory's ETFs joined with the curated category file, with
leveraged and inverse products flagged.

The curated category file is a CSV with the header ``symbol,category,asset_class,region,
expense_ratio`` (``expense_ratio`` a fraction, e.g. ``0.0009``, blank where unknown).
``parse_categories`` validates it and names the file, line and column of the first problem:
a missing column, an empty symbol or category, an asset class outside ``ASSET_CLASSES``, an
expense ratio that is not a number in [0, 0.05], a symbol listed twice.

``build_universe`` keeps the directory's ETFs that are not test issues (one row each) and adds
the category columns where the curated file has the symbol. A product is flagged
``leveraged`` when its category says so or its name matches ``LEVERAGED_NAME`` (2X/3X, Ultra,
UltraShort, UltraPro, Inverse, Bull/Bear nX, -1X, 1.25X...; not "Ultra Short"/"Ultra-Short" bond
funds, see ``NOT_LEVERAGED_NAME``): flagged ETFs stay in the universe (prices are still
collected) and are excluded from scoring. Curated symbols the directory no longer lists are
returned separately so the asset can report them.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import polars as pl

CATEGORY_COLUMNS = ("symbol", "category", "asset_class", "region", "expense_ratio")
ASSET_CLASSES = frozenset({"Equity", "Fixed Income", "Commodity", "Multi-Asset", "Currency", "Alternative"})
MAX_EXPENSE_RATIO = 0.05
# Case-insensitive regular expressions (polars' syntax) on the name and the curated category.
LEVERAGED_NAME = (
    r"(?i)\b(?:-?[1-4](?:\.\d{1,2})?X|Ultra(?:Pro|Short)?|Inverse|Leveraged|(?:Bull|Bear)\s+[1-4]X)\b"
)
# Cash-like bond funds ("JPMorgan Ultra-Short Income ETF", "Invesco Ultra Short Duration ETF") are not
# leveraged: this phrase is removed from the name before LEVERAGED_NAME is matched.
NOT_LEVERAGED_NAME = r"(?i)\bUltra[\s-]+Short\b"
LEVERAGED_CATEGORY = r"(?i)leveraged|inverse"
CATEGORY_SCHEMA = pl.Schema(
    {
        "symbol": pl.String,
        "category": pl.String,
        "asset_class": pl.String,
        "region": pl.String,
        "expense_ratio": pl.Float64,
    }
)
UNIVERSE_SCHEMA = pl.Schema(
    {
        "symbol": pl.String,
        "name": pl.String,
        "exchange": pl.String,
        "categorised": pl.Boolean,
        "category": pl.String,
        "asset_class": pl.String,
        "region": pl.String,
        "expense_ratio": pl.Float64,
        "leveraged": pl.Boolean,
    }
)
UNIVERSE_COLUMNS: dict[str, str] = {
    "symbol": "Ticker symbol.",
    "name": "Security name from the symbol directory.",
    "exchange": "Listing exchange code (Q NASDAQ, P NYSE Arca, Z Cboe BZX, N NYSE, A NYSE American).",
    "categorised": "True when the curated category file has the ETF.",
    "category": "Curated category (null when uncategorised).",
    "asset_class": "Curated asset class (Equity, Fixed Income, Commodity, ...).",
    "region": "Curated region (US, International, Emerging, Global).",
    "expense_ratio": "Annual expense ratio as a fraction (null where unknown).",
    "leveraged": "Leveraged or inverse product: kept for data collection, excluded from scoring.",
}


class CategoryError(ValueError):
    """The curated category file is malformed; the message names the file, the line and the column."""


@dataclass(frozen=True)
class Universe:
    etfs: pl.DataFrame  # UNIVERSE_SCHEMA, sorted by symbol
    unlisted: tuple[str, ...]  # curated symbols the directory does not list


def parse_categories(text: str, name: str) -> pl.DataFrame:
    """The curated category file, validated (see the module docstring)."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        raise CategoryError(f"{name}: empty file")
    header = [h.strip() for h in header]
    missing = [c for c in CATEGORY_COLUMNS if c not in header]
    if missing:
        raise CategoryError(f"{name}:1: missing column(s) {', '.join(missing)}; the header is {header}")
    at = {c: header.index(c) for c in CATEGORY_COLUMNS}
    rows: list[tuple[str, str, str, str, float | None]] = []
    seen: dict[str, int] = {}
    for fields in reader:
        line = reader.line_num
        if not any(f.strip() for f in fields):
            continue
        if len(fields) != len(header):
            raise CategoryError(f"{name}:{line}: {len(fields)} fields, the header has {len(header)}")
        value = {c: fields[i].strip() for c, i in at.items()}
        for column in ("symbol", "category", "asset_class"):
            if not value[column]:
                raise CategoryError(f"{name}:{line}: column '{column}' is empty")
        if value["asset_class"] not in ASSET_CLASSES:
            raise CategoryError(
                f"{name}:{line}: column 'asset_class' has {value['asset_class']!r}, expected one of "
                f"{', '.join(sorted(ASSET_CLASSES))}"
            )
        rows.append(
            (
                value["symbol"],
                value["category"],
                value["asset_class"],
                value["region"],
                _ratio(value, name, line),
            )
        )
        if value["symbol"] in seen:
            raise CategoryError(
                f"{name}:{line}: column 'symbol' repeats {value['symbol']!r} (first on line {seen[value['symbol']]})"
            )
        seen[value["symbol"]] = line
    return pl.DataFrame(rows, schema=CATEGORY_SCHEMA, orient="row")


def _ratio(value: dict[str, str], name: str, line: int) -> float | None:
    raw = value["expense_ratio"]
    if not raw:
        return None
    try:
        ratio = float(raw)
    except ValueError:
        ratio = float("nan")
    if not 0.0 <= ratio <= MAX_EXPENSE_RATIO:
        raise CategoryError(
            f"{name}:{line}: column 'expense_ratio' has {raw!r}, expected a fraction in [0, {MAX_EXPENSE_RATIO}] "
            "(e.g. 0.0009 for 9 bps) or blank"
        )
    return ratio


def build_universe(directory: pl.DataFrame, categories: pl.DataFrame) -> Universe:
    """The directory's ETFs (test issues dropped) with their curated categories and leverage flag."""
    etfs = directory.filter(pl.col("etf") & ~pl.col("test_issue")).select("symbol", "name", "exchange")
    joined = etfs.join(categories, on="symbol", how="left").with_columns(
        categorised=pl.col("category").is_not_null(),
        leveraged=pl.col("name").str.replace_all(NOT_LEVERAGED_NAME, "").str.contains(LEVERAGED_NAME)
        | pl.col("category").fill_null("").str.contains(LEVERAGED_CATEGORY),
    )
    unlisted = sorted(set(categories["symbol"]) - set(etfs["symbol"]))
    return Universe(
        joined.select(UNIVERSE_SCHEMA.names()).cast(dict(UNIVERSE_SCHEMA)).sort("symbol"), tuple(unlisted)
    )

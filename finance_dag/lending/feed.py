"""The securities-lending feed: vendor schema, readers (CSV, parquet, SQL) and validation.

A day's feed arrives in the vendor's column names (``FEED_COLUMNS`` keys: ``Date``, ``ticker``,
``Fee All (BPS)``, ...) as a CSV or parquet file, or as the rows of a SQL table for that day.
The readers return that raw frame untouched; ``validate_snapshot`` is the one gate between the
vendor and the lake: it renames to the normalised snake_case schema (``FEED_SCHEMA``), casts to
explicit dtypes and checks the rules below. A bad delivery is never half-stored: it raises
``LendingFeedError`` whose message names the file or source, the column and the offending
rows (tickers, at most ``MAX_LISTED`` of them).

Rules (every problem found is reported in one message):
- every column of ``FEED_COLUMNS`` is present (header names are compared after stripping
  surrounding spaces; extra columns are dropped);
- at least one row;
- every value casts to its column's dtype (numbers, ISO dates; ``Lender Count`` whole numbers;
  infinities are rejected, ``NaN`` is read as missing);
- ``Date``, ``ticker``, ``Fee All (BPS)`` and ``Active Utilization (%)`` are never missing;
- every row's ``Date`` equals the partition day;
- one row per ticker;
- fee >= 0; 0 <= utilisation <= 100; quantities, short interest, ADV, re-rate ratio, B2B loans
  and lender count >= 0 when present (month differences may be negative).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path, PurePosixPath

import polars as pl

# Vendor column -> normalised column, in the order the lake stores them.
FEED_COLUMNS: dict[str, str] = {
    "Date": "date",
    "ticker": "symbol",
    "sec_desc": "sec_desc",
    "industry": "industry",
    "Fee All (BPS)": "fee_bps",
    "Active Utilization (%)": "utilization_pct",
    "On Loan Quantity": "on_loan_qty",
    "On Loan Quantity Month Diff": "on_loan_qty_month_diff",
    "Fee All Month Diff (BPS)": "fee_month_diff_bps",
    "Short Interest": "short_interest",
    "Average Daily Volume": "adv",
    "Re-Rate Ratio": "rerate_ratio",
    "B2B Loans": "b2b_loans",
    "Lender Count": "lender_count",
}
FEED_SCHEMA = pl.Schema(
    {
        "date": pl.Date,
        "symbol": pl.String,
        "sec_desc": pl.String,
        "industry": pl.String,
        "fee_bps": pl.Float64,
        "utilization_pct": pl.Float64,
        "on_loan_qty": pl.Float64,
        "on_loan_qty_month_diff": pl.Float64,
        "fee_month_diff_bps": pl.Float64,
        "short_interest": pl.Float64,
        "adv": pl.Float64,
        "rerate_ratio": pl.Float64,
        "b2b_loans": pl.Float64,
        "lender_count": pl.Int64,
    }
)
# What each stored column means, with its unit and rule (the asset's column schema uses these).
COLUMN_DESCRIPTIONS: dict[str, str] = {
    "date": "Feed date = the partition's trading day (vendor column `Date`).",
    "symbol": "Ticker, surrounding spaces stripped; one row per ticker and day (vendor `ticker`).",
    "sec_desc": "Security description, free text (null when the vendor has none).",
    "industry": "Industry classification, free text (null when the vendor has none).",
    "fee_bps": "Average fee of all open loans, basis points per year, >= 0 (`Fee All (BPS)`).",
    "utilization_pct": "Active utilisation: on-loan value / lendable value, percent, 0..100 "
    "(`Active Utilization (%)`).",
    "on_loan_qty": "Shares on loan, >= 0 (`On Loan Quantity`).",
    "on_loan_qty_month_diff": "Change of on-loan quantity over the last month (vendor's window), shares; "
    "may be negative (`On Loan Quantity Month Diff`).",
    "fee_month_diff_bps": "Change of the all-loans fee over the last month, basis points; may be negative "
    "(`Fee All Month Diff (BPS)`).",
    "short_interest": "Short interest, shares, >= 0 (`Short Interest`).",
    "adv": "Average daily trading volume, shares per day, >= 0 (`Average Daily Volume`).",
    "rerate_ratio": "Re-rate ratio: share of loans whose fee was re-rated, ratio, >= 0 (`Re-Rate Ratio`).",
    "b2b_loans": "Broker-to-broker loans, shares, >= 0 (`B2B Loans`).",
    "lender_count": "Number of lenders with the security on loan, count, >= 0 (`Lender Count`).",
}
SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
MAX_LISTED = 10  # offending rows named in an error message


@dataclass(frozen=True)
class Delivery:
    """A kind of delivered file: how it is named, its columns and the rules ``validate`` applies.

    ``columns`` maps each delivered column name to its stored name (in stored order) and
    ``schema`` gives the stored dtypes; ``not_null`` and ``non_negative`` name stored columns;
    ``maxima`` caps values (inclusive); ``key`` is unique per file and labels offending rows
    (``key_plural`` names them in messages); ``dated``: every row's ``date`` equals the day.
    """

    name: str
    prefix: str
    columns: dict[str, str]
    schema: pl.Schema
    not_null: tuple[str, ...]
    non_negative: tuple[str, ...] = ()
    maxima: dict[str, float] = field(default_factory=dict)
    key: str = "symbol"
    key_plural: str = "tickers"
    dated: bool = True

    def file_name(self, day: date, fmt: str = "csv") -> str:
        """``lending_2024-11-29.csv``: how a day's delivery is named in its inbox."""
        return f"{self.prefix}{day.isoformat()}.{fmt}"

    def file_day(self, name: str) -> date | None:
        """The day a delivery's file name stands for (``lending_2024-11-29.parquet``), or None."""
        stem = PurePosixPath(name).name.rpartition(".")[0]
        if not stem.startswith(self.prefix):
            return None
        try:
            return date.fromisoformat(stem.removeprefix(self.prefix))
        except ValueError:
            return None


def complete_file(name: str, prefix: str, schema: pl.Schema, **rules: object) -> Delivery:
    """A delivery whose columns are named as they are stored and are all required (our own
    documented file-drop schemas); ``rules``: the other ``Delivery`` fields."""
    return Delivery(
        name=name,
        prefix=prefix,
        columns={c: c for c in schema},
        schema=schema,
        not_null=tuple(schema),
        **rules,
    )


LENDING_FEED = Delivery(
    name="lending feed",
    prefix="lending_",
    columns=FEED_COLUMNS,
    schema=FEED_SCHEMA,
    not_null=("date", "symbol", "fee_bps", "utilization_pct"),
    non_negative=(
        "fee_bps",
        "utilization_pct",
        "on_loan_qty",
        "short_interest",
        "adv",
        "rerate_ratio",
        "b2b_loans",
        "lender_count",
    ),
    maxima={"utilization_pct": 100.0},
)


class LendingFeedError(ValueError):
    """A feed delivery is unusable; the message names the source, the column and the rows."""


class LendingSourceError(RuntimeError):
    """A feed source could not be read at all (database unreachable, missing table)."""


# ---- readers ------------------------------------------------------------------------------
def read_feed_file(source: str | Path | bytes, name: str | None = None) -> pl.DataFrame:
    """The raw rows of one delivered file, vendor column names, as stored (no validation).

    ``source`` is a path or the file's bytes (e.g. read from S3); ``name`` is the file name used
    in messages and, for bytes, to choose the format from its suffix (``.csv``, ``.parquet`` /
    ``.pq``). CSV columns come back as strings so ``validate_snapshot`` can name every value
    that does not parse; parquet keeps its stored types.
    """
    if name is None:
        if isinstance(source, bytes):
            raise ValueError("read_feed_file: pass name= (with its suffix) when source is bytes")
        name = str(source)
    kind = SUFFIXES.get(PurePosixPath(name).suffix.lower())
    if kind is None:
        raise LendingFeedError(f"{name}: unsupported file type (expected {', '.join(SUFFIXES)})")
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    if not data:
        raise LendingFeedError(f"{name}: empty file (0 bytes)")
    try:
        if kind == "csv":
            frame = pl.read_csv(io.BytesIO(data), infer_schema=False)
        else:
            frame = pl.read_parquet(io.BytesIO(data))
    except pl.exceptions.NoDataError:
        raise LendingFeedError(f"{name}: empty file (no header, no rows)") from None
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise LendingFeedError(f"{name}: unreadable {kind} file: {type(exc).__name__}: {exc}") from exc
    return frame


def sql_source_name(url: str, table: str) -> str:
    """How a SQL source is named in messages: the URL without its password, and the table."""
    import sqlalchemy as sa

    masked = sa.engine.make_url(url).render_as_string(hide_password=True)
    return f"{masked} table {table}"


def read_feed_sql(url: str, table: str, day: date) -> pl.DataFrame:
    """The raw rows of ``table`` whose ``Date`` is ``day``, through SQLAlchemy (any dialect).

    The query is ``SELECT * FROM table WHERE "Date" >= :day AND "Date" < :next_day`` with bound
    parameters (the table name is quoted by SQLAlchemy, ``schema.table`` allowed): the half-open
    range is ``Date = :day`` for a DATE column and also matches vendors that store midnight
    timestamps. Values come back as strings (``None`` stays missing), so a SQL delivery is
    validated exactly like a CSV file.
    """
    import sqlalchemy as sa

    schema, _, name = table.rpartition(".")
    query = (
        sa.select(sa.text("*"))
        .select_from(sa.table(name, schema=schema or None))
        .where(
            sa.column("Date") >= sa.bindparam("day", day, type_=sa.Date),
            sa.column("Date") < sa.bindparam("next_day", day + timedelta(days=1), type_=sa.Date),
        )
    )
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            result = connection.execute(query)
            columns = list(result.keys())
            rows = result.fetchall()
    except sa.exc.SQLAlchemyError as exc:
        raise LendingSourceError(
            f"{sql_source_name(url, table)}: query for {day} failed: {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        engine.dispose()
    data = {col: [None if row[i] is None else str(row[i]) for row in rows] for i, col in enumerate(columns)}
    return pl.DataFrame(data, schema={col: pl.String for col in columns})


# ---- validation ---------------------------------------------------------------------------
def _listing(labels: Sequence[str]) -> str:
    shown = ", ".join(labels[:MAX_LISTED])
    more = len(labels) - MAX_LISTED
    return f"{shown}, and {more} more" if more > 0 else shown


def _parse(frame: pl.DataFrame, col: str, target: pl.DataType) -> pl.Expr:
    """Delivered column ``col`` cast to ``target``; unparseable values become null."""
    dtype = frame.schema[col]
    expr = pl.col(col)
    if dtype == pl.String:
        expr = expr.str.strip_chars()
        expr = pl.when(expr == "").then(None).otherwise(expr)
    if target == pl.String:
        return expr.cast(pl.String)
    if target == pl.Date:
        if dtype == pl.String:  # ISO date, optionally followed by a time ("2024-11-29 00:00:00")
            iso = expr.str.contains(r"^\d{4}-\d{2}-\d{2}([ T].*)?$")
            return pl.when(iso).then(expr.str.slice(0, 10)).str.to_date("%Y-%m-%d", strict=False)
        if isinstance(dtype, pl.Datetime):
            return expr.dt.date()
        return expr if dtype == pl.Date else pl.lit(None, pl.Date)  # never read integers as dates
    if not (dtype.is_numeric() or dtype == pl.String or dtype == pl.Null):
        return pl.lit(None, target)  # e.g. a boolean or date where a number belongs
    number = expr.cast(pl.Float64, strict=False)
    number = pl.when(number.is_nan()).then(None).otherwise(number)  # NaN = missing (pandas)
    number = pl.when(number.is_infinite()).then(None).otherwise(number)
    if target == pl.Int64:
        number = pl.when(number == number.round(0)).then(number).otherwise(None).cast(pl.Int64)
    return number


def _is_missing(frame: pl.DataFrame, col: str) -> pl.Expr:
    expr = pl.col(col)
    if frame.schema[col] == pl.String:
        return expr.is_null() | (expr.str.strip_chars() == "")
    if frame.schema[col].is_float():
        return expr.is_null() | expr.is_nan()
    return expr.is_null()


def validate(raw: pl.DataFrame, delivery: Delivery, day: date | None, source_name: str) -> pl.DataFrame:
    """Normalise and validate one delivered file of kind ``delivery`` (delivered column names).

    Returns the rows in ``delivery.schema`` (stored names, explicit dtypes), sorted by the key.
    Raises ``LendingFeedError`` naming ``source_name``, each failing column (delivered name) and
    its offending rows. ``day`` is the partition (checked against ``date`` when ``dated``).
    """
    delivered = {norm: raw_name for raw_name, norm in delivery.columns.items()}
    frame = raw.rename({c: c.strip() for c in raw.columns if c != c.strip()})
    missing = [c for c in delivery.columns if c not in frame.columns]
    if missing:
        raise LendingFeedError(
            f"{source_name}: missing column(s) {', '.join(repr(c) for c in missing)} "
            f"(found {', '.join(repr(c) for c in frame.columns) or 'none'})"
        )
    if frame.height == 0:
        raise LendingFeedError(f"{source_name}: empty file (header only, no rows)")

    frame = frame.select(list(delivery.columns)).with_row_index("_row", offset=1)
    parsed = frame.select(
        "_row",
        *(_parse(frame, delivered[n], dtype).alias(n) for n, dtype in delivery.schema.items()),
        *(_is_missing(frame, delivered[n]).alias(f"_missing_{n}") for n in delivery.schema),
        *(pl.col(delivered[n]).cast(pl.String).alias(f"_raw_{n}") for n in delivery.schema),
    ).with_columns(
        _label=pl.when(pl.col(delivery.key).is_not_null())
        .then(pl.col(delivery.key).cast(pl.String))
        .otherwise(pl.format("row {}", pl.col("_row")))
    )

    # every check as (offending-rows mask, stored column, what is wrong, column to quote); the
    # masks are evaluated in one pass and only the failing ones are listed row by row
    checks: list[tuple[pl.Expr, str, str, str | None]] = []
    for col, dtype in delivery.schema.items():
        unparsed = pl.col(col).is_null() & pl.col(f"_missing_{col}").not_()
        kind = {pl.Date: "ISO dates (YYYY-MM-DD)", pl.Int64: "whole numbers"}.get(dtype, "numbers")
        checks.append((unparsed, col, f"has values that are not {kind}", f"_raw_{col}"))
    for col in delivery.not_null:
        checks.append((pl.col(f"_missing_{col}"), col, "has missing values", None))
    if delivery.dated:
        checks.append((pl.col("date") != day, "date", f"has dates other than the partition {day}", "date"))
    key = pl.col(delivery.key)
    checks.append((key.is_not_null() & key.is_duplicated(), delivery.key, "", None))
    for col in delivery.non_negative:
        checks.append((pl.col(col) < 0, col, "has negative values", col))
    for col, top in delivery.maxima.items():
        checks.append((pl.col(col) > top, col, f"has values above {top:g}", col))

    failing = parsed.select(
        mask.fill_null(False).any().alias(str(i)) for i, (mask, *_) in enumerate(checks)
    ).row(0)
    problems: list[str] = []
    for (mask, col, what, show), failed in zip(checks, failing, strict=True):
        if not failed:
            continue
        bad = parsed.filter(mask)
        if col == delivery.key and not what:  # the duplicate check
            counts = bad.group_by("_label", maintain_order=True).len()
            labels = [f"{label} ({n} rows)" for label, n in counts.iter_rows()]
            problems.append(
                f"column '{delivered[col]}' has duplicate {delivery.key_plural}: {_listing(labels)}"
            )
            continue
        if show is None:
            labels = bad["_label"].to_list()
        else:
            labels = [f"{label} ({value})" for label, value in bad.select("_label", show).iter_rows()]
        rows = "row" if bad.height == 1 else "rows"
        problems.append(f"column '{delivered[col]}' {what} in {bad.height} {rows}: {_listing(labels)}")

    if problems:
        where = f" ({day})" if day is not None else ""
        raise LendingFeedError(f"{source_name}{where}: " + "; ".join(problems))
    return parsed.select(delivery.schema.names()).cast(dict(delivery.schema)).sort(delivery.key)


def validate_snapshot(raw: pl.DataFrame, day: date, source_name: str) -> pl.DataFrame:
    """Normalise and validate one day's raw lending feed (vendor column names) against ``day``:
    ``validate`` with the lending feed's rules (rows in ``FEED_SCHEMA``, sorted by symbol)."""
    return validate(raw, LENDING_FEED, day, source_name)

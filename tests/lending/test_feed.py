from datetime import date, datetime

import polars as pl
import pytest
import sqlalchemy as sa

from finance_dag.lending.feed import (
    COLUMN_DESCRIPTIONS,
    FEED_COLUMNS,
    FEED_SCHEMA,
    LendingFeedError,
    LendingSourceError,
    read_feed_file,
    read_feed_sql,
    sql_source_name,
    validate_snapshot,
)

DAY = date(2024, 11, 29)


def row(ticker: str, **changes) -> dict:
    """One valid vendor row for DAY (vendor column names)."""
    values = {
        "Date": DAY.isoformat(),
        "ticker": ticker,
        "sec_desc": f"{ticker} Inc",
        "industry": "Technology",
        "Fee All (BPS)": 25.5,
        "Active Utilization (%)": 42.0,
        "On Loan Quantity": 1_000_000,
        "On Loan Quantity Month Diff": -12.5,
        "Fee All Month Diff (BPS)": -3.0,
        "Short Interest": 2_000_000,
        "Average Daily Volume": 500_000,
        "Re-Rate Ratio": 1.2,
        "B2B Loans": 50_000,
        "Lender Count": 14,
    }
    values.update(changes)
    return values


def csv_bytes(rows: list[dict]) -> bytes:
    """A CSV file as a vendor writes it: every value as text."""
    header = list(rows[0])
    lines = [",".join(header)] + [",".join("" if r[c] is None else str(r[c]) for c in header) for r in rows]
    return ("\n".join(lines) + "\n").encode()


def check(rows: list[dict], name: str = "lending_2024-11-29.csv") -> pl.DataFrame:
    return validate_snapshot(read_feed_file(csv_bytes(rows), name), DAY, name)


def failure(rows: list[dict], name: str = "lending_2024-11-29.csv") -> str:
    with pytest.raises(LendingFeedError) as info:
        check(rows, name)
    return str(info.value)


def test_schema_names_every_column_with_a_description():
    assert list(FEED_COLUMNS.values()) == FEED_SCHEMA.names()
    assert set(COLUMN_DESCRIPTIONS) == set(FEED_SCHEMA.names())


def test_good_csv_file_is_normalised(tmp_path):
    path = tmp_path / "lending_2024-11-29.csv"
    path.write_bytes(csv_bytes([row("MSFT"), row(" AAPL ", **{"Lender Count": "7", "Short Interest": None})]))
    out = validate_snapshot(read_feed_file(path), DAY, path.name)
    assert out.schema == FEED_SCHEMA
    assert out["symbol"].to_list() == ["AAPL", "MSFT"]  # stripped, sorted
    first = out.row(0, named=True)
    assert first["date"] == DAY and first["fee_bps"] == 25.5 and first["utilization_pct"] == 42.0
    assert first["lender_count"] == 7 and first["short_interest"] is None
    assert first["on_loan_qty_month_diff"] == -12.5


def test_good_parquet_file_from_bytes_and_from_path(tmp_path):
    frame = pl.DataFrame([row("AAA"), row("BBB", **{"Fee All (BPS)": 0.0, "Active Utilization (%)": 100.0})])
    frame = frame.with_columns(pl.col("Date").str.to_datetime())  # pandas writes timestamps
    path = tmp_path / "feed.parquet"
    frame.write_parquet(path)
    from_path = validate_snapshot(read_feed_file(path), DAY, path.name)
    from_bytes = validate_snapshot(read_feed_file(path.read_bytes(), "s3://inbox/feed.parquet"), DAY, "x")
    assert from_path.equals(from_bytes)
    assert from_path.schema == FEED_SCHEMA and from_path.height == 2


def test_extra_columns_are_dropped_and_header_spaces_ignored():
    rows = [{**{f" {k} " if k == "ticker" else k: v for k, v in row("AAA").items()}, "Extra": "x"}]
    assert check(rows).columns == FEED_SCHEMA.names()


def test_missing_column_names_file_and_column():
    rows = [{k: v for k, v in row("AAA").items() if k != "Re-Rate Ratio"}]
    message = failure(rows, "inbox/lending_2024-11-29.csv")
    assert message.startswith("inbox/lending_2024-11-29.csv: missing column(s) 'Re-Rate Ratio'")


def test_wrong_type_names_column_tickers_and_values():
    rows = [row("AAA"), row("BBB", **{"Fee All (BPS)": "n/a"}), row("CCC", **{"Fee All (BPS)": "12bp"})]
    message = failure(rows)
    assert "lending_2024-11-29.csv" in message
    assert (
        "column 'Fee All (BPS)' has values that are not numbers in 2 rows: BBB (n/a), CCC (12bp)" in message
    )
    assert "AAA" not in message


def test_non_integral_lender_count_and_bad_date_are_type_errors():
    rows = [row("AAA", **{"Lender Count": 3.5}), row("BBB", Date="29/11/2024")]
    message = failure(rows)
    assert "column 'Lender Count' has values that are not whole numbers in 1 row: AAA (3.5)" in message
    assert (
        "column 'Date' has values that are not ISO dates (YYYY-MM-DD) in 1 row: BBB (29/11/2024)" in message
    )


def test_negative_fee_is_rejected():
    message = failure([row("AAA"), row("BBB", **{"Fee All (BPS)": -4.0})])
    assert "column 'Fee All (BPS)' has negative values in 1 row: BBB (-4.0)" in message


def test_utilisation_outside_0_100_is_rejected():
    rows = [row("AAA", **{"Active Utilization (%)": 100.5}), row("BBB", **{"Active Utilization (%)": -1})]
    message = failure(rows)
    assert "column 'Active Utilization (%)' has values above 100 in 1 row: AAA (100.5)" in message
    assert "column 'Active Utilization (%)' has negative values in 1 row: BBB (-1.0)" in message


def test_negative_quantity_is_rejected_but_negative_month_diff_is_not():
    message = failure([row("AAA", **{"Short Interest": -10, "On Loan Quantity Month Diff": -80})])
    assert "column 'Short Interest' has negative values in 1 row: AAA (-10.0)" in message
    assert "Month Diff" not in message


def test_duplicate_tickers_are_rejected():
    message = failure([row("AAA"), row("BBB"), row("AAA"), row("BBB "), row("CCC")])
    assert "column 'ticker' has duplicate tickers: AAA (2 rows), BBB (2 rows)" in message


def test_missing_ticker_or_fee_is_rejected_by_row_number():
    message = failure([row("AAA"), row(""), row("CCC", **{"Fee All (BPS)": None})])
    assert "column 'ticker' has missing values in 1 row: row 2" in message
    assert "column 'Fee All (BPS)' has missing values in 1 row: CCC" in message


def test_dates_that_disagree_with_the_partition_are_rejected():
    message = failure([row("AAA"), row("BBB", Date="2024-11-27"), row("CCC", Date="2024-11-28 00:00:00")])
    assert "column 'Date' has dates other than the partition 2024-11-29 in 2 rows:" in message
    assert "BBB (2024-11-27), CCC (2024-11-28)" in message


def test_whole_file_for_another_day_lists_at_most_ten_rows():
    rows = [row(f"T{i:02d}", Date="2024-11-28") for i in range(14)]
    message = failure(rows)
    assert "in 14 rows: T00 (2024-11-28)," in message and "T09 (2024-11-28), and 4 more" in message
    assert "T10" not in message


@pytest.mark.chaos("bad lending file", faults="header-only empty")
def test_empty_files_are_rejected():
    header_only = csv_bytes([row("AAA")]).split(b"\n")[0] + b"\n"
    with pytest.raises(LendingFeedError, match=r"^f\.csv: empty file \(header only, no rows\)"):
        validate_snapshot(read_feed_file(header_only, "f.csv"), DAY, "f.csv")
    with pytest.raises(LendingFeedError, match=r"^g\.csv: empty file \(0 bytes\)"):
        read_feed_file(b"", "g.csv")


@pytest.mark.chaos("bad lending file", faults="not-parquet unsupported-type")
def test_unreadable_and_unsupported_files_name_the_file():
    with pytest.raises(LendingFeedError, match=r"^h\.parquet: unreadable parquet file"):
        read_feed_file(b"not a parquet file", "h.parquet")
    with pytest.raises(LendingFeedError, match=r"^h\.xlsx: unsupported file type"):
        read_feed_file(b"x", "h.xlsx")


@pytest.mark.chaos("bad lending file", faults="negative-fee utilisation-above-100 duplicate-ticker")
def test_every_problem_is_reported_at_once():
    message = failure([row("AAA", **{"Fee All (BPS)": -1}), row("AAA", **{"Active Utilization (%)": 101})])
    assert "negative values" in message and "above 100" in message and "duplicate tickers" in message


# ---- SQL ------------------------------------------------------------------------------------
@pytest.fixture
def sqlite_url(tmp_path) -> str:
    """A real SQLite file holding three days of the feed, ``Date`` as a DATE column."""
    url = f"sqlite:///{tmp_path / 'lending.db'}"
    engine = sa.create_engine(url)
    meta = sa.MetaData()
    columns = [sa.Column("Date", sa.Date), sa.Column("ticker", sa.String)]
    columns += [sa.Column(c, sa.String) for c in ("sec_desc", "industry")]
    columns += [sa.Column(c, sa.Float) for c in list(FEED_COLUMNS)[4:-1]] + [
        sa.Column("Lender Count", sa.Integer)
    ]
    table = sa.Table("equilend_daily", meta, *columns)
    meta.create_all(engine)
    records = []
    for day in (date(2024, 11, 26), date(2024, 11, 27), DAY):
        for ticker in ("AAA", "BBB", "CCC"):
            records.append({**row(ticker), "Date": day, "Fee All (BPS)": float(day.day)})
    with engine.begin() as connection:
        connection.execute(table.insert(), records)
    engine.dispose()
    return url


def test_read_feed_sql_selects_the_day_from_a_real_sqlite_file(sqlite_url):
    raw = read_feed_sql(sqlite_url, "equilend_daily", DAY)
    assert raw.height == 3
    out = validate_snapshot(raw, DAY, sql_source_name(sqlite_url, "equilend_daily"))
    assert out.schema == FEED_SCHEMA
    assert out["symbol"].to_list() == ["AAA", "BBB", "CCC"] and set(out["fee_bps"]) == {29.0}
    assert read_feed_sql(sqlite_url, "equilend_daily", date(2024, 11, 30)).height == 0


def test_read_feed_sql_matches_midnight_timestamps(tmp_path):
    url = f"sqlite:///{tmp_path / 'ts.db'}"
    engine = sa.create_engine(url)
    frame = pl.DataFrame([row("AAA"), row("BBB")]).with_columns(pl.col("Date").str.to_datetime())
    records = [{**r, "Date": datetime(2024, 11, 29)} for r in frame.to_dicts()]
    records.append({**records[0], "Date": datetime(2024, 11, 30)})
    meta = sa.MetaData()
    table = sa.Table(
        "feed",
        meta,
        sa.Column("Date", sa.DateTime),
        *(sa.Column(c, sa.String) for c in list(FEED_COLUMNS)[1:]),
    )
    meta.create_all(engine)
    with engine.begin() as connection:
        connection.execute(table.insert(), records)
    engine.dispose()
    out = validate_snapshot(read_feed_sql(url, "feed", DAY), DAY, "feed")
    assert out["symbol"].to_list() == ["AAA", "BBB"] and out["date"].to_list() == [DAY, DAY]


@pytest.mark.chaos("bad lending file", faults="negative-fee-in-sql")
def test_bad_sql_rows_fail_like_a_bad_file(sqlite_url):
    engine = sa.create_engine(sqlite_url)
    with engine.begin() as connection:
        connection.execute(
            sa.text('UPDATE equilend_daily SET "Fee All (BPS)" = -2 WHERE ticker = :t AND "Date" = :d'),
            {"t": "BBB", "d": DAY.isoformat()},
        )
    engine.dispose()
    name = sql_source_name(sqlite_url, "equilend_daily")
    with pytest.raises(
        LendingFeedError, match=r"table equilend_daily \(2024-11-29\): column 'Fee All \(BPS\)'"
    ):
        validate_snapshot(read_feed_sql(sqlite_url, "equilend_daily", DAY), DAY, name)


def test_missing_table_is_a_source_error_with_the_password_hidden(sqlite_url):
    with pytest.raises(LendingSourceError, match="no_such_table"):
        read_feed_sql(sqlite_url, "no_such_table", DAY)
    assert "secret" not in sql_source_name("postgresql://user:secret@db/lending", "feed")

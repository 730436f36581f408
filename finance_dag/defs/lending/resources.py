"""The lending feed as a resource: files in an inbox (local folder or s3:// prefix) or rows of a
SQL table; the simulated default drops the day's file into the inbox first, as a vendor would."""

import dagster as dg
import polars as pl

from finance_dag.core.lake import Lake
from finance_dag.core.settings import Settings
from finance_dag.lending.feed import (
    LendingSourceError,
    feed_file_name,
    read_feed_file,
    read_feed_sql,
    sql_source_name,
)

FILE_FORMATS = ("csv", "parquet")


class LendingFeedResource(dg.ConfigurableResource):
    """The day's raw lending feed (vendor column names) and the name of where it came from."""

    source: str = "sim"  # "sim", "inbox" or "sql"
    inbox: str = "./data/_inbox/lending"
    sql_url: str = ""  # give dg.EnvVar("LENDING_SQL_URI"): the URL may hold a password
    sql_table: str = "lending"
    seed: int = 7

    def snapshot(self, day, symbols: tuple[str, ...]) -> tuple[pl.DataFrame, str]:
        if self.source == "sql":
            if not self.sql_url:
                raise LendingSourceError(
                    "lending source is sql but environment variable LENDING_SQL_URI is not set"
                )
            return read_feed_sql(self.sql_url, self.sql_table, day), sql_source_name(
                self.sql_url, self.sql_table
            )
        inbox = Lake(self.inbox)
        present = [feed_file_name(day, fmt) for fmt in FILE_FORMATS if inbox.exists(feed_file_name(day, fmt))]
        if not present and self.source == "sim":
            from finance_dag.sim.vendors import shared_market

            frame = shared_market(self.seed).lending.feed(list(symbols), day)  # one cached state per name
            inbox.write_bytes(feed_file_name(day), frame.write_csv().encode())
            present = [feed_file_name(day)]
        if not present:
            raise LendingSourceError(
                f"no lending file for {day} in {inbox.uri('')} (expected {feed_file_name(day)} or "
                f"{feed_file_name(day, 'parquet')})"
            )
        name = present[0]
        return read_feed_file(inbox.read_bytes(name), name=inbox.uri(name)), inbox.uri(name)


class DailyPricesResource(dg.ConfigurableResource):
    """Raw daily closes for the lending universe. The simulated market serves every name (``sim``);
    a real daily vendor (Alpaca or yfinance daily bars) is not wired yet and fails naming that."""

    source: str = "sim"
    seed: int = 7

    def closes(self, symbols: tuple[str, ...], start, end) -> pl.DataFrame:
        """``date``, ``symbol``, ``close`` for every session from ``start`` to ``end``."""
        if self.source != "sim":
            raise LendingSourceError(
                f"daily prices source {self.source!r}: only the simulated market serves daily prices so far"
            )
        from finance_dag.sim.vendors import shared_market

        return (
            shared_market(self.seed).daily_prices(list(symbols), start, end).select("date", "symbol", "close")
        )


def build_resources(settings: Settings) -> dict[str, object]:
    sql = {"sql_url": dg.EnvVar("LENDING_SQL_URI")} if settings.lending_source == "sql" else {}
    return {
        "lending_feed": LendingFeedResource(
            source=settings.lending_source,
            inbox=settings.lending_inbox,
            sql_table=settings.lending_sql_table,
            **sql,
        ),
        "daily_prices": DailyPricesResource(source=settings.environment),
    }

"""The lending domain's inputs as resources, each with a simulated default and a real path.

- ``lending_feed``: the daily lending file from an inbox (folder or s3:// prefix) or the rows of
  a SQL table; ``etf_shares``, ``esg_scores`` and ``social_mentions``: file drops in their own
  inboxes. With source ``sim`` the simulated vendor drops the day's file into the inbox first,
  then it is read like any delivery.
- ``macro_series``: the FRED series (HY OAS, VIX, stress index) from FRED or the simulated macro.
- ``cboe_skew``: CBOE SKEW from Yahoo (``^SKEW``), a history file, or the simulated macro.
- ``daily_prices``: raw daily closes of the lending universe (the simulated market so far).
"""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg
import polars as pl
from pydantic import PrivateAttr

from finance_dag.core import calendar
from finance_dag.core.lake import Lake
from finance_dag.core.settings import Settings
from finance_dag.lending.extended import DROPS, OBSERVATION_SCHEMA, SKEW_FILE
from finance_dag.lending.feed import (
    LENDING_FEED,
    Delivery,
    LendingSourceError,
    read_feed_file,
    read_feed_sql,
    sql_source_name,
    validate,
)
from finance_dag.platform.registry import vendor
from finance_dag.platform.vendors import FredResource, YahooResource

FILE_FORMATS = ("csv", "parquet")
SKEW_SYMBOL = "^SKEW"  # Yahoo's symbol of the CBOE SKEW index


class InboxResource(dg.ConfigurableResource):
    """Daily files a vendor drops into an inbox (``lending_2024-11-29.csv`` or ``.parquet``)."""

    dataset: str  # "lending", "etf_shares", "esg_scores" or "social_mentions"
    source: str = "sim"  # "sim": the simulated vendor drops its files first; "inbox": only read
    inbox: str = "./data/_inbox/lending"
    seed: int = 7

    @property
    def delivery(self) -> Delivery:
        return LENDING_FEED if self.dataset == "lending" else DROPS[self.dataset]

    _validated: dict[tuple[str, float], pl.DataFrame | str] = PrivateAttr(default_factory=dict)

    def locate(self, day: date, symbols: tuple[str, ...]) -> str | None:
        """The name of the file delivered for ``day`` in the inbox (CSV first), or None."""
        inbox = Lake(self.inbox)
        names = [self.delivery.file_name(day, fmt) for fmt in FILE_FORMATS]
        present = [name for name in names if inbox.exists(name)]
        if not present and self.source == "sim":
            from finance_dag.sim.vendors import simulated_drop

            frame = simulated_drop(self.seed, self.dataset, symbols, day)
            if frame is not None:
                inbox.write_bytes(names[0], frame.write_csv().encode())
                present = [names[0]]
        return present[0] if present else None

    def _raw(self, name: str) -> tuple[pl.DataFrame, str]:
        """A delivered file's rows as delivered (vendor column names), and its URI."""
        inbox = Lake(self.inbox)
        return read_feed_file(inbox.read_bytes(name), name=inbox.uri(name)), inbox.uri(name)

    def delivered(self, day: date, symbols: tuple[str, ...]) -> tuple[pl.DataFrame, str] | None:
        """The raw file delivered for ``day`` and its URI, or None when nothing was delivered."""
        name = self.locate(day, symbols)
        return None if name is None else self._raw(name)

    def read(self, day: date, symbols: tuple[str, ...], max_age_days: int = 0) -> pl.DataFrame | str:
        """The newest file delivered for a session from ``max_age_days`` before ``day`` to
        ``day`` (0: the day's own), validated; or why there is none or why it is unusable
        (the validation message names the file, the column and the rows). A file is read and
        validated once per run (until it is rewritten), however many days use it."""
        inbox = Lake(self.inbox)
        oldest = day - timedelta(days=max_age_days)
        for session in reversed(calendar.sessions(oldest, day)):
            name = self.locate(session, symbols)
            if name is None:
                continue
            key = (name, inbox.modified(name))
            if key not in self._validated:
                try:
                    raw, uri = self._raw(name)
                    self._validated[key] = validate(raw, self.delivery, session, uri)
                except ValueError as error:
                    self._validated[key] = str(error)
            return self._validated[key]
        dated = f"for {day}" if max_age_days == 0 else f"dated {oldest}..{day}"
        return f"no {self.delivery.name} file {dated} in {inbox.uri('')}"


class LendingFeedResource(InboxResource):
    """The day's raw lending feed (vendor column names) and the name of where it came from."""

    dataset: str = "lending"
    source: str = "sim"  # "sim", "inbox" or "sql"
    sql_url: str = ""  # give dg.EnvVar("LENDING_SQL_URI"): the URL may hold a password
    sql_table: str = "lending"

    def snapshot(self, day: date, symbols: tuple[str, ...]) -> tuple[pl.DataFrame, str]:
        if self.source == "sql":
            if not self.sql_url:
                raise LendingSourceError(
                    "lending source is sql but environment variable LENDING_SQL_URI is not set"
                )
            return read_feed_sql(self.sql_url, self.sql_table, day), sql_source_name(
                self.sql_url, self.sql_table
            )
        found = self.delivered(day, symbols)
        if found is None:
            raise LendingSourceError(
                f"no lending file for {day} in {Lake(self.inbox).uri('')} (expected "
                f"{LENDING_FEED.file_name(day)} or {LENDING_FEED.file_name(day, 'parquet')})"
            )
        return found


class MacroSeriesResource(dg.ConfigurableResource):
    """FRED series by role (``hy_oas``, ``vix``, ``stress``): FRED in production, the simulated
    macro (same ids, same shape) by default."""

    source: str = "sim"  # "sim" or "fred"
    series: dict[str, str]
    fred: FredResource | None = None  # its series_ids are the values of ``series``
    seed: int = 7

    def observations(self, start: date, end: date) -> pl.DataFrame:
        """``date``, ``series_id``, ``value`` for every configured series in [start, end]."""
        if self.source == "fred":
            if self.fred is None:
                raise LendingSourceError("macro source is fred but no FRED resource is configured")
            return self.fred.macro().fetch(start, end)
        from finance_dag.sim.vendors import shared_macro

        return shared_macro(self.seed).observations(list(self.series.values()), start, end)


class SkewResource(dg.ConfigurableResource):
    """CBOE SKEW closes: Yahoo ``^SKEW`` (yfinance), a history file (``date``, ``skew``; CSV or
    parquet, validated), or the simulated macro."""

    source: str = "sim"  # "sim", "yahoo" or "file"
    file: str = ""
    yahoo: YahooResource | None = None
    seed: int = 7

    def observations(self, start: date, end: date) -> pl.DataFrame:
        """``date``, ``series_id`` (``SKEW``), ``value`` in [start, end]."""
        if self.source == "yahoo":
            if self.yahoo is None:
                raise LendingSourceError("SKEW source is yahoo but no Yahoo resource is configured")
            closes = self.yahoo.bars().daily_closes(SKEW_SYMBOL, start, end)
        elif self.source == "file":
            folder, _, name = self.file.rpartition("/")
            frame = read_feed_file(Lake(folder or ".").read_bytes(name), name=self.file)
            history = validate(frame, SKEW_FILE, None, self.file)
            closes = history.filter(pl.col("date").is_between(start, end)).rename({"skew": "close"})
        else:
            from finance_dag.sim.vendors import shared_macro

            closes = shared_macro(self.seed).skew(start, end)
        return closes.select("date", series_id=pl.lit("SKEW"), value="close").cast(dict(OBSERVATION_SCHEMA))


class DailyPricesResource(dg.ConfigurableResource):
    """Raw daily closes for the lending universe. The simulated market serves every name (``sim``);
    a real daily vendor (Alpaca or yfinance daily bars) is not wired yet and fails naming that."""

    source: str = "sim"
    seed: int = 7

    def closes(self, symbols: tuple[str, ...], start: date, end: date) -> pl.DataFrame:
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
    drops = settings.lending_drops_inbox.rstrip("/")
    macro = settings.lending_macro_source
    skew = settings.lending_skew_source
    return {
        "lending_feed": LendingFeedResource(
            source=settings.lending_source,
            inbox=settings.lending_inbox,
            sql_table=settings.lending_sql_table,
            **sql,
        ),
        **{
            dataset: InboxResource(
                dataset=dataset, source=settings.lending_drops_source, inbox=f"{drops}/{dataset}"
            )
            for dataset in DROPS
        },
        "macro_series": MacroSeriesResource(
            source=macro,
            series=dict(settings.lending_macro_series),
            fred=FredResource(
                api_key=dg.EnvVar("FRED_API_KEY"), series_ids=[i for _, i in settings.lending_macro_series]
            )
            if macro == "fred"
            else None,
        ),
        "cboe_skew": SkewResource(
            source=skew,
            file=settings.lending_skew_file,
            yahoo=vendor("yahoo", "bars").build() if skew == "yahoo" else None,
        ),
        "daily_prices": DailyPricesResource(source=settings.environment),
    }

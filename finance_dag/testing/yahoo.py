"""Fake Yahoo Finance: the cookie and crumb handshake and the v8 chart API.

Serves whatever yfinance asks first (``/`` for the fc.yahoo.com cookie, ``/v1/test/getcrumb``,
the consent pages answer 404) and ``/v8/finance/chart/{symbol}`` from the full truth of
``SimulatedMarket.true_minute_bars`` (regular only when ``includePrePost`` is false), epoch
seconds of minute starts, exchange zone America/New_York. Like Yahoo, 1-minute requests
reaching back more than 30 days before ``now`` (the fake's clock) or spanning more than 7 days
get HTTP 422 with Yahoo's chart error body.

``splits`` simulates stock splits, ``{symbol: [(ex_date, numerator, denominator)]}``: like
Yahoo, every bar served (1-minute, even with ``auto_adjust=False``, and daily) of a day before
an ex-date that is not after ``now`` is split-adjusted (prices divided by the ratio, volume
multiplied), and each split in a request's range is listed in the chart's ``events.splits``,
dated 09:30 New York of its ex-date. The market's true bars are the raw ones.

A daily request over a range (``period1``/``period2``) gets daily regular-session bars and the
events; one by ``range`` (yfinance's timezone probe) gets the metadata and no bars.

``daily`` (optional) is a daily truth, ``(symbols, first, last) -> DataFrame`` in
``DAILY_PRICE_SCHEMA`` (raw prices, ``split_ratio`` and ``dividend`` on their ex-dates): when
given, a symbol's daily bars are its rows, adjusted like Yahoo's for every split known by
``now`` (prices and dividends divided by the ratios of the later splits, volume multiplied),
with ``events.splits`` from its split ratios and ``events.dividends`` (``amount``, split-adjusted
too) from its dividends, both stamped 09:30 New York of the ex-date. A symbol it has no rows for
answers 404 like an unknown Yahoo symbol. ``splits`` then plays no part in daily answers.

``indices`` maps an index symbol (``"^SKEW"``) to its daily closes (``date``, ``close``): its
daily requests get those closes as bars (open = high = low = close, volume 0, like Yahoo's index
rows) with ``instrumentType`` INDEX, no split events. Like Yahoo, an index symbol (``^``) that is
not there answers 404 with the chart error body; other symbols are the market's.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from fractions import Fraction
from urllib.parse import unquote

import numpy as np
import polars as pl

from finance_dag.core import calendar
from finance_dag.sim import SimulatedMarket
from finance_dag.testing.alpaca import DailyTruth
from finance_dag.testing.server import FakeServer, Reply, Request

CRUMB = "fakeCrumb123"


Split = tuple[date, int, int]  # ex-date, numerator, denominator (4:1 is (d, 4, 1))


class FakeYahoo(FakeServer):
    def __init__(
        self,
        market: SimulatedMarket,
        now: datetime,
        splits: dict[str, list[Split]] | None = None,
        indices: dict[str, pl.DataFrame] | None = None,
        daily: DailyTruth | None = None,
    ):
        super().__init__()
        self.market = market
        self.now = now
        self.splits = splits or {}
        self.indices = indices or {}
        self.daily = daily

    def adjustment(self, splits: list[Split], day: date) -> float:
        """What Yahoo divides ``day``'s prices by: the ratios of the known ``splits`` after that day."""
        factor = 1.0
        for ex_date, numerator, denominator in splits:
            if day < ex_date and _split_moment(ex_date) <= self.now:
                factor *= numerator / denominator
        return factor

    def split_events(self, splits: list[Split], start: datetime, end: datetime) -> dict:
        """The chart's ``events`` entry for the known ``splits`` in [start, end)."""
        events = {}
        for ex_date, numerator, denominator in splits:
            moment = _split_moment(ex_date)
            if start <= moment < end and moment <= self.now:
                stamp = int(moment.timestamp())
                events[str(stamp)] = {
                    "date": stamp,
                    "numerator": numerator,
                    "denominator": denominator,
                    "splitRatio": f"{numerator}:{denominator}",
                }
        return {"splits": events} if events else {}

    def error_body(self, status: int, message: str) -> bytes:
        return _chart_error("Internal Server Error" if status >= 500 else "Too Many Requests", message)

    def chart_requests(self, interval: str = "1m") -> list[Request]:
        return [
            r
            for r in self.log
            if r.path.startswith("/v8/finance/chart/") and r.query.get("interval") == interval
        ]

    def serve(self, request: Request, fault: str | None) -> Reply:
        if request.path == "/":
            return Reply(200, b"ok", "text/html", {"Set-Cookie": "A3=d=fake&S=fake; Path=/; HttpOnly"})
        if request.path == "/v1/test/getcrumb":
            return Reply(200, CRUMB.encode(), "text/plain")
        if not request.path.startswith("/v8/finance/chart/"):
            return Reply(404, b"<html>not found</html>", "text/html")
        symbol = unquote(request.path.rsplit("/", 1)[-1])  # "^SKEW" arrives as "%5ESKEW"
        q = request.query
        if symbol.startswith("^") and symbol not in self.indices:
            detail = "No data found, symbol may be delisted"
            return Reply(404, _chart_error("Not Found", detail))
        meta = _meta(symbol, q.get("interval", "1d"), "INDEX" if symbol in self.indices else "EQUITY")
        if q.get("interval") == "1d" and "period1" in q:
            return self._daily(symbol, q, meta)
        if q.get("interval") != "1m":
            return _json({"chart": {"result": [{**meta, "indicators": {"quote": [{}]}}], "error": None}})
        start = datetime.fromtimestamp(int(q["period1"]), UTC)
        end = datetime.fromtimestamp(int(q["period2"]), UTC)
        if start < self.now - timedelta(days=30):
            detail = (
                f"1m data not available for startTime={q['period1']} and endTime={q['period2']}. "
                "The requested range must be within the last 30 days."
            )
            return Reply(422, _chart_error("Unprocessable Entity", detail))
        if end - start > timedelta(days=7):
            detail = "Only 7 days worth of 1m granularity data are allowed to be fetched per request."
            return Reply(422, _chart_error("Unprocessable Entity", detail))
        prepost = q.get("includePrePost", "false").lower() == "true"
        cols: dict[str, list] = {k: [] for k in ("ts", "open", "high", "low", "close", "volume")}
        lo, hi = (
            np.datetime64(start.replace(tzinfo=None), "us"),
            np.datetime64(end.replace(tzinfo=None), "us"),
        )
        for day in _sessions_between(start, end):
            truth = self.market.true_minute_bars(symbol, day)
            keep = (truth["ts"] >= lo) & (truth["ts"] < hi) & (truth["regular"] | prepost)
            factor = self.adjustment(self.splits.get(symbol, []), day)
            cols["ts"] += (truth["ts"][keep].astype("datetime64[s]").astype(np.int64)).tolist()
            for name in ("open", "high", "low", "close"):
                cols[name] += (truth[name][keep] / factor).tolist()
            cols["volume"] += np.rint(truth["volume"][keep] * factor).astype(np.int64).tolist()
        quote = {k: cols[k] for k in ("open", "high", "low", "close", "volume")}
        result = {**meta, "timestamp": cols["ts"], "indicators": {"quote": [quote]}}
        if "splits" in q.get("events", ""):
            result["events"] = self.split_events(self.splits.get(symbol, []), start, end)
        return _json({"chart": {"result": [result], "error": None}})

    def _daily(self, symbol: str, q: dict[str, str], meta: dict) -> Reply:
        """Daily regular-session bars (split-adjusted like Yahoo's), stamped 09:30 New York: the
        daily truth's when given, else built from the market's minute bars."""
        start = datetime.fromtimestamp(int(q["period1"]), UTC)
        end = datetime.fromtimestamp(int(q["period2"]), UTC)
        if symbol in self.indices:
            return self._index_daily(symbol, start, end, meta)
        if self.daily is not None:
            return self._truth_daily(symbol, start, end, q, meta)
        cols: dict[str, list] = {k: [] for k in ("ts", "open", "high", "low", "close", "volume")}
        splits = self.splits.get(symbol, [])
        for day in _sessions_between(start, end):
            moment = _split_moment(day)
            if not start <= moment < end or moment > self.now:
                continue
            truth = self.market.true_minute_bars(symbol, day)
            regular = truth["regular"]
            if not regular.any():
                continue
            factor = self.adjustment(splits, day)
            cols["ts"].append(int(moment.timestamp()))
            cols["open"].append(float(truth["open"][regular][0]) / factor)
            cols["high"].append(float(truth["high"][regular].max()) / factor)
            cols["low"].append(float(truth["low"][regular].min()) / factor)
            cols["close"].append(float(truth["close"][regular][-1]) / factor)
            cols["volume"].append(round(int(truth["volume"][regular].sum()) * factor))
        events = self.split_events(splits, start, end) if "splits" in q.get("events", "") else None
        return _daily_chart(meta, cols, events)

    def _truth_daily(
        self, symbol: str, start: datetime, end: datetime, q: dict[str, str], meta: dict
    ) -> Reply:
        """The daily truth's rows in [start, end) as Yahoo serves them: prices, volumes and dividends
        adjusted for every split up to ``now`` (also those after ``end``), events listed."""
        ny = calendar.NEW_YORK
        truth = self.daily([symbol], start.astimezone(ny).date(), self.now.astimezone(ny).date())
        if truth.is_empty():
            return Reply(404, _chart_error("Not Found", "No data found, symbol may be delisted"))
        splits: list[Split] = []
        for day, ratio in (
            truth.filter(pl.col("split_ratio") != 1.0).select("date", "split_ratio").iter_rows()
        ):
            fraction = Fraction(ratio).limit_denominator(1000)
            splits.append((day, fraction.numerator, fraction.denominator))
        cols: dict[str, list] = {k: [] for k in ("ts", "open", "high", "low", "close", "volume")}
        dividends = {}
        for row in truth.iter_rows(named=True):
            moment = _split_moment(row["date"])
            if not start <= moment < end or moment > self.now:
                continue
            factor, stamp = self.adjustment(splits, row["date"]), int(moment.timestamp())
            cols["ts"].append(stamp)
            for name in ("open", "high", "low", "close"):
                cols[name].append(row[name] / factor)
            cols["volume"].append(round(row["volume"] * factor))
            if row["dividend"]:
                dividends[str(stamp)] = {"amount": row["dividend"] / factor, "date": stamp}
        asked = q.get("events", "")
        events = self.split_events(splits, start, end) if "splits" in asked else {}
        if "div" in asked and dividends:
            events["dividends"] = dividends
        return _daily_chart(meta, cols, events if asked else None)

    def _index_daily(self, symbol: str, start: datetime, end: datetime, meta: dict) -> Reply:
        """The index's closes stamped 09:30 New York in [start, end) and not after ``now``."""
        stamps, closes = [], []
        for day, close in self.indices[symbol].select("date", "close").iter_rows():
            moment = _split_moment(day)
            if start <= moment < end and moment <= self.now:
                stamps.append(int(moment.timestamp()))
                closes.append(close)
        quote = {"open": closes, "high": closes, "low": closes, "close": closes, "volume": [0] * len(closes)}
        indicators = {"quote": [quote], "adjclose": [{"adjclose": closes}]}
        return _json(
            {"chart": {"result": [{**meta, "timestamp": stamps, "indicators": indicators}], "error": None}}
        )


def _daily_chart(meta: dict, cols: dict[str, list], events: dict | None) -> Reply:
    """A daily chart answer: ``cols`` (``ts`` and the quote), ``adjclose`` = close, ``events`` if asked."""
    quote = {k: cols[k] for k in ("open", "high", "low", "close", "volume")}
    indicators = {"quote": [quote], "adjclose": [{"adjclose": list(cols["close"])}]}
    result = {**meta, "timestamp": cols["ts"], "indicators": indicators}
    if events is not None:
        result["events"] = events
    return _json({"chart": {"result": [result], "error": None}})


def _meta(symbol: str, interval: str, instrument: str) -> dict:
    return {
        "meta": {
            "currency": "USD",
            "symbol": symbol,
            "exchangeName": "CXI" if instrument == "INDEX" else "NYQ",
            "instrumentType": instrument,
            "gmtoffset": -18000,
            "timezone": "EST",
            "exchangeTimezoneName": "America/New_York",
            "priceHint": 2,
            "dataGranularity": interval,
            "range": "",
            "validRanges": ["1d", "5d", "1mo", "3mo", "6mo", "1y", "2y", "5y", "10y", "ytd", "max"],
        }
    }


def _split_moment(day: date) -> datetime:
    """09:30 New York of ``day`` in UTC: how Yahoo dates a split event (and a daily bar)."""
    return datetime.combine(day, time(9, 30), calendar.NEW_YORK).astimezone(UTC)


def _sessions_between(start: datetime, end: datetime) -> list[date]:
    ny = calendar.NEW_YORK
    return calendar.sessions(start.astimezone(ny).date(), end.astimezone(ny).date())


def _chart_error(code: str, description: str) -> bytes:
    return json.dumps(
        {"chart": {"result": None, "error": {"code": code, "description": description}}}
    ).encode()


def _json(payload: dict) -> Reply:
    return Reply(200, json.dumps(payload).encode())


_cache_dir: list[str] = []


def isolate_yfinance_cache(directory: str) -> None:
    """Point yfinance's on-disk caches (ticker zones, cookies) at ``directory``, once per process."""
    import yfinance as yf

    if not _cache_dir:
        yf.set_tz_cache_location(directory)
        _cache_dir.append(directory)

"""Fake Yahoo Finance: the cookie and crumb handshake and the v8 chart API.

Serves whatever yfinance asks first (``/`` for the fc.yahoo.com cookie, ``/v1/test/getcrumb``,
the consent pages answer 404) and ``/v8/finance/chart/{symbol}`` from the full truth of
``SimulatedMarket.true_minute_bars`` (regular only when ``includePrePost`` is false), epoch
seconds of minute starts, exchange zone America/New_York. Like Yahoo, 1-minute requests
reaching back more than 30 days before ``now`` or spanning more than 7 days get HTTP 422.
A daily request (yfinance's timezone probe) gets the metadata and no bars.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import numpy as np

from finance_dag.core import calendar
from finance_dag.sim import SimulatedMarket
from finance_dag.testing.server import FakeServer, Reply, Request

CRUMB = "fakeCrumb123"


class FakeYahoo(FakeServer):
    def __init__(self, market: SimulatedMarket, now: datetime):
        super().__init__()
        self.market = market
        self.now = now

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
        symbol = request.path.rsplit("/", 1)[-1]
        q = request.query
        meta = _meta(symbol, q.get("interval", "1d"))
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
            cols["ts"] += (truth["ts"][keep].astype("datetime64[s]").astype(np.int64)).tolist()
            for name in ("open", "high", "low", "close", "volume"):
                cols[name] += truth[name][keep].tolist()
        quote = {k: cols[k] for k in ("open", "high", "low", "close", "volume")}
        result = {**meta, "timestamp": cols["ts"], "indicators": {"quote": [quote]}}
        return _json({"chart": {"result": [result], "error": None}})


def _meta(symbol: str, interval: str) -> dict:
    return {
        "meta": {
            "currency": "USD",
            "symbol": symbol,
            "exchangeName": "NYQ",
            "instrumentType": "EQUITY",
            "gmtoffset": -18000,
            "timezone": "EST",
            "exchangeTimezoneName": "America/New_York",
            "priceHint": 2,
            "dataGranularity": interval,
            "range": "",
            "validRanges": ["1d", "5d", "1mo", "3mo", "6mo", "1y", "2y", "5y", "10y", "ytd", "max"],
        }
    }


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

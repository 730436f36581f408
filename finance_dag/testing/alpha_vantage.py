"""Fake Alpha Vantage query API: ``GET /query?function=TIME_SERIES_INTRADAY&month=YYYY-MM`` and
``function=OVERVIEW``.

Serves the full truth of ``SimulatedMarket.true_minute_bars`` for every session of the month
(regular session only when ``extended_hours=false``), newest first, as naive US/Eastern
timestamps labelled by minute start (``label_end=True`` labels by minute end instead) with
prices as 4-decimal strings, like the real API. Only raw prices (``adjusted=false``) are
served. A wrong ``apikey`` gets AV's HTTP 200 ``Error Message``. Vendor faults answer HTTP 200
with one of AV's information bodies instead of data (texts as the real API words them):

- ``"note"``: the per-minute throttle (``Note``), transient
- ``"burst"``: "spreading out ... (1 request per second)" (``Information``), transient
- ``"daily_quota"``: "... standard API rate limit is 25 requests per day ..." (``Information``,
  naming the key like the real one), for good until the day rolls
- ``"premium"``: "This is a premium endpoint ..." (``Information``), for good

``function=OVERVIEW`` answers from the ``fundamentals`` callable: given a symbol it returns AV
fields (``{"Sector": "TECHNOLOGY", "SharesOutstanding": 15115800000, "BookValue": 3.767, ...}``)
or None for a symbol AV does not know. The answer has every field of AV's overview in AV's
order, values as strings the way AV sends them, ``"None"`` for a field not given or None; an
unknown symbol (or no ``fundamentals`` at all) gets AV's empty ``{}``. The faults above apply.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from typing import Any

import numpy as np
import polars as pl

from finance_dag.core import calendar
from finance_dag.sim import SimulatedMarket
from finance_dag.testing.server import FakeServer, Reply, Request

NOTE = (
    "Thank you for using Alpha Vantage! Our standard API rate limit is 5 requests per minute. "
    "Please visit https://www.alphavantage.co/premium/ if you would like to target a higher API "
    "call frequency."
)
BURST = (
    "Thank you for using Alpha Vantage! Please consider spreading out your free API requests more "
    "sparingly (1 request per second). You may subscribe to any of the premium plans at "
    "https://www.alphavantage.co/premium/ to lift the free key rate limit (25 requests per day) and "
    "instantly unlock all premium endpoints"
)
DAILY_QUOTA = (
    "We have detected your API key as {key} and our standard API rate limit is 25 requests per "
    "day. Please subscribe to any of the premium plans at https://www.alphavantage.co/premium/ to "
    "instantly remove all daily rate limits."
)
PREMIUM = (
    "Thank you for using Alpha Vantage! This is a premium endpoint. You may subscribe to any of "
    "the premium plans at https://www.alphavantage.co/premium/ to instantly unlock all premium "
    "endpoints"
)

# The fields of AV's company overview, in the order AV sends them.
OVERVIEW_FIELDS = (
    "Symbol", "AssetType", "Name", "Description", "CIK", "Exchange", "Currency", "Country", "Sector",
    "Industry", "Address", "OfficialSite", "FiscalYearEnd", "LatestQuarter", "MarketCapitalization",
    "EBITDA", "PERatio", "PEGRatio", "BookValue", "DividendPerShare", "DividendYield", "EPS",
    "RevenuePerShareTTM", "ProfitMargin", "OperatingMarginTTM", "ReturnOnAssetsTTM",
    "ReturnOnEquityTTM", "RevenueTTM", "GrossProfitTTM", "DilutedEPSTTM", "QuarterlyEarningsGrowthYOY",
    "QuarterlyRevenueGrowthYOY", "AnalystTargetPrice", "AnalystRatingStrongBuy", "AnalystRatingBuy",
    "AnalystRatingHold", "AnalystRatingSell", "AnalystRatingStrongSell", "TrailingPE", "ForwardPE",
    "PriceToSalesRatioTTM", "PriceToBookRatio", "EVToRevenue", "EVToEBITDA", "Beta", "52WeekHigh",
    "52WeekLow", "50DayMovingAverage", "200DayMovingAverage", "SharesOutstanding", "SharesFloat",
    "PercentInsiders", "PercentInstitutions", "DividendDate", "ExDividendDate",
)  # fmt: skip
Fundamentals = Callable[[str], dict[str, Any] | None]


class FakeAlphaVantage(FakeServer):
    def __init__(
        self,
        market: SimulatedMarket,
        api_key: str | None = None,
        label_end: bool = False,
        fundamentals: Fundamentals | None = None,
    ):
        super().__init__()
        self.market = market
        self.api_key = api_key
        self.label_end = label_end
        self.fundamentals = fundamentals

    def error_body(self, status: int, message: str) -> bytes:
        return f"<html><body><h1>{status}</h1>{message}</body></html>".encode()

    def serve(self, request: Request, fault: str | None) -> Reply:
        q = request.query
        if request.path != "/query":
            return Reply(404, self.error_body(404, "not found"))
        if fault == "note":
            return _json({"Note": NOTE})
        if fault == "burst":
            return _json({"Information": BURST})
        if fault == "daily_quota":
            return _json({"Information": DAILY_QUOTA.format(key=q.get("apikey", ""))})
        if fault == "premium":
            return _json({"Information": PREMIUM})
        if self.api_key and q.get("apikey") != self.api_key:
            return _json({"Error Message": "the parameter apikey is invalid or missing."})
        if q.get("function") == "OVERVIEW":
            return _json(self.overview(q["symbol"]))
        if (q.get("function"), q.get("interval"), q.get("adjusted")) != (
            "TIME_SERIES_INTRADAY",
            "1min",
            "false",
        ):
            return _json({"Error Message": "fake serves raw TIME_SERIES_INTRADAY 1min only (adjusted=false)"})
        symbol, month = q["symbol"], q["month"]
        extended = q.get("extended_hours", "true") == "true"
        series = {}
        for day in _month_sessions(month):
            truth = self.market.true_minute_bars(symbol, day)
            keep = np.ones(truth["ts"].size, dtype=bool) if extended else truth["regular"]
            stamps = eastern_labels(truth["ts"][keep], self.label_end)
            cols = [truth[k][keep] for k in ("open", "high", "low", "close", "volume")]
            for stamp, o, h, low, c, v in zip(stamps, *cols, strict=True):
                series[stamp] = {
                    "1. open": f"{o:.4f}",
                    "2. high": f"{h:.4f}",
                    "3. low": f"{low:.4f}",
                    "4. close": f"{c:.4f}",
                    "5. volume": str(v),
                }
        newest_first = dict(sorted(series.items(), reverse=True))
        meta = {
            "1. Information": "Intraday (1min) open, high, low, close prices and volume",
            "2. Symbol": symbol,
            "3. Last Refreshed": next(iter(newest_first), ""),
            "4. Interval": "1min",
            "5. Output Size": "Full size",
            "6. Time Zone": "US/Eastern",
        }
        return _json({"Meta Data": meta, "Time Series (1min)": newest_first})

    def overview(self, symbol: str) -> dict[str, str]:
        """AV's OVERVIEW body for ``symbol``: every field as a string ("None" when absent), or ``{}``."""
        given = self.fundamentals(symbol) if self.fundamentals else None
        if given is None:
            return {}
        fields = dict.fromkeys(OVERVIEW_FIELDS) | {"Symbol": symbol} | given
        return {name: "None" if value is None else str(value) for name, value in fields.items()}


def eastern_labels(ts: np.ndarray, label_end: bool = False) -> list[str]:
    """UTC ``datetime64`` minute starts as AV's naive US/Eastern labels."""
    frame = pl.DataFrame({"ts": ts}).with_columns(
        pl.col("ts").dt.replace_time_zone("UTC").dt.convert_time_zone("US/Eastern")
        + pl.duration(minutes=1 if label_end else 0)
    )
    return frame["ts"].dt.strftime("%Y-%m-%d %H:%M:%S").to_list()


def _month_sessions(month: str) -> list[date]:
    year, mon = map(int, month.split("-"))
    first = date(year, mon, 1)
    last = date(year + mon // 12, mon % 12 + 1, 1)
    return [d for d in calendar.sessions(first, last) if d < last]


def _json(payload: dict) -> Reply:
    return Reply(200, json.dumps(payload).encode())

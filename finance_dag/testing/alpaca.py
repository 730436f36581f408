"""Fake Alpaca market-data API: ``GET /v2/stocks/bars`` (multi-symbol, paged) and, given a daily
truth, ``timeframe=1Day`` bars and ``GET /v1/corporate-actions``.

1-minute requests get the full truth of ``SimulatedMarket.true_minute_bars`` (regular and
extended hours, every traded minute) whatever the feed, ordered by symbol then time, ``limit``
bars a page (at most 10,000) with an opaque ``next_page_token``. Like the real API, a price that is a whole
number goes on the wire as a JSON integer (``"o": 174``). Checks the key headers when
configured. Vendor fault ``"empty_page"``: a page with no bars and a token to continue from the
same spot; generic ``"429_reset"`` is Alpaca's 429 with ``X-RateLimit-Reset`` and no
``Retry-After``.

``daily`` (optional) is the daily truth, a callable ``(symbols, first, last) -> DataFrame`` in
``DAILY_PRICE_SCHEMA`` such as ``SimulatedEtfMarket.daily_prices``: daily bars are its raw rows stamped 00:00 New York of the session (no
vwap or trade count), paged like minute bars; its ``split_ratio`` and ``dividend`` become the
corporate actions (``forward_splits``/``reverse_splits`` with ``new_rate``/``old_rate``,
``cash_dividends`` with ``rate``), filtered like Alpaca's by process date: a split's ex-date,
a dividend's payable date ``PAYABLE_AFTER`` its ex-date. Without it, daily requests get 422.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from functools import lru_cache

import numpy as np
import polars as pl

from finance_dag.core import calendar
from finance_dag.sim import SimulatedMarket
from finance_dag.testing.server import FakeServer, Reply, Request

MAX_LIMIT = 10_000
BARS_PATH = "/v2/stocks/bars"
CORPORATE_ACTIONS_PATH = "/v1/corporate-actions"
PAYABLE_AFTER = timedelta(days=21)  # a cash dividend's payable (process) date after its ex-date
# The daily truth: DAILY_PRICE_SCHEMA rows of the symbols and the dates from..to (inclusive),
# e.g. ``SimulatedEtfMarket.daily_prices``.
DailyTruth = Callable[[list[str], date, date], pl.DataFrame]


class FakeAlpaca(FakeServer):
    def __init__(
        self,
        market: SimulatedMarket,
        api_key: str | None = None,
        secret_key: str | None = None,
        daily: DailyTruth | None = None,
    ):
        super().__init__()
        self.market = market
        self.credentials = (api_key, secret_key)
        self.daily = daily

    def error_body(self, status: int, message: str) -> bytes:
        return json.dumps({"code": 40000000 + status, "message": message}).encode()

    def serve(self, request: Request, fault: str | None) -> Reply:
        if request.path not in (BARS_PATH, CORPORATE_ACTIONS_PATH):
            return Reply(404, self.error_body(404, "not found"))
        key, secret = self.credentials
        if key and (
            request.headers.get("APCA-API-KEY-ID") != key
            or request.headers.get("APCA-API-SECRET-KEY") != secret
        ):
            return Reply(403, self.error_body(403, "forbidden"))
        q = request.query
        symbols = tuple(sorted(q["symbols"].split(",")))
        daily = request.path == CORPORATE_ACTIONS_PATH or q.get("timeframe") == "1Day"
        if daily and self.daily is None:
            return Reply(
                422,
                self.error_body(422, "fake serves daily bars and corporate actions with daily truth only"),
            )
        if request.path == CORPORATE_ACTIONS_PATH:
            actions = self._actions(
                symbols, q["types"], date.fromisoformat(q["start"]), date.fromisoformat(q["end"])
            )
            return _page("corporate_actions", len(actions), actions.__getitem__, q, fault)
        if q.get("adjustment", "raw") != "raw" or q.get("timeframe") not in ("1Min", "1Day"):
            return Reply(422, self.error_body(422, "fake serves raw 1Min and 1Day bars only"))
        if daily:
            bars = self._daily_bars(symbols, q["start"], q["end"])
            return _page("bars", len(bars), bars.__getitem__, q, fault)
        rows = self._rows(symbols, q["start"], q["end"])

        def minute(i: int) -> tuple[str, dict]:
            bar = {short: _number(rows[name][i]) for short, name in _PRICES.items()}
            return rows["symbol"][i], {
                "t": rows["t"][i],
                **bar,
                "v": int(rows["volume"][i]),
                "n": int(rows["trade_count"][i]),
                "vw": _number(rows["vwap"][i]),
            }

        return _page("bars", len(rows["symbol"]), minute, q, fault)

    @lru_cache(maxsize=32)  # noqa: B019 - one fake per test
    def _daily_bars(self, symbols: tuple[str, ...], start: str, end: str) -> list[tuple[str, dict]]:
        """The daily truth in [start, end] as Alpaca's daily bars (stamped 00:00 New York of the
        session, no vwap or trade count), by symbol then date."""
        lo, hi = _moment(start), _moment(end)
        ny = calendar.NEW_YORK
        truth = self._truth(symbols, lo.astimezone(ny).date(), hi.astimezone(ny).date())
        out = []
        for row in truth.iter_rows(named=True):
            midnight = datetime.combine(row["date"], datetime.min.time(), ny).astimezone(UTC)
            if lo <= midnight <= hi:
                bar = {short: _number(row[name]) for short, name in _PRICES.items()}
                out.append(
                    (row["symbol"], {"t": f"{midnight:%Y-%m-%dT%H:%M:%SZ}", **bar, "v": row["volume"]})
                )
        return out

    def _actions(
        self, symbols: tuple[str, ...], types: str, start: date, end: date
    ) -> list[tuple[str, dict]]:
        """The truth's splits and cash dividends as Alpaca's corporate actions of ``types`` processed
        in [start, end], grouped by kind: a split is processed on its ex-date, a cash dividend on
        its payable date, ``PAYABLE_AFTER`` its ex-date."""
        truth = self._truth(symbols, start - PAYABLE_AFTER, end)
        events = truth.filter((pl.col("split_ratio") != 1.0) | (pl.col("dividend") != 0.0))
        out = []
        for row in events.iter_rows(named=True):
            ex_date, ratio = row["date"], Fraction(row["split_ratio"]).limit_denominator(1000)
            common = {"symbol": row["symbol"], "cusip": "000000000", "ex_date": ex_date.isoformat()}
            if ratio != 1:
                kind = "forward_split" if ratio > 1 else "reverse_split"
                rates = {"new_rate": ratio.numerator, "old_rate": ratio.denominator}
                out.append((kind, ex_date, {**common, "corporate_action_type": kind, **rates}))
            if row["dividend"]:
                paid = ex_date + PAYABLE_AFTER
                cash = {
                    "rate": row["dividend"],
                    "special": False,
                    "foreign": False,
                    "payable_date": str(paid),
                }
                out.append(
                    ("cash_dividend", paid, {**common, "corporate_action_type": "cash_dividend", **cash})
                )
        wanted = types.split(",")
        return [
            (kind + "s", {**action, "process_date": processed.isoformat()})
            for kind, processed, action in out
            if kind in wanted and start <= processed <= end
        ]

    def _truth(self, symbols: tuple[str, ...], first: date, last: date) -> pl.DataFrame:
        """The daily truth of ``symbols`` from ``first`` to ``last``, by symbol then date."""
        assert self.daily is not None
        return self.daily(list(symbols), first, last).sort("symbol", "date")

    @lru_cache(maxsize=32)  # noqa: B019 - one fake per test
    def _rows(self, symbols: tuple[str, ...], start: str, end: str) -> dict[str, list]:
        lo, hi = _utc(start), _utc(end)
        out: dict[str, list] = {k: [] for k in ("symbol", "t", *_FIELDS)}
        for symbol in sorted(symbols):
            for day in calendar.sessions(lo.astype(object).date(), hi.astype(object).date()):
                truth = self.market.true_minute_bars(symbol, day)
                keep = (truth["ts"] >= lo) & (truth["ts"] <= hi)
                out["symbol"] += [symbol] * int(keep.sum())
                out["t"] += [s + "Z" for s in np.datetime_as_string(truth["ts"][keep], unit="s")]
                for name in _FIELDS:
                    out[name] += truth[name][keep].tolist()
        return out


_FIELDS = ("open", "high", "low", "close", "volume", "trade_count", "vwap")
_PRICES = {"o": "open", "h": "high", "l": "low", "c": "close"}


def _page(
    key: str, count: int, item: Callable[[int], tuple[str, dict]], q: dict[str, str], fault: str | None
) -> Reply:
    """One page of ``count`` items under ``key``, each item ``(group, record)`` grouped like Alpaca
    (bars by symbol, corporate actions by kind): ``limit`` a page from the ``page_token`` offset,
    with an opaque ``next_page_token`` while items remain. Fault ``"empty_page"``: no items and
    a token to continue from the same spot."""
    limit = min(int(q.get("limit") or 1000), MAX_LIMIT)
    offset = _decode(q["page_token"]) if q.get("page_token") else 0
    extra = {"currency": "USD"} if key == "bars" else {}
    if fault == "empty_page":
        return _json({key: {}, "next_page_token": _encode(offset, "empty"), **extra})
    stop = min(offset + limit, count)
    groups: dict[str, list[dict]] = {}
    for i in range(offset, stop):
        group, record = item(i)
        groups.setdefault(group, []).append(record)
    return _json({key: groups, "next_page_token": _encode(stop) if stop < count else None, **extra})


def _number(value: float) -> int | float:
    """A price as Alpaca's JSON carries it: a whole number as an integer (``174``, not ``174.0``)."""
    value = float(value)
    return int(value) if value.is_integer() else value


def _moment(text: str) -> datetime:
    """An RFC 3339 moment (``...Z`` or with an offset) as an aware datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _utc(text: str) -> np.datetime64:
    return np.datetime64(_moment(text).astimezone(UTC).replace(tzinfo=None), "us")


def _encode(offset: int, variant: str = "") -> str:
    return base64.urlsafe_b64encode(f"{offset}:{variant}".encode()).decode()


def _decode(token: str) -> int:
    return int(base64.urlsafe_b64decode(token.encode()).decode().split(":")[0])


def _json(payload: dict) -> Reply:
    return Reply(200, json.dumps(payload).encode())

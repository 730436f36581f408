"""Fake Alpaca market-data API v2: ``GET /v2/stocks/bars`` (multi-symbol, paged).

Serves the full truth of ``SimulatedMarket.true_minute_bars`` (regular and extended hours,
every traded minute) whatever the feed, ordered by symbol then time, ``limit`` bars a page
(at most 10,000) with an opaque ``next_page_token``. Like the real API, a price that is a whole
number goes on the wire as a JSON integer (``"o": 174``). Checks the key headers when
configured. Vendor fault ``"empty_page"``: a page with no bars and a token to continue from the
same spot; generic ``"429_reset"`` is Alpaca's 429 with ``X-RateLimit-Reset`` and no
``Retry-After``.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from functools import lru_cache

import numpy as np

from finance_dag.core import calendar
from finance_dag.sim import SimulatedMarket
from finance_dag.testing.server import FakeServer, Reply, Request

MAX_LIMIT = 10_000
BARS_PATH = "/v2/stocks/bars"


class FakeAlpaca(FakeServer):
    def __init__(self, market: SimulatedMarket, api_key: str | None = None, secret_key: str | None = None):
        super().__init__()
        self.market = market
        self.credentials = (api_key, secret_key)

    def error_body(self, status: int, message: str) -> bytes:
        return json.dumps({"code": 40000000 + status, "message": message}).encode()

    def serve(self, request: Request, fault: str | None) -> Reply:
        if request.path != BARS_PATH:
            return Reply(404, self.error_body(404, "not found"))
        key, secret = self.credentials
        if key and (
            request.headers.get("APCA-API-KEY-ID") != key
            or request.headers.get("APCA-API-SECRET-KEY") != secret
        ):
            return Reply(403, self.error_body(403, "forbidden"))
        q = request.query
        if q.get("timeframe") != "1Min" or q.get("adjustment", "raw") != "raw":
            return Reply(422, self.error_body(422, "fake serves raw 1Min bars only"))
        rows = self._rows(tuple(q["symbols"].split(",")), q["start"], q["end"])
        limit = min(int(q.get("limit") or 1000), MAX_LIMIT)
        offset = _decode(q["page_token"]) if q.get("page_token") else 0
        if fault == "empty_page":
            return _json({"bars": {}, "next_page_token": _encode(offset, "empty"), "currency": "USD"})
        stop = min(offset + limit, len(rows["symbol"]))
        bars: dict[str, list[dict]] = {}
        for i in range(offset, stop):
            bars.setdefault(rows["symbol"][i], []).append(
                {
                    "t": rows["t"][i],
                    "o": _number(rows["open"][i]),
                    "h": _number(rows["high"][i]),
                    "l": _number(rows["low"][i]),
                    "c": _number(rows["close"][i]),
                    "v": int(rows["volume"][i]),
                    "n": int(rows["trade_count"][i]),
                    "vw": _number(rows["vwap"][i]),
                }
            )
        token = _encode(stop) if stop < len(rows["symbol"]) else None
        return _json({"bars": bars, "next_page_token": token, "currency": "USD"})

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


def _number(value: float) -> int | float:
    """A price as Alpaca's JSON carries it: a whole number as an integer (``174``, not ``174.0``)."""
    value = float(value)
    return int(value) if value.is_integer() else value


def _utc(text: str) -> np.datetime64:
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    return np.datetime64(parsed.replace(tzinfo=None), "us")


def _encode(offset: int, variant: str = "") -> str:
    return base64.urlsafe_b64encode(f"{offset}:{variant}".encode()).decode()


def _decode(token: str) -> int:
    return int(base64.urlsafe_b64decode(token.encode()).decode().split(":")[0])


def _json(payload: dict) -> Reply:
    return Reply(200, json.dumps(payload).encode())

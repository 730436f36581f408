"""Fake FRED API: ``GET /fred/series/observations`` backed by ``SimulatedMacro``.

Answers in FRED's XML (what fredapi asks for) or JSON with ``file_type=json``. Daily series
carry FRED's ``"."`` on weekdays without a session, like the real VIXCLS. A wrong
``api_key`` or an unknown series gets FRED's HTTP 400 error document.

Like FRED, nothing is served after ``today`` (the fake's clock, default the real date), and the
ICE BofA series (``BAML...``, e.g. HY OAS ``BAMLH0A0HYM2``) only for the last 3 years of it:
asking for more silently returns the shorter series, as FRED does.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from xml.sax.saxutils import quoteattr

from finance_dag.core import calendar
from finance_dag.sim.macro import STRESS, SimulatedMacro
from finance_dag.testing.server import FakeServer, Reply, Request

ICE_BOFA_PREFIX = "BAML"
ICE_BOFA_YEARS = 3  # FRED keeps ICE BofA series only for a rolling 3 years


class FakeFred(FakeServer):
    def __init__(self, macro: SimulatedMacro, api_key: str | None = None, today: date | None = None):
        super().__init__()
        self.macro = macro
        self.api_key = api_key
        self.today = today

    def first_kept(self, series_id: str) -> date | None:
        """The oldest observation date FRED still serves for ``series_id`` (``None``: all)."""
        if not series_id.startswith(ICE_BOFA_PREFIX):
            return None
        today = self.today or date.today()
        try:
            return today.replace(year=today.year - ICE_BOFA_YEARS)
        except ValueError:  # 29 February
            return today.replace(year=today.year - ICE_BOFA_YEARS, day=28) + timedelta(days=1)

    def error_body(self, status: int, message: str) -> bytes:
        return f'<?xml version="1.0" encoding="utf-8" ?>\n<error code="{status}" message={quoteattr(message)}/>'.encode()

    def serve(self, request: Request, fault: str | None) -> Reply:
        q = request.query
        if request.path != "/fred/series/observations":
            return Reply(404, self.error_body(404, "Not Found"), "text/xml")
        if self.api_key and q.get("api_key") != self.api_key:
            message = "Bad Request.  The value for variable api_key is not registered."
            return Reply(400, self.error_body(400, message), "text/xml")
        sid = q.get("series_id", "")
        start = date.fromisoformat(q.get("observation_start", "1776-07-04"))
        end = min(date.fromisoformat(q.get("observation_end", "9999-12-31")), self.today or date.today())
        kept = self.first_kept(sid)
        start = max(start, kept) if kept else start
        try:
            values = self.macro.observations([sid], start, end)  # empty when end < start
        except ValueError:
            return Reply(400, self.error_body(400, "Bad Request.  The series does not exist."), "text/xml")
        rows = [(d.isoformat(), repr(v)) for d, v in values.select("date", "value").iter_rows()]
        if sid != STRESS and values.height:  # daily series: "." where the market was closed
            closed = calendar.closed_weekdays(values["date"].min(), values["date"].max())
            rows = sorted(rows + [(d.isoformat(), ".") for d in closed])
        if q.get("file_type") == "json":
            observations = [{"date": d, "value": v} for d, v in rows]
            return Reply(200, json.dumps({"count": len(rows), "observations": observations}).encode())
        body = "".join(
            f'<observation realtime_start="{d}" realtime_end="{d}" date="{d}" value="{v}"/>' for d, v in rows
        )
        head = (
            f'<observations file_type="xml" count="{len(rows)}" order_by="observation_date" sort_order="asc">'
        )
        return Reply(
            200, f'<?xml version="1.0" encoding="utf-8" ?>\n{head}{body}</observations>'.encode(), "text/xml"
        )

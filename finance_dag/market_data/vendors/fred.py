"""FRED macro series through ``fredapi.Fred.get_series``.

Series ids are configurable; the defaults are ICE BofA US High Yield OAS (``BAMLH0A0HYM2``),
VIX (``VIXCLS``) and the St. Louis Fed Financial Stress Index (``STLFSI4``, which superseded
STLFSI2). One ``series/observations`` request per series; FRED's missing values (``"."``,
e.g. holidays) are dropped. fredapi asks for FRED's XML format and builds its URLs from the
instance's ``root_url`` (pointed at a fake in tests); the request itself goes through our
session (``__fetch_data`` is overridden) for a timeout, the HTTP status and retries, as
fredapi's ``urlopen`` has neither timeout nor status in its errors.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import date

import polars as pl
from fredapi import Fred

from finance_dag.core.http import (
    RateLimiter,
    RequestFailed,
    RetryPolicy,
    RoutedSession,
    TransientError,
    VendorClient,
    check_response,
    shared_limiter,
)
from finance_dag.market_data.bars import VendorError
from finance_dag.sim.macro import MACRO_SCHEMA, MACRO_SERIES

NAME = "fred"
LIMITS = ((120, 60.0),)  # FRED allows 120 requests per minute per key


class _RoutedFred(Fred):
    """fredapi's client with our transport (timeout, status check) and a per-instance root URL."""

    def __init__(self, api_key: str, root_url: str | None, session: RoutedSession) -> None:
        super().__init__(api_key=api_key)
        if root_url:
            self.root_url = root_url
        self._transport = session

    def _Fred__fetch_data(self, url: str) -> ET.Element:  # overrides fredapi's private fetch
        response = self._transport.get(f"{url}&api_key={self.api_key}")
        check_response(response)
        try:
            root = ET.fromstring(response.content)
        except ET.ParseError as exc:
            raise TransientError(f"malformed XML: {exc}", 200) from None
        if root.tag != "observations":  # the only document this adapter asks for
            raise TransientError(f"unexpected XML document <{root.tag}>", 200)
        return root


class FredMacro:
    """Macro series from FRED as one ``(date, series_id, value)`` frame."""

    name = NAME

    def __init__(
        self,
        api_key: str,
        *,
        series_ids: Sequence[str] = MACRO_SERIES,
        base_url: str | None = None,
        policy: RetryPolicy | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        policy = policy or RetryPolicy()
        self.series_ids = tuple(series_ids)
        self.fred = _RoutedFred(api_key, base_url, RoutedSession(timeout=policy.timeout))
        self.http = VendorClient(NAME, limiter or shared_limiter(NAME, LIMITS), policy, (api_key,))

    def fetch(self, start: date, end: date) -> pl.DataFrame:
        """Every configured series in [start, end]; raises ``VendorError`` naming each failed series."""
        frames, errors = [], []
        for sid in self.series_ids:
            what = f"GET series/observations {sid} {start.isoformat()}..{end.isoformat()}"
            try:
                series = self.http.call(
                    what, lambda s=sid: self.fred.get_series(s, observation_start=start, observation_end=end)
                )
            except RequestFailed as error:
                errors.append(str(error))
                continue
            frames.append(
                pl.DataFrame(
                    {
                        "date": series.index.to_numpy(dtype="datetime64[D]"),
                        "series_id": sid,
                        "value": series.to_numpy(dtype=float),
                    }
                ).drop_nans()
            )
        if errors:
            raise VendorError("; ".join(errors))
        return pl.concat(frames).cast(MACRO_SCHEMA) if frames else pl.DataFrame(schema=MACRO_SCHEMA)

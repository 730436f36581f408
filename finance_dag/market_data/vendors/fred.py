"""FRED macro series through ``fredapi.Fred.get_series``.

Series ids are configurable; the defaults are ICE BofA US High Yield OAS (``BAMLH0A0HYM2``),
VIX (``VIXCLS``) and the St. Louis Fed Financial Stress Index (``STLFSI4``, which superseded
STLFSI2). One ``series/observations`` request per series; FRED's missing values (``"."``,
e.g. holidays) are dropped. fredapi asks for FRED's XML format and builds its URLs from the
instance's ``root_url`` (pointed at a fake in tests); the request itself goes through our
session (``__fetch_data`` is overridden) for a timeout, the HTTP status and retries, as
fredapi's ``urlopen`` has neither timeout nor status in its errors.

A series can be shorter than the range asked: FRED keeps the ICE BofA series (HY OAS
``BAMLH0A0HYM2``) only for a rolling 3 years. ``fetch_report`` therefore returns, next to the
frame, each series' served window (first and last observation) and a warning for every series
that starts more than ``COVERAGE_SLACK`` after the requested start or ends more than that before
the requested end, so a truncated series never looks complete. ``fetch`` returns the frame
alone (and logs those warnings).
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

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
COVERAGE_SLACK = timedelta(days=7)  # a series served this much short of either end is flagged
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MacroFetch:
    """What ``FredMacro.fetch_report`` got: the frame, per series the served window
    ``(first, last)`` observation date (``None`` when it has none), the requested window and one
    warning per series served short of it."""

    frame: pl.DataFrame
    requested: tuple[date, date]
    served: dict[str, tuple[date, date] | None] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.warnings


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
        """Every configured series in [start, end]; raises ``VendorError`` naming each failed series.

        Series served short of the range are logged as warnings; ``fetch_report`` returns them.
        """
        report = self.fetch_report(start, end)
        for warning in report.warnings:
            log.warning(warning)
        return report.frame

    def fetch_report(self, start: date, end: date) -> MacroFetch:
        """``fetch`` plus each series' served window and a warning per series served short."""
        frames, errors = [], []
        served: dict[str, tuple[date, date] | None] = {}
        warnings: list[str] = []
        for sid in self.series_ids:
            what = f"GET series/observations {sid} {start.isoformat()}..{end.isoformat()}"
            try:
                series = self.http.call(
                    what, lambda s=sid: self.fred.get_series(s, observation_start=start, observation_end=end)
                )
            except RequestFailed as error:
                errors.append(str(error))
                continue
            frame = pl.DataFrame(
                {
                    "date": series.index.to_numpy(dtype="datetime64[D]"),
                    "series_id": sid,
                    "value": series.to_numpy(dtype=float),
                },
                schema={"date": pl.Date, "series_id": pl.String, "value": pl.Float64},
            ).drop_nans()
            frames.append(frame)
            window = (frame["date"].min(), frame["date"].max()) if frame.height else None
            served[sid] = window
            warning = _coverage_warning(sid, (start, end), window)
            if warning:
                warnings.append(warning)
        if errors:
            raise VendorError("; ".join(errors))
        out = pl.concat(frames).cast(MACRO_SCHEMA) if frames else pl.DataFrame(schema=MACRO_SCHEMA)
        return MacroFetch(out, (start, end), served, warnings)


def _coverage_warning(sid: str, requested: tuple[date, date], window: tuple[date, date] | None) -> str | None:
    """A warning naming ``sid`` and both windows when it was served short by more than the slack."""
    start, end = requested
    asked = f"requested {start.isoformat()}..{end.isoformat()}"
    if window is None:
        return f"{NAME}: {sid} has no observations in the {asked}"
    first, last = window
    short = []
    if first - start > COVERAGE_SLACK:
        short.append(f"starts {(first - start).days} days late")
    if end - last > COVERAGE_SLACK:
        short.append(f"ends {(end - last).days} days early")
    if not short:
        return None
    hint = " (FRED keeps ICE BofA series only for a rolling 3 years)" if sid.startswith("BAML") else ""
    return (
        f"{NAME}: {sid} served {first.isoformat()}..{last.isoformat()}, {asked}: {' and '.join(short)}{hint}"
    )

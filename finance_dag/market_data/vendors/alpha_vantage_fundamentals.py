"""Alpha Vantage fundamentals through ``alpha_vantage.fundamentaldata.FundamentalData.get_company_overview``.

One ``OVERVIEW`` request per symbol (the answer is one flat JSON object whose values are all
strings), paced by the Alpha Vantage limiter shared with the intraday adapter and sent through
the same transport and request rules (``alpha_vantage.AlphaVantageAdapter``): of the HTTP 200
``Note``/``Information`` bodies only the per-minute burst is waited out and retried; the daily
quota or a premium refusal fails that symbol and every later one of the fetch ("not sent"). A
symbol that fails never fails the others. Successful rows are cached per adapter instance: an
overview changes at most once a quarter and the free plan allows 25 requests a day.

How the answer is read (``overview_row``), each rule checked at this boundary:

- An unknown symbol gets ``{}`` (so does an ETF: OVERVIEW covers companies, not funds): a
  failure for that symbol, not retried.
- A missing figure arrives as the string ``"None"`` (sometimes ``"-"``); a non-numeric or
  non-positive ``SharesOutstanding``, ``BookValue`` or ``MarketCapitalization``, a missing
  ``Sector`` or ``Country``, an unreadable ``LatestQuarter`` or a ``Currency`` other than USD
  fails the symbol, naming every bad field. Negative book value (a company whose buybacks
  exceed its equity) is such a failure too: the value factor then has no book-to-price for it.
- ``book_value`` is the TOTAL book value in dollars: ``BookValue`` (per share, latest quarter)
  times ``SharesOutstanding``. ``market_cap`` is ``MarketCapitalization`` as AV states it.
- ``sector``: AV's ``Sector`` is the SEC EDGAR industry office of the company's SIC code, in
  capitals (TECHNOLOGY, LIFE SCIENCES, MANUFACTURING, TRADE & SERVICES, FINANCE, ENERGY &
  TRANSPORTATION, REAL ESTATE & CONSTRUCTION); older answers used Morningstar-style names
  (Healthcare, Consumer Cyclical ...). ``SECTOR_TO_GICS`` maps both to the nearest GICS sector.
  The SEC offices are coarser than GICS, so some companies land in a neighbouring sector
  (Alphabet's TECHNOLOGY is Information Technology, not Communication Services; a grocer's
  TRADE & SERVICES is Consumer Discretionary, not Consumer Staples). A label the map does not
  know is kept as AV sends it, so a new label shows up as its own sector instead of failing.
- ``country`` is AV's ``Country`` as sent ("USA"); ``as_of`` is ``LatestQuarter`` as a date.

The overview is today's snapshot, not a history: right for today's exposures, but using it
for past dates carries look-ahead (the caller records that).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date
from typing import Any

from alpha_vantage.fundamentaldata import FundamentalData

from finance_dag.core.http import PermanentError, RateLimiter, RequestFailed, RetryPolicy, TransientError
from finance_dag.market_data.fundamentals import GICS_SECTORS, FundamentalsFetch, fundamentals_frame
from finance_dag.market_data.vendors.alpha_vantage import (
    NAME,
    PREMIUM_75,
    AlphaVantageAdapter,
    AlphaVantageTransport,
)

_MISSING = frozenset({"", "None", "-"})  # how AV writes a figure it does not have

SECTOR_TO_GICS: dict[str, str] = {
    **{sector.upper(): sector for sector in GICS_SECTORS},
    # SEC EDGAR industry offices (AV's current labels), each to its nearest GICS sector
    "TECHNOLOGY": "Information Technology",
    "LIFE SCIENCES": "Health Care",
    "FINANCE": "Financials",
    "REAL ESTATE & CONSTRUCTION": "Real Estate",
    "ENERGY & TRANSPORTATION": "Energy",
    "MANUFACTURING": "Industrials",
    "INDUSTRIAL APPLICATIONS AND SERVICES": "Industrials",
    "TRADE & SERVICES": "Consumer Discretionary",
    # Morningstar-style labels of older answers, where they differ from GICS
    "HEALTHCARE": "Health Care",
    "FINANCIAL SERVICES": "Financials",
    "CONSUMER CYCLICAL": "Consumer Discretionary",
    "CONSUMER DEFENSIVE": "Consumer Staples",
    "BASIC MATERIALS": "Materials",
}


class InvalidOverview(ValueError):
    """An overview that arrived but cannot be used; the message names the symbol and every bad field."""


class _FundamentalData(AlphaVantageTransport, FundamentalData):
    """``OVERVIEW`` answers: ``{}`` means AV has no overview for the symbol."""

    def check_data(self, body: dict[str, Any]) -> None:
        if not body:
            raise PermanentError(
                "no company overview: Alpha Vantage answers {} for a symbol it does not know "
                "(OVERVIEW covers companies, not ETFs)",
                200,
            )
        if "Symbol" not in body:
            raise TransientError(f"malformed body: keys {sorted(body)[:5]}", 200)


def gics_sector(label: str) -> str:
    """The GICS sector nearest to AV's ``Sector`` label (any case); an unknown label unchanged."""
    return SECTOR_TO_GICS.get(label.strip().upper(), label.strip())


def overview_row(symbol: str, body: dict[str, Any]) -> dict[str, Any]:
    """A ``FUNDAMENTALS_SCHEMA`` row from an OVERVIEW body; ``InvalidOverview`` naming every bad field."""
    problems: list[str] = []

    def text(field: str) -> str | None:
        value = str(body.get(field, "None")).strip()
        if value in _MISSING:
            problems.append(f"{field} missing ({value!r})")
            return None
        return value

    def positive(field: str) -> float | None:
        value = text(field)
        if value is None:
            return None
        try:
            number = float(value)
        except ValueError:
            problems.append(f"{field} {value!r} is not a number")
            return None
        if not math.isfinite(number) or number <= 0:
            problems.append(f"{field} {value!r} is not positive")
            return None
        return number

    shares, per_share, market_cap = (
        positive(f) for f in ("SharesOutstanding", "BookValue", "MarketCapitalization")
    )
    sector, country, quarter = (text(f) for f in ("Sector", "Country", "LatestQuarter"))
    as_of = None
    if quarter is not None:
        try:
            as_of = date.fromisoformat(quarter)
        except ValueError:
            problems.append(f"LatestQuarter {quarter!r} is not a date")
    currency = str(body.get("Currency", "USD")).strip()
    if currency != "USD":
        problems.append(f"Currency {currency!r} is not USD (book value and market cap would not be dollars)")
    if problems:
        raise InvalidOverview(f"{NAME}: OVERVIEW for {symbol} unusable: {'; '.join(problems)}")
    assert shares and per_share and market_cap and sector and country and as_of  # each None added a problem
    return {
        "symbol": symbol,
        "book_value": per_share * shares,
        "shares_outstanding": shares,
        "market_cap": market_cap,
        "sector": gics_sector(sector),
        "country": country,
        "as_of": as_of,
        "source": NAME,
    }


class AlphaVantageFundamentals(AlphaVantageAdapter):
    """``FundamentalsSource`` for Alpha Vantage: one OVERVIEW request per symbol, cached per instance."""

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str | None = None,
        limits: tuple[tuple[int, float], ...] = PREMIUM_75,
        throttle_wait: float = 60.0,
        policy: RetryPolicy | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        super().__init__(
            api_key,
            _FundamentalData,
            base_url=base_url,
            limits=limits,
            throttle_wait=throttle_wait,
            policy=policy,
            limiter=limiter,
        )
        self._rows: dict[str, dict[str, Any]] = {}

    def fetch_fundamentals(self, symbols: Sequence[str]) -> FundamentalsFetch:
        rows: list[dict[str, Any]] = []
        failures: dict[str, str] = {}
        self.new_fetch()
        for symbol in dict.fromkeys(symbols):
            try:
                rows.append(self._row(symbol))
            except (RequestFailed, InvalidOverview) as error:
                failures[symbol] = str(error)
        return FundamentalsFetch(fundamentals_frame(rows), failures)

    def _row(self, symbol: str) -> dict[str, Any]:
        if symbol not in self._rows:
            body, _ = self.request(f"OVERVIEW for {symbol}", lambda: self.client.get_company_overview(symbol))
            self._rows[symbol] = overview_row(symbol, body)
        return self._rows[symbol]

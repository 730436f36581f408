"""Approximate real closing prices around 2024-11-29, used only to anchor the simulated market.

The figures are rounded from memory of late-November-2024 closes (split-adjusted as quoted at
the time) and are NOT market data: they only make the simulated demo window look plausible.
Every path through them is synthetic. Symbols missing here get a random level instead.
"""

from __future__ import annotations

from datetime import date

LEVELS_DATE = date(2024, 11, 29)

APPROX_CLOSES: dict[str, float] = {
    # demo universe
    "SPY": 602, "QQQ": 509, "IWM": 242, "TLT": 94, "NVDA": 138, "TSLA": 346, "AAPL": 237,
    "MSFT": 423, "AMZN": 208, "GOOGL": 169, "META": 574, "TQQQ": 79, "SOXL": 30, "XLK": 236,
    "XLF": 51, "XLE": 96, "BAC": 47, "PFE": 26, "FXI": 31, "TMF": 50,
    # leveraged and inverse
    "SQQQ": 7.3, "SOXS": 21, "SPXL": 181, "SPXS": 5.6, "TNA": 50, "TZA": 11, "FAS": 170,
    "FAZ": 4.2, "UPRO": 95, "TMV": 34, "LABU": 110, "LABD": 7, "UVXY": 28,
    # broad indices
    "DIA": 449, "VTI": 297, "VOO": 554, "MDY": 604, "RSP": 187,
    # SPDR sectors and industry ETFs
    "XLV": 146, "XLI": 143, "XLY": 221, "XLP": 83, "XLU": 81, "XLB": 94, "XLRE": 45,
    "XLC": 98, "SMH": 246, "SOXX": 222, "XBI": 96, "KRE": 66,
    # international
    "KWEB": 31, "EEM": 43, "EFA": 79, "EWJ": 70, "EWZ": 25, "EWG": 33, "EWU": 35,
    "INDA": 54, "MCHI": 49, "VEA": 50, "VWO": 45,
    # bonds
    "IEF": 95, "SHY": 82, "HYG": 80, "LQD": 110, "AGG": 99, "BND": 73, "TIP": 109,
    # commodities
    "GLD": 245, "SLV": 28, "USO": 72, "UNG": 15, "GDX": 37, "GDXJ": 46,
    # single stocks
    "JPM": 250, "WFC": 76, "GS": 609, "C": 71, "XOM": 118, "CVX": 162, "JNJ": 155,
    "UNH": 610, "MRK": 102, "ABBV": 183, "KO": 64, "PEP": 163, "WMT": 92, "COST": 972,
    "HD": 429, "DIS": 117, "NFLX": 887, "AMD": 138, "INTC": 24, "CRM": 330, "ORCL": 185,
    "ADBE": 516,
}  # fmt: skip

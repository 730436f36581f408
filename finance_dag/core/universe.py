"""Symbol universes: the demo list, seed 003's full list, or any list given in a setting.

``FINANCE_DAG_UNIVERSE`` takes ``demo`` (default), ``full``, ``lending`` (1,000 names), a comma-separated list
(``AAPL,MSFT``) or the path of a text file with one symbol per line (``#`` comments allowed),
so adding a symbol is a settings change, never a code change.
"""

from __future__ import annotations

import re
from pathlib import Path

from finance_dag.core.settings import SettingError

DEMO_SYMBOLS: tuple[str, ...] = (
    "SPY", "QQQ", "IWM", "TLT", "NVDA", "TSLA", "AAPL", "MSFT", "AMZN", "GOOGL",
    "META", "TQQQ", "SOXL", "XLK", "XLF", "XLE", "BAC", "PFE", "FXI", "TMF",
)  # fmt: skip

# Seed 003's universe: indices, mega caps, leveraged pairs, every SPDR sector, international,
# bond and commodity ETFs.
FULL_SYMBOLS: tuple[str, ...] = DEMO_SYMBOLS + (
    "SQQQ", "SOXS", "SPXL", "SPXS", "TNA", "TZA", "FAS", "FAZ", "UPRO", "TMV",
    "LABU", "LABD", "UVXY", "DIA", "VTI", "VOO", "MDY", "RSP", "XLV", "XLI",
    "XLY", "XLP", "XLU", "XLB", "XLRE", "XLC", "SMH", "SOXX", "XBI", "KRE",
    "KWEB", "EEM", "EFA", "EWJ", "EWZ", "EWG", "EWU", "INDA", "MCHI", "VEA",
    "VWO", "IEF", "SHY", "HYG", "LQD", "AGG", "BND", "TIP", "GLD", "SLV",
    "USO", "UNG", "GDX", "GDXJ", "JPM", "WFC", "GS", "C", "XOM", "CVX",
    "JNJ", "UNH", "MRK", "ABBV", "KO", "PEP", "WMT", "COST", "HD", "DIS",
    "NFLX", "AMD", "INTC", "CRM", "ORCL", "ADBE",
)  # fmt: skip

# The single stocks of the full list; every other name of it is an exchange-traded fund.
STOCKS: frozenset[str] = frozenset(
    (
        "NVDA", "TSLA", "AAPL", "MSFT", "AMZN", "GOOGL", "META", "BAC", "PFE", "JPM", "WFC", "GS",
        "C", "XOM", "CVX", "JNJ", "UNH", "MRK", "ABBV", "KO", "PEP", "WMT", "COST", "HD", "DIS",
        "NFLX", "AMD", "INTC", "CRM", "ORCL", "ADBE",
    )
)  # fmt: skip
ETF_SYMBOLS: tuple[str, ...] = tuple(s for s in FULL_SYMBOLS if s not in STOCKS)

# The securities-lending universe: the full list, then synthetic names LND0001... to 1,000.
LENDING_SYMBOLS: tuple[str, ...] = FULL_SYMBOLS + tuple(
    f"LND{i:04d}" for i in range(1, 1000 - len(FULL_SYMBOLS) + 1)
)

_SYMBOL = re.compile(r"^[A-Z][A-Z0-9.\-]{0,9}$")


def resolve_universe(setting: str, variable: str = "FINANCE_DAG_UNIVERSE") -> tuple[str, ...]:
    """Turn a universe setting (``variable`` names it in errors) into an ordered, de-duplicated
    symbol tuple."""
    setting = setting.strip()
    if setting in ("", "demo"):
        return DEMO_SYMBOLS
    if setting == "full":
        return FULL_SYMBOLS
    if setting == "lending":
        return LENDING_SYMBOLS
    if "," not in setting and (setting.endswith(".txt") or "/" in setting):
        try:
            lines = Path(setting).read_text().splitlines()
        except OSError as exc:
            raise SettingError(f"{variable} file {setting!r} cannot be read: {exc}") from exc
        raw = [line.split("#", 1)[0].strip() for line in lines]
    else:
        raw = [part.strip() for part in setting.split(",")]
    symbols = [s.upper() for s in raw if s]
    bad = [s for s in symbols if not _SYMBOL.match(s)]
    if bad:
        raise SettingError(f"{variable} has invalid symbols: {', '.join(bad)}")
    if not symbols:
        raise SettingError(f"{variable}={setting!r} names no symbols")
    return tuple(dict.fromkeys(symbols))

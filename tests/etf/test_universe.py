"""The ETF universe: the curated category file validated with file, line and column, and the
directory's ETFs joined with it, leveraged and inverse products flagged."""

import polars as pl
import pytest

from finance_dag.etf.directory import symbol_directory
from finance_dag.etf.universe import CategoryError, build_universe, parse_categories

CATEGORIES = """symbol,category,asset_class,region,expense_ratio
SPY,US Large Cap Blend,Equity,US,0.0009
SHV,US Treasury Short,Fixed Income,US,0.0015
JPST,Ultrashort Bond,Fixed Income,US,
FNGX,Trading - Leveraged Equity,Equity,US,0.0095
DOGX,Trading - Inverse Equity,Equity,US,0.0095
GONE,US Small Cap,Equity,US,0.0020
"""

NASDAQ_LISTED = """Symbol|Security Name|Market Category|Test Issue|Financial Status|Round Lot Size|ETF|NextShares
AAPL|Apple Inc. - Common Stock|Q|N|N|100|N|N
QQQ|Invesco QQQ Trust, Series 1|G|N|N|100|Y|N
TQQQ|ProShares UltraPro QQQ|G|N|N|100|Y|N
QLD|ProShares Ultra QQQ|G|N|N|100|Y|N
NVDS|AXS 1.25X NVDA Bear Daily ETF|G|N|N|100|Y|N
SHV|iShares Short Treasury Bond ETF|G|N|N|100|Y|N
ZXZZT|NASDAQ TEST ETF|G|Y|N|100|Y|N
File Creation Time: 1129202422:01||||||
"""
OTHER_LISTED = """ACT Symbol|Security Name|Exchange|CQS Symbol|ETF|Round Lot Size|Test Issue|NASDAQ Symbol
SPY|SPDR S&P 500 ETF Trust|P|SPY|Y|100|N|SPY
SPXL|Direxion Daily S&P 500 Bull 3X Shares|P|SPXL|Y|100|N|SPXL
TMV|Direxion Daily 20+ Year Treasury Bear 3X Shares|P|TMV|Y|100|N|TMV
TBT|ProShares UltraShort 20+ Year Treasury|P|TBT|Y|100|N|TBT
SPDN|Direxion Daily S&P 500 Bear 1X Shares|P|SPDN|Y|100|N|SPDN
SHRT|Tradr Daily S&P 500 -1X ETF|Z|SHRT|Y|100|N|SHRT
JPST|JPMorgan Ultra-Short Income ETF|Z|JPST|Y|100|N|JPST
GSY|Invesco Ultra Short Duration ETF|P|GSY|Y|100|N|GSY
ICSH|iShares Ultra Short Duration Bond Active ETF|Z|ICSH|Y|100|N|ICSH
SCHO|Schwab Short-Term U.S. Treasury ETF|P|SCHO|Y|100|N|SCHO
VGSH|Vanguard Short-Term Treasury Index Fund ETF|P|VGSH|Y|100|N|VGSH
FNGX|MicroSectors FANG Index ETN Fund|P|FNGX|Y|100|N|FNGX
DOGX|Dog Days Fund|P|DOGX|Y|100|N|DOGX
XOM|Exxon Mobil Corporation Common Stock|N|XOM|N|100|N|XOM
ZZZT|NYSE TEST ETF|N|ZZZT|Y|100|Y|ZZZT
File Creation Time: 1129202422:01|||||||
"""


def directory() -> pl.DataFrame:
    return symbol_directory({"nasdaqlisted.txt": NASDAQ_LISTED, "otherlisted.txt": OTHER_LISTED})


def test_the_category_file_parses_with_a_blank_expense_ratio_as_none():
    frame = parse_categories(CATEGORIES, "categories.csv")
    assert frame.columns == ["symbol", "category", "asset_class", "region", "expense_ratio"]
    assert frame.height == 6
    assert frame.row(0) == ("SPY", "US Large Cap Blend", "Equity", "US", 0.0009)
    assert frame.filter(pl.col("symbol") == "JPST")["expense_ratio"].to_list() == [None]
    # columns may come in any order and blank lines are skipped
    reordered = (
        "region,symbol,expense_ratio,asset_class,category\n\nUS,SPY,0.0009,Equity,US Large Cap Blend\n"
    )
    assert parse_categories(reordered, "c.csv").row(0) == (
        "SPY",
        "US Large Cap Blend",
        "Equity",
        "US",
        0.0009,
    )


def _replace_line(line: int, text: str) -> str:
    lines = CATEGORIES.splitlines()
    lines[line - 1] = text
    return "\n".join(lines) + "\n"


@pytest.mark.chaos("bad universe file", faults="malformed-categories")
@pytest.mark.parametrize(
    ("text", "where", "column"),
    [
        (CATEGORIES.replace(",region,", ","), "categories.csv:1", "region"),
        (_replace_line(3, "SHV,US Treasury Short,Bonds,US,0.0015"), "categories.csv:3", "asset_class"),
        (_replace_line(4, "SPY,Ultrashort Bond,Fixed Income,US,"), "categories.csv:4", "symbol"),
        (_replace_line(3, "SHV,US Treasury Short,Fixed Income,US,0.15"), "categories.csv:3", "expense_ratio"),
        (_replace_line(3, "SHV,US Treasury Short,Fixed Income,US,15"), "categories.csv:3", "expense_ratio"),
        (_replace_line(3, "SHV,US Treasury Short,Fixed Income,US,-0.001"), "categories.csv:3", "expense_ratio"),
        (_replace_line(3, "SHV,US Treasury Short,Fixed Income,US,15bps"), "categories.csv:3", "expense_ratio"),
        (_replace_line(3, "SHV,US Treasury Short,Fixed Income,US,nan"), "categories.csv:3", "expense_ratio"),
        (_replace_line(5, ",Trading - Leveraged Equity,Equity,US,0.0095"), "categories.csv:5", "symbol"),
        (_replace_line(5, "FNGX,,Equity,US,0.0095"), "categories.csv:5", "category"),
    ],
    ids=["missing-column", "asset-class", "duplicate", "ratio-15pct", "ratio-in-bps", "ratio-negative",
         "ratio-not-a-number", "ratio-nan", "empty-symbol", "empty-category"],
)  # fmt: skip
def test_a_malformed_category_file_names_the_file_line_and_column(text, where, column):
    with pytest.raises(CategoryError) as raised:
        parse_categories(text, "categories.csv")
    message = str(raised.value)
    assert message.startswith(f"{where}: "), message
    assert column in message, message


@pytest.mark.chaos("bad universe file", faults="duplicate-symbol")
def test_a_duplicate_symbol_names_both_lines_and_a_blank_line_still_counts():
    text = CATEGORIES.replace("SHV,", "\nSHV,", 1).replace("GONE,", "SHV,")
    with pytest.raises(
        CategoryError, match=r"^categories.csv:8: column 'symbol' repeats 'SHV' \(first on line 4\)"
    ):
        parse_categories(text, "categories.csv")


def test_the_expense_ratio_bounds_0_and_5_percent_are_accepted():
    text = (
        _replace_line(2, "SPY,US Large Cap Blend,Equity,US,0")
        + "XYZ,Broad Commodities,Commodity,Global,0.05\n"
    )
    ratios = dict(parse_categories(text, "c.csv").select("symbol", "expense_ratio").iter_rows())
    assert ratios["SPY"] == 0.0 and ratios["XYZ"] == 0.05


@pytest.mark.chaos("bad universe file", faults="empty-file")
def test_an_empty_category_file_is_refused_with_its_name():
    with pytest.raises(CategoryError, match=r"^categories.csv: empty file"):
        parse_categories("", "categories.csv")


def test_the_universe_keeps_listed_etfs_without_test_issues_and_joins_categories():
    universe = build_universe(directory(), parse_categories(CATEGORIES, "categories.csv"))
    etfs = universe.etfs
    assert etfs["symbol"].to_list() == sorted(etfs["symbol"].to_list())
    assert set(etfs["symbol"]) == {
        "QQQ", "TQQQ", "QLD", "NVDS", "SHV", "SPY", "SPXL", "TMV", "TBT", "SPDN", "SHRT", "JPST",
        "GSY", "ICSH", "SCHO", "VGSH", "FNGX", "DOGX",
    }  # fmt: skip
    assert etfs["symbol"].is_unique().all()
    spy = etfs.filter(pl.col("symbol") == "SPY").row(0, named=True)
    assert spy == {"symbol": "SPY", "name": "SPDR S&P 500 ETF Trust", "exchange": "P", "categorised": True,
                   "category": "US Large Cap Blend", "asset_class": "Equity", "region": "US",
                   "expense_ratio": 0.0009, "leveraged": False}  # fmt: skip
    qqq = etfs.filter(pl.col("symbol") == "QQQ").row(0, named=True)
    assert qqq["categorised"] is False and qqq["category"] is None and qqq["expense_ratio"] is None
    assert universe.unlisted == ("GONE",)


def test_leveraged_and_inverse_products_are_flagged_by_name_or_category():
    etfs = build_universe(directory(), parse_categories(CATEGORIES, "categories.csv")).etfs
    flagged = set(etfs.filter(pl.col("leveraged"))["symbol"])
    by_name = {"TQQQ", "QLD", "NVDS", "SPXL", "TMV", "TBT", "SPDN", "SHRT"}
    by_category = {"FNGX", "DOGX"}  # innocuous names, "Trading - Leveraged/Inverse Equity" categories
    assert flagged == by_name | by_category


def test_short_duration_bond_funds_are_not_mistaken_for_leveraged_products():
    etfs = build_universe(directory(), parse_categories(CATEGORIES, "categories.csv")).etfs
    plain = etfs.filter(pl.col("symbol").is_in(["SHV", "JPST", "GSY", "ICSH", "SCHO", "VGSH", "SPY", "QQQ"]))
    assert plain.height == 8
    assert not plain["leveraged"].any(), plain.filter(pl.col("leveraged"))["name"].to_list()


def test_curated_symbols_the_directory_does_not_list_are_reported_not_added():
    categories = parse_categories(CATEGORIES + "OLDX,US Dividend,Equity,US,0.0030\n", "categories.csv")
    universe = build_universe(directory(), categories)
    assert universe.unlisted == ("GONE", "OLDX")
    assert not universe.etfs["symbol"].is_in(["GONE", "OLDX"]).any()
    # a curated stock or test issue is not an ETF of the universe either
    with_stock = parse_categories(CATEGORIES + "XOM,US Sector - Energy,Equity,US,\n", "categories.csv")
    assert "XOM" in build_universe(directory(), with_stock).unlisted

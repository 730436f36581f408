"""NASDAQ Trader symbol-directory files: parsed as published, and every malformation named by
file, line and column."""

from datetime import datetime

import pytest

from finance_dag.etf.directory import DirectoryError, parse_directory, symbol_directory

NASDAQ_LISTED = """Symbol|Security Name|Market Category|Test Issue|Financial Status|Round Lot Size|ETF|NextShares
AAPL|Apple Inc. - Common Stock|Q|N|N|100|N|N
QQQ|Invesco QQQ Trust, Series 1|G|N|N|100|Y|N
TQQQ|ProShares UltraPro QQQ|G|N|N|100|Y|N
ZXZZT|NASDAQ TEST STOCK|G|Y|N|100|N|N
File Creation Time: 1129202422:01||||||
"""
OTHER_LISTED = """ACT Symbol|Security Name|Exchange|CQS Symbol|ETF|Round Lot Size|Test Issue|NASDAQ Symbol
SPY|SPDR S&P 500 ETF Trust|P|SPY|Y|100|N|SPY
XOM|Exxon Mobil Corporation Common Stock|N|XOM|N|100|N|XOM
File Creation Time: 1129202422:01|||||||
"""


def test_both_files_parse_into_one_directory():
    nasdaq = parse_directory(NASDAQ_LISTED, "nasdaqlisted.txt")
    assert nasdaq.created == datetime(2024, 11, 29, 22, 1)
    assert nasdaq.securities.filter(nasdaq.securities["etf"])["symbol"].to_list() == ["QQQ", "TQQQ"]
    both = symbol_directory({"nasdaqlisted.txt": NASDAQ_LISTED, "otherlisted.txt": OTHER_LISTED})
    assert both["symbol"].to_list() == ["AAPL", "QQQ", "SPY", "TQQQ", "XOM", "ZXZZT"]
    spy = both.row(2, named=True)
    assert spy == {"symbol": "SPY", "name": "SPDR S&P 500 ETF Trust", "exchange": "P", "etf": True,
                   "test_issue": False, "source": "otherlisted.txt"}  # fmt: skip
    assert both.filter(both["test_issue"])["symbol"].to_list() == ["ZXZZT"]


@pytest.mark.chaos("bad universe file", faults="malformed-directory")
@pytest.mark.parametrize(
    ("text", "message"),
    [
        (NASDAQ_LISTED.replace("|NextShares", ""), "nasdaqlisted.txt:1: header is not nasdaqlisted"),
        (NASDAQ_LISTED.replace("|100|Y|N\nTQQQ", "|100|Y\nTQQQ"), "nasdaqlisted.txt:3: 7 fields, the header has 8"),
        (NASDAQ_LISTED.replace("G|N|N|100|Y|N\nTQQQ", "G|N|N|100|X|N\nTQQQ"),
         "nasdaqlisted.txt:3: column 'ETF' has 'X', expected one of 'N', 'Y'"),
        (NASDAQ_LISTED.replace("TQQQ|ProShares", "QQQ|ProShares"),
         "nasdaqlisted.txt:4: column 'Symbol' repeats 'QQQ' (first on line 3)"),
        (NASDAQ_LISTED.replace("File Creation Time: 1129202422:01||||||\n", ""), "nasdaqlisted.txt: no 'File Creation Time:"),
        (NASDAQ_LISTED.replace("1129202422:01", "2024-11-29"), "nasdaqlisted.txt:6: footer time '2024-11-29'"),
        ("", "nasdaqlisted.txt: empty file"),
    ],
)  # fmt: skip
def test_a_malformed_file_is_named_with_its_line_and_column(text, message):
    with pytest.raises(DirectoryError) as raised:
        parse_directory(text, "nasdaqlisted.txt")
    assert str(raised.value).startswith(message), str(raised.value)


@pytest.mark.chaos("bad universe file", faults="unknown-exchange symbol-in-both")
def test_an_unknown_exchange_code_and_a_symbol_in_both_files_are_refused():
    with pytest.raises(DirectoryError, match=r"otherlisted.txt:2: column 'Exchange' has 'Q'"):
        parse_directory(OTHER_LISTED.replace("|P|SPY|", "|Q|SPY|"), "otherlisted.txt")
    clash = OTHER_LISTED.replace(
        "SPY|SPDR S&P 500 ETF Trust|P|SPY|Y|100|N|SPY", "QQQ|Invesco QQQ|P|QQQ|Y|100|N|QQQ"
    )
    with pytest.raises(DirectoryError, match=r"'QQQ' is listed by nasdaqlisted.txt and otherlisted.txt"):
        symbol_directory({"nasdaqlisted.txt": NASDAQ_LISTED, "otherlisted.txt": clash})

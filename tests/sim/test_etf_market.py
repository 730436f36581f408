"""The simulated ETF market: directory files that parse like NASDAQ Trader's, ~5,000 ETFs, ~800
categorised, ~2 % leveraged, and raw daily prices whose total return is the planted path."""

import zlib
from datetime import date

import numpy as np
import polars as pl
import pytest

from finance_dag.core.universe import ETF_SYMBOLS
from finance_dag.etf.directory import parse_directory, symbol_directory
from finance_dag.etf.scores import quality_filter, total_return_panel
from finance_dag.etf.universe import build_universe, parse_categories
from finance_dag.sim.etf import ETF_START, ETF_UNTIL, N_ETFS, PRICE_ANCHOR, SimulatedEtfMarket

END = date(2024, 12, 31)


@pytest.fixture(scope="module")
def etf_market() -> SimulatedEtfMarket:
    return SimulatedEtfMarket(7)


@pytest.fixture(scope="module")
def universe(etf_market):
    directory = symbol_directory(etf_market.directory_files(PRICE_ANCHOR))
    return directory, build_universe(
        directory, parse_categories(etf_market.category_file(), "categories.csv")
    )


def test_the_directory_files_parse_and_list_about_5000_etfs_plus_stocks_and_test_issues(etf_market, universe):
    files = etf_market.directory_files(PRICE_ANCHOR)
    assert set(files) == {"nasdaqlisted.txt", "otherlisted.txt"}
    for name, text in files.items():
        assert parse_directory(text, name).created.date() == PRICE_ANCHOR
    directory, built = universe
    etfs = directory.filter(pl.col("etf") & ~pl.col("test_issue"))
    assert 4_300 <= etfs.height <= N_ETFS  # listed by late 2024; the rest list later
    assert (~directory["etf"]).sum() >= 2_000  # ordinary stocks are in the files too
    assert directory.filter(pl.col("test_issue"))["symbol"].to_list() == ["ZXZZT", "ZZZT"]
    assert set(directory["exchange"]) <= {"Q", "P", "Z", "N"}
    assert set(ETF_SYMBOLS) <= set(etfs["symbol"])
    assert built.etfs.height == etfs.height and "ZXZZT" not in set(built.etfs["symbol"])
    everything = symbol_directory(etf_market.directory_files(ETF_UNTIL))
    assert everything.filter(pl.col("etf") & ~pl.col("test_issue")).height == N_ETFS == 5_040


def test_about_800_etfs_are_categorised_a_fifth_without_expense_ratio_all_of_them_listed(
    etf_market, universe
):
    categories = parse_categories(etf_market.category_file(), "categories.csv")
    assert categories.height == 800
    assert 0.1 <= categories["expense_ratio"].null_count() / categories.height <= 0.3
    assert set(ETF_SYMBOLS) <= set(categories["symbol"])
    _, built = universe
    assert built.unlisted == ()
    assert built.etfs["categorised"].sum() == 800


def test_between_1_5_and_2_percent_are_leveraged_and_the_universe_flags_exactly_those(etf_market, universe):
    _, built = universe
    etfs = built.etfs
    flagged = set(etfs.filter(pl.col("leveraged"))["symbol"])
    planted = {s for s in etfs["symbol"] if etf_market.profile(s).leverage != 1.0}
    assert flagged == planted
    assert 0.015 <= len(flagged) / etfs.height <= 0.02
    assert {"TQQQ", "SQQQ", "SOXL", "UPRO"} <= flagged and not {"SPY", "QQQ", "SHY"} & flagged


def planted_growth(market: SimulatedEtfMarket, symbol: str) -> dict[date, float]:
    """The planted daily total return ``exp(factor returns · loadings + specific noise)`` per session
    (the market's construction: factor draws shared, the specific noise from the symbol's stream)."""
    p = market.profile(symbol)
    first = market.sessions.index(p.inception)
    noise = np.random.default_rng([market.seed, 45, zlib.crc32(symbol.encode())]).standard_normal(
        (len(market.sessions) - first, 3)
    )
    growth = np.exp(market.factor_returns[first:] @ p.loadings + p.specific_vol * noise[:, 0])
    return dict(zip(market.sessions[first:], growth, strict=True))


def observed_vs_planted(market: SimulatedEtfMarket, symbol: str) -> pl.DataFrame:
    """Each row's ``(close * split_ratio + dividend) / previous close`` beside the planted growth and
    the largest difference cent-rounded closes and 4-decimal dividends can make."""
    rows = market.daily_prices([symbol], ETF_START, END).with_columns(prev=pl.col("close").shift(1)).slice(1)
    growth = planted_growth(market, symbol)
    return rows.with_columns(
        observed=(pl.col("close") * pl.col("split_ratio") + pl.col("dividend")) / pl.col("prev"),
        planted=pl.col("date").replace_strict(growth, return_dtype=pl.Float64),
        rounding=(0.005 * pl.col("split_ratio") + 0.00005 + 0.0051 * 1.1) / pl.col("prev"),
    )


def clean_symbols(market: SimulatedEtfMarket) -> list[str]:
    """ETFs with data and no planted data problem (stale, gaps, bad print)."""
    return [
        s for s in market.symbols
        if (p := market.profile(s)).has_data and not (p.stale or p.gappy or p.jumpy) and p.inception < date(2023, 1, 1)
    ]  # fmt: skip


def test_the_total_return_across_a_split_is_the_planted_path(etf_market):
    splitting = []
    for symbol in clean_symbols(etf_market):
        rows = etf_market.daily_prices([symbol], ETF_START, END)
        if (rows["split_ratio"] != 1.0).any():
            splitting.append(symbol)
        if len(splitting) == 3:
            break
    assert len(splitting) == 3
    for symbol in splitting:
        frame = observed_vs_planted(etf_market, symbol)
        assert (abs(frame["observed"] - frame["planted"]) <= frame["rounding"]).all(), symbol
        day = frame.filter(pl.col("split_ratio") != 1.0).row(0, named=True)
        assert day["split_ratio"] in (2.0, 3.0)
        assert day["close"] < day["prev"] / 1.5  # the raw close drops on the split
        assert abs(day["close"] / day["prev"] - day["planted"]) > 0.3  # ignoring the split would be a jump


def test_the_total_return_on_a_dividend_day_is_the_planted_path(etf_market):
    symbol = next(s for s in clean_symbols(etf_market) if etf_market.profile(s).dividends_per_year == 12)
    frame = observed_vs_planted(etf_market, symbol)
    assert (abs(frame["observed"] - frame["planted"]) <= frame["rounding"]).all()
    paying = frame.filter(pl.col("dividend") > 0)
    assert paying.height >= 12 * 2  # monthly, for more than two years
    without = (paying["close"] * paying["split_ratio"]) / paying["prev"]
    assert (abs(without - paying["planted"]) > paying["rounding"]).all()  # the dividend is not noise
    # the same through total_return_panel: its daily ratios are the planted growth
    index = total_return_panel(etf_market.daily_prices([symbol], ETF_START, END)).prices[:, 0]
    np.testing.assert_allclose(index[1:] / index[:-1], frame["planted"].to_numpy(), rtol=2e-3)


def test_prices_do_not_depend_on_the_batch_they_are_asked_in(etf_market):
    symbols = clean_symbols(etf_market)[:3]
    together = etf_market.daily_prices(symbols, date(2024, 1, 2), date(2024, 3, 28))
    alone = SimulatedEtfMarket(7).daily_prices([symbols[1]], date(2024, 1, 2), date(2024, 3, 28))
    assert together.filter(pl.col("symbol") == symbols[1]).equals(alone)
    assert set(together["symbol"]) == set(symbols) and alone.height == 61


def test_planted_data_problems_are_caught_by_the_quality_filter(etf_market):
    """Stale (thin), gappy and bad-print ETFs get the matching reason; clean ones pass."""
    old = [s for s in etf_market.symbols if etf_market.profile(s).inception < date(2022, 6, 1)]

    def first(flag: str) -> list[str]:
        return [s for s in old if (p := etf_market.profile(s)).has_data and getattr(p, flag)][:3]

    stale, gappy = first("stale"), first("gappy")
    clean = [s for s in clean_symbols(etf_market) if s in set(old)][:3]
    rows = etf_market.daily_prices(stale + gappy + clean, date(2023, 1, 3), END)
    panel = total_return_panel(rows)
    reasons = dict(zip(panel.symbols, quality_filter(panel.prices, panel.dates), strict=True))
    assert all("stale:" in (reasons[s] or "") for s in stale), {s: reasons[s] for s in stale}
    assert all("gaps:" in (reasons[s] or "") for s in gappy), {s: reasons[s] for s in gappy}
    assert [reasons[s] for s in clean] == [None] * 3
    jumpy = next(
        s for s in old if (p := etf_market.profile(s)).has_data and p.jumpy and not (p.stale or p.gappy)
    )
    history = etf_market.daily_prices([jumpy], ETF_START, ETF_UNTIL)
    bad = history.filter((pl.col("close") / pl.col("close").shift(1)) > 1.6)["date"]
    assert bad.len() == 1  # the bad print, reverting the next session
    around = total_return_panel(history.filter(pl.col("date") <= bad[0]).tail(300))
    assert quality_filter(around.prices, around.dates)[0].startswith("jumps: +")
    assert str(bad[0]) in quality_filter(around.prices, around.dates)[0]

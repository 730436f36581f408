"""Extended lending inputs end to end: the simulated defaults, file drops that are missing or bad
(null factors with the reason, never 0), FRED and Yahoo through their SDKs against loopback
fakes, and a SKEW history file."""

from datetime import UTC, date, datetime

import dagster as dg
import polars as pl
import pytest

from finance_dag.core import calendar
from finance_dag.definitions import build_definitions
from finance_dag.defs.lending.assets import market_inputs
from finance_dag.defs.lending.resources import InboxResource, MacroSeriesResource, SkewResource
from finance_dag.lending.extended import EXTENDED_COLUMNS
from finance_dag.platform.partitions import session_range_tags
from finance_dag.platform.vendors import FredResource, YahooResource
from finance_dag.sim.alt_data import SimulatedAltData
from finance_dag.sim.vendors import shared_macro
from finance_dag.testing.fred import FakeFred
from finance_dag.testing.yahoo import FakeYahoo, isolate_yfinance_cache
from tests.support import settings_for

NAMES = "SPY,QQQ,XLE,TLT,AAPL,MSFT,NVDA,TSLA,LND0001,LND0002"
ETFS = {"SPY", "QQQ", "XLE", "TLT"}
FIRST, LAST = date(2024, 10, 24), date(2024, 11, 29)
EXTENDED = dg.AssetKey("extended_lending_factors")
SESSIONS = calendar.sessions(date(2024, 10, 1), LAST)
FAST = {"max_attempts": 2, "backoff_initial_s": 0.01, "backoff_max_s": 0.01, "timeout_s": 5.0}


def run_lending(root, instance, **env) -> dg.Definitions:
    settings = settings_for(str(root), LENDING_UNIVERSE=NAMES, LENDING_START_DATE="2024-09-03", **env)
    defs = build_definitions(settings)
    result = defs.resolve_job_def("lending_job").execute_in_process(
        instance=instance, tags=session_range_tags(FIRST, LAST), raise_on_error=False
    )
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    return defs


def test_every_extended_factor_served_by_the_simulated_inputs(tmp_path, instance):
    defs = run_lending(tmp_path / "lake", instance)
    frame = defs.load_asset_value(
        "extended_lending_factors", partition_key=LAST.isoformat(), instance=instance
    )
    assert frame.columns == ["date", "symbol", *EXTENDED_COLUMNS, "null_reasons"]
    stocks = frame.filter(~pl.col("symbol").is_in(ETFS))
    etfs = frame.filter(pl.col("symbol").is_in(ETFS))
    assert etfs.select(EXTENDED_COLUMNS).null_count().sum_horizontal().item() == 0
    assert etfs["null_reasons"].is_null().all()
    # stocks: only the ETF flow is missing, and the reason says why
    assert stocks["etf_flow_pressure"].is_null().all()
    assert stocks.drop("etf_flow_pressure", "null_reasons").null_count().sum_horizontal().item() == 0
    assert (
        stocks["null_reasons"] == "etf_flow_pressure: not in the ETF shares-outstanding file (not an ETF)"
    ).all()
    meta = instance.get_latest_materialization_event(EXTENDED).asset_materialization.metadata
    assert "| social_mentions | True |" in meta["inputs"].value
    # SSR v4's buzz component is the extended crowd buzz of the day
    scores = defs.load_asset_value("squeeze_scores", partition_key=LAST.isoformat(), instance=instance)
    joined = scores.join(frame, on="symbol")
    assert joined["buzz_z"].is_not_null().all() and (joined["buzz_z"] == joined["crowd_buzz"]).all()


@pytest.mark.chaos("bad lending file", faults="esg-out-of-range missing-drop")
def test_missing_and_bad_drops_leave_their_factors_null_with_the_reason(tmp_path, instance):
    inbox = tmp_path / "lake" / "_inbox"
    alt = SimulatedAltData(7)
    names = NAMES.split(",")
    for day in SESSIONS:  # every drop delivered except LAST's mentions; the ESG file is bad
        for dataset in ("etf_shares", "esg_scores", "social_mentions"):
            frame = alt.drop(dataset, names, day)
            if frame is None or (dataset == "social_mentions" and day == LAST):
                continue
            if dataset == "esg_scores":
                frame = frame.with_columns(
                    esg_score=pl.when(pl.col("symbol") == "TSLA").then(12.0).otherwise("esg_score")
                )
            (inbox / dataset).mkdir(parents=True, exist_ok=True)
            frame.write_csv(inbox / dataset / f"{dataset}_{day}.csv")
    defs = run_lending(tmp_path / "lake", instance, LENDING_DROPS_SOURCE="inbox")
    frame = defs.load_asset_value(
        "extended_lending_factors", partition_key=LAST.isoformat(), instance=instance
    )
    assert frame["crowd_buzz"].is_null().all() and frame["esg_constraint"].is_null().all()
    reasons = frame.filter(pl.col("symbol") == "SPY")["null_reasons"].item()
    assert f"crowd_buzz: no social mentions file for {LAST} in {inbox / 'social_mentions'}" in reasons
    bad = inbox / "esg_scores" / "esg_scores_2024-11-01.csv"
    assert (
        f"esg_constraint: {bad} (2024-11-01): column 'esg_score' has values above 10 in 1 row: TSLA (12.0)"
        in reasons
    )
    # the other factors are served; no null became a 0
    assert (
        frame.filter(pl.col("symbol") == "SPY")
        .select("borrow_cds_basis", "etf_flow_pressure")
        .null_count()
        .sum_horizontal()
        .item()
        == 0
    )
    day_before = defs.load_asset_value(
        "extended_lending_factors", partition_key=SESSIONS[-2].isoformat(), instance=instance
    )
    # the day before has all six mention files (LAST is not in its window); the bad ESG file serves it too
    assert day_before["crowd_buzz"].is_not_null().all() and day_before["esg_constraint"].is_null().all()
    scores = defs.load_asset_value("squeeze_scores", partition_key=LAST.isoformat(), instance=instance)
    assert scores["buzz_z"].is_null().all() and (scores["buzz_contrib"] == 0.0).all()  # dropped, reweighted


def test_an_esg_file_older_than_its_refresh_window_is_not_used(tmp_path):
    folder = tmp_path / "esg"
    folder.mkdir()
    SimulatedAltData(7).esg_scores(["SPY"], date(2024, 7, 1)).write_csv(folder / "esg_scores_2024-07-01.csv")
    drops = InboxResource(dataset="esg_scores", source="inbox", inbox=str(folder))
    assert drops.read(date(2024, 9, 30), ("SPY",), 95).height == 1  # 91 days old
    reason = drops.read(date(2024, 10, 7), ("SPY",), 95)  # 98 days old
    assert reason == f"no ESG scores file dated 2024-07-04..2024-10-07 in {folder}/"


@pytest.mark.vendors
def test_macro_series_through_fred_and_a_failure_becomes_the_reason():
    macro = shared_macro(7)
    series = {"hy_oas": "BAMLH0A0HYM2", "vix": "VIXCLS", "stress": "STLFSI4"}
    with FakeFred(macro, "fredkey") as fake:
        fred = FredResource(
            api_key="fredkey", base_url=f"{fake.url}/fred", series_ids=list(series.values()), **FAST
        )
        resource = MacroSeriesResource(source="fred", series=series, fred=fred)
        served = resource.observations(SESSIONS[0], LAST)
        assert served.equals(macro.observations(list(series.values()), SESSIONS[0], LAST))
        fake.inject("500", times=None)
        market = market_inputs(SESSIONS, resource, SkewResource(), settings_for())
    assert set(market.missing) == {"hy_oas", "vix", "stress"}
    assert "fred source failed" in market.missing["hy_oas"] and "BAMLH0A0HYM2" in market.missing["hy_oas"]
    assert market.frame["skew"].null_count() == 0  # the SKEW source did not fail


@pytest.mark.vendors
def test_skew_through_yahoo_and_from_a_history_file(tmp_path):
    isolate_yfinance_cache(str(tmp_path / "yfinance"))
    macro = shared_macro(7)
    expected = macro.skew(SESSIONS[0], LAST)
    with FakeYahoo(macro.market, datetime(2024, 12, 2, 12, tzinfo=UTC), indices={"^SKEW": expected}) as fake:
        yahoo = YahooResource(base_url=fake.url, now="2024-12-02T12:00:00", **FAST)
        served = SkewResource(source="yahoo", yahoo=yahoo).observations(SESSIONS[0], LAST)
    assert served["value"].to_list() == expected["close"].to_list()
    history = tmp_path / "skew.csv"
    expected.rename({"close": "skew"}).write_csv(history)
    from_file = SkewResource(source="file", file=str(history)).observations(SESSIONS[0], LAST)
    assert from_file.equals(served)
    pl.concat([expected.head(2), expected]).rename({"close": "skew"}).write_csv(history)
    market = market_inputs(
        SESSIONS,
        MacroSeriesResource(series={}),
        SkewResource(source="file", file=str(history)),
        settings_for(),
    )
    assert market.missing["skew"].startswith(
        f"file source failed: {history}: column 'date' has duplicate dates"
    )

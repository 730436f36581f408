"""The lending assets end to end on the simulated feed, an inbox with a bad file, and SQL."""

import os
from datetime import date

import dagster as dg
import polars as pl
import sqlalchemy as sa

from finance_dag.core import calendar
from finance_dag.core.lake import Lake
from finance_dag.definitions import build_definitions
from finance_dag.defs.lending.automation import build_inbox_sensor
from finance_dag.lending.factors import core_factors
from finance_dag.platform.partitions import session_range_tags
from finance_dag.sim.lending import SimulatedLending
from tests.support import settings_for

NAMES = "SPY,QQQ,IWM,AAPL,MSFT,NVDA,TSLA,XLE"
FIRST, LAST = date(2024, 10, 1), date(2024, 11, 29)
SNAPSHOTS, FACTORS = dg.AssetKey("lending_snapshots"), dg.AssetKey("lending_factors")


def lending_defs(root, **env) -> tuple[dg.Definitions, object]:
    settings = settings_for(str(root), LENDING_UNIVERSE=NAMES, LENDING_START_DATE="2024-09-03", **env)
    return build_definitions(settings), settings


def run(defs, instance, first, last, ok=True):
    result = defs.resolve_job_def("lending_job").execute_in_process(
        instance=instance, tags=session_range_tags(first, last), raise_on_error=False
    )
    assert result.success is ok, [e.message for e in result.all_events if e.is_failure]
    return result


def test_snapshots_and_factors_from_the_simulated_feed_in_one_run(tmp_path, instance):
    defs, settings = lending_defs(tmp_path / "lake")
    run(defs, instance, FIRST, LAST)
    sessions = {d.isoformat() for d in calendar.sessions(FIRST, LAST)}
    assert instance.get_materialized_partitions(SNAPSHOTS) == sessions
    assert instance.get_materialized_partitions(FACTORS) == sessions
    assert Lake(settings.lending_inbox).exists(f"lending_{LAST}.csv")  # dropped by the simulated vendor
    snapshot = defs.load_asset_value("lending_snapshots", partition_key=LAST.isoformat(), instance=instance)
    assert sorted(snapshot["symbol"]) == sorted(NAMES.split(",")) and (snapshot["date"] == LAST).all()
    history = pl.concat(
        defs.load_asset_value("lending_snapshots", partition_key=d, instance=instance)
        for d in sorted(sessions)
    )
    factors = defs.load_asset_value("lending_factors", partition_key=LAST.isoformat(), instance=instance)
    assert factors.equals(core_factors(history, LAST))
    assert factors.drop_nulls().height == len(NAMES.split(","))  # 42 sessions: every lookback is served
    event = instance.get_latest_materialization_event(FACTORS).asset_materialization
    assert event.metadata["dagster/column_lineage"].value.deps_by_column["bcs"][0].column_name == "fee_bps"


def test_a_bad_file_fails_its_own_day_naming_file_column_and_rows(tmp_path, instance):
    defs, settings = lending_defs(tmp_path / "lake", LENDING_SOURCE="inbox")
    inbox = tmp_path / "lake" / "_inbox" / "lending"
    lending = SimulatedLending(7)
    days = calendar.sessions(date(2024, 11, 25), LAST)
    for day in days:
        lending.write_feed_file(NAMES.split(","), day, inbox)
    bad = inbox / f"lending_{LAST}.csv"
    frame = pl.read_csv(bad).with_columns(
        pl.when(pl.col("ticker") == "TSLA")
        .then(-5.0)
        .otherwise(pl.col("Fee All (BPS)"))
        .alias("Fee All (BPS)")
    )
    frame.write_csv(bad)
    result = run(defs, instance, days[0], days[-1], ok=False)
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = str(failure.event_specific_data.error)
    assert str(bad) in message and "Fee All (BPS)" in message and "TSLA" in message
    good = {d.isoformat() for d in days[:-1]}
    assert instance.get_materialized_partitions(SNAPSHOTS) == good


def test_the_feed_read_from_a_sql_table(tmp_path, instance, monkeypatch):
    database = tmp_path / "lending.db"
    engine = sa.create_engine(f"sqlite:///{database}")
    SimulatedLending(7).feed(NAMES.split(","), LAST).write_database("lending", engine)
    monkeypatch.setenv("LENDING_SQL_URI", f"sqlite:///{database}")
    defs, _ = lending_defs(tmp_path / "lake", LENDING_SOURCE="sql")
    defs.resolve_job_def("lending_job").execute_in_process(
        instance=instance, partition_key=LAST.isoformat(), asset_selection=[SNAPSHOTS]
    )
    snapshot = defs.load_asset_value("lending_snapshots", partition_key=LAST.isoformat(), instance=instance)
    assert snapshot.height == len(NAMES.split(",")) and snapshot["fee_bps"].min() > 0


def test_the_inbox_sensor_starts_a_session_once_per_file_version(tmp_path):
    _, settings = lending_defs(tmp_path / "lake", LENDING_SOURCE="inbox")
    SimulatedLending(7).write_feed_file(NAMES.split(","), LAST, settings.lending_inbox)
    sensor = build_inbox_sensor(settings)
    first = sensor(dg.build_sensor_context())
    assert [r.partition_key for r in first.run_requests] == [LAST.isoformat()]
    again = sensor(dg.build_sensor_context(cursor=first.cursor))
    assert again.run_requests == []
    os.utime(os.path.join(settings.lending_inbox, f"lending_{LAST}.csv"), (1, 1))  # a re-delivery
    assert len(sensor(dg.build_sensor_context(cursor=first.cursor)).run_requests) == 1


def test_squeeze_scores_rank_names_and_explain_the_top(tmp_path, instance):
    defs, _ = lending_defs(tmp_path / "lake")
    run(defs, instance, FIRST, LAST)
    scores = defs.load_asset_value("squeeze_scores", partition_key=LAST.isoformat(), instance=instance)
    assert scores["symbol"].n_unique() == len(NAMES.split(",")) and (scores["date"] == LAST).all()
    assert scores["ssr_v4"].drop_nulls().is_sorted(descending=True)
    contributions = scores.select(pl.sum_horizontal(pl.col("^.*_contrib$"))).to_series()
    assert (contributions - scores["ssr_v4"]).abs().max() < 1e-9
    event = instance.get_latest_materialization_event(dg.AssetKey("squeeze_scores")).asset_materialization
    assert scores["symbol"][0] in event.metadata["top_candidates"].value


def test_the_three_exports_are_csv_beside_the_parquet(tmp_path, instance):
    defs, _ = lending_defs(tmp_path / "lake")
    run(defs, instance, FIRST, LAST)
    lake = Lake(str(tmp_path / "lake"))
    factors = pl.read_csv(lake.read_bytes(f"lending_factors/date={LAST}.csv"))
    assert factors.columns == ["date", "symbol", "sim", "bcs", "upi", "ftz", "dtc_z", "lpf"]
    more = pl.read_csv(lake.read_bytes(f"extended_lending_factors/date={LAST}.csv"))
    assert "crowd_buzz" in more.columns and "null_reasons" in more.columns and more.height == factors.height
    top = pl.read_csv(lake.read_bytes(f"squeeze_scores/date={LAST}.csv"))
    stored = defs.load_asset_value("squeeze_scores", partition_key=LAST.isoformat(), instance=instance)
    assert top["symbol"].to_list() == stored["symbol"].head(10).to_list()
    summary = pl.read_csv(lake.read_bytes("factor_ic_report/factor_ic_report.csv"))
    assert {"factor", "period", "mean_ic", "t_stat"} <= set(summary.columns)


def test_the_daily_digest_is_written_as_markdown_and_html(tmp_path, instance):
    defs, _ = lending_defs(tmp_path / "lake")
    run(defs, instance, FIRST, LAST)
    lake = Lake(str(tmp_path / "lake"))
    markdown = lake.read_bytes(f"daily_digest/date={LAST}.md").decode()
    page = lake.read_bytes(f"daily_digest/date={LAST}.html").decode()
    scores = defs.load_asset_value("squeeze_scores", partition_key=LAST.isoformat(), instance=instance)
    leader = scores["symbol"][0]
    assert (
        markdown.startswith(f"# Lending digest {LAST}") and f"{leader} leads the squeeze scores" in markdown
    )
    assert "The average fee (bps)" in markdown and f"<li>{leader} leads" in page
    event = instance.get_latest_materialization_event(dg.AssetKey("daily_digest")).asset_materialization
    assert "leads the squeeze scores" in event.metadata["headlines"].value

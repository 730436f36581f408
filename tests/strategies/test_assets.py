"""The strategies group through Dagster on a small simulated lake: every strategy materialises in one
run, symbols that cannot be tested are skipped with their reason, bad config fails naming the value,
one strategy re-runs alone, and the report compares and combines them."""

from datetime import date

import dagster as dg
import numpy as np
import polars as pl
import pytest

from finance_dag.core import calendar
from finance_dag.core.lake import Lake, partition_path
from finance_dag.core.universe import DEMO_SYMBOLS
from finance_dag.defs.lending.resources import MacroSeriesResource
from finance_dag.defs.strategies.assets import factor_exposures, summary_path
from finance_dag.market_data.consolidate import year_path
from finance_dag.platform.storage import LakeResource
from finance_dag.strategies import STRATEGIES, Bars
from tests.support import (
    failure_messages,
    make_defs,
    materialise_market_data,
    materialise_strategies,
    run_job,
    strategy_config,
)

FIRST, LAST = date(2024, 8, 1), date(2024, 11, 29)  # 85 sessions
SHORT = "IWM"  # given only the last 20 sessions of daily bars below
DROPPED = "TLT"  # marked not ready in the coverage report below
UNIVERSE = ",".join(DEMO_SYMBOLS[:6])


@pytest.fixture(scope="module")
def lake_run(tmp_path_factory):
    """The market-data lake of FIRST..LAST, one symbol cut short and one marked not ready, then
    every strategy and the report in one run."""
    root = str(tmp_path_factory.mktemp("lake"))
    defs = make_defs(
        root, env={"UNIVERSE": UNIVERSE, "START_DATE": FIRST.isoformat(), "END_DATE": LAST.isoformat()}
    )
    with dg.instance_for_test() as instance:
        materialise_market_data(defs, instance, FIRST, LAST)
        lake = Lake(root)
        for path in sorted(lake.list_files("daily_bars"), key=lambda f: f.path)[:-20]:
            frame = lake.read_parquet(path.path)
            lake.write_parquet(path.path, frame.filter(pl.col("symbol") != SHORT))
        lake.delete(year_path(SHORT, 2024))  # and no minute bars at all for the intraday rule
        report = lake.read_parquet("coverage_report/coverage_report.parquet")
        lake.write_parquet(
            "coverage_report/coverage_report.parquet",
            report.with_columns(ready=pl.col("ready") & (pl.col("symbol") != DROPPED)),
        )
        result = materialise_strategies(defs, instance)
        yield defs, instance, lake, result


def test_every_strategy_materialises_in_one_run_with_its_metrics(lake_run):
    defs, instance, lake, result = lake_run
    events = [
        e for e in result.get_asset_materialization_events() if e.asset_key.path == ["strategy_backtests"]
    ]
    assert sorted(e.partition for e in events) == sorted(STRATEGIES)
    latest = instance.get_latest_materialization_event(
        dg.AssetKey("strategy_backtests")
    ).asset_materialization
    assert {"oos_sharpe", "in_sample_sharpe", "parameter_sets_tried", "deflated_sharpe", "pbo"} <= set(
        latest.metadata
    )
    returns = lake.read_parquet("strategy_backtests/strategy=cross_sectional_momentum.parquet")
    windows = lake.read_parquet(summary_path("cross_sectional_momentum", "windows"))
    assert (
        returns.height == len(calendar.sessions(FIRST, LAST)) - 20
        and returns["date"].is_sorted()
        and not returns["date"].is_duplicated().any()
    )
    joined = returns.join(windows, on="window")
    assert (joined["date"] > joined["train_end"]).all()  # never scored on its own training sessions
    checks = [e for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert checks and all(e.event_specific_data.passed for e in checks)


def test_symbols_that_cannot_be_tested_are_skipped_with_their_reason(lake_run):
    _, _, lake, _ = lake_run
    skipped = dict(lake.read_parquet(summary_path("momentum_5d", "skipped")).iter_rows())
    assert skipped[DROPPED] == "not ready for research in the coverage report"
    assert skipped[SHORT] == "20 sessions of daily bars, needs 25 (train + test)"
    intraday = dict(lake.read_parquet(summary_path("opening_range_breakout", "skipped")).iter_rows())
    assert intraday[SHORT] == "0 sessions of consolidated minute bars, needs 25 (train + test)"
    assert set(skipped) == {DROPPED, SHORT}


def test_the_report_compares_every_strategy_and_an_equal_risk_combination(lake_run):
    defs, instance, lake, _ = lake_run
    report = defs.load_asset_value("strategy_report", instance=instance)
    assert report["strategy"].to_list() == [*STRATEGIES, "equal_risk_combination"]
    criteria = report.filter(pl.col("strategy") != "equal_risk_combination")
    expected = criteria.select(
        sharpe=pl.col("sharpe").is_finite() & (pl.col("sharpe") > 1),  # an undefined Sharpe fails
        drawdown=pl.col("max_drawdown").is_finite() & (pl.col("max_drawdown") > -0.15),
    )
    assert criteria["sharpe_above_1"].to_list() == expected["sharpe"].to_list()
    assert criteria["drawdown_within_15pct"].to_list() == expected["drawdown"].to_list()
    combination = lake.read_parquet("strategy_report/combination.parquet")
    weights = combination.select(pl.col("^weight_.*$")).to_numpy()
    invested = weights.sum(axis=1) > 0
    np.testing.assert_allclose(weights[invested].sum(axis=1), 1.0)
    assert not invested[:63].any()  # weights come from 63 earlier returns only
    correlation = lake.read_parquet("strategy_report/correlation.parquet")
    assert correlation.height == len(STRATEGIES)
    metadata = instance.get_latest_materialization_event(
        dg.AssetKey("strategy_report")
    ).asset_materialization.metadata
    assert "data:image/png;base64," in metadata["rolling_sharpe"].value
    assert lake.exists("strategy_report/rolling_sharpe.png")


def test_one_strategy_reruns_alone_with_its_own_grid(lake_run):
    defs, instance, lake, _ = lake_run
    before = lake.read_parquet("strategy_backtests/strategy=momentum_1d.parquet")
    config = strategy_config(params={"rsi_reversal": {"period": [7], "low": [25.0], "high": [75.0]}})
    run_job(defs, instance, "strategies_job", {"dagster/partition": "rsi_reversal"}, run_config=config)
    chosen = set(lake.read_parquet("strategy_backtests/strategy=rsi_reversal.parquet")["params"])
    assert chosen == {'{"high": 75.0, "low": 25.0, "period": 7}'}
    windows = lake.read_parquet(summary_path("rsi_reversal", "windows"))
    assert windows.height == 13
    assert lake.read_parquet("strategy_backtests/strategy=momentum_1d.parquet").equals(before)


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"params": {"no_such_rule": {"x": [1.0]}}}, "unknown strategy 'no_such_rule'"),
        ({"params": {"rsi_reversal": {"period": [500]}}}, "period=500.0 is outside [2, 100]"),
        ({"params": {"rsi_reversal": {"speed": [3.0]}}}, "unknown parameter 'speed'"),
        ({"scheme": "kelly"}, "scheme"),
    ],
)
def test_bad_config_fails_naming_the_value(lake_run, extra, named):
    defs, instance, _, _ = lake_run
    result = run_job(
        defs,
        instance,
        "strategies_job",
        {"dagster/partition": "rsi_reversal"},
        ok=False,
        run_config=strategy_config(**extra),
    )
    assert any(named in message for message in failure_messages(result)), failure_messages(result)


def test_sizing_and_risk_controls_come_from_run_config(lake_run):
    defs, instance, lake, _ = lake_run
    path = "strategy_backtests/strategy=low_volatility_tilt.parquet"
    run_job(
        defs,
        instance,
        "strategies_job",
        {"dagster/partition": "low_volatility_tilt"},
        run_config=strategy_config(),
    )
    plain = lake.read_parquet(path)
    controls = {"scheme": "risk_parity", "vol_target": 0.1, "max_drawdown": 0.02, "sector_limit": 0.2}
    run_job(
        defs,
        instance,
        "strategies_job",
        {"dagster/partition": "low_volatility_tilt"},
        run_config=strategy_config(**controls),
    )
    sized = lake.read_parquet(path)
    assert sized["date"].equals(plain["date"]) and not sized["return"].equals(plain["return"])


def test_the_factor_constraint_needs_the_risk_domains_factor_returns(lake_run):
    defs, instance, _, _ = lake_run
    result = run_job(
        defs,
        instance,
        "strategies_job",
        {"dagster/partition": "momentum_5d"},
        ok=False,
        run_config=strategy_config(factor_limit=0.5),
    )
    assert any("run risk_history_job over that range" in m for m in failure_messages(result))


def test_an_unreadable_daily_bars_file_fails_naming_it_and_keeps_the_results(lake_run):
    defs, instance, lake, _ = lake_run
    victim = sorted(f.path for f in lake.list_files("daily_bars"))[10]
    good = lake.read_bytes(victim)
    before = lake.read_bytes("strategy_backtests/strategy=momentum_20d.parquet")
    lake.write_bytes(victim, b"not parquet")
    try:
        result = run_job(defs, instance, "strategies_job", {"dagster/partition": "momentum_20d"}, ok=False)
    finally:
        lake.write_bytes(victim, good)
    assert any(victim in m and "re-materialize daily_bars" in m for m in failure_messages(result))
    assert lake.read_bytes("strategy_backtests/strategy=momentum_20d.parquet") == before


def test_the_regime_filter_reads_vix_and_falls_back_to_its_proxy_naming_why(lake_run):
    defs, instance, lake, _ = lake_run
    key = dg.AssetKey("strategy_backtests")

    def regime_source() -> str:
        events = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=["volatility_regime_filter"]), limit=1
        )
        return events.records[0].asset_materialization.metadata["regime_source"].value

    assert regime_source() == "VIX (VIXCLS, sim)"  # the simulated FRED series by default
    broken = make_defs(
        lake.root,
        env={"UNIVERSE": UNIVERSE, "START_DATE": FIRST.isoformat(), "END_DATE": LAST.isoformat()},
        macro_series=MacroSeriesResource(source="fred", series={"vix": "VIXCLS"}),  # no FRED configured
    )
    run_job(
        broken,
        instance,
        "strategies_job",
        {"dagster/partition": "volatility_regime_filter"},
        run_config=strategy_config(),
    )
    assert regime_source().startswith("realised-volatility proxy (VIXCLS unavailable: macro source is fred")


def test_factor_exposures_are_betas_to_the_risk_domains_factor_returns_on_the_first_training_window(tmp_path):
    days = calendar.sessions(date(2024, 1, 2), date(2024, 6, 28))
    rng = np.random.default_rng(2)
    market, size = rng.normal(0, 0.01, len(days)), rng.normal(0, 0.005, len(days))
    lake = LakeResource(root=str(tmp_path))
    for k, day in enumerate(days[:80]):  # the risk domain covers only part of the history
        row = {
            "date": [day],
            "market": [market[k]],
            "size": [size[k]],
            "r2": [0.5],
            "used": [3000],
            "left_out": [0],
        }
        lake.lake.write_parquet(partition_path("factor_returns", date=day.isoformat()), pl.DataFrame(row))
    returns = np.column_stack([1.5 * market - 0.5 * size, -0.8 * market]) + rng.normal(
        0, 1e-4, (len(days), 2)
    )
    returns[0] = 0.0
    close = 100 * np.cumprod(1 + returns, axis=0)
    bars = Bars(np.array(days, dtype="datetime64[D]"), ("A", "B"), close, close, close, np.ones(close.shape))
    betas = factor_exposures(lake, bars, train=100)
    np.testing.assert_allclose(betas, [[1.5, -0.5], [-0.8, 0.0]], atol=0.02)
    with pytest.raises(ValueError, match="needs 60\\+ sessions .* the lake has 50"):
        factor_exposures(lake, bars, train=50)

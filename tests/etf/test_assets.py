"""The ETF domain through Dagster on the embedded default: universe to executed plan, bad files,
failing vendors and brokers, and the execution guards."""

import json
from datetime import date

import dagster as dg
import polars as pl
import pytest

from finance_dag.core.lake import Lake
from finance_dag.defs.etf.resources import BrokerResource, EtfFilesResource, EtfPriceVendorsResource
from finance_dag.etf import trades
from tests.support import ETF_WINDOW, failure_messages, make_defs, materialise_etf, run_universe

DAY = date(2024, 11, 29)
KEY = DAY.isoformat()
PLAN = f"trade_plan/date={KEY}"


def metadata(instance, asset: str) -> dict:
    event = instance.get_latest_materialization_event(dg.AssetKey(asset))
    return {k: getattr(v, "value", v) for k, v in event.asset_materialization.metadata.items()}


def execute(defs, instance, ok: bool = True, **config):
    result = defs.resolve_job_def("execute_trades").execute_in_process(
        instance=instance,
        run_config={"ops": {"execute_trade_plan": {"config": config}}},
        raise_on_error=False,
    )
    failures = [e for e in result.all_events if e.is_failure]
    assert result.success is ok, [e.message for e in failures]
    return result


def outcomes(result) -> dict[str, int]:
    step = next(e for e in result.all_events if e.event_type_value == "STEP_OUTPUT")
    table = step.event_specific_data.metadata["outcomes"].value
    rows = [line.split("|")[1:3] for line in table.splitlines()[2:]]
    return {name.strip(): int(count) for name, count in rows}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """The ETF domain materialised once on a fresh lake, as a user runs it."""
    root = str(tmp_path_factory.mktemp("etf") / "lake")
    defs = make_defs(root, env=ETF_WINDOW)
    instance = dg.DagsterInstance.ephemeral()
    materialise_etf(defs, instance, DAY)
    return defs, instance, root


def test_the_universe_lists_the_directory_etfs_with_categories_and_leveraged_flags(pipeline):
    defs, instance, root = pipeline
    seen = metadata(instance, "etf_universe")
    assert 4_000 < seen["etfs"] < 5_100 and 700 < seen["categorised"] <= 800
    assert seen["etfs"] == seen["categorised"] + seen["uncategorised"] and seen["leveraged_or_inverse"] > 50
    universe = Lake(root).read_parquet(f"etf_universe/date={KEY}.parquet")
    assert universe["symbol"].is_unique().all() and "ZXZZT" not in universe["symbol"]  # the test issue


def test_prices_are_stored_per_session_and_unserved_etfs_are_excluded_with_the_reason(pipeline):
    defs, instance, root = pipeline
    lake = Lake(root)
    day = lake.read_parquet(f"etf_prices/date={KEY}.parquet")
    assert day["date"].unique().to_list() == [DAY] and day["symbol"].is_unique().all()
    assert metadata(instance, "etf_prices")["unserved_symbols"] > 0
    rebuilt = metadata(instance, "etf_price_history")["rebuilt"]  # the day's run: its year only
    assert "| 2024 |" in rebuilt and "| 2023 |" not in rebuilt
    assert lake.exists("etf_price_history/year=2023.parquet")
    scores = lake.read_parquet(f"etf_factor_scores/date={KEY}.parquet")
    unserved = set(lake.read_parquet(f"etf_prices_unserved/date={KEY}.parquet")["symbol"])
    reasons = dict(scores.select("symbol", "reason").iter_rows())
    assert all(reasons[s].startswith("no vendor data: sim_daily") for s in unserved)
    excluded = scores.filter(pl.col("status") == "excluded")
    assert excluded["reason"].null_count() == 0
    kinds = {r.split(":")[0] for r in excluded["reason"]}
    assert {"no vendor data", "too short", "stale", "gaps", "leveraged or inverse product"} <= kinds


def test_the_target_portfolio_holds_30_positions_within_the_bounds(pipeline):
    defs, instance, root = pipeline
    target = Lake(root).read_parquet(f"target_portfolio/date={KEY}.parquet")
    assert target.height == 30 and abs(target["weight"].sum() - 1) < 1e-6
    assert target["weight"].min() >= 0.03 - 1e-7 and target["weight"].max() <= 0.075 + 1e-7
    seen = metadata(instance, "target_portfolio")
    assert seen["optimizer"] == "mvo" and seen["fallback"] == "none" and 0 < seen["expected_volatility"] < 1
    check = instance.get_latest_asset_check_evaluation_record(
        dg.AssetCheckKey(dg.AssetKey("target_portfolio"), "weights_within_bounds")
    )
    assert check.event.dagster_event.event_specific_data.passed


def test_the_backtest_rebalances_at_each_quarter_start_and_reports_the_metrics(pipeline):
    defs, instance, root = pipeline
    seen = metadata(instance, "portfolio_backtest")
    start = date.fromisoformat(seen["start"])
    quarter_starts = {(d.year, (d.month - 1) // 3) for d in pl.date_range(start, DAY, eager=True)}
    assert seen["rebalances"] + seen["initial_allocations"] == len(quarter_starts)
    assert {"cagr", "sharpe", "sortino", "max_drawdown", "volatility", "total_return", "win_rate"} <= set(
        seen
    )
    weights = Lake(root).read_parquet(f"portfolio_backtest/date={KEY}/weights.parquet")
    assert weights["rebalance_date"].n_unique() == len(quarter_starts)
    assert "![equity]" in seen["equity_curve"] and "![drawdown]" in seen["drawdown_plot"]


def test_the_plan_writes_the_state_contract_beside_the_csv(pipeline):
    defs, instance, root = pipeline
    state, plan_bytes = trades.read_plan(Lake(root), PLAN)
    assert state["plan_sha256"] == trades.plan_hash(plan_bytes) and state["as_of"] == KEY
    assert (
        state["account_id"] == "SIM-0001" and state["mode"] == "cash_reserve" and state["reserve"] == 70_000
    )
    assert state["cleanup"]["cancel"] and state["summary"]["cash_after"] >= 70_000
    assert set(state["transition"]) == {"retained", "exiting", "new"}


@pytest.mark.chaos("stale trade plan", faults="edited-plan stale-plan retried-execution")
def test_execution_is_dry_by_default_refuses_edits_and_places_each_order_once(pipeline):
    defs, instance, root = pipeline
    lake = Lake(root)
    broker_file = "brokers/simulated/account.json"
    before = lake.read_bytes(broker_file)
    dry = execute(defs, instance)
    assert set(outcomes(dry)) == {"dry_run"} and lake.read_bytes(broker_file) == before

    plan_bytes = lake.read_bytes(f"{PLAN}/trade_plan.csv")
    lake.write_bytes(f"{PLAN}/trade_plan.csv", plan_bytes.replace(b",buy,", b",sell,", 1))
    execute(defs, instance, ok=False, live=True)  # an edited plan: refused, nothing placed
    assert lake.read_bytes(broker_file) == before
    lake.write_bytes(f"{PLAN}/trade_plan.csv", plan_bytes)

    execute(defs, instance, ok=False, live=True, max_plan_age_hours=0.0)  # stale: refused
    assert lake.read_bytes(broker_file) == before

    first = outcomes(execute(defs, instance, live=True))
    planned = len(trades.parse_plan_csv(plan_bytes))
    assert first == {"placed": planned}
    again = outcomes(execute(defs, instance, live=True))  # a retry finds every order: none placed twice
    assert again == {"already_placed": planned}
    account = json.loads(lake.read_bytes(broker_file))
    ids = [o["client_order_id"] for o in account["orders"]]
    assert len(ids) == len(set(ids))
    assert not any(o["status"] == "open" for o in account["orders"])  # the stale order was cancelled


@pytest.mark.chaos("drifted trade plan", faults="position-drift")
def test_a_drifted_account_is_refused(tmp_path):
    root = str(tmp_path / "lake")
    defs = make_defs(root, env=ETF_WINDOW)
    instance = dg.DagsterInstance.ephemeral()
    materialise_etf(defs, instance, DAY)
    lake = Lake(root)
    account = json.loads(lake.read_bytes("brokers/simulated/account.json"))
    symbol = next(iter(account["positions"]))
    account["positions"][symbol]["quantity"] += 5  # someone traded after planning
    lake.write_bytes("brokers/simulated/account.json", json.dumps(account).encode())
    result = execute(defs, instance, ok=False, live=True)
    assert any(f"the position in {symbol} changed" in m for m in failure_messages(result)), failure_messages(
        result
    )


@pytest.mark.chaos("bad universe file", faults="no-footer")
def test_a_malformed_directory_file_fails_its_day_and_keeps_the_previous_universe(pipeline, tmp_path):
    defs, instance, root = pipeline
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    lake = Lake(root)
    for name in ("nasdaqlisted.txt", "otherlisted.txt", "etf_categories.csv"):
        source = Lake(f"{root}/_inbox/etf")
        (inbox / name).write_bytes(source.read_bytes(name))
    text = (inbox / "otherlisted.txt").read_text().splitlines()
    (inbox / "otherlisted.txt").write_text("\n".join(text[:-1]) + "\n")  # no footer
    before = lake.read_bytes(f"etf_universe/date={KEY}.parquet")
    files = EtfFilesResource(source="files", inbox=str(inbox))
    result = run_universe(make_defs(root, env=ETF_WINDOW, etf_files=files), instance, DAY, ok=False)
    message = "\n".join(failure_messages(result))
    assert "otherlisted.txt" in message and "File Creation Time" in message
    assert lake.read_bytes(f"etf_universe/date={KEY}.parquet") == before


@pytest.mark.chaos("vendor faults", faults="503-persistent")
def test_a_price_vendor_failing_for_some_etfs_excludes_them_with_the_reason(tmp_path):
    root = str(tmp_path / "lake")
    failing = EtfPriceVendorsResource(fail_symbols=["SPY", "TLT"])
    defs = make_defs(root, env=ETF_WINDOW, etf_price_vendors=failing)
    instance = dg.DagsterInstance.ephemeral()
    materialise_etf(defs, instance, DAY)  # the day still succeeds
    scores = Lake(root).read_parquet(f"etf_factor_scores/date={KEY}.parquet")
    reasons = dict(scores.select("symbol", "reason").iter_rows())
    assert reasons["SPY"] == reasons["TLT"] == "no vendor data: sim_daily: HTTP 503 (injected failure)"


def test_a_broker_failing_while_the_plan_is_built_writes_no_state(tmp_path):
    root = str(tmp_path / "lake")

    class Disconnecting(BrokerResource):
        def connect(self, purpose, prices=None):
            broker = super().connect(purpose, prices)
            broker.fail_on.add("positions")
            return broker

    defs = make_defs(root, env=ETF_WINDOW, broker=Disconnecting(storage=root))
    instance = dg.DagsterInstance.ephemeral()
    with pytest.raises(AssertionError, match="trade plan for 2024-11-29 not written"):
        materialise_etf(defs, instance, DAY)
    assert not Lake(root).exists(f"{PLAN}/portfolio_state.json")


def test_strategy_parameters_out_of_range_fail_naming_them(pipeline):
    defs, instance, root = pipeline
    job = defs.resolve_job_def("etf_job").get_subset(
        asset_selection={dg.AssetKey("portfolio_backtest"), dg.AssetKey("target_portfolio")}
    )

    def failure(asset: str, config: dict) -> str:
        result = job.execute_in_process(
            instance=instance,
            partition_key=KEY,
            run_config={"ops": {asset: {"config": config}}},
            raise_on_error=False,
        )
        return "\n".join(failure_messages(result))

    early = failure("portfolio_backtest", {"start": "2024-01-02"})
    assert "the backtest start 2024-01-02 has 84 sessions of prices up to it; the scores need 253" in early
    assert "optimizer 'sharpe' is not one of mvo, rankbased, minvar" in failure(
        "target_portfolio", {"optimizer": "sharpe"}
    )

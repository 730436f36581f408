"""The trade plan, checked by hand: sizing in the cash-reserve and deploy-cash modes, sells before
buys, exits in full, the cleanup phase, deterministic client order ids, and the plan files."""

import json
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from finance_dag.brokers.base import Account, Order, Position
from finance_dag.core.lake import Lake
from finance_dag.etf.trades import (
    Transition,
    build_plan,
    cleanup_proposal,
    parse_plan_csv,
    plan_csv,
    plan_hash,
    portfolio_state,
    read_plan,
    write_plan,
)

PRICES = {"AAA": 100.0, "BBB": 30.0, "CCC": 25.0, "XXX": 50.0}


def shares(plan) -> dict[str, tuple[str, int]]:
    return {t.symbol: (t.side, t.quantity) for t in plan.trades}


def test_cash_reserve_mode_sizes_to_nlv_and_scales_buys_down_to_keep_the_reserve():
    # NLV $100,000 all in cash; 50/50 wanted: AAA 500 sh ($50,000), BBB 1,666 sh ($49,980).
    # The budget is 100,000 - 70,000 = 30,000: every buy scaled by 30,000 / 99,980, rounded down.
    plan = build_plan({"AAA": 0.5, "BBB": 0.5}, Account("A1", 100_000.0, 100_000.0), [], PRICES)
    assert plan.buy_scale == pytest.approx(30_000 / 99_980)
    assert shares(plan) == {"AAA": ("buy", 150), "BBB": ("buy", 499)}  # 500 x .30006, 1,666 x .30006
    assert plan.summary == {
        "mode": "cash_reserve", "sizing_basis": 100_000.0, "reserve": 70_000.0, "deploy_cash": None,
        "cash_before": 100_000.0, "buys": 15_000.0 + 14_970.0, "sells": 0.0, "cash_after": 70_030.0,
        "buy_scale": plan.buy_scale, "trades": 2,
    }  # fmt: skip
    assert [t.target_shares for t in plan.trades] == [150, 499]  # held after the (scaled) trade


def test_cash_reserve_mode_spends_sale_proceeds_above_the_reserve_and_sells_first():
    # cash 80,000 + AAA 100 x 100 + XXX 200 x 50 = NLV 100,000. AAA to 20 % (200 sh, +100),
    # BBB to 9 % (300 sh, $9,000), XXX exits ($10,000): buys 19,000 <= budget 10,000 + 10,000.
    account = Account("A1", 80_000.0, 100_000.0)
    held = [Position("AAA", 100, 90.0), Position("XXX", 200, 40.0)]
    plan = build_plan({"AAA": 0.2, "BBB": 0.09}, account, held, PRICES)
    assert [(t.symbol, t.side, t.quantity, t.action) for t in plan.trades] == [
        ("XXX", "sell", 200, "exit"),
        ("AAA", "buy", 100, "increase"),
        ("BBB", "buy", 300, "new"),
    ]
    assert (plan.buy_scale, plan.sells, plan.buys, plan.cash_after) == (1.0, 10_000.0, 19_000.0, 71_000.0)
    assert plan.transition == Transition(retained=("AAA",), exiting=("XXX",), new=("BBB",))


def test_deploy_cash_mode_sizes_to_invested_plus_deploy_and_spends_deploy_plus_proceeds():
    # invested AAA 10,000 + XXX 10,000; deploy 10,000: basis 30,000. AAA 50 % -> 150 sh (+50,
    # $5,000), CCC 50 % -> 600 sh ($15,000), XXX exits ($10,000): buys 20,000 = 10,000 + 10,000.
    account = Account("A1", 50_000.0, 70_000.0)
    held = [Position("AAA", 100, 90.0), Position("XXX", 200, 40.0)]
    plan = build_plan({"AAA": 0.5, "CCC": 0.5}, account, held, PRICES, deploy_cash=10_000.0)
    assert shares(plan) == {"XXX": ("sell", 200), "AAA": ("buy", 50), "CCC": ("buy", 600)}
    summary = plan.summary
    assert (summary["mode"], summary["sizing_basis"], summary["deploy_cash"]) == (
        "deploy_cash",
        30_000.0,
        10_000.0,
    )
    assert summary["buys"] - summary["sells"] == 10_000.0 and summary["cash_after"] == 40_000.0


def test_deploy_cash_mode_caps_buys_at_the_amount_to_deploy():
    # basis 10,000 + 10,000. AAA 45 % -> 90 sh: selling 10 ($1,000) is below min_trade_value and
    # dropped. BBB 55 % -> 366 sh ($10,980) > budget 10,000: scaled by 10,000 / 10,980 -> 333 sh.
    account = Account("A1", 30_000.0, 40_000.0)
    plan = build_plan(
        {"AAA": 0.45, "BBB": 0.55},
        account,
        [Position("AAA", 100, 90.0)],
        PRICES,
        deploy_cash=10_000.0,
        min_trade_value=2_000.0,
    )
    assert shares(plan) == {"BBB": ("buy", 333)}
    assert plan.buys == 9_990.0 <= 10_000.0 and plan.cash_after == 20_010.0


def test_no_budget_means_no_buys_but_exits_and_covers_still_happen():
    # cash 60,000 is below the reserve: the only trades are the full exit and the full cover,
    # even the exit of one share worth less than min_trade_value.
    held = [Position("XXX", 1, 40.0), Position("CCC", -40, 25.0)]
    account = Account("A1", 60_000.0, 59_050.0)  # 60,000 + 1 x 50 - 40 x 25
    plan = build_plan({"AAA": 0.5}, account, held, PRICES)
    assert [(t.symbol, t.side, t.quantity, t.action) for t in plan.trades] == [
        ("XXX", "sell", 1, "exit"),
        ("CCC", "buy", 40, "cover"),
    ]
    assert plan.buy_scale == 0.0


def test_a_target_symbol_without_a_price_is_named():
    with pytest.raises(ValueError, match="no usable price for DDD"):
        build_plan({"AAA": 0.5, "DDD": 0.5}, Account("A1", 1e5, 1e5), [], PRICES)


def test_a_held_symbol_without_a_price_uses_the_broker_market_price():
    plan = build_plan({}, Account("A1", 1e5, 1e5), [Position("ZZZ", 10, 5.0, 7.0)], PRICES)
    [exit_] = plan.trades
    assert (exit_.symbol, exit_.quantity, exit_.price, exit_.value) == ("ZZZ", 10, 7.0, 70.0)


@pytest.mark.parametrize(
    ("target", "kwargs", "message"),
    [
        ({"AAA": -0.1}, {}, "must not be negative: AAA"),
        ({"AAA": 0.6, "BBB": 0.5}, {}, "sum to 1.100000"),
        ({"AAA": 0.5}, {"deploy_cash": -1.0}, "must not be negative"),
    ],
)
def test_bad_inputs_are_refused(target, kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_plan(target, Account("A1", 1e5, 1e5), [], PRICES, **kwargs)


def test_client_order_ids_are_deterministic_per_plan_content():
    account, target = Account("A1", 100_000.0, 100_000.0), {"AAA": 0.5, "BBB": 0.5}
    ids = [t.client_order_id for t in build_plan(target, account, [], PRICES).trades]
    assert ids == [t.client_order_id for t in build_plan(target, account, [], dict(PRICES)).trades]
    assert all(re.fullmatch(r"fd-[0-9a-f]{12}-[A-Z]{3}-[bs]", i) and len(i) <= 128 for i in ids)
    assert ids[0].endswith("-AAA-b") and ids[0][:15] == ids[1][:15]  # one plan id for the plan
    moved = build_plan(target, account, [], {**PRICES, "BBB": 30.01}).trades
    other_account = build_plan(target, Account("A2", 100_000.0, 100_000.0), [], PRICES).trades
    assert not set(ids) & {t.client_order_id for t in moved + other_account}


def test_cleanup_cancels_every_open_order_and_covers_every_short():
    orders = [Order("O1", "manual", "AAA", "buy", 10, 0, "open", "limit", 50.0)]
    positions = [
        Position("AAA", 40, 90.0, 100.0),
        Position("CCC", -30, 26.0, 25.0),
        Position("BBB", -5, 31.0),
    ]
    cleanup = cleanup_proposal(positions, orders)
    assert cleanup.cancel == tuple(orders)
    assert [(t.symbol, t.side, t.quantity, t.price, t.action, t.target_shares) for t in cleanup.cover] == [
        ("BBB", "buy", 5, 31.0, "cover", 0),  # no market price: the average cost estimates it
        ("CCC", "buy", 30, 25.0, "cover", 0),
    ]
    again = cleanup_proposal(list(reversed(positions)), orders)
    assert [t.client_order_id for t in again.cover] == [t.client_order_id for t in cleanup.cover]
    assert cleanup_proposal([positions[0]], []).cover == ()


def test_the_plan_csv_and_state_round_trip_through_the_lake(tmp_path):
    account = Account("A1", 80_000.0, 100_000.0)
    held = [Position("XXX", 200, 40.0), Position("AAA", 100, 90.0)]
    plan = build_plan({"AAA": 0.2, "BBB": 0.09}, account, held, PRICES)
    data = plan_csv(plan)
    assert data.decode().splitlines()[0] == (
        "client_order_id,symbol,side,quantity,price,value,current_shares,target_shares,target_weight,action"
    )
    assert parse_plan_csv(data) == plan.trades
    created = datetime(2025, 3, 3, 17, 5, tzinfo=timezone(timedelta(hours=-5)))
    state = portfolio_state(plan, account, held, PRICES, plan_hash(data), created)
    assert state["created_at"] == "2025-03-03T22:05:00+00:00"
    assert [p["symbol"] for p in state["positions"]] == ["AAA", "XXX"]
    assert (state["account_id"], state["cash"], state["net_liquidation"], state["mode"]) == (
        "A1", 80_000.0, 100_000.0, "cash_reserve"
    )  # fmt: skip
    assert (state["reserve"], state["deploy_cash"], state["trades"], state["plan_id"]) == (
        70_000.0, None, 3, plan.plan_id
    )  # fmt: skip
    assert state["plan_sha256"] == plan_hash(data) and state["prices"] == PRICES

    lake = Lake(str(tmp_path))
    assert write_plan(lake, "etf/plan", plan, state) == (
        "etf/plan/trade_plan.csv",
        "etf/plan/portfolio_state.json",
    )
    assert read_plan(lake, "etf/plan") == (json.loads(json.dumps(state)), data)
    with pytest.raises(ValueError, match="not the hash of this plan"):
        write_plan(lake, "etf/other", plan, {**state, "plan_sha256": "0" * 64})
    assert not lake.exists("etf/other/portfolio_state.json")


def test_the_state_needs_an_aware_creation_time():
    plan = build_plan({}, Account("A1", 1e5, 1e5), [], PRICES)
    with pytest.raises(ValueError, match="tz-aware"):
        portfolio_state(plan, Account("A1", 1e5, 1e5), [], {}, "h", datetime(2025, 3, 3))
    assert portfolio_state(plan, Account("A1", 1e5, 1e5), [], {}, "h", datetime(2025, 3, 3, tzinfo=UTC))

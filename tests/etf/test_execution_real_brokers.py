"""Guarded execution against the real broker adapters (alpaca-py, ib_async) and their loopback fakes:
a live run broken part-way and retried places each planned order exactly once, a dry run sends
nothing, a drifted account is refused; then the same through Dagster (trade_plan_job and
execute_trades) with IB as the broker."""

import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import polars as pl
import pytest

from finance_dag.brokers.alpaca import AlpacaBroker
from finance_dag.brokers.base import Broker, BrokerError, OrderRequest
from finance_dag.brokers.ib import IbBroker
from finance_dag.core.http import RateLimiter, RetryPolicy
from finance_dag.core.lake import Lake
from finance_dag.defs.etf.portfolio import plan_folder
from finance_dag.defs.etf.resources import BrokerResource
from finance_dag.etf.execution import ExecutionError, check_plan, execute_plan
from finance_dag.etf.trades import (
    TradePlan,
    build_plan,
    parse_plan_csv,
    plan_csv,
    plan_hash,
    portfolio_state,
    read_plan,
    write_plan,
)
from finance_dag.market_data.daily import DAILY_PRICE_SCHEMA
from finance_dag.platform.partitions import session_range_tags
from finance_dag.platform.vendors import IbResource
from finance_dag.sim.vendors import shared_etf_market
from finance_dag.testing.alpaca_trading import FakeAlpacaTrading
from finance_dag.testing.ib_gateway import FakeIbGateway
from tests.support import ETF_WINDOW, make_defs, run_job

pytestmark = pytest.mark.vendors

PRICES = {"SPY": 500.0, "QQQ": 400.0, "IWM": 200.0, "TLT": 90.0, "GLD": 180.0, "EFA": 75.0, "VNQ": 85.0}
TARGET = {"SPY": 0.2, "GLD": 0.2, "EFA": 0.2, "VNQ": 0.15, "TLT": 0.15}
HELD = {"SPY": (40, 450.0), "IWM": (100, 190.0), "QQQ": (50, 380.0)}  # IWM and QQQ are sold out of
CASH = 200_000.0
NOW = datetime(2025, 3, 4, 15, 0, tzinfo=UTC)
PLANNED = NOW - timedelta(hours=1)
FOLDER = "trade_plan/date=2025-03-03"


class Clock:
    """The fakes' clock: one second later at every reading, from half an hour before ``NOW``."""

    def __init__(self) -> None:
        self.now = NOW - timedelta(minutes=30)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def no_history(symbol: str, start: date, end: date) -> pl.DataFrame:
    return pl.DataFrame(schema=DAILY_PRICE_SCHEMA)


@dataclass
class Venue:
    """One broker and its fake: how to connect, what the fake holds, how to break it."""

    name: str
    connect: Callable[[str], Broker]  # purpose "plan" or "trade"
    placed: Callable[[], Counter[str]]  # client order id -> orders the fake accepted under it
    requests: Callable[[], int]  # requests the fake has seen
    set_position: Callable[[str, int], None]
    breaks: dict[str, Callable[[], None]]  # fault kind -> arm it (just before an order is sent)
    heal: Callable[[], None]  # the fake answers normally again


@pytest.fixture(params=["alpaca", "ib"])
def venue(request) -> Iterator[Venue]:
    if request.param == "alpaca":
        with FakeAlpacaTrading(PRICES.__getitem__, cash=CASH, positions=dict(HELD), clock=Clock()) as fake:
            policy = RetryPolicy(attempts=3, initial_wait=0.0, jitter=0.0, timeout=2.0, sleep=lambda s: None)

            def post(r) -> bool:
                return r.method == "POST"

            def before_sending() -> None:  # every attempt at the order fails: nothing placed
                fake.inject("500", times=None, match=post)

            def answer_lost() -> None:  # placed, its answer cut; the retries then fail
                fake.inject("truncated", match=post)
                fake.inject("500", times=None, match=post)

            def set_position(symbol: str, quantity: int) -> None:
                fake.positions[symbol] = (quantity, fake.positions[symbol][1])

            yield Venue(
                "alpaca",
                lambda purpose: AlpacaBroker(
                    "PKTEST",
                    "sk-test",
                    base_url=fake.url,
                    policy=policy,
                    limiter=RateLimiter([(10_000, 60.0)]),
                ),
                lambda: Counter(o.client_order_id for o in fake.orders),
                fake.total,
                set_position,
                {"before_sending": before_sending, "answer_lost": answer_lost},
                fake.clear_faults,
            )
    else:
        with FakeIbGateway(
            no_history, quote=PRICES.__getitem__, cash=CASH, positions=dict(HELD), clock=Clock()
        ) as fake:

            def set_position(symbol: str, quantity: int) -> None:
                with fake.lock:
                    fake.positions[symbol] = (quantity, fake.positions[symbol][1])

            yield Venue(
                "ib",
                lambda purpose: IbBroker(
                    port=fake.port,
                    client_id=5 if purpose == "plan" else 6,
                    readonly=purpose == "plan",
                    timeout=3.0,
                ),  # fmt: skip
                lambda: Counter(o.order_ref for o in fake.orders),
                lambda: sum(fake.requests.values()),
                set_position,
                {
                    "before_sending": lambda: fake.disconnect_after(request="placeOrder"),
                    "answer_lost": lambda: fake.disconnect_after(messages=0),
                },
                fake.clear_faults,
            )


def plan_at(venue: Venue, lake: Lake) -> TradePlan:
    """The plan against the fake's account, written to the lake as the trade_plan asset does."""
    broker = venue.connect("plan")
    try:
        account, positions = broker.account(), broker.positions()
        assert broker.open_orders() == []
    finally:
        broker.close()
    plan = build_plan(TARGET, account, positions, PRICES)
    state = portfolio_state(plan, account, positions, PRICES, plan_hash(plan_csv(plan)), PLANNED)
    write_plan(lake, FOLDER, plan, state)
    return plan


class BreaksAt:
    """The broker, with ``arm`` called just before the ``nth`` order is sent."""

    def __init__(self, broker: Broker, nth: int, arm: Callable[[], None]) -> None:
        self.broker, self.left, self.arm = broker, nth, arm

    def __getattr__(self, name: str):
        return getattr(self.broker, name)

    def place_order(self, request: OrderRequest):
        self.left -= 1
        if self.left == 0:
            self.arm()
        return self.broker.place_order(request)


@pytest.fixture
def lake(tmp_path) -> Lake:
    return Lake(str(tmp_path / "lake"))


def test_the_plan_sells_two_exits_and_buys_five(venue, lake) -> None:
    plan = plan_at(venue, lake)
    assert [(t.symbol, t.side, t.action) for t in plan.trades] == [
        ("IWM", "sell", "exit"),
        ("QQQ", "sell", "exit"),
        ("EFA", "buy", "new"),
        ("GLD", "buy", "new"),
        ("SPY", "buy", "increase"),
        ("TLT", "buy", "new"),
        ("VNQ", "buy", "new"),
    ]
    assert plan.buy_scale < 1.0 and plan.cash_after >= 70_000.0  # the reserve holds


@pytest.mark.chaos("order never placed twice", faults="disconnect")
@pytest.mark.parametrize("fault", ["before_sending", "answer_lost"])
def test_a_retried_live_run_places_each_order_exactly_once(venue, lake, fault) -> None:
    plan = plan_at(venue, lake)
    state, data = read_plan(lake, FOLDER)
    trades = parse_plan_csv(data)
    efa = next(t for t in trades if t.symbol == "EFA")

    broker = venue.connect("trade")
    try:
        assert check_plan(state, data, broker, NOW) == []
        with pytest.raises(ExecutionError) as failed:
            execute_plan(trades, BreaksAt(broker, 3, venue.breaks[fault]), live=True)
    finally:
        broker.close()
    report = failed.value.report
    assert [(r.symbol, r.outcome) for r in report.rows] == [
        ("IWM", "placed"),
        ("QQQ", "placed"),
        ("EFA", "failed"),
    ]
    assert report.error.startswith(
        f"execution stopped at trade 3 of 7 (buy {efa.quantity} EFA, {efa.client_order_id}): {venue.name}: "
    )
    assert "2 trades placed or found before it, 4 not attempted. Run the same plan again" in report.error
    assert isinstance(failed.value.__cause__, BrokerError)
    cause = "failed after 3 attempt(s) (HTTP 500)" if venue.name == "alpaca" else "(client id 6) lost"
    assert cause in report.error
    assert sum(venue.placed().values()) == (2 if fault == "before_sending" else 3)
    venue.heal()

    retry = venue.connect("trade")
    try:
        assert check_plan(state, data, retry, NOW) == []  # the plan's own fills are not drift
        second = execute_plan(trades, retry, live=True)
        held = {p.symbol: p.quantity for p in retry.positions()}
    finally:
        retry.close()
    efa_outcome = "already_placed" if fault == "answer_lost" else "placed"
    assert [(r.symbol, r.outcome) for r in second.rows] == [
        ("IWM", "already_placed"),
        ("QQQ", "already_placed"),
        ("EFA", efa_outcome),
        ("GLD", "placed"),
        ("SPY", "placed"),
        ("TLT", "placed"),
        ("VNQ", "placed"),
    ]
    assert venue.placed() == Counter({t.client_order_id: 1 for t in plan.trades})
    assert {f.client_order_id for f in second.fills} == {t.client_order_id for t in plan.trades}
    assert all(r.filled_quantity == r.quantity for r in second.rows)
    assert held == {t.symbol: t.target_shares for t in plan.trades if t.target_shares}

    again = venue.connect("trade")
    try:  # a third run finds every order and places nothing
        third = execute_plan(trades, again, live=True)
    finally:
        again.close()
    assert {r.outcome for r in third.rows} == {"already_placed"}
    assert venue.placed() == Counter({t.client_order_id: 1 for t in plan.trades})


def test_a_dry_run_sends_nothing_to_the_broker(venue, lake) -> None:
    plan_at(venue, lake)
    _, data = read_plan(lake, FOLDER)
    before = venue.requests()
    broker = venue.connect("trade")
    try:
        report = execute_plan(parse_plan_csv(data), broker, live=False)
    finally:
        broker.close()
    assert [r.outcome for r in report.rows] == ["dry_run"] * 7
    assert venue.requests() == before and venue.placed() == Counter()


@pytest.mark.chaos("drifted trade plan", faults="position-drift")
def test_a_drifted_account_is_refused_naming_the_symbol(venue, lake) -> None:
    plan_at(venue, lake)
    state, data = read_plan(lake, FOLDER)
    venue.set_position("SPY", 45)  # someone bought 5 SPY by hand after planning
    broker = venue.connect("trade")
    try:
        reasons = check_plan(state, data, broker, NOW)
    finally:
        broker.close()
    assert reasons == ["the position in SPY changed: 40 shares at planning, 45 now"]
    assert venue.placed() == Counter()


def test_ib_fills_in_the_second_the_plan_was_made_are_the_plan_s_own(lake) -> None:
    """IB stamps executions in whole seconds: fills in the same second as the plan's (sub-second)
    creation time must still count as the plan's own when a retry is checked."""
    with FakeIbGateway(
        no_history, quote=PRICES.__getitem__, cash=CASH, positions=dict(HELD), clock=lambda: NOW
    ) as fake:
        broker = IbBroker(port=fake.port, client_id=6, timeout=3.0)
        try:
            account, positions = broker.account(), broker.positions()
            plan = build_plan(TARGET, account, positions, PRICES)
            created = NOW + timedelta(milliseconds=400)  # the fills below are stamped NOW
            state = portfolio_state(plan, account, positions, PRICES, plan_hash(plan_csv(plan)), created)
            write_plan(lake, FOLDER, plan, state)
            state, data = read_plan(lake, FOLDER)
            sells = [t for t in parse_plan_csv(data) if t.side == "sell"]
            execute_plan(sells, broker, live=True)  # a run that stopped after the sells
            assert len(broker.fills(since=created)) == 2
            assert check_plan(state, data, broker, NOW + timedelta(seconds=1)) == []
        finally:
            broker.close()


# ---- through Dagster ----------------------------------------------------------------------
DAY = date(2024, 11, 29)
LIVE = {"ops": {"execute_trade_plan": {"config": {"live": True}}}}


def execute_trades(
    defs: dg.Definitions, instance, run_config: dict | None = None
) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def("execute_trades").execute_in_process(
        run_config=run_config or {}, instance=instance, raise_on_error=False
    )


def test_trade_plan_and_execute_trades_against_the_ib_gateway(tmp_path) -> None:
    etf = shared_etf_market(7)
    closes = dict(etf.daily_prices(list(etf.symbols), DAY, DAY).select("symbol", "close").iter_rows())

    def quote(symbol: str) -> float:
        if symbol not in closes:
            raise LookupError(symbol)
        return closes[symbol]

    def history(symbol: str, first: date, last: date) -> pl.DataFrame:
        return etf.daily_prices([symbol], first, last)

    root = str(tmp_path / "lake")
    lake = Lake(root)
    with (
        FakeIbGateway(history, quote=quote, cash=500_000.0, positions={"SPY": (100, 560.0)}) as fake,
        dg.DagsterInstance.ephemeral() as instance,  # in memory: a year of sessions' events stays fast
    ):
        ib = IbResource(host=fake.host, port=fake.port, plan_client_id=5, trade_client_id=6, timeout_s=5.0)
        defs = make_defs(
            root, env={**ETF_WINDOW, "BROKER": "ib"}, broker=BrokerResource(broker="ib", storage=root, ib=ib)
        )
        first = date.fromisoformat(ETF_WINDOW["ETF_START_DATE"])
        universe = dg.define_asset_job("etf_universe_only", selection=["etf_universe"])
        with_universe = dg.Definitions.merge(defs, dg.Definitions(jobs=[universe]))
        partition = {"dagster/partition": DAY.isoformat()}
        run_job(with_universe, instance, "etf_universe_only", partition)
        run_job(defs, instance, "etf_history_job", session_range_tags(first, DAY))
        run_job(defs, instance, "etf_job", partition)

        # the gateway drops the planning session after answering account and positions, when the
        # open orders are asked for (ib_async asks for positions while connecting): no state file
        fake.disconnect_after(request="reqAllOpenOrders")
        failed = run_job(defs, instance, "trade_plan_job", partition, ok=False)
        failure = next(e for e in failed.all_events if e.event_type_value == "STEP_FAILURE")
        message = failure.event_specific_data.error.to_string()
        assert "trade plan for 2024-11-29 not written: ib: open orders: connection to 127.0.0.1:" in message
        assert "(client id 5) lost" in message
        assert not lake.exists(f"{plan_folder(DAY.isoformat())}/portfolio_state.json")
        assert not lake.exists(f"{plan_folder(DAY.isoformat())}/trade_plan.csv")

        run_job(defs, instance, "trade_plan_job", partition)
        state, data = read_plan(lake, plan_folder(DAY.isoformat()))
        planned = parse_plan_csv(data)
        assert state["account_id"] == fake.account and len(planned) > 10
        assert fake.orders == [] and fake.requests["placeOrder"] == 0  # planning is read-only

        dry = execute_trades(defs, instance)
        assert dry.success and fake.requests["placeOrder"] == 0

        placed = execute_trades(defs, instance, LIVE)
        assert placed.success, [e.message for e in placed.all_events if e.is_failure]
        again = execute_trades(defs, instance, LIVE)
        assert again.success, [e.message for e in again.all_events if e.is_failure]

        assert Counter(o.order_ref for o in fake.orders) == Counter(t.client_order_id for t in planned)
        assert all(o.status == "Filled" for o in fake.orders)
        with fake.lock:
            held = {s: round(q) for s, (q, _) in fake.positions.items()}
        expected = {"SPY": 100} | {t.symbol: t.target_shares for t in planned}
        assert held == {symbol: shares for symbol, shares in expected.items() if shares}
        outcomes = {
            run.run_id: Counter(r["outcome"] for r in report(lake, run.run_id)["rows"])
            for run in (placed, again)
        }
        assert outcomes[placed.run_id] == Counter({"placed": len(planned)})
        assert outcomes[again.run_id] == Counter({"already_placed": len(planned)})


def report(lake: Lake, run_id: str) -> dict:
    return json.loads(lake.read_bytes(f"trade_executions/date={DAY.isoformat()}/{run_id}.json"))

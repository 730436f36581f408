"""The ``execute_trades`` job: places a trade plan at the broker, never on a schedule.

A person launches it (UI launchpad or ``dagster job execute``) with ``ExecuteConfig``. It reads
``portfolio_state.json`` and ``trade_plan.csv`` of the plan's session, connects to the broker
for trading, and refuses — placing nothing — when the plan file was edited, the plan is older
than ``max_plan_age_hours``, or the positions or cash (beyond ``cash_tolerance``) changed since
planning. It runs dry unless ``live`` is true: a dry run makes no broker call beyond the checks
and lists what it would place. Live, it cancels the open orders the cleanup proposed, then
places sells before buys, each under its deterministic client order id after asking the broker
whether that id was already placed, so a retried run never places an order twice. The report
(every order's outcome, fills, the end account) is written to
``trade_executions/date=<session>/<run id>.json``.
"""

import json
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

import dagster as dg
import polars as pl

from finance_dag.brokers import BrokerError
from finance_dag.core.reports import markdown_table
from finance_dag.defs.etf.portfolio import plan_folder
from finance_dag.defs.etf.resources import BrokerResource
from finance_dag.etf import execution, trades
from finance_dag.platform.storage import LakeResource

JOB = "execute_trades"


class ExecuteConfig(dg.Config):
    """Which plan to execute and how; ``live`` false (the default) places nothing."""

    plan_date: str | None = None  # the plan's session; default: the newest plan in the lake
    live: bool = False
    max_plan_age_hours: float = execution.MAX_AGE.total_seconds() / 3600
    cash_tolerance: float = execution.CASH_TOLERANCE


def newest_plan(lake: LakeResource) -> str:
    """The session of the newest complete plan (one with its state file) in the lake."""
    sessions = sorted(
        info.path.split("date=")[1].split("/")[0]
        for info in lake.lake.list_files("trade_plan", suffix=trades.STATE_FILE)
    )
    if not sessions:
        raise dg.Failure("no trade plan in the lake: materialise trade_plan first")
    return sessions[-1]


@dg.op(
    description=(
        "Checks the plan against the broker (edited, stale, drifted positions or cash: refused), then "
        "dry-runs it, or with live=true cancels the proposed orders and places each trade at most once."
    ),
    tags={"dagster/pool": "broker"},
    out=dg.Out(dg.Nothing),
)
def execute_trade_plan(
    context: dg.OpExecutionContext, config: ExecuteConfig, lake: LakeResource, broker: BrokerResource
) -> dg.Output:
    session = config.plan_date or newest_plan(lake)
    state, plan_bytes = trades.read_plan(lake.lake, plan_folder(session))
    connection = broker.connect("trade", prices=state["prices"])
    try:
        refusals = execution.check_plan(
            state,
            plan_bytes,
            connection,
            datetime.now(UTC),
            timedelta(hours=config.max_plan_age_hours),
            config.cash_tolerance,
        )
        if refusals:
            raise dg.Failure(
                f"refused to execute the plan of {session}; nothing was placed: " + " ".join(refusals),
                metadata={"reasons": dg.MetadataValue.md("\n".join(f"- {r}" for r in refusals))},
            )
        if config.live:
            open_now = {o.order_id for o in connection.open_orders()}
            for order_id in state["cleanup"]["cancel"]:
                if order_id in open_now:
                    connection.cancel(order_id)
        try:
            report = execution.execute_plan(trades.parse_plan_csv(plan_bytes), connection, config.live)
        except execution.ExecutionError as error:
            record(context, lake, session, error.report)
            raise dg.Failure(
                f"execution of {session} stopped: {error}; re-run to continue (no order is placed twice)"
            ) from error
    except BrokerError as error:
        raise dg.Failure(f"broker failed while executing the plan of {session}: {error}") from error
    finally:
        connection.close()
    path = record(context, lake, session, report)
    rows = pl.DataFrame([asdict(r) for r in report.rows]) if report.rows else pl.DataFrame()
    outcomes = rows.group_by("outcome").len().sort("outcome") if rows.height else rows
    return dg.Output(
        None,
        metadata={
            "plan": session,
            "live": config.live,
            "outcomes": dg.MetadataValue.md(markdown_table(outcomes)),
            "orders": dg.MetadataValue.md(markdown_table(rows)),
            "report": dg.MetadataValue.path(lake.lake.uri(path)),
        },
    )


def record(
    context: dg.OpExecutionContext, lake: LakeResource, session: str, report: execution.ExecutionReport
) -> str:
    """Write the execution report of this run to the lake; returns its path."""
    path = f"trade_executions/date={session}/{context.run_id}.json"
    lake.lake.write_bytes(path, json.dumps(asdict(report), default=str, indent=1).encode())
    return path


@dg.job(
    name=JOB,
    description=(
        "Executes a trade plan at the broker: refuses an edited, stale or drifted plan; dry run unless "
        "live=true; every order placed at most once. Never scheduled: a person launches it."
    ),
    tags={"finance_dag/places_orders": "only with live=true"},
)
def execute_trades() -> None:
    execute_trade_plan()

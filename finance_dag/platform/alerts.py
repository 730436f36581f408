"""Alerts: a failed run and a drop in coverage, recorded in the lake and posted to a webhook.

Two sensors, on by default (docs/operations.md, "Alerts"):

- ``alert_on_run_failure`` (``dg.run_failure_sensor``): every job of the code location, the
  implicit asset job of UI materialisations included. One alert per failed run, naming the job,
  the partitions, what launched it and each failed step's error.
- ``coverage_alerts``: reads the ``bar_coverage`` and ``coverage_report`` materialisations
  recorded since its cursor. A session alerts when its mean coverage is below
  ``settings.coverage_threshold`` or when a symbol falls below it, i.e. is below on that session
  and was at or above it on the previous session in the lake (a symbol that is always thin,
  or a new one, does not alert every day: the refill sensor and the report show it). A report
  alerts when it has fewer research-ready symbols than the report before it, naming the symbols
  that lost readiness.

Every alert is a JSON record written atomically to the lake at
``alerts/date=YYYY-MM-DD/<kind>-<id>.json`` (the New York date of the failure or of the
materialisation; the id is the run's, so the same run never records twice: a record already in
the lake is neither rewritten nor posted again). When ``FINANCE_DAG_ALERT_WEBHOOK_URL`` is set,
the ``alert_webhook`` resource (which reads it through ``dg.EnvVar``: the UI shows the
variable's name, never the URL) POSTs a Slack-compatible ``{"text": ...}`` with the record's
fields beside it; more than ``MAX_POSTS_PER_TICK`` coverage alerts in one tick (a backfill) go
out as one digest message. A failed POST never fails the sensor: the record keeps the
delivery's status and error (redacted) and a warning is logged. The webhook URL is masked
everywhere it could show (``finance_dag.core.webhook``): logs, records, errors.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import polars as pl
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    BACKFILL_ID_TAG,
    PARTITION_NAME_TAG,
    SCHEDULE_NAME_TAG,
    SENSOR_NAME_TAG,
)
from pydantic import Field

from finance_dag.core.calendar import NEW_YORK
from finance_dag.core.lake import Lake, partition_path
from finance_dag.core.settings import ALERT_WEBHOOK_VAR, Settings
from finance_dag.core.webhook import Delivery, post_json, redact_url, redact_webhook
from finance_dag.platform.ranged import RANGE_TAG
from finance_dag.platform.storage import LakeResource

ALERTS = "alerts"  # lake folder of the records
LOCATION = "finance_dag"
BAR_COVERAGE = dg.AssetKey("bar_coverage")
COVERAGE_REPORT = dg.AssetKey("coverage_report")
READY_METADATA = "ready_for_research"  # coverage_report's list of research-ready symbols
MAX_POSTS_PER_TICK = 10  # more coverage alerts at once are posted as one digest message
EVENTS_PER_TICK = 200  # materialisations read per asset and tick (a backlog takes a few ticks)
FIRST_LOOKBACK = timedelta(days=1)  # without a cursor: materialisations of the last day
STEPS_SHOWN = 5
ERROR_CHARS = 500
SYMBOLS_SHOWN = 10  # in a message
DETAILS_SHOWN = 100  # in a record's lists (their counts beside them)


# ---- the webhook ---------------------------------------------------------------------------
class AlertWebhookResource(dg.ConfigurableResource):
    """Where alerts are POSTed. Give ``url`` as ``dg.EnvVar("FINANCE_DAG_ALERT_WEBHOOK_URL")``
    so the UI shows the variable, never the URL (it carries a token); empty: no webhook, the
    alerts are only recorded in the lake."""

    url: str = Field(default="", description=f'Give dg.EnvVar("{ALERT_WEBHOOK_VAR}"); empty: no webhook.')
    timeout_seconds: float = Field(default=10.0, description="Seconds one POST may take.")
    attempts: int = Field(default=3, description="Tries per alert (429, 5xx and dropped connections retry).")
    retry_wait_seconds: float = Field(default=1.0, description="First wait between tries; doubles each time.")

    @property
    def destination(self) -> str | None:
        """The webhook with its secret parts masked (``https://hooks.slack.com/***``), or None."""
        return redact_url(self.url) if self.url.strip() else None

    def redact(self, text: str) -> str:
        """``text`` with the webhook URL and its parts (and credential parameters) masked."""
        return redact_webhook(text, self.url)

    def post(self, payload: Mapping[str, Any]) -> Delivery:
        """POST ``payload`` as JSON; never raises (see ``finance_dag.core.webhook.post_json``)."""
        return post_json(
            self.url,
            dict(payload),
            timeout=self.timeout_seconds,
            attempts=self.attempts,
            retry_wait=self.retry_wait_seconds,
        )


def alert_resources(settings: Settings) -> dict[str, object]:
    """``alert_webhook``: the URL through ``dg.EnvVar`` when the settings say it is set."""
    return {
        "alert_webhook": AlertWebhookResource(
            url=dg.EnvVar(ALERT_WEBHOOK_VAR) if settings.alert_webhook else "",
            timeout_seconds=settings.alert_timeout,
        )
    }


# ---- alerts and their records --------------------------------------------------------------
@dataclass(frozen=True)
class Alert:
    """One alert: what happened (``title``, ``lines``, ``details``) and where it is recorded."""

    kind: str  # run_failure, coverage_session, coverage_ready
    id: str  # unique per kind: the run (and session) it is about
    severity: str  # error or warning
    title: str
    occurred_at: datetime  # when the run failed or the materialisation was recorded
    lines: tuple[str, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> str:
        day = self.occurred_at.astimezone(NEW_YORK).date().isoformat()
        return f"{ALERTS}/date={day}/{self.kind}-{re.sub(r'[^A-Za-z0-9_.-]', '_', self.id)}.json"

    @property
    def text(self) -> str:
        """The message: a bold title, then one line per fact (Slack mrkdwn, readable as plain text)."""
        return "\n".join([f"*[{LOCATION}] {self.title}*", *self.lines])

    def payload(self) -> dict[str, Any]:
        """What the webhook receives: Slack's ``text`` and the record's fields beside it."""
        return {
            "text": self.text,
            "kind": self.kind,
            "id": self.id,
            "severity": self.severity,
            "title": self.title,
            "location": LOCATION,
            "occurred_at": self.occurred_at.isoformat(timespec="seconds"),
            "record": self.path,
            "details": dict(self.details),
        }

    def record(self, delivery: Mapping[str, Any]) -> dict[str, Any]:
        """The lake record: the payload and what happened to its delivery."""
        return {**self.payload(), "delivery": dict(delivery)}


def _clean(value: Any, webhook: AlertWebhookResource) -> Any:
    """``value`` (nested) with every string redacted."""
    if isinstance(value, str):
        return webhook.redact(value)
    if isinstance(value, Mapping):
        return {str(k): _clean(v, webhook) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v, webhook) for v in value]
    return value


def redacted(alert: Alert, webhook: AlertWebhookResource) -> Alert:
    """``alert`` with every text redacted (an error message may quote a URL or a key)."""
    return Alert(
        kind=alert.kind,
        id=alert.id,
        severity=alert.severity,
        title=webhook.redact(alert.title),
        occurred_at=alert.occurred_at,
        lines=tuple(webhook.redact(line) for line in alert.lines),
        details=_clean(alert.details, webhook),
    )


def raise_alerts(alerts: Sequence[Alert], lake: Lake, webhook: AlertWebhookResource, log: Any) -> list[str]:
    """Post and record each alert not yet in the lake; returns the paths recorded now.

    A record in the lake means the alert was handled: it is not posted or written again. The
    record is written after the POST, so a tick that dies between the two may post twice but
    never records twice. More than ``MAX_POSTS_PER_TICK`` new alerts go out as one digest."""
    fresh = []
    for alert in alerts:
        if lake.exists(alert.path):
            log.info(f"alert {alert.kind} {alert.id}: already recorded at {alert.path}, not sent again")
        else:
            fresh.append(redacted(alert, webhook))
    if not fresh:
        return []
    if len(fresh) > MAX_POSTS_PER_TICK:
        shared = webhook.post(_digest(fresh))
        deliveries = [{**shared.as_dict(), "digest": True}] * len(fresh)
    else:
        deliveries = [webhook.post(alert.payload()).as_dict() for alert in fresh]
    for alert, delivery in zip(fresh, deliveries, strict=True):
        if delivery["status"] == "failed":
            log.warning(
                f"alert {alert.kind} {alert.id}: the webhook {delivery['webhook']} failed "
                f"({delivery['error']}); the alert is recorded at {lake.uri(alert.path)}"
            )
        lake.write_bytes(alert.path, json.dumps(alert.record(delivery), indent=2, default=str).encode())
        log.info(
            f"alert {alert.kind} {alert.id}: {alert.title} (recorded at {alert.path}, {delivery['status']})"
        )
    return [alert.path for alert in fresh]


def _digest(alerts: Sequence[Alert]) -> dict[str, Any]:
    shown = [f"• {a.title}" for a in alerts[:MAX_POSTS_PER_TICK]]
    more = len(alerts) - len(shown)
    folders = sorted({a.path.rsplit("/", 1)[0] for a in alerts})
    return {
        "text": "\n".join(
            [
                f"*[{LOCATION}] {len(alerts)} alerts at once*",
                *shown,
                *([f"… and {more} more"] if more else []),
                f"records: {', '.join(folders)}",
            ]
        ),
        "kind": "digest",
        "location": LOCATION,
        "alerts": [{"kind": a.kind, "id": a.id, "title": a.title, "record": a.path} for a in alerts],
    }


# ---- run failures --------------------------------------------------------------------------
def run_partitions(run: dg.DagsterRun) -> str | None:
    """What a run covered: its partition, the ranged writer's summary, or its range."""
    tags = run.tags
    if PARTITION_NAME_TAG in tags:
        return tags[PARTITION_NAME_TAG]
    if RANGE_TAG in tags:
        return tags[RANGE_TAG]
    start, end = tags.get(ASSET_PARTITION_RANGE_START_TAG), tags.get(ASSET_PARTITION_RANGE_END_TAG)
    return f"{start}...{end}" if start and end else None


def launched_by(run: dg.DagsterRun) -> str:
    tags = run.tags
    for tag, what in (
        (SCHEDULE_NAME_TAG, "schedule"),
        (SENSOR_NAME_TAG, "sensor"),
        (BACKFILL_ID_TAG, "backfill"),
    ):
        if tags.get(tag):
            return f"{what} {tags[tag]}"
    return "manual"


def _short(text: str) -> str:
    """An error in one line: its lines joined, the exception's module path dropped, at most
    ``ERROR_CHARS`` characters."""
    line = " / ".join(part.strip() for part in text.strip().splitlines() if part.strip())
    line = re.sub(r"^(?:[A-Za-z_][\w]*\.)+(\w+: )", r"\1", line)
    return line if len(line) <= ERROR_CHARS else line[: ERROR_CHARS - 1] + "…"


def step_error(event: Any) -> str:
    """What failed a step: the user's exception rather than Dagster's wrapper around it."""
    error = getattr(event.event_specific_data, "error", None)
    if error is None:
        return _short(event.message or "")
    while error.cause is not None and error.cls_name == "DagsterExecutionStepExecutionError":
        error = error.cause
    return _short(error.message)


def run_failure_alert(context: dg.RunFailureSensorContext) -> Alert:
    """The alert for the failed run of ``context``."""
    run = context.dagster_run
    record = context.instance.get_run_record_by_id(run.run_id)
    ended = (record.end_time if record else None) or (
        record.update_timestamp.timestamp() if record else datetime.now(UTC).timestamp()
    )
    steps: dict[str, str] = {}
    for event in context.get_step_failure_events():
        steps[event.step_key or "?"] = step_error(event)
    partitions = run_partitions(run)
    reason = _short(context.failure_event.message or "")
    lines = [f"run `{run.run_id}` ({launched_by(run)})"]
    lines += [f"step `{step}`: {message}" for step, message in list(steps.items())[:STEPS_SHOWN]]
    if len(steps) > STEPS_SHOWN:
        lines.append(f"… and {len(steps) - STEPS_SHOWN} more failed steps")
    if not steps and reason:
        lines.append(reason)
    return Alert(
        kind="run_failure",
        id=run.run_id,
        severity="error",
        title=f"run failed: {run.job_name}" + (f" ({partitions})" if partitions else ""),
        occurred_at=datetime.fromtimestamp(ended, UTC),
        lines=tuple(lines),
        details={
            "run_id": run.run_id,
            "job": run.job_name,
            "partitions": partitions,
            "launched_by": launched_by(run),
            "failure": reason,
            "steps_failed": steps,
        },
    )


def build_run_failure_sensor() -> dg.SensorDefinition:
    @dg.run_failure_sensor(
        name="alert_on_run_failure",
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Alerts on every failed run of the code location: a record in the lake "
            "(alerts/date=D/run_failure-<run id>.json) and, when FINANCE_DAG_ALERT_WEBHOOK_URL is set, "
            "a webhook POST naming the job, its partitions and each failed step's error."
        ),
        metadata={
            "records": f"{ALERTS}/date=YYYY-MM-DD/run_failure-<run id>.json",
            "webhook": ALERT_WEBHOOK_VAR,
        },
    )
    def alert_on_run_failure(
        context: dg.RunFailureSensorContext, lake: LakeResource, alert_webhook: AlertWebhookResource
    ) -> None:
        raise_alerts([run_failure_alert(context)], lake.lake, alert_webhook, context.log)

    return alert_on_run_failure


# ---- coverage ------------------------------------------------------------------------------
def session_alert(
    session: str,
    coverage: pl.DataFrame,
    previous: tuple[str, pl.DataFrame] | None,
    threshold: float,
    source: str,
    occurred_at: datetime,
) -> Alert | None:
    """The alert for a session's ``coverage`` (rows of ``bar_coverage``), or None: its mean is
    below ``threshold``, or a symbol below it was at or above it on the ``previous`` session."""
    mean = float(coverage["coverage"].mean() or 0.0) if coverage.height else 0.0
    below = coverage.filter(pl.col("coverage") < threshold).sort("coverage", "symbol")
    before = dict(previous[1].select("symbol", "coverage").iter_rows()) if previous else {}
    dropped = [
        {"symbol": s, "coverage": round(c, 4), "previous": round(before[s], 4)}
        for s, c in below.select("symbol", "coverage").iter_rows()
        if s in before and before[s] >= threshold
    ]
    if mean >= threshold and not dropped:
        return None
    title = f"coverage drop on {session}: mean {mean:.1%}"
    if dropped:
        title += f", {len(dropped)} symbol{'s' if len(dropped) > 1 else ''} below {threshold:.0%}"
    lines = [f"mean coverage {mean:.1%} (threshold {threshold:.0%})"]
    lines += [
        f"{d['symbol']}: {d['coverage']:.1%} (was {d['previous']:.1%} on {previous[0]})"
        for d in dropped[:SYMBOLS_SHOWN]
        if previous
    ]
    if len(dropped) > SYMBOLS_SHOWN:
        lines.append(f"… and {len(dropped) - SYMBOLS_SHOWN} more symbols")
    lines.append(f"{below.height} of {coverage.height} symbols below the threshold; recorded by `{source}`")
    return Alert(
        kind="coverage_session",
        id=f"{session}-{source}",
        severity="warning",
        title=title,
        occurred_at=occurred_at,
        lines=tuple(lines),
        details={
            "session": session,
            "mean_coverage": round(mean, 4),
            "threshold": threshold,
            "previous_session": previous[0] if previous else None,
            "symbols_dropped": dropped[:DETAILS_SHOWN],  # worst first
            "symbols_dropped_count": len(dropped),
            "symbols_below": [  # worst first
                {"symbol": s, "coverage": round(c, 4)}
                for s, c in below.head(DETAILS_SHOWN).select("symbol", "coverage").iter_rows()
            ],
            "symbols_below_count": below.height,
            "symbols": coverage.height,
            "source": source,
        },
    )


def ready_alert(
    ready: Sequence[str],
    before: Sequence[str],
    metadata: Mapping[str, Any],
    source: str,
    occurred_at: datetime,
) -> Alert | None:
    """The alert for a coverage report with fewer research-ready symbols than the one before."""
    if len(ready) >= len(before):
        return None
    lost, gained = sorted(set(before) - set(ready)), sorted(set(ready) - set(before))
    lines = [f"research-ready symbols: {len(before)} -> {len(ready)}"]
    if lost:
        lines.append(
            f"no longer ready: {', '.join(lost[:SYMBOLS_SHOWN])}"
            + (" …" if len(lost) > SYMBOLS_SHOWN else "")
        )
    if gained:
        lines.append(
            f"newly ready: {', '.join(gained[:SYMBOLS_SHOWN])}"
            + (" …" if len(gained) > SYMBOLS_SHOWN else "")
        )
    lines.append(f"recorded by `{source}`")
    return Alert(
        kind="coverage_ready",
        id=source,
        severity="warning",
        title=f"research-ready symbols dropped: {len(before)} -> {len(ready)}",
        occurred_at=occurred_at,
        lines=tuple(lines),
        details={
            "ready_before": len(before),
            "ready_after": len(ready),
            "no_longer_ready": lost[:DETAILS_SHOWN],
            "newly_ready": gained[:DETAILS_SHOWN],
            "tiers": metadata.get("tiers"),
            "sessions": metadata.get("sessions"),
            "source": source,
        },
    )


def _value(metadata: Mapping[str, Any], key: str) -> Any:
    entry = metadata.get(key)
    return getattr(entry, "value", entry)


def _source(record: dg.EventLogRecord) -> str:
    """The run that recorded a materialisation, or the event itself for a runless one."""
    return record.run_id or f"event{record.storage_id}"


def _when(record: dg.EventLogRecord) -> datetime:
    return datetime.fromtimestamp(record.timestamp, UTC)


def _new_records(
    instance: dg.DagsterInstance, key: dg.AssetKey, after: int | None
) -> list[dg.EventLogRecord]:
    """Materialisations of ``key`` after storage id ``after`` (without one: of the last day)."""
    if after is None:
        since = (datetime.now(UTC) - FIRST_LOOKBACK).timestamp()
        records_filter = dg.AssetRecordsFilter(asset_key=key, after_timestamp=since)
    else:
        records_filter = dg.AssetRecordsFilter(asset_key=key, after_storage_id=after)
    return list(
        instance.fetch_materializations(records_filter, limit=EVENTS_PER_TICK, ascending=True).records
    )


def _session_files(lake: Lake) -> dict[str, str]:
    """Session -> its bar_coverage file, for every session in the lake."""
    found = {}
    for info in lake.list_files(BAR_COVERAGE.path[0]):
        match = re.search(r"date=(\d{4}-\d{2}-\d{2})\.parquet$", info.path)
        if match:
            found[match[1]] = info.path
    return found


def coverage_session_alerts(
    records: Iterable[dg.EventLogRecord], lake: Lake, threshold: float, log: Any
) -> list[Alert]:
    """Session alerts of the ``bar_coverage`` materialisations ``records`` (the latest per session),
    each session read from the lake with the session before it (each file read once)."""
    latest = {r.partition_key: r for r in records if r.partition_key}
    if not latest:
        return []
    files = _session_files(lake)
    ordered = sorted(files)
    read: dict[str, pl.DataFrame] = {}

    def frame(session: str) -> pl.DataFrame:
        if session not in read:
            read[session] = lake.read_parquet(files[session])
        return read[session]

    alerts = []
    for session, record in sorted(latest.items()):
        if session not in files:
            log.warning(f"coverage alert: {partition_path('bar_coverage', date=session)} is not in the lake")
            continue
        before = ordered[bisect_left(ordered, session) - 1] if bisect_left(ordered, session) else None
        try:
            coverage = frame(session)
            previous = (before, frame(before)) if before else None
        except Exception as error:  # an unreadable file costs its session, not the tick
            log.warning(f"coverage alert for {session}: cannot read the coverage: {error}")
            continue
        alert = session_alert(session, coverage, previous, threshold, _source(record), _when(record))
        if alert:
            alerts.append(alert)
    return alerts


def coverage_ready_alerts(instance: dg.DagsterInstance, records: Iterable[dg.EventLogRecord]) -> list[Alert]:
    """Report alerts: each ``coverage_report`` materialisation against the one recorded before it."""
    alerts = []
    for record in records:
        metadata = record.asset_materialization.metadata if record.asset_materialization else {}
        ready = _value(metadata, READY_METADATA)
        earlier = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=COVERAGE_REPORT, before_storage_id=record.storage_id),
            limit=1,
            ascending=False,
        ).records
        if ready is None or not earlier or earlier[0].asset_materialization is None:
            continue
        before = _value(earlier[0].asset_materialization.metadata, READY_METADATA)
        if before is None:
            continue
        plain = {k: _value(metadata, k) for k in ("tiers", "sessions")}
        alert = ready_alert(list(ready), list(before), plain, _source(record), _when(record))
        if alert:
            alerts.append(alert)
    return alerts


def build_coverage_alert_sensor(settings: Settings) -> dg.SensorDefinition:
    threshold = settings.coverage_threshold

    @dg.sensor(
        name="coverage_alerts",
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            f"Alerts when a session's mean coverage is below {threshold:.0%} (FINANCE_DAG_COVERAGE_THRESHOLD), "
            "when a symbol falls below it (at or above it on the previous session), or when a coverage "
            "report has fewer research-ready symbols than the one before: a record in the lake "
            "(alerts/date=D/coverage_*-<id>.json) and, when FINANCE_DAG_ALERT_WEBHOOK_URL is set, a webhook POST."
        ),
        metadata={
            "records": f"{ALERTS}/date=YYYY-MM-DD/coverage_session-<session>-<run id>.json, coverage_ready-<run id>.json",
            "threshold": threshold,
            "webhook": ALERT_WEBHOOK_VAR,
        },
    )
    def coverage_alerts(
        context: dg.SensorEvaluationContext, lake: LakeResource, alert_webhook: AlertWebhookResource
    ) -> dg.SensorResult:
        cursor: dict[str, int] = json.loads(context.cursor) if context.cursor else {}
        sessions = _new_records(context.instance, BAR_COVERAGE, cursor.get("bar_coverage"))
        reports = _new_records(context.instance, COVERAGE_REPORT, cursor.get("coverage_report"))
        if sessions:
            cursor["bar_coverage"] = sessions[-1].storage_id
        if reports:
            cursor["coverage_report"] = reports[-1].storage_id
        alerts = [
            *coverage_session_alerts(sessions, lake.lake, threshold, context.log),
            *coverage_ready_alerts(context.instance, reports),
        ]
        recorded = raise_alerts(alerts, lake.lake, alert_webhook, context.log)
        seen = f"{len(sessions)} bar_coverage and {len(reports)} coverage_report materialisations"
        reason = f"{seen}: {len(recorded)} alerts recorded" + (
            f" ({', '.join(recorded)})" if recorded else ""
        )
        return dg.SensorResult(skip_reason=reason, cursor=json.dumps(cursor, sort_keys=True))

    return coverage_alerts


def build_alert_sensors(settings: Settings) -> list[dg.SensorDefinition]:
    """The run-failure and coverage alert sensors (see the module docstring)."""
    return [build_run_failure_sensor(), build_coverage_alert_sensor(settings)]

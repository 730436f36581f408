"""Alerts: a failed run and a coverage drop are recorded in the lake once and posted to a webhook
(a real HTTP receiver on loopback) whose URL never shows: not in logs, records, payloads or the UI.

The run-failure sensor is evaluated on real failed runs (a market-data job with every vendor
failing a session, a tiny job quoting the URL in its error) as Dagster's docs show
(``dg.build_run_status_sensor_context``); the coverage sensor on real ``bar_coverage`` and
``coverage_report`` materialisations of the simulated market with a vendor gap injected.
"""

import json
import logging
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from finance_dag.core.settings import ALERT_WEBHOOK_VAR, SettingError
from finance_dag.core.webhook import post_json, redact_url, redact_webhook
from finance_dag.definitions import build_definitions
from finance_dag.platform import alerts
from finance_dag.platform.alerts import Alert, AlertWebhookResource, raise_alerts
from finance_dag.platform.storage import LakeResource
from tests.support import make_defs, run_job, settings_for

# A Slack-shaped URL with its token in the path and another in the query.
SECRET_PATH = "/services/T0SECRET1/B0SECRET2/XXXXSECRET3XXXX"
SECRET_QUERY = "token=qSECRET4q"
SECRETS = ("T0SECRET1", "B0SECRET2", "XXXXSECRET3XXXX", "qSECRET4q", "SECRET")
VENDORS = ("sim_alpaca", "sim_alphavantage", "sim_yahoo")
D1, D2 = date(2024, 11, 26), date(2024, 11, 27)


class Receiver:
    """A webhook on 127.0.0.1: records every POST (path, JSON body) and answers ``status``."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict]] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.posts.append((self.path, json.loads(body)))
                reply = b"ok" if receiver.status == 200 else b"internal error"
                self.send_response(receiver.status)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args) -> None:  # keep the test output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{SECRET_PATH}?{SECRET_QUERY}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def refused_url() -> str:
    """A URL on a loopback port nothing listens on: the connection is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{SECRET_PATH}?{SECRET_QUERY}"


def webhook(url: str) -> AlertWebhookResource:
    return AlertWebhookResource(url=url, timeout_seconds=2.0, attempts=2, retry_wait_seconds=0.01)


def assert_no_secret(text: str, where: str) -> None:
    leaked = [s for s in SECRETS if s in text]
    assert not leaked, f"{where} shows {leaked}: {text[:2000]}"


def records(root: Path) -> dict[str, dict]:
    """Every alert record in the lake at ``root``, by path."""
    return {
        str(p.relative_to(root)): json.loads(p.read_text()) for p in sorted((root / "alerts").rglob("*.json"))
    }


def failed_run(defs: dg.Definitions, instance) -> dg.ExecuteInProcessResult:
    """A real minute_bars run for D2 that no vendor serves: the step and the run fail."""
    return run_job(
        defs,
        instance,
        "minute_bars_job",
        {"dagster/partition": D2.isoformat()},
        ok=False,
        run_config={"ops": {"minute_bars": {"config": {"symbols": ["SPY"]}}}},
    )


def on_failure(
    defs: dg.Definitions, instance, result, root: str, hook: AlertWebhookResource, log_to=None
) -> None:
    """One evaluation of ``alert_on_run_failure`` for ``result``'s run, as the daemon does."""
    base = dg.build_sensor_context(instance=instance)
    if log_to is not None:
        base.log.addHandler(log_to)
    context = dg.build_run_status_sensor_context(
        sensor_name="alert_on_run_failure",
        dagster_event=result.get_run_failure_event(),
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        context=base,
        resources={"lake": LakeResource(root=root), "alert_webhook": hook},
    )
    defs.resolve_sensor_def("alert_on_run_failure")(context)


def test_a_failed_run_is_posted_and_recorded_once(tmp_path, instance, receiver):
    root = tmp_path / "lake"
    defs = make_defs(str(root), fail_symbol_days=[f"{v}:SPY:{D2}" for v in VENDORS])
    result = failed_run(defs, instance)
    run_id = result.dagster_run.run_id

    on_failure(defs, instance, result, str(root), webhook(receiver.url))
    on_failure(defs, instance, result, str(root), webhook(receiver.url))  # a re-evaluated tick

    assert len(receiver.posts) == 1
    path, payload = receiver.posts[0]
    assert path == f"{SECRET_PATH}?{SECRET_QUERY}"  # the real URL was used...
    assert payload["kind"] == "run_failure" and payload["id"] == run_id and payload["severity"] == "error"
    assert payload["text"].startswith(f"*[finance_dag] run failed: minute_bars_job ({D2})*")
    assert "step `minute_bars`:" in payload["text"] and "got no data from any vendor" in payload["text"]
    details = payload["details"]
    assert details["job"] == "minute_bars_job" and details["partitions"] == str(D2)
    assert details["launched_by"] == "manual" and set(details["steps_failed"]) == {"minute_bars"}
    found = records(root)
    assert len(found) == 1
    where, record = next(iter(found.items()))
    assert (
        where == record["record"]
        and where.startswith("alerts/date=")
        and where.endswith(f"run_failure-{run_id}.json")
    )
    assert record["delivery"]["status"] == "sent" and record["delivery"]["http_status"] == 200
    assert record["delivery"]["webhook"] == f"http://127.0.0.1:{receiver.server.server_address[1]}/***"
    assert {k: v for k, v in record.items() if k != "delivery"} == payload
    assert_no_secret(json.dumps(record), "the record")  # ...but never shown


def test_the_sensor_alerts_through_dagsters_tick_evaluation_without_a_webhook(tmp_path, instance):
    """As the daemon evaluates it: the first tick sets the cursor, the next alerts on the run
    that failed since; no webhook configured: recorded only."""
    root = tmp_path / "lake"
    defs = make_defs(str(root), fail_symbol_days=[f"{v}:SPY:{D2}" for v in VENDORS])
    sensor = defs.resolve_sensor_def("alert_on_run_failure")
    resources = {"lake": LakeResource(root=str(root)), "alert_webhook": AlertWebhookResource()}
    first = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, resources=resources))
    run_id = failed_run(defs, instance).dagster_run.run_id
    sensor.evaluate_tick(dg.build_sensor_context(instance=instance, resources=resources, cursor=first.cursor))
    ((path, record),) = records(root).items()
    assert path.endswith(f"run_failure-{run_id}.json")
    assert record["delivery"]["status"] == "not_configured" and record["delivery"]["webhook"] is None


@dg.op
def call_the_vendor(context: dg.OpExecutionContext) -> None:
    url = context.op_config["url"]
    context.log.info("calling the vendor")
    raise RuntimeError(f"POST {url} was refused; api_key=abcd1234 in the request")


@dg.job
def tiny_job() -> None:
    call_the_vendor()


@pytest.mark.parametrize("failure", ["http 500", "connection refused"])
def test_a_failing_webhook_keeps_the_record_and_never_shows_the_url(
    tmp_path, instance, receiver, caplog, failure
):
    """The URL (token in path and query) shows nowhere: not in the sensor's logs (Python's and
    the context's, at DEBUG, urllib3's request lines included), not in the payload although the
    run's error quotes it, not in the record's delivery error."""
    receiver.status = 500
    url = receiver.url if failure == "http 500" else refused_url()
    caplog.set_level(logging.DEBUG)
    root = tmp_path / "lake"
    result = tiny_job.execute_in_process(
        instance=instance,
        run_config={"ops": {"call_the_vendor": {"config": {"url": url}}}},
        raise_on_error=False,
    )
    assert not result.success

    on_failure(make_defs(str(root)), instance, result, str(root), webhook(url), log_to=caplog.handler)

    (record,) = records(root).values()
    delivery = record["delivery"]
    assert delivery["status"] == "failed"
    if failure == "http 500":
        assert len(receiver.posts) == 2  # retried once: 500 is transient
        assert delivery["http_status"] == 500 and "HTTP 500" in delivery["error"]
        assert_no_secret(json.dumps([body for _, body in receiver.posts]), "the payload")
        text = receiver.posts[0][1]["text"]
        assert (
            "step `call_the_vendor`: RuntimeError: POST http://127.0.0.1:" in text and "api_key=***" in text
        )
    else:
        assert delivery["http_status"] is None and "connection failed" in delivery["error"]
    assert delivery["webhook"].endswith("/***")
    assert_no_secret(json.dumps(record), "the record")
    assert_no_secret(caplog.text, "the logs")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("the webhook http://127.0.0.1:" in w and "failed" in w for w in warnings), warnings
    sensor = make_defs(str(root)).resolve_sensor_def("alert_on_run_failure")
    assert_no_secret(json.dumps({k: str(v) for k, v in sensor.metadata.items()}), "the sensor's metadata")


def test_the_ui_shows_the_variable_never_the_url(tmp_path, monkeypatch, receiver):
    from dagster._core.remote_representation.external_data import RepositorySnap
    from dagster._serdes import serialize_value

    monkeypatch.setenv(ALERT_WEBHOOK_VAR, receiver.url)
    defs = build_definitions(settings_for(str(tmp_path), ALERT_WEBHOOK_URL=receiver.url))
    snapshot = serialize_value(RepositorySnap.from_def(defs.get_repository_def()))
    assert ALERT_WEBHOOK_VAR in snapshot
    assert_no_secret(snapshot, "the code location's snapshot (what the UI shows)")
    with dg.build_resources({"alert_webhook": defs.resources["alert_webhook"]}) as built:
        assert built.alert_webhook.post({"text": "hello"}).status == "sent"  # EnvVar resolved at run time
    assert receiver.posts == [(f"{SECRET_PATH}?{SECRET_QUERY}", {"text": "hello"})]


def test_the_webhook_setting_is_checked_without_showing_it():
    assert settings_for().alert_webhook is False
    assert settings_for(ALERT_WEBHOOK_URL="https://hooks.slack.com/services/T0/B0/X").alert_webhook is True
    with pytest.raises(SettingError) as raised:
        settings_for(ALERT_WEBHOOK_URL="hooks.slack.com/services/T0SECRET1/B0/X")
    assert ALERT_WEBHOOK_VAR in str(raised.value) and "T0SECRET1" not in str(raised.value)
    with pytest.raises(SettingError, match="FINANCE_DAG_ALERT_TIMEOUT"):
        settings_for(ALERT_TIMEOUT="0")


def test_redaction_masks_every_part_that_can_carry_the_token():
    slack = "https://hooks.slack.com/services/T0SECRET1/B0SECRET2/XXXXSECRET3XXXX"
    assert redact_url(slack) == "https://hooks.slack.com/***"
    assert (
        redact_url("https://user:pw-SECRET@example.com:8443/hook?token=qSECRET4q")
        == "https://example.com:8443/***"
    )
    assert redact_url("https://example.com") == "https://example.com"
    assert redact_url("not a url with SECRET") == "***"
    # what requests and urllib3 print: the path and query without the host, or percent-encoded
    texts = [
        f"HTTPSConnectionPool(host='hooks.slack.com', port=443): Max retries exceeded with url: {SECRET_PATH}?{SECRET_QUERY}",
        f'https://hooks.slack.com:443 "POST {SECRET_PATH}?{SECRET_QUERY} HTTP/1.1" 500 14',
        f"failed: {slack}?{SECRET_QUERY}",
        "the token was qSECRET4q",
    ]
    for text in texts:
        assert_no_secret(redact_webhook(text, f"{slack}?{SECRET_QUERY}"), text)


def test_a_delivery_never_raises(caplog):
    assert post_json("", {"text": "x"}).status == "not_configured"
    delivery = post_json("http://[::1", {"text": "x"})  # unparsable
    assert delivery.status == "failed" and delivery.webhook == "***"


def alert(n: int) -> Alert:
    return Alert(
        "coverage_session",
        f"2024-11-{n:02d}-run",
        "warning",
        f"drop {n}",
        datetime(2024, 11, 29, 22, tzinfo=UTC),
    )


def test_many_alerts_at_once_are_posted_as_one_digest(tmp_path, receiver):
    lake = LakeResource(root=str(tmp_path / "lake")).lake
    many = [alert(n) for n in range(1, alerts.MAX_POSTS_PER_TICK + 3)]
    log = logging.getLogger("test")
    assert len(raise_alerts(many, lake, webhook(receiver.url), log)) == len(many)
    assert len(receiver.posts) == 1 and receiver.posts[0][1]["kind"] == "digest"
    assert "… and 2 more" in receiver.posts[0][1]["text"]
    found = records(tmp_path / "lake")
    assert len(found) == len(many) and all(r["delivery"]["digest"] for r in found.values())
    assert raise_alerts(many, lake, webhook(receiver.url), log) == [] and len(receiver.posts) == 1


def coverage_tick(defs, instance, root: str, hook, cursor: str | None) -> dg.SensorResult:
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"lake": LakeResource(root=root), "alert_webhook": hook}
    )
    return defs.resolve_sensor_def("coverage_alerts")(context)


def test_coverage_alerts_fire_on_a_drop_and_only_then(tmp_path, instance, receiver):
    """D1 is whole: no alert. D2 loses SPY (every vendor fails it): SPY falls below the
    threshold (AMZN and XLE, always thin on the simulated market, do not alert) and the report
    has one research-ready symbol less. A re-evaluated tick records and posts nothing twice."""
    root = tmp_path / "lake"
    healthy = make_defs(str(root))
    day = {"dagster/partition": D1.isoformat()}
    run_job(healthy, instance, "minute_bars_job", day)
    run_job(healthy, instance, "daily_market_data_job", day)
    run_job(healthy, instance, "coverage_report_job")
    hook = webhook(receiver.url)

    first = coverage_tick(healthy, instance, str(root), hook, None)
    assert "0 alerts recorded" in first.skip_reason.skip_message and not receiver.posts and not records(root)

    gap = make_defs(str(root), fail_symbol_days=[f"{v}:SPY:{D2}" for v in VENDORS])
    day = {"dagster/partition": D2.isoformat()}
    run_job(gap, instance, "minute_bars_job", day)
    run_job(gap, instance, "daily_market_data_job", day)
    run_job(gap, instance, "coverage_report_job")
    second = coverage_tick(healthy, instance, str(root), hook, first.cursor)
    again = coverage_tick(healthy, instance, str(root), hook, first.cursor)  # the same tick re-evaluated

    assert (
        "2 alerts recorded" in second.skip_reason.skip_message
        and "0 alerts recorded" in again.skip_reason.skip_message
    )
    posted = {p["kind"]: p for _, p in receiver.posts}
    assert len(receiver.posts) == 2 and set(posted) == {"coverage_session", "coverage_ready"}
    session = posted["coverage_session"]["details"]
    assert session["session"] == str(D2) and session["previous_session"] == str(D1)
    assert [d["symbol"] for d in session["symbols_dropped"]] == ["SPY"]
    assert (
        session["symbols_dropped"][0]["coverage"] == 0.0 and session["symbols_dropped"][0]["previous"] >= 0.85
    )
    assert session["mean_coverage"] >= 0.85  # the symbol rule, not the mean, fired
    assert [s["symbol"] for s in session["symbols_below"]][0] == "SPY"  # worst first
    assert {s["symbol"] for s in session["symbols_below"]} == {"SPY", "AMZN", "XLE"}
    assert session["symbols_below_count"] == 3 and session["symbols_dropped_count"] == 1
    assert "SPY: 0.0% (was" in posted["coverage_session"]["text"]
    ready = posted["coverage_ready"]["details"]
    assert ready["no_longer_ready"] == ["SPY"] and ready["ready_after"] == ready["ready_before"] - 1
    found = records(root)
    assert sorted(r["kind"] for r in found.values()) == ["coverage_ready", "coverage_session"]
    assert all(r["delivery"]["status"] == "sent" for r in found.values())
    assert coverage_tick(
        healthy, instance, str(root), hook, second.cursor
    ).skip_reason.skip_message.startswith("0 bar_coverage and 0 coverage_report")


def test_a_session_below_the_threshold_on_average_alerts():
    low = pl.DataFrame({"symbol": ["A", "B"], "coverage": [0.5, 0.6]})
    previous = ("2024-11-26", pl.DataFrame({"symbol": ["A", "B"], "coverage": [0.5, 0.6]}))
    found = alerts.session_alert("2024-11-27", low, previous, 0.85, "run1", datetime.now(UTC))
    assert (
        found is not None and found.details["mean_coverage"] == 0.55 and not found.details["symbols_dropped"]
    )
    fine = pl.DataFrame({"symbol": ["A", "B"], "coverage": [0.9, 1.0]})
    assert alerts.session_alert("2024-11-27", fine, previous, 0.85, "run1", datetime.now(UTC)) is None

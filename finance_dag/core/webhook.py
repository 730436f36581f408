"""Posting alerts to a webhook, with the webhook's URL treated as a secret. No Dagster here.

A webhook URL is a credential: Slack's ``https://hooks.slack.com/services/T000/B000/XXXX``
carries its token in the path, others in the query (``?token=…``) or in user info. So the URL
is never shown: ``redact_url`` keeps only the scheme and host (``https://hooks.slack.com/***``)
and ``redact_webhook`` masks the URL and every part of it that could carry the token (path,
query, their segments and values, user info) in any text: exception messages, response bodies,
log lines. urllib3's DEBUG request lines (``"POST /services/… HTTP/1.1" 200``) go through the
same masking once a URL has been posted to (``post_json`` registers its parts).

``post_json`` POSTs a JSON payload with the shared HTTP plumbing (``finance_dag.core.http``:
timeouts, retries of 429/5xx and dropped connections with backoff, ``Retry-After``) and never
raises: it returns a ``Delivery`` saying what happened, redacted.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import requests

from finance_dag.core.http import RateLimiter, RetryPolicy, VendorClient, check_response, redact

MASK = "***"
MIN_SECRET_PART = 4  # shorter path segments and query values are masked only as part of the whole


def redact_url(url: str) -> str:
    """``url`` with everything but its scheme, host and port masked: ``https://hooks.slack.com/***``.

    User info, path, query and fragment never show; a value that does not parse as
    ``scheme://host`` shows as ``***``."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
        port = parts.port
    except ValueError:
        return MASK
    if not parts.scheme or not host:
        return MASK
    where = f"{parts.scheme}://{host}" + (f":{port}" if port else "")
    hidden = parts.path not in ("", "/") or parts.query or parts.fragment or parts.username
    return f"{where}/{MASK}" if hidden else where


def url_secrets(url: str) -> list[str]:
    """The strings a ``url`` could leak its token through, longest first: the URL itself, its
    path and query (raw and percent-decoded), each path segment and query value of at least
    ``MIN_SECRET_PART`` characters, and the user info."""
    url = url.strip()
    if not url:
        return []
    found = {url}
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    pieces = [parts.path, parts.query, parts.fragment, parts.netloc.rpartition("@")[0]]
    if parts.query:
        pieces.append(f"{parts.path}?{parts.query}")
    pieces += parts.path.split("/")
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        pieces += [value, f"{name}={value}"]
    if parts.password:
        pieces.append(parts.password)
    for piece in pieces:
        for variant in (piece, unquote(piece), quote(piece, safe="/")):
            if len(variant) >= MIN_SECRET_PART:
                found.add(variant)
    return sorted(found, key=len, reverse=True)


def redact_webhook(text: str, url: str | None) -> str:
    """``text`` with ``url`` shown as ``redact_url(url)``, every other secret part of it masked,
    then the usual credential parameters (``token=``, ``key=``…: ``finance_dag.core.http.redact``)."""
    url = (url or "").strip()
    if url:
        text = text.replace(url, redact_url(url))
    for secret in url_secrets(url):
        text = text.replace(secret, MASK)
    return redact(text)


class _MaskWebhooks(logging.Filter):
    """Masks the parts of every URL posted to in this process in a log record (urllib3 logs the
    request path and query at DEBUG)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: set[str] = set()
        self._lock = threading.Lock()

    def add(self, url: str) -> None:
        with self._lock:
            self.urls.add(url)

    def filter(self, record: logging.LogRecord) -> bool:
        if self.urls:
            message = record.getMessage()
            for url in tuple(self.urls):
                message = redact_webhook(message, url)
            record.msg, record.args = message, None
        return True


_MASK_WEBHOOKS = _MaskWebhooks()
for _name in ("urllib3.connectionpool", "urllib3.util.retry", "requests"):
    logging.getLogger(_name).addFilter(_MASK_WEBHOOKS)


@dataclass(frozen=True)
class Delivery:
    """What happened to one POST; every field is safe to show (the URL is redacted)."""

    status: str  # "sent", "failed" or "not_configured"
    webhook: str | None = None  # redact_url of the destination
    http_status: int | None = None
    error: str | None = None  # redacted
    at: str | None = None  # ISO time of the attempt (UTC)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def post_json(
    url: str | None,
    payload: dict[str, Any],
    *,
    timeout: float = 10.0,
    attempts: int = 3,
    retry_wait: float = 1.0,
) -> Delivery:
    """POST ``payload`` as JSON to ``url``; never raises. Transient failures (429, 5xx, timeouts,
    refused connections) are retried ``attempts`` times in all with exponential backoff from
    ``retry_wait`` seconds; the result names the redacted destination and any error, redacted."""
    url = (url or "").strip()
    now = datetime.now(UTC).isoformat(timespec="seconds")
    if not url:
        return Delivery("not_configured", at=now)
    _MASK_WEBHOOKS.add(url)
    where = redact_url(url)
    client = VendorClient(
        vendor="alert webhook",
        limiter=RateLimiter(((5, 1.0),)),  # Slack: about one message a second, short bursts allowed
        policy=RetryPolicy(
            attempts=max(1, attempts),
            initial_wait=retry_wait,
            max_wait=max(retry_wait * 8, 1.0),
            jitter=retry_wait / 2,
            timeout=timeout,
        ),
        secrets=tuple(url_secrets(url)),
    )

    def send() -> requests.Response:
        response = requests.post(url, json=payload, timeout=timeout)
        check_response(response)
        return response

    try:
        response = client.call(f"POST to {where}", send)
    except Exception as error:  # a failed delivery is reported, never raised
        status = getattr(error, "status", None)
        detail = redact_webhook(f"{type(error).__name__}: {error}", url)
        return Delivery("failed", where, status if isinstance(status, int) else None, detail, now)
    return Delivery("sent", where, response.status_code, None, now)

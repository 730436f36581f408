"""A loopback HTTP server for vendor fakes: counts requests and injects faults on demand.

A fake subclasses ``FakeServer`` and implements ``serve(request)``. Faults are queued with
``inject(kind, times=..., match=...)`` and applied before ``serve``:

- ``"429"``: Too Many Requests with a ``Retry-After`` header
- ``"429_reset"``: Too Many Requests without ``Retry-After``, with ``X-RateLimit-Reset`` (unix
  epoch seconds, ``reset_at``), ``X-RateLimit-Limit`` and ``X-RateLimit-Remaining: 0`` (Alpaca)
- ``"500"`` / ``"503"``: server errors
- ``"slow"``: the normal answer after ``slow_seconds`` (past the client's timeout)
- ``"truncated"``: the normal answer cut in half
- ``"malformed"``: an HTML error page with status 200 instead of JSON
- ``"echo"``: HTTP 400 whose body echoes the request line, query (and any key in it) included
- vendor kinds (``"empty_page"``, ``"note"``...) handled by the fake's ``serve``

``times=None`` keeps a fault forever (a vendor that keeps failing); ``match`` restricts a
fault to requests it returns true for, e.g. one symbol.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

GENERIC_FAULTS = {"429", "429_reset", "500", "503", "slow", "truncated", "malformed", "echo"}


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Fault:
    kind: str
    times: int | None = 1  # None: forever
    match: Callable[[Request], bool] | None = None
    retry_after: str = "0"
    reset_at: str = "0"  # X-RateLimit-Reset of a "429_reset"

    def applies(self, request: Request) -> bool:
        return self.times != 0 and (self.match is None or self.match(request))


class FakeServer:
    """Threaded HTTP server on 127.0.0.1 (random port); use as a context manager."""

    slow_seconds = 4.0

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()  # per path
        self.log: list[Request] = []
        self.faults: list[Fault] = []
        self.faults_served: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    # ---- lifecycle ---------------------------------------------------------------------
    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    # ---- faults ------------------------------------------------------------------------
    def inject(
        self,
        kind: str,
        times: int | None = 1,
        match: Callable[[Request], bool] | None = None,
        retry_after: str = "0",
        reset_at: str = "0",
    ) -> None:
        with self._lock:
            self.faults.append(Fault(kind, times, match, retry_after, reset_at))

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def total(self, path_prefix: str = "") -> int:
        return sum(n for path, n in self.requests.items() if path.startswith(path_prefix))

    def _take_fault(self, request: Request) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.applies(request):
                    if fault.times is not None:
                        fault.times -= 1
                    self.faults_served[fault.kind] += 1
                    return fault
        return None

    # ---- serving -----------------------------------------------------------------------
    def serve(self, request: Request, fault: str | None) -> Reply:
        """The vendor's answer; ``fault`` is a vendor-specific fault kind to apply, if any."""
        raise NotImplementedError

    def error_body(self, status: int, message: str) -> bytes:
        """The vendor's error body for ``status``."""
        return f'{{"message": "{message}"}}'.encode()

    def _respond(self, request: Request) -> Reply:
        with self._lock:
            self.requests[request.path] += 1
            self.log.append(request)
        taken = self._take_fault(request)
        fault = taken.kind if taken else None
        if taken and fault == "429":
            return Reply(
                429, self.error_body(429, "too many requests"), headers={"Retry-After": taken.retry_after}
            )
        if taken and fault == "429_reset":
            headers = {
                "X-RateLimit-Limit": "200",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": taken.reset_at,
            }
            return Reply(429, self.error_body(429, "too many requests"), headers=headers)
        if fault in ("500", "503"):
            return Reply(int(fault), self.error_body(int(fault), "injected server error"))
        if fault == "echo":
            query = "&".join(f"{k}={v}" for k, v in request.query.items())
            return Reply(400, f"bad request: GET {request.path}?{query}".encode(), "text/plain")
        if fault == "malformed":
            return Reply(200, b"<html><body>Will be right back...</body></html>", "text/html")
        reply = self.serve(request, None if fault in GENERIC_FAULTS else fault)
        if fault == "slow":
            time.sleep(self.slow_seconds)
        if fault == "truncated":
            reply.body = reply.body[: len(reply.body) // 2]
        return reply

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                request = Request(
                    self.command, parts.path, dict(parse_qsl(parts.query)), dict(self.headers.items())
                )
                reply = fake._respond(request)
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", reply.content_type)
                    self.send_header("Content-Length", str(len(reply.body)))
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and left

            do_GET = _handle
            do_POST = _handle

            def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
                pass

        return Handler

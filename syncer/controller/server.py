"""The HTTP servers of ``syncer run``: probes and metrics on one port, webhooks on another.

======================  ====  ============================================================
``GET /healthz``        200   the process works: its loop and election threads are alive
                              (liveness; a failure means "restart me")
``GET /readyz``         200   configuration loaded, the API server reachable and, on the
                              leader, the current reconcile not stuck; 503 otherwise and
                              while shutting down. Followers are ready too: they receive
                              webhooks and relay them to the leader.
``GET /metrics``        200   Prometheus text format (``metrics.py``)
``POST /hooks/<forge>`` 202   webhook deliveries from GitHub, GitLab, Gitea
                              (``webhooks.py`` decides the answer)
======================  ====  ============================================================

Each port is its own :mod:`waitress` server (a maintained, dependency-free, pure-Python
server with a bounded thread pool, request-size limits and sane timeouts, rather than
:mod:`http.server`, whose threading server has none of those) with its own threads and
connection limit: whoever can reach the webhook port (it is exposed to the forge) cannot
starve the liveness probe or the metrics by holding connections open, and the probe port
need not be exposed at all. Webhook bodies larger than the limit are refused by waitress
from ``Content-Length`` before they are read (a chunked body as soon as it passes the
limit), and accepted bodies stay in memory (no spooling to ``/tmp``). The webhook secret
is read on each delivery through the credential files, so a rotated secret applies at
once; surrounding whitespace (a file ending in a newline) is not part of it. A delivery id
seen in the last :data:`REPLAY_WINDOW` seconds is answered 200 and not acted on again.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from waitress import wasyncore
from waitress.server import create_server

from syncer.controller.metrics import CONTENT_TYPE, Metrics
from syncer.controller.webhooks import PROVIDERS, HookEvent, WebhookResult, receive

log = logging.getLogger(__name__)
REPLAY_WINDOW = 300.0  # seconds a delivery id is remembered
REPLAY_IDS = 4096  # at most this many remembered ids

StartResponse = Callable[..., Any]
Check = Callable[[], tuple[bool, str]]

_STATUS_TEXT = {
    200: "200 OK",
    202: "202 Accepted",
    400: "400 Bad Request",
    401: "401 Unauthorized",
    403: "403 Forbidden",
    404: "404 Not Found",
    405: "405 Method Not Allowed",
    413: "413 Payload Too Large",
    415: "415 Unsupported Media Type",
    500: "500 Internal Server Error",
    503: "503 Service Unavailable",
}


@dataclass
class App:
    """The WSGI application; every dependency is a callable so tests can stub it."""

    metrics: Metrics
    healthy: Check
    ready: Check
    on_webhook: Callable[[HookEvent], str]
    webhook_secret: Callable[[], bytes | None]
    branch: str
    max_body: int = 1024 * 1024
    hooks: bool = True  # serve /hooks/*
    probes: bool = True  # serve /healthz, /readyz, /metrics
    _seen: OrderedDict[str, float] = field(default_factory=OrderedDict)
    _seen_lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        try:
            if not self.probes and path in ("/healthz", "/readyz", "/metrics"):
                return _reply(start_response, 404, {"reason": "probes and metrics are on "
                                                              "the probe port"})
            if path.startswith("/hooks/"):
                if not self.hooks:
                    return _reply(start_response, 404, {"reason": "webhooks are on the "
                                                                  "webhook port"})
                if method != "POST":
                    return _reply(start_response, 405, {"reason": "use POST"}, allow="POST")
                return self._hook(path[len("/hooks/"):], environ, start_response)
            if not self.probes:
                return _reply(start_response, 404, {"reason": f"no such path {path}"})
            if method not in ("GET", "HEAD"):
                return _reply(start_response, 405, {"reason": "use GET"}, allow="GET, HEAD")
            if path == "/healthz":
                return _probe(start_response, self.healthy)
            if path == "/readyz":
                return _probe(start_response, self.ready)
            if path == "/metrics":
                body = self.metrics.exposition()
                start_response("200 OK", [("Content-Type", CONTENT_TYPE),
                                          ("Content-Length", str(len(body)))])
                return [body]
            return _reply(start_response, 404, {"reason": f"no such path {path}"})
        except Exception:
            log.exception("HTTP handler failed", extra={"path": path})
            return _reply(start_response, 500, {"reason": "internal error"})

    def _hook(
        self, provider: str, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > self.max_body:
            result = WebhookResult(413, f"body larger than {self.max_body} bytes")
        else:
            body = environ["wsgi.input"].read(min(length, self.max_body + 1) if length else
                                              self.max_body + 1)
            headers = {
                key[5:].replace("_", "-").lower(): value
                for key, value in environ.items()
                if key.startswith("HTTP_")
            }
            if environ.get("CONTENT_TYPE"):
                headers["content-type"] = environ["CONTENT_TYPE"]
            secret = (self.webhook_secret() or b"").strip() or None
            result = receive(provider, headers, body, secret, self.branch, self.max_body)
            if result.event is not None and self._replayed(result.event):
                result = WebhookResult(200, f"delivery {result.event.delivery} was already "
                                            "handled")
        code, event = result.status, result.event
        label = provider if provider in PROVIDERS else "unknown"
        self.metrics.webhooks.labels(label, str(code)).inc()
        fields = {"provider": label, "code": code, "reason": result.reason}
        if event is not None:
            fields["handling"] = self.on_webhook(event)
            fields["delivery"] = event.delivery or ""
        log.log(logging.INFO if code < 400 else logging.WARNING, "webhook", extra=fields)
        return _reply(start_response, code, {"status": result.outcome, "reason": result.reason})


    def _replayed(self, event: HookEvent) -> bool:
        """Whether this delivery id was seen within the replay window (and remember it)."""
        if not event.delivery:
            return False
        now = time.monotonic()
        with self._seen_lock:
            while self._seen and (next(iter(self._seen.values())) < now - REPLAY_WINDOW
                                  or len(self._seen) > REPLAY_IDS):
                self._seen.popitem(last=False)
            key = f"{event.provider}:{event.delivery}"
            if key in self._seen:
                return True
            self._seen[key] = now
            return False


def _reply(
    start_response: StartResponse, code: int, doc: dict[str, Any], allow: str | None = None
) -> list[bytes]:
    body = json.dumps(doc).encode() + b"\n"
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    if allow:
        headers.append(("Allow", allow))
    start_response(_STATUS_TEXT.get(code, f"{code} Error"), headers)
    return [body]


def _probe(start_response: StartResponse, check: Check) -> list[bytes]:
    ok, detail = check()
    body = (("ok" if ok else "not ok") + (f": {detail}" if detail else "") + "\n").encode()
    start_response("200 OK" if ok else "503 Service Unavailable",
                   [("Content-Type", "text/plain; charset=utf-8"),
                    ("Content-Length", str(len(body)))])
    return [body]


class HTTPServer:
    """waitress in a background thread; ``port`` is the bound port (``:0`` in tests)."""

    def __init__(self, app: Any, host: str, port: int, max_body: int, threads: int = 4,
                 connection_limit: int = 64) -> None:
        self._map: dict[int, Any] = {}
        self._server: Any = create_server(
            app,
            map=self._map,
            host=host,
            port=port,
            threads=threads,
            connection_limit=connection_limit,
            max_request_body_size=max_body,  # refused from Content-Length, unread
            inbuf_overflow=max_body + 1,  # an accepted body stays in memory
            channel_timeout=30,
            ident="syncer",
            clear_untrusted_proxy_headers=True,
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.getsockname()[1])

    @property
    def host(self) -> str:
        return str(self._server.getsockname()[0])

    def start(self) -> None:
        self._thread = threading.Thread(target=self._serve, name="http", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        # Our own loop around waitress's asyncore loop so that stop() ends it cleanly.
        while not self._stop.is_set():
            wasyncore.loop(timeout=0.2, map=self._map, count=1)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._server.task_dispatcher.shutdown(timeout=timeout)
        wasyncore.close_all(self._map)


class CachedCheck:
    """Runs an expensive check (an API server round trip) at most every ``ttl`` seconds."""

    def __init__(self, check: Check, ttl: float = 10.0) -> None:
        self._check = check
        self._ttl = ttl
        self._lock = threading.Lock()
        self._at = -ttl
        self._value: tuple[bool, str] = (False, "not checked yet")

    def __call__(self) -> tuple[bool, str]:
        with self._lock:
            now = time.monotonic()
            if now - self._at >= self._ttl:
                try:
                    self._value = self._check()
                except Exception as err:
                    self._value = (False, f"{type(err).__name__}: {err}")
                self._at = now
            return self._value

"""The forge simulator's engine: HTTP server, request log, routing, faults, pagination.

A :class:`ForgeSimulator` serves one forge flavour (GitHub, GitLab or Gitea, see the
sibling modules) on a free loopback port with the stdlib ``ThreadingHTTPServer``. It keeps
pull requests, comments and statuses in memory (tests add pull requests; clients add the
rest) and records every request it receives, with the status it answered, in
:attr:`ForgeSimulator.requests`, so tests assert on what the client actually sent.

Strictness: a request the simulator does not implement (unknown path, wrong method) gets
the forge's 404/405 *and* is recorded in :attr:`ForgeSimulator.problems`; so are requests
no correct client sends (a missing ``User-Agent`` on GitHub, unknown JSON fields or query
parameters, an invalid state, a body that is not JSON). Tests fail when ``problems`` is not
empty (the test fixtures check it). Errors a correct client meets at run time (a revoked
token, a deleted pull request, a rate limit) are answered exactly like the real forge and
are not problems.

Faults (:class:`Fault`) are injected per method and path: a status with headers and body,
a delay, or both; ``after_apply`` lets the request take effect before the fault is
returned (a 502 after the comment was stored, as flaky proxies do).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, urlencode, urlsplit

Flavour = Literal["github", "gitlab", "gitea"]


@dataclass
class SimPullRequest:
    number: int
    head_sha: str
    base: str
    head_ref: str
    title: str
    author: str
    state: str = "open"  # open | closed | merged
    created_at: str = "2024-01-01T00:00:00Z"
    fork: bool = False  # the head branch is in the author's fork of the repository


@dataclass
class SimComment:
    id: int
    number: int
    body: str
    author: str
    system: bool = False
    created_at: str = "2024-01-01T00:00:00Z"
    updated_at: str = "2024-01-01T00:00:00Z"


@dataclass
class SimStatus:
    id: int
    sha: str
    state: str  # the forge's own state name
    context: str
    description: str
    target_url: str | None
    ref: str | None = None
    created_at: str = "2024-01-01T00:00:00Z"


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the simulator saw it, and how it answered."""

    method: str
    path: str  # as sent (percent-encoding kept), without the query
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes
    status: int
    problem: str | None = None

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass
class Fault:
    """An injected misbehaviour for requests matching ``method`` and ``path`` (a regex)."""

    status: int | None = 500  # None: only delay, then answer normally
    method: str | None = None
    path: str | None = None
    times: int = 1
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None  # dict/list: JSON; str: text/plain
    delay: float = 0.0
    after_apply: bool = False

    def matches(self, method: str, path: str) -> bool:
        return (
            self.times > 0
            and (self.method is None or self.method == method)
            and (self.path is None or re.search(self.path, path) is not None)
        )


@dataclass
class Reply:
    status: int
    body: Any = None  # dict/list: JSON; str: text; None: empty
    headers: dict[str, str] = field(default_factory=dict)


class ApiError(Exception):
    """Raised by route handlers: answer with ``reply``; ``problem`` marks a client bug."""

    def __init__(self, reply: Reply, problem: str | None = None) -> None:
        super().__init__(problem or str(reply.status))
        self.reply = reply
        self.problem = problem


@dataclass
class Request:
    """What a route handler gets."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    match: re.Match[str]
    base_url: str

    def param(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def json_object(self, bad: Callable[[], Reply]) -> dict[str, Any]:
        if not self.body:
            return {}
        try:
            data = json.loads(self.body)
        except ValueError:
            raise ApiError(bad(), "request body is not JSON") from None
        if not isinstance(data, dict):
            raise ApiError(bad(), "request body is not a JSON object")
        return data


Handler = Callable[[Request], Reply]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    params: frozenset[str] = frozenset()  # accepted query parameters
    fields: frozenset[str] = frozenset()  # accepted JSON body fields


def route(
    method: str,
    pattern: str,
    handler: Handler,
    params: tuple[str, ...] = (),
    fields: tuple[str, ...] = (),
) -> Route:
    return Route(method, re.compile(pattern + r"$"), handler, frozenset(params), frozenset(fields))


class Dialect(ABC):
    """What differs between forges: paths, authentication, error bodies, headers."""

    name: Flavour
    prefix: str = ""
    default_page_size: int = 30  # when the client sends no page size
    max_page_size: int = 100  # the forge's cap (the simulator's can be set lower)
    comment_limit: int = 65_536

    def __init__(self, sim: ForgeSimulator) -> None:
        self.sim = sim

    @abstractmethod
    def routes(self) -> list[Route]: ...

    def check(self, req: Request) -> None:
        """Reject requests no correct client sends (raise :class:`ApiError`)."""
        return None

    @abstractmethod
    def authenticate(self, req: Request) -> None:
        """Raise :class:`ApiError` with the forge's answer when the token is missing/wrong."""

    @abstractmethod
    def not_found(self) -> Reply: ...

    def method_not_allowed(self) -> Reply:
        return Reply(405, {"message": "Method Not Allowed"})

    @abstractmethod
    def unknown_field(self, name: str) -> Reply: ...

    @abstractmethod
    def rate_limit(self, retry_after: int, kind: str) -> Fault: ...

    def extra_headers(self) -> dict[str, str]:
        return {}

    def _repo(self, req: Request) -> None:
        """404 unless the path's ``owner``/``repo`` name the simulated repository."""
        full = f"{req.match['owner']}/{req.match['repo']}"
        if full.lower() != self.sim.repository.lower():
            raise ApiError(self.not_found())


class ForgeSimulator:
    """A local, strict forge API for one flavour. Use as a context manager."""

    def __init__(
        self,
        flavour: Flavour,
        *,
        repository: str = "acme/fleet",
        token: str = "sim-token-0123456789",
        max_page_size: int | None = None,
        bot: str = "syncer-bot",
        project_id: int = 42,
    ) -> None:
        from . import gitea, github, gitlab  # the dialects import this module

        dialects: dict[str, type[Dialect]] = {
            "github": github.GitHubDialect,
            "gitlab": gitlab.GitLabDialect,
            "gitea": gitea.GiteaDialect,
        }
        if flavour not in dialects:
            raise ValueError(f"unknown forge flavour {flavour!r}")
        self.flavour = flavour
        self.repository = repository
        self.token = token
        self.bot = bot
        self.project_id = project_id
        self.lock = threading.RLock()
        self.pull_requests: dict[int, SimPullRequest] = {}
        self.comments: dict[int, SimComment] = {}
        self.statuses: list[SimStatus] = []
        self.commits: set[str] = set()
        self.faults: list[Fault] = []
        self._requests: list[RecordedRequest] = []
        self._ids = itertools.count(1001)
        self._clock = itertools.count(1)
        self.dialect: Dialect = dialects[flavour](self)
        self.max_page_size = max_page_size or self.dialect.max_page_size
        self._routes = self.dialect.routes()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> ForgeSimulator:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        server.daemon_threads = True
        server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> ForgeSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``, the server root."""
        assert self._server is not None, "the simulator is not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def api_url(self) -> str:
        """The API base URL a client is configured with."""
        return self.url + self.dialect.prefix

    @property
    def web_url(self) -> str:
        """The repository's web page (what the forge puts into ``html_url``/``web_url``)."""
        return f"{self.url}/{self.repository}"

    # --- test setup --------------------------------------------------------------------

    def add_pull_request(
        self,
        number: int,
        head_sha: str,
        base: str = "main",
        head_ref: str | None = None,
        *,
        title: str | None = None,
        author: str = "alice",
        state: str = "open",
        fork: bool = False,
    ) -> SimPullRequest:
        with self.lock:
            pr = SimPullRequest(
                number,
                head_sha,
                base,
                head_ref or f"change-{number}",
                title or f"Change {number}",
                author,
                state,
                self.stamp(),
                fork,
            )
            self.pull_requests[number] = pr
            self.commits.add(head_sha)
            return pr

    def push(self, number: int, head_sha: str) -> None:
        """A new commit on the pull request's branch."""
        with self.lock:
            self.pull_requests[number].head_sha = head_sha
            self.commits.add(head_sha)

    def add_comment(
        self, number: int, body: str, *, author: str = "bob", system: bool = False
    ) -> SimComment:
        with self.lock:
            stamp = self.stamp()
            comment = SimComment(next(self._ids), number, body, author, system, stamp, stamp)
            self.comments[comment.id] = comment
            return comment

    def add_status(
        self,
        sha: str,
        state: str,
        context: str,
        description: str,
        target_url: str | None,
        ref: str | None = None,
    ) -> SimStatus:
        with self.lock:
            status = SimStatus(
                next(self._ids), sha, state, context, description, target_url, ref, self.stamp()
            )
            self.statuses.append(status)
            return status

    def comments_on(self, number: int) -> list[SimComment]:
        with self.lock:
            return [c for c in self.comments.values() if c.number == number and not c.system]

    def statuses_of(self, sha: str, context: str | None = None) -> list[SimStatus]:
        """Statuses of ``sha`` (optionally one context), oldest first."""
        with self.lock:
            return [
                s
                for s in self.statuses
                if s.sha == sha and (context is None or s.context == context)
            ]

    # --- faults ------------------------------------------------------------------------

    def inject(self, fault: Fault) -> Fault:
        with self.lock:
            self.faults.append(fault)
            return fault

    def fail(
        self,
        method: str | None = None,
        path: str | None = None,
        *,
        status: int = 500,
        times: int = 1,
        after_apply: bool = False,
    ) -> Fault:
        body: Any = {"message": "Internal Server Error"} if status < 600 else None
        return self.inject(Fault(status, method, path, times, body=body, after_apply=after_apply))

    def rate_limit(
        self,
        method: str | None = None,
        path: str | None = None,
        *,
        retry_after: int = 1,
        times: int = 1,
        kind: str = "retry-after",
    ) -> Fault:
        """The forge's rate-limit answer; ``kind`` (GitHub): retry-after | reset."""
        fault = self.dialect.rate_limit(retry_after, kind)
        fault.method, fault.path, fault.times = method, path, times
        return self.inject(fault)

    def slow(
        self, method: str | None = None, path: str | None = None, *, delay: float, times: int = 1
    ) -> Fault:
        return self.inject(Fault(None, method, path, times, delay=delay))

    # --- what happened -----------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self.lock:
            return list(self._requests)

    @property
    def problems(self) -> list[RecordedRequest]:
        with self.lock:
            return [r for r in self._requests if r.problem]

    def calls(self, method: str | None = None, path: str | None = None) -> list[RecordedRequest]:
        """Recorded requests filtered by method and a regex searched in the path."""
        return [
            r
            for r in self.requests
            if (method is None or r.method == method) and (path is None or re.search(path, r.path))
        ]

    def clear_requests(self) -> None:
        with self.lock:
            self._requests.clear()

    def assert_clean(self) -> None:
        problems = self.problems
        if problems:
            lines = [f"{r.method} {r.path} -> {r.status}: {r.problem}" for r in problems]
            raise AssertionError("the forge simulator saw bad requests:\n" + "\n".join(lines))

    # --- helpers for dialects ----------------------------------------------------------

    def stamp(self) -> str:
        """The next tick of the simulator's clock (one second apart)."""
        n = next(self._clock)
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1_700_000_000 + n))

    def page(
        self, req: Request, items: list[Any], size_param: str, default_size: int | None = None
    ) -> tuple[list[Any], int, int, int]:
        """Slice ``items`` for ``page``/``size_param``; returns (items, page, size, pages)."""
        try:
            page = max(1, int(req.param("page", "1") or "1"))
            size = int(
                req.param(size_param, str(default_size or self.dialect.default_page_size)) or "0"
            )
        except ValueError:
            raise ApiError(
                Reply(400, {"message": "invalid pagination parameter"}),
                "invalid pagination parameter",
            ) from None
        size = min(max(size, 1), self.max_page_size)
        pages = max(1, -(-len(items) // size))
        return items[(page - 1) * size : page * size], page, size, pages

    def link_headers(self, req: Request, page: int, pages: int) -> dict[str, str]:
        """``{"Link": ...}`` with next/last/first/prev, or ``{}`` for a single page."""

        def url(n: int) -> str:
            query = {k: v[0] for k, v in req.query.items()}
            query["page"] = str(n)
            return f"{req.base_url}{req.path}?{urlencode(query)}"

        links: list[str] = []
        if page < pages:
            links.append(f'<{url(page + 1)}>; rel="next"')
            links.append(f'<{url(pages)}>; rel="last"')
        if page > 1:
            links.append(f'<{url(1)}>; rel="first"')
            links.append(f'<{url(page - 1)}>; rel="prev"')
        return {"Link": ", ".join(links)} if links else {}

    # --- the request pipeline (server threads) -----------------------------------------

    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> Reply:
        parts = urlsplit(raw_path)
        path, query = parts.path, parse_qs(parts.query, keep_blank_values=True)
        problem: str | None = None
        reply: Reply
        fault: Fault | None = None
        try:
            route_, match = self._route(method, path)
            req = Request(method, path, query, headers, body, match, self.url)
            self.dialect.check(req)
            self.dialect.authenticate(req)
            unknown = sorted(set(query) - route_.params)
            if unknown:
                problem = f"unknown query parameter(s) {', '.join(unknown)}"
            fault = self._take_fault(method, path)
            if fault is not None and fault.delay:
                time.sleep(fault.delay)
            if fault is not None and fault.status is not None and not fault.after_apply:
                reply = _fault_reply(fault)
            else:
                if method in ("POST", "PUT", "PATCH"):
                    data = req.json_object(lambda: Reply(400, {"message": "Problems parsing JSON"}))
                    extra = sorted(set(data) - route_.fields)
                    if extra:
                        raise ApiError(
                            self.dialect.unknown_field(extra[0]),
                            f"unknown body field(s) {', '.join(extra)}",
                        )
                with self.lock:
                    reply = route_.handler(req)
                if fault is not None and fault.status is not None:
                    reply = _fault_reply(fault)
        except ApiError as e:
            reply, problem = e.reply, e.problem or problem
        reply.headers = {**self.dialect.extra_headers(), **reply.headers}
        with self.lock:
            self._requests.append(
                RecordedRequest(method, path, query, headers, body, reply.status, problem)
            )
        return reply

    def _route(self, method: str, path: str) -> tuple[Route, re.Match[str]]:
        path_matched = False
        for r in self._routes:
            m = r.pattern.match(path)
            if m is None:
                continue
            path_matched = True
            if r.method == method:
                return r, m
        if path_matched:
            raise ApiError(self.dialect.method_not_allowed(), f"method {method} not allowed")
        raise ApiError(self.dialect.not_found(), "no such endpoint in the simulator")

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.matches(method, path):
                    fault.times -= 1
                    return fault
        return None


def _fault_reply(fault: Fault) -> Reply:
    assert fault.status is not None
    return Reply(fault.status, fault.body, dict(fault.headers))


def _make_handler(sim: ForgeSimulator) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # one write per answer, no delayed-ACK stalls
        wbufsize = 1 << 16

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            reply = sim.handle(self.command, self.path, headers, body)
            if isinstance(reply.body, dict | list):
                payload = json.dumps(reply.body).encode()
                ctype = "application/json; charset=utf-8"
            elif isinstance(reply.body, str):
                payload = reply.body.encode()
                ctype = "text/plain; charset=utf-8"
            else:
                payload, ctype = b"", ""
            with contextlib.suppress(ConnectionError):
                self.send_response(reply.status)
                if ctype:
                    self.send_header("Content-Type", ctype)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return _Handler

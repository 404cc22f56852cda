"""Payload downloads go only where the operator allows, and no further than the bounds.

Real HTTP servers on the loopback interface play the mirror, the cloud metadata service
and the slow or endless server; the policy must refuse before a byte is read from a
place it does not allow, and say why in one line without the URL's secrets.
"""

from __future__ import annotations

import hashlib
import http.server
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from syncer.nodes.downloads import DownloadError, FetchPolicy, parse_networks, stream
from syncer.nodes.payloads import PayloadCache, PayloadError

LOOPBACK = FetchPolicy(allow_networks=parse_networks("127.0.0.0/8"))
Handler = Callable[[http.server.BaseHTTPRequestHandler], None]


class Server:
    def __init__(self, handle: Handler) -> None:
        self.requests: list[str] = []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append(self.path)
                handle(self)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve() -> Iterator[Callable[[Handler], Server]]:
    servers: list[Server] = []

    def start(handle: Handler) -> Server:
        servers.append(Server(handle))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def body(data: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Handler:
    def handle(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(status)
        for name, value in (headers or {}).items():
            h.send_header(name, value)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)
    return handle


def redirect(location: str) -> Handler:
    return body(b"", 302, {"Location": location})


CONTROLLER = FetchPolicy()  # syncer run's default


def fetch(url: str, policy: FetchPolicy = CONTROLLER) -> bytes:
    return b"".join(stream(url, policy))


# --- where ------------------------------------------------------------------------------------
def test_loopback_is_refused_unless_the_operator_allows_it(serve: Callable[[Handler], Server]
                                                           ) -> None:
    server = serve(body(b"kubelet"))
    with pytest.raises(DownloadError, match=r"127\.0\.0\.1 resolves to 127\.0\.0\.1, a "
                                            r"loopback address \(allow it with "):
        fetch(f"{server.url}/kubelet.exe")
    assert server.requests == []  # refused before connecting
    assert fetch(f"{server.url}/kubelet.exe", LOOPBACK) == b"kubelet"


@pytest.mark.parametrize(("url", "why"), [
    ("http://169.254.169.254/latest/meta-data/iam/", "link-local"),
    ("http://[fe80::1]/x", "link-local"),
    ("http://[::ffff:127.0.0.1]/x", "loopback"),
    ("http://[::1]/x", "loopback"),
    ("http://0.0.0.0/x", "unspecified"),
    ("http://224.0.0.1/x", "multicast"),
    ("http://localhost/x", "loopback"),
    ("http://kubernetes.default.svc/x", "cluster-internal name|cannot resolve"),
])
def test_internal_targets_are_refused(url: str, why: str) -> None:
    started = time.monotonic()
    with pytest.raises(DownloadError, match=why):
        fetch(url)
    assert time.monotonic() - started < 5


def test_the_service_network_is_refused() -> None:
    policy = FetchPolicy().denying("10.96.0.0/12")
    with pytest.raises(DownloadError, match="Service network"):
        fetch("http://10.96.0.10/x", policy)


def test_a_redirect_to_the_metadata_service_is_refused(serve: Callable[[Handler], Server]
                                                      ) -> None:
    """The first hop is an allowed mirror; the redirect it sends is checked like a URL."""
    server = serve(redirect("http://169.254.169.254/latest/meta-data/"))
    with pytest.raises(DownloadError, match=r"169\.254\.169\.254, a link-local address"):
        fetch(f"{server.url}/kubelet.exe", LOOPBACK)


def test_redirects_are_followed_and_bounded(serve: Callable[[Handler], Server]) -> None:
    target = serve(body(b"ok"))
    hop = serve(redirect(f"{target.url}/final"))
    assert fetch(f"{hop.url}/start", LOOPBACK) == b"ok"
    loop = serve(redirect("/again"))
    with pytest.raises(DownloadError, match="more than 5 redirects"):
        fetch(f"{loop.url}/start", LOOPBACK)
    assert len(loop.requests) == 6


def test_other_schemes_are_refused(serve: Callable[[Handler], Server]) -> None:
    server = serve(redirect("ftp://example.com/x"))
    with pytest.raises(DownloadError, match="only https:// and http://"):
        fetch(f"{server.url}/x", LOOPBACK)


def test_file_urls_only_where_the_policy_allows(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_bytes(b"eyJhbGciOiJSUzI1NiJ9.service-account-token")
    digest = hashlib.sha256(secret.read_bytes()).hexdigest()
    controller = PayloadCache(tmp_path / "cache")
    with pytest.raises(PayloadError, match="file:// URLs are not fetched here"):
        controller.fetch("kubelet", "v1", secret.as_uri(), digest)
    workstation = PayloadCache(tmp_path / "ws", policy=FetchPolicy(allow_file=True))
    assert workstation.fetch("kubelet", "v1", secret.as_uri(), digest).size == len(
        secret.read_bytes())


def test_a_mismatch_never_says_what_was_read(tmp_path: Path, serve: Callable[[Handler], Server]
                                            ) -> None:
    """The digest of what the controller read would let a fleet author confirm any file
    or URL it can reach; the error names only the expected digest."""
    data = b"the cloud provider's credentials"
    server = serve(body(data))
    cache = PayloadCache(tmp_path / "cache", policy=LOOPBACK)
    with pytest.raises(PayloadError) as err:
        cache.fetch("kubelet", "v1", f"{server.url}/creds?token=s3cret", "0" * 64)
    text = str(err.value)
    assert hashlib.sha256(data).hexdigest() not in text
    assert text == (f"payload kubelet: sha256 mismatch: the bytes at {server.url}/creds are "
                    f"not {'0' * 64}")


# --- how much ---------------------------------------------------------------------------------
def test_a_declared_size_over_the_cap_is_refused_before_the_body(
        serve: Callable[[Handler], Server]) -> None:
    server = serve(body(b"x" * 5000))
    with pytest.raises(DownloadError, match="is 5000 bytes; at most 1000 allowed"):
        fetch(f"{server.url}/big", FetchPolicy(allow_networks=LOOPBACK.allow_networks,
                                               max_bytes=1000))


def endless(h: http.server.BaseHTTPRequestHandler) -> None:
    h.send_response(200)
    h.end_headers()  # no Content-Length: read until the connection closes
    try:
        while True:
            h.wfile.write(b"x" * 65536)
    except OSError:
        pass


def test_an_endless_body_stops_at_the_cap(tmp_path: Path, serve: Callable[[Handler], Server]
                                         ) -> None:
    server = serve(endless)
    policy = FetchPolicy(allow_networks=LOOPBACK.allow_networks, max_bytes=3 << 20)
    cache = PayloadCache(tmp_path / "cache", policy=policy)
    with pytest.raises(PayloadError, match="larger than 3145728 bytes"):
        cache.fetch("kubelet", "v1", f"{server.url}/endless", "0" * 64)
    assert list((tmp_path / "cache").iterdir()) == []  # no partial file left


def trickle(h: http.server.BaseHTTPRequestHandler) -> None:
    h.send_response(200)
    h.send_header("Content-Length", "1000")
    h.end_headers()
    try:
        for _ in range(1000):
            h.wfile.write(b"x")
            h.wfile.flush()
            time.sleep(0.1)
    except OSError:
        pass


def test_a_trickling_server_meets_the_deadline(serve: Callable[[Handler], Server]) -> None:
    """A byte every 0.1 s never trips a read timeout; the total deadline ends it."""
    server = serve(trickle)
    policy = FetchPolicy(allow_networks=LOOPBACK.allow_networks, deadline=1.0, read_timeout=5)
    started = time.monotonic()
    with pytest.raises(DownloadError, match="took longer than 1s"):
        fetch(f"{server.url}/slow", policy)
    assert time.monotonic() - started < 3


# --- the cache --------------------------------------------------------------------------------
def test_the_cache_keeps_only_what_is_named(tmp_path: Path) -> None:
    cache = PayloadCache(tmp_path / "cache", policy=FetchPolicy(allow_file=True))
    digests = []
    for version in ("v1", "v2", "v3"):
        src = tmp_path / f"kubelet-{version}.exe"
        src.write_bytes(f"kubelet {version}".encode())
        digests.append(cache.fetch("kubelet", version, src.as_uri(),
                                   hashlib.sha256(src.read_bytes()).hexdigest()).sha256)
    (tmp_path / "cache" / ".part-crashed").write_bytes(b"half a download")
    assert cache.prune(digests[1:]) == 2
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted(digests[1:])

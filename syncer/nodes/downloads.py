"""Where a payload's bytes may come from, and how many.

The URLs are written by whoever can commit to the fleet, and the controller fetches them
with its own network position and its own files around it. So a download is bounded by a
:class:`FetchPolicy` the operator sets, never the fleet:

- **schemes**: ``https://`` and ``http://``. ``file://`` only when the policy allows it
  (``syncer sync --once --allow-file-payloads`` on a workstation); ``syncer run`` never
  reads a local file for a payload (the service account token and the Git deploy key are
  files next to it).
- **addresses**: the host name of the URL, and of every redirect, is resolved and every
  address it resolves to is checked; the connection is then made to the address that was
  checked, so a second resolution (DNS rebinding) cannot change it. Refused: loopback,
  link-local (the cloud metadata service, 169.254.169.254), unspecified, multicast and
  reserved addresses, the same in IPv4-mapped IPv6 form, the cluster's Service network,
  and ``*.svc`` / ``*.cluster.local`` names. The operator may allow networks
  (``--payload-allow-networks``: the demo's 127.0.0.1, an internal mirror on a
  link-local address). Private (RFC 1918) addresses are allowed, because internal
  artifact mirrors live there; requests-hardened, the library that does this for
  requests, refuses every private address with only a loopback switch, which would
  refuse those mirrors, hence this module.
- **proxies**: with a proxy from the environment (the cluster-wide proxy), the proxy
  connects; the target's name is still resolved and checked first.
- **size and time**: at most :attr:`FetchPolicy.max_bytes` (a larger ``Content-Length``
  is refused before the body is read), at most five redirects, a per-read timeout and a
  total deadline per download, so a server that trickles cannot hold the round.

Errors never repeat the URL's user info or query (which may carry tokens).
"""

from __future__ import annotations

import ipaddress
import socket
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
CHUNK = 1 << 20
MAX_REDIRECTS = 5
INTERNAL_SUFFIXES = (".svc", ".cluster.local", ".svc.cluster.local", "localhost")


class DownloadError(Exception):
    """The download failed or was refused; the message names why, without secrets."""


@dataclass(frozen=True)
class FetchPolicy:
    allow_file: bool = False
    allow_networks: tuple[IPNetwork, ...] = ()  # internal networks the operator allows
    deny_networks: tuple[IPNetwork, ...] = ()  # the cluster's own (Service network)
    max_bytes: int = 2 << 30
    deadline: float = 900.0  # seconds for a whole download
    read_timeout: float = 60.0  # seconds without a byte

    def denying(self, *cidrs: str) -> FetchPolicy:
        """This policy, also refusing ``cidrs`` (those that do not parse are skipped)."""
        extra: list[IPNetwork] = []
        for cidr in cidrs:
            try:
                extra.append(ipaddress.ip_network(cidr, strict=False))
            except ValueError:
                continue
        return replace(self, deny_networks=(*self.deny_networks, *extra))

    def refuses(self, address: IPAddress) -> str | None:
        """Why a connection to ``address`` is refused, or None."""
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if any(address in net for net in self.allow_networks):
            return None
        for kind, test in (
            ("loopback", address.is_loopback),
            ("link-local", address.is_link_local),
            ("unspecified", address.is_unspecified),
            ("multicast", address.is_multicast),
            ("reserved", address.is_reserved),
        ):
            if test:
                return f"a {kind} address"
        if any(address in net for net in self.deny_networks):
            return "an address of the cluster's Service network"
        return None


def parse_networks(text: str) -> tuple[IPNetwork, ...]:
    """``127.0.0.0/8,10.1.2.3`` (commas or spaces). Raises ValueError naming the bad one."""
    networks: list[IPNetwork] = []
    for part in text.replace(",", " ").split():
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"not an IP network: {part!r}") from None
    return tuple(networks)


def display(url: str) -> str:
    """The URL without credentials or query (which may carry tokens)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def checked_addresses(host: str, port: int, policy: FetchPolicy) -> list[IPAddress]:
    """Every address ``host`` resolves to, all allowed; raises DownloadError otherwise."""
    name = host.rstrip(".").lower()
    internal = any(name == s.lstrip(".") or name.endswith(s) for s in INTERNAL_SUFFIXES)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as err:
        raise DownloadError(f"cannot resolve {host}: {err}") from None
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        why = policy.refuses(address)
        if why is None and internal and not any(address in net
                                                for net in policy.allow_networks):
            why = "a cluster-internal name"
        if why is not None:
            raise DownloadError(f"{host} resolves to {address}, {why} (allow it with "
                                "--payload-allow-networks if it is a mirror you trust)")
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise DownloadError(f"cannot resolve {host}")
    return addresses


# --- connections to the checked address -----------------------------------------------------
class _Refused(NewConnectionError):
    """A connection the policy refuses; ``why`` is the message for the user."""

    def __init__(self, conn: Any, why: str) -> None:
        super().__init__(conn, why)
        self.why = why


class _Pinned:
    """Mixin for urllib3 connections: resolve, check, connect to the checked address. TLS
    still verifies the certificate and sends SNI for the host name (``self.host``)."""

    policy: FetchPolicy
    host: str
    port: int
    timeout: Any
    source_address: Any
    socket_options: Any

    def _new_conn(self) -> socket.socket:
        try:
            addresses = checked_addresses(self.host, self.port, self.policy)
        except DownloadError as err:
            raise _Refused(self, str(err)) from None
        last: OSError | None = None
        for address in addresses:
            try:
                sock = socket.create_connection((str(address), self.port), self.timeout,
                                                self.source_address)
            except OSError as err:
                last = err
                continue
            for option in self.socket_options or ():
                sock.setsockopt(*option)
            return sock
        raise NewConnectionError(
            self, f"Failed to establish a new connection: {last}")  # type: ignore[arg-type]


def _pool_classes(policy: FetchPolicy) -> dict[str, type[HTTPConnectionPool]]:
    http_conn = type("PinnedHTTPConnection", (_Pinned, HTTPConnection), {"policy": policy})
    https_conn = type("PinnedHTTPSConnection", (_Pinned, HTTPSConnection), {"policy": policy})
    http_pool = type("PinnedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn})
    https_pool = type("PinnedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn})
    return {"http": http_pool, "https": https_pool}


class _PinnedAdapter(HTTPAdapter):
    def __init__(self, policy: FetchPolicy) -> None:
        self._policy = policy
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _pool_classes(self._policy)


def _session(policy: FetchPolicy) -> requests.Session:
    session = requests.Session()
    adapter = _PinnedAdapter(policy)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


# --- one download ----------------------------------------------------------------------------
def stream(url: str, policy: FetchPolicy) -> Iterator[bytes]:
    """The body of ``url`` in chunks, within the policy. Raises DownloadError."""
    deadline = time.monotonic() + policy.deadline
    with _session(policy) as session:
        response = _follow(session, url, policy, deadline)
        try:
            length = response.headers.get("Content-Length", "")
            if length.isdigit() and int(length) > policy.max_bytes:
                raise DownloadError(f"{display(url)} is {length} bytes; at most "
                                    f"{policy.max_bytes} allowed")
            received = 0
            try:
                # read1: what has arrived (up to CHUNK), so a trickle meets the deadline
                while chunk := response.raw.read1(CHUNK, decode_content=True):
                    received += len(chunk)
                    if received > policy.max_bytes:
                        raise DownloadError(f"{display(url)} is larger than "
                                            f"{policy.max_bytes} bytes")
                    if time.monotonic() > deadline:
                        raise DownloadError(f"download of {display(url)} took longer than "
                                            f"{policy.deadline:.0f}s")
                    yield bytes(chunk)
            except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as err:
                raise DownloadError(f"download of {display(url)} failed: "
                                    f"{_read_error(err)}") from None
        finally:
            response.close()


def _follow(session: requests.Session, url: str, policy: FetchPolicy, deadline: float
            ) -> requests.Response:
    for _ in range(MAX_REDIRECTS + 1):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise DownloadError(f"{display(url)}: only https:// and http:// URLs are fetched")
        proxied = bool(requests.utils.select_proxy(url, session.proxies or
                                                   requests.utils.get_environ_proxies(url)))
        if proxied:  # the proxy connects; still refuse an internal target
            checked_addresses(parts.hostname, parts.port or _port(parts.scheme), policy)
        timeout = (min(policy.read_timeout, max(deadline - time.monotonic(), 0.1)),
                   policy.read_timeout)
        try:
            response = session.get(url, stream=True, timeout=timeout, allow_redirects=False)
        except requests.RequestException as err:
            raise DownloadError(f"cannot fetch {display(url)}: {request_error(err)}") from None
        if response.is_redirect:
            target = response.headers.get("Location", "")
            response.close()
            url = urllib.parse.urljoin(url, target)
            continue
        if response.status_code != 200:
            response.close()
            raise DownloadError(f"{display(url)}: HTTP {response.status_code}")
        return response
    raise DownloadError(f"{display(url)}: more than {MAX_REDIRECTS} redirects")


def _read_error(err: Exception) -> str:
    if isinstance(err, urllib3.exceptions.ReadTimeoutError | TimeoutError):
        return "timed out"
    if isinstance(err, urllib3.exceptions.ProtocolError | ConnectionError):
        return "connection broken"
    return type(err).__name__


def _port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def request_error(err: requests.RequestException) -> str:
    """The kind of failure, without the URL (its query or user info may hold secrets);
    a refused address says why."""
    inner = err.args[0] if err.args else None
    if isinstance(inner, urllib3.exceptions.MaxRetryError):
        inner = inner.reason
    if isinstance(inner, _Refused):
        return inner.why
    kinds = (
        (requests.ConnectTimeout, "connection timed out"),
        (requests.ConnectionError, "connection failed"),
        (requests.Timeout, "timed out"),
        (requests.TooManyRedirects, "too many redirects"),
    )
    for kind, text in kinds:
        if isinstance(err, kind):
            return text
    return type(err).__name__

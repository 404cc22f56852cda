"""API access for the apply engine: one thin, fast, thread-safe layer over ``kubernetes``.

Why not the generated typed APIs or ``DynamicClient``: syncer handles arbitrary kinds as
plain JSON dicts (what server-side apply sends and jsonpatch diffs), and the dynamic
client's discovery fetches every group version one request at a time on each
construction. :class:`KubeClient` instead

- uses the official client's :class:`~kubernetes.client.ApiClient` for configuration,
  TLS, authentication (including exec plugins and token refresh) and connection pooling,
  and sends raw JSON (no model classes, no generic serialisation: bodies are parsed with
  :mod:`json` directly) over kept-alive connections (:mod:`syncer.cluster.transport`),
  which is what makes 1,000 objects cheap;
- discovers resources with *aggregated discovery* (two requests for the whole server),
  once per client, and on a miss asks only the one group version concerned (a CRD that
  was just established), so discovery is cached for the life of the process;
- server-side applies with ``PATCH`` ``application/apply-patch+yaml``,
  ``fieldManager=syncer&force=true&fieldValidation=Strict``;
- lists by label selector, following ``continue`` tokens;
- counts every request by verb (:attr:`KubeClient.requests`), which is how tests prove a
  no-change resync writes nothing.

Errors become :class:`ApiError` (``status`` 0 for transport failures), with the API
server's own message, so callers can report them per object in one line.
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import urllib3
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from syncer.cluster import transport
from syncer.names import FIELD_MANAGER
from syncer.problems import UserError

_AGGREGATED = ",".join(
    [
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
        "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList",
        "application/json",
    ]
)
_METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"
# Concurrent requests of a plan or an apply. The API server, not syncer, is the limit: a
# first apply of 4,000 objects on a 2-core machine took 3.0-3.3 s with 8, 2.6-2.8 s with
# 16 and 3.4-3.8 s with 4 (benchmarks/apply_vs_kubectl.py's fleet, 2026-12-06).
WORKERS = 16
RETRYABLE_STATUS = frozenset({0, 409, 429, 500, 502, 503, 504})
READ_ATTEMPTS = 3
# urllib3 retries only failed connects; statuses (429 with Retry-After included) come back
# to KubeClient.request, which decides.
_RETRY_CONNECT = urllib3.Retry(
    total=2, connect=2, read=0, redirect=0, status=0, other=0, status_forcelist=(),
    respect_retry_after_header=False, raise_on_status=False,
)


class ApiError(Exception):
    """A failed request: HTTP ``status`` (0 = no response), reason and server message."""

    def __init__(
        self, status: int, reason: str, message: str = "", retry_after: float | None = None
    ) -> None:
        self.status = status
        self.reason = reason
        self.message = message or reason
        self.retry_after = retry_after
        super().__init__(f"{status} {reason}: {self.message}" if status else self.message)

    @property
    def retryable(self) -> bool:
        """Worth another try: transport errors and timeouts, conflicts, throttling, 5xx.
        422/400/403/404 are answers about the object itself and do not change on retry."""
        return self.status in RETRYABLE_STATUS

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def forbidden(self) -> bool:
        return self.status == 403


class UnknownKind(Exception):
    """The API server serves no resource for this apiVersion/kind (yet)."""

    def __init__(self, api_version: str, kind: str) -> None:
        self.api_version = api_version
        self.kind = kind
        super().__init__(f"the server has no resource type {kind} in {api_version}")


@dataclass(frozen=True)
class Resource:
    """How to address one kind: ``kind`` -> ``plural``, scope, in one group version."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str = "", name: str = "") -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name:
            base += f"/{quote(name, safe='')}"
        return base


# --- connecting -----------------------------------------------------------------------


def default_kubeconfig(kubeconfig: str | None = None) -> str | None:
    """The kubeconfig to use, kubectl's order: the flag, ``$KUBECONFIG`` (its files that
    exist, merged), ``~/.kube/config``. None when there is none (then only in-cluster
    configuration is left)."""
    if kubeconfig:
        return kubeconfig
    paths = [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    existing = [p for p in paths if Path(p).expanduser().is_file()]
    if existing:
        return os.pathsep.join(existing)
    home = Path("~/.kube/config").expanduser()
    return str(home) if not paths and home.is_file() else None


def in_cluster() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and Path(
        "/var/run/secrets/kubernetes.io/serviceaccount/token"
    ).is_file()


def cluster_configured(kubeconfig: str | None = None) -> bool:
    """True when a cluster can be addressed at all (for the offline ``syncer plan``)."""
    return default_kubeconfig(kubeconfig) is not None or in_cluster()


def connect(
    kubeconfig: str | None = None, context: str | None = None, *, workers: int = WORKERS
) -> KubeClient:
    """A :class:`KubeClient` from a kubeconfig (kubectl's search order) or in-cluster
    configuration. Raises :class:`UserError` with one clear line on a bad kubeconfig."""
    cfg = k8s_client.Configuration()
    path = default_kubeconfig(kubeconfig)
    try:
        if path is not None:
            if kubeconfig and not Path(kubeconfig).expanduser().is_file():
                raise UserError(f"kubeconfig {kubeconfig}: no such file")
            load_kube_config: Any = k8s_config.load_kube_config
            load_kube_config(
                config_file=path, context=context, client_configuration=cfg,
                persist_config=False,
            )
        elif in_cluster():
            load_incluster: Any = k8s_config.load_incluster_config
            load_incluster(client_configuration=cfg)
        else:
            raise UserError(
                "no cluster configured: pass --kubeconfig, set KUBECONFIG or create "
                "~/.kube/config"
            )
    except UserError:
        raise
    except ConfigException as err:
        raise UserError(f"kubeconfig {path}: {_one_line(err)}") from None
    except Exception as err:  # YAML syntax, wrong shapes: the file is the user's mistake
        raise UserError(f"kubeconfig {path}: cannot be read: {_one_line(err)}") from None
    cfg.connection_pool_maxsize = max(workers, 4)
    cfg.retries = _RETRY_CONNECT
    return KubeClient(k8s_client.ApiClient(cfg))


# --- the client -----------------------------------------------------------------------


class KubeClient:
    """Raw JSON requests, cached discovery, SSA, LIST and DELETE. Safe to share between
    threads."""

    def __init__(self, api_client: Any, *, timeout: tuple[float, float] = (5.0, 30.0)) -> None:
        self.api_client = api_client
        self.timeout = timeout
        self.requests: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._direct = transport.for_client(api_client)
        self._resources: dict[tuple[str, str, str], Resource] | None = None
        self._checked_gv: set[str] = set()

    @property
    def server(self) -> str:
        return str(self.api_client.configuration.host)

    def close(self) -> None:
        if self._direct is not None:
            self._direct.close()
        self.api_client.close()

    # -- requests ----------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        accept: str = "application/json",
        timeout: tuple[float, float] | None = None,
    ) -> Any:
        """Send one request, return the parsed JSON body; raise :class:`ApiError`.

        Authentication headers come from the official client, per request (so exec
        plugins and rotated tokens work); the bytes go over a direct kept-alive
        connection or, when the official client's REST layer does more than that
        (proxy, a wrapped client), through it (:mod:`syncer.cluster.transport`).

        Like client-go, a 429 (API priority and fairness) is retried for every verb,
        after its ``Retry-After``; reads are also retried on 5xx and transport errors.
        Writes are otherwise retried by the caller, per object (:mod:`.apply`)."""
        for attempt in range(1, READ_ATTEMPTS + 1):
            try:
                return self._send(method, path, query, body, content_type, accept, timeout)
            except ApiError as err:
                again = err.status == 429 or (method == "GET" and err.retryable)
                if not again or attempt == READ_ATTEMPTS:
                    raise
                time.sleep(min(err.retry_after or 0.2 * 2 ** (attempt - 1), 5.0))
        raise AssertionError("unreachable")

    def _send(
        self, method: str, path: str, query: list[tuple[str, str]] | None, body: Any,
        content_type: str, accept: str, timeout: tuple[float, float] | None,
    ) -> Any:
        """One HTTP request (see :mod:`syncer.cluster.transport` for the two paths)."""
        headers = {**self.api_client.default_headers, "Accept": accept}
        if body is not None:
            headers["Content-Type"] = content_type
        self.api_client.update_params_for_auth(headers, [], ["BearerToken"], path, method, None)
        target = path + (f"?{urlencode(query)}" if query else "")
        with self._lock:
            self.requests[method] += 1
        try:
            if self._direct is not None:
                payload = None if body is None else json.dumps(body, separators=(",", ":"))
                reply = self._direct.send(method, target, headers,
                                          None if payload is None else payload.encode(),
                                          timeout or self.timeout)
                status, reason, reply_headers, data = (
                    reply.status, reply.reason, reply.headers, reply.data)
            else:
                # The REST layer JSON-encodes dict bodies for JSON and structured YAML types.
                response = self.api_client.rest_client.request(
                    method, self.server + target, headers=headers, body=body,
                    _request_timeout=timeout or self.timeout,
                )
                data = response.read()
                status, reason, reply_headers = (
                    int(response.status), str(response.reason or ""), response.headers)
        except ApiException as err:  # the REST layer reports TLS failures this way
            raise ApiError(0, "TLS error", f"TLS error talking to {self.server}: {err.reason}"
                           ) from None
        except ssl.SSLError as err:
            raise ApiError(0, "TLS error", f"TLS error talking to {self.server}: {err}") from None
        except TimeoutError:
            raise ApiError(0, "timeout", f"timed out talking to {self.server}") from None
        except urllib3.exceptions.HTTPError as err:
            raise ApiError(0, "unreachable", f"cannot reach {self.server}: {_cause(err)}") from None
        except (OSError, http.client.HTTPException) as err:
            reason_text = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
            raise ApiError(0, "unreachable", f"cannot reach {self.server}: {reason_text}"
                           ) from None
        if not 200 <= status < 300:
            raise _api_error(status, reason, data, reply_headers)
        return json.loads(data) if data else None

    # -- discovery ---------------------------------------------------------------------

    def resource(self, api_version: str, kind: str) -> Resource:
        """Map apiVersion/kind to its resource. Aggregated discovery is loaded once; an
        unknown group version is asked for directly (once per client run unless
        :meth:`forget`), so a newly established CRD is found without re-discovering
        everything. Raises :class:`UnknownKind`."""
        group, _, version = api_version.rpartition("/")
        key = (group, version, kind)
        resources = self._discover()
        found = resources.get(key)
        if found is not None:
            return found
        with self._lock:
            checked = api_version in self._checked_gv
            self._checked_gv.add(api_version)
        if not checked:
            for res in self._discover_group_version(group, version):
                resources[(res.group, res.version, res.kind)] = res
            found = resources.get(key)
        if found is None:
            raise UnknownKind(api_version, kind)
        return found

    def forget(self, api_version: str) -> None:
        """Look this group version up again on the next miss (after a CRD changed)."""
        with self._lock:
            self._checked_gv.discard(api_version)

    def _discover(self) -> dict[tuple[str, str, str], Resource]:
        if self._resources is None:
            found: dict[tuple[str, str, str], Resource] = {}
            for root in ("/api", "/apis"):
                doc = self.request("GET", root, accept=_AGGREGATED)
                if doc.get("kind") == "APIGroupDiscoveryList":
                    for res in _parse_aggregated(doc):
                        found[(res.group, res.version, res.kind)] = res
                # Servers without aggregated discovery: resolved per group version on miss.
            self._resources = found
        return self._resources

    def _discover_group_version(self, group: str, version: str) -> list[Resource]:
        path = f"/apis/{group}/{version}" if group else f"/api/{version}"
        try:
            doc = self.request("GET", path)
        except ApiError as err:
            if err.not_found:
                return []
            raise
        return [
            Resource(group, version, r["kind"], r["name"], bool(r.get("namespaced")))
            for r in doc.get("resources", [])
            if "/" not in r["name"]
        ]

    # -- reads -------------------------------------------------------------------------

    def list(
        self, resource: Resource, namespace: str = "", label_selector: str = "",
        *, metadata_only: bool = False, field_selector: str = "", page_size: int = 500,
    ) -> Iterator[dict[str, Any]]:
        """Every object of ``resource`` (in ``namespace``, or everywhere), following
        ``continue`` tokens, ``page_size`` per page. Only one page is decoded at a time:
        a caller that keeps less than each object holds less than the whole list."""
        query = [("limit", str(page_size))]
        if label_selector:
            query.append(("labelSelector", label_selector))
        if field_selector:
            query.append(("fieldSelector", field_selector))
        accept = _METADATA_LIST if metadata_only else "application/json"
        token = ""
        while True:
            page = self.request(
                "GET", resource.path(namespace), accept=accept,
                query=[*query, ("continue", token)] if token else query,
            )
            for item in page.get("items") or []:
                # Items of a LIST carry no apiVersion/kind (metadata-only ones carry
                # PartialObjectMetadata's): state the listed resource's.
                item["apiVersion"] = resource.api_version
                item["kind"] = resource.kind
                yield item
            token = (page.get("metadata") or {}).get("continue") or ""
            del page  # before the next page is decoded
            if not token:
                return

    def get(self, resource: Resource, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            obj: dict[str, Any] = self.request("GET", resource.path(namespace, name))
        except ApiError as err:
            if err.not_found:
                return None
            raise
        return obj

    # -- writes ------------------------------------------------------------------------

    def apply(
        self, resource: Resource, obj: dict[str, Any], *, dry_run: bool = False,
        field_manager: str = FIELD_MANAGER,
    ) -> dict[str, Any]:
        """Server-side apply ``obj`` (force: Git is the source of truth for its fields).
        Unknown or duplicate fields are rejected (``fieldValidation=Strict``, kubectl's
        default) rather than silently dropped: in Git they are typos."""
        meta = obj.get("metadata") or {}
        query = [("fieldManager", field_manager), ("force", "true"), ("fieldValidation", "Strict")]
        if dry_run:
            query.append(("dryRun", "All"))
        if not resource.namespaced and meta.get("namespace"):
            obj = {**obj, "metadata": {k: v for k, v in meta.items() if k != "namespace"}}
        result: dict[str, Any] = self.request(
            "PATCH", resource.path(str(meta.get("namespace") or ""), str(meta["name"])),
            query=query, body=obj, content_type=APPLY_PATCH,
        )
        return result

    def delete(
        self, resource: Resource, namespace: str, name: str, *, uid: str | None = None
    ) -> bool:
        """Delete in the background (dependents are garbage-collected by the server),
        only if the object is still the one we saw (``uid`` precondition). False if it
        was already gone."""
        body: dict[str, Any] = {
            "apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background",
        }
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            self.request("DELETE", resource.path(namespace, name), body=body)
        except ApiError as err:
            if err.not_found:
                return False
            raise
        return True


def _parse_aggregated(doc: dict[str, Any]) -> Iterator[Resource]:
    for group_doc in doc.get("items") or []:
        group = (group_doc.get("metadata") or {}).get("name", "")
        for version_doc in group_doc.get("versions") or []:
            version = version_doc.get("version", "")
            for res in version_doc.get("resources") or []:
                kind = (res.get("responseKind") or {}).get("kind")
                if not kind:
                    continue
                yield Resource(
                    group, version, kind, res["resource"], res.get("scope") == "Namespaced"
                )


def _api_error(status: int, reason: str, data: bytes, headers: Any) -> ApiError:
    message = ""
    try:
        doc = json.loads(data)
        if isinstance(doc, dict):
            message = str(doc.get("message") or "")
    except ValueError:
        message = data.decode("utf-8", "replace").strip()[:300]
    retry_after: float | None = None
    try:
        raw = headers.get("Retry-After") if headers is not None else None
        retry_after = float(raw) if raw else None
    except (TypeError, ValueError):
        retry_after = None
    return ApiError(status, reason, message, retry_after)


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


def _cause(err: BaseException) -> str:
    """The innermost useful reason of a urllib3 error (connection refused, timeout)."""
    reason: Any = getattr(err, "reason", None)
    while isinstance(reason, BaseException) and getattr(reason, "reason", None) is not None:
        reason = getattr(reason, "reason", None)
    text = str(reason or err)
    # urllib3 wraps as "<urllib3.connection.HTTPSConnection object at 0x..>: Failed to ..."
    return text.split(">: ", 1)[-1]

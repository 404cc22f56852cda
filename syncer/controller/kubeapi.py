"""A very small JSON client for the few Kubernetes calls the controller makes itself.

The controller's own objects (the leader Lease, the ``syncer-control`` ConfigMap,
Events) are handled as plain JSON ``dict``s, like every other Kubernetes object in syncer
(see docs/architecture.md). This module sends them through the official client's
:class:`~kubernetes.client.ApiClient`, so authentication (kubeconfig, in-cluster token,
exec plugins, client certificates) and TLS come from the official client, but it skips
the generated model classes: their constructors and (de)serialisers have changed shape
across client releases, and MicroTime fields (Lease ``renewTime``, Event ``eventTime``)
must be sent with exactly six fractional digits, which ``datetime.isoformat()`` does not
guarantee. Every call has a timeout; a non-2xx answer raises :class:`KubeError` with the
status code and the API server's message.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

JSON = dict[str, Any]

MERGE_PATCH = "application/merge-patch+json"
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class KubeError(Exception):
    """A failed API call: HTTP status (0 when the server was not reached) and message."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(f"{status}: {message}" if status else message)

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def forbidden(self) -> bool:
        return self.status == 403


def micro_time(when: datetime | None = None) -> str:
    """A Kubernetes MicroTime: RFC 3339 in UTC with exactly six fractional digits."""
    when = (when or datetime.now(UTC)).astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str | None) -> datetime | None:
    """Parse a Kubernetes Time or MicroTime (``...Z`` with or without fraction)."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def in_cluster() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and (
        SERVICE_ACCOUNT_DIR / "token"
    ).exists()


def new_api_client(kubeconfig: str | None = None, context: str | None = None) -> Any:
    """An ApiClient from ``kubeconfig`` (or ``$KUBECONFIG``/``~/.kube/config``), or the
    in-cluster service account when no kubeconfig is given and we run in a Pod."""
    if kubeconfig is None and in_cluster():
        configuration = k8s_client.Configuration()
        load_incluster: Any = k8s_config.load_incluster_config
        load_incluster(client_configuration=configuration)
        return k8s_client.ApiClient(configuration)
    new_client: Any = k8s_config.new_client_from_config
    return new_client(config_file=kubeconfig, context=context, persist_config=False)


def own_namespace(default: str) -> str:
    """The namespace of the Pod we run in (service account mount), else ``default``."""
    try:
        return (SERVICE_ACCOUNT_DIR / "namespace").read_text().strip() or default
    except OSError:
        return default


class Kube:
    """JSON requests through an official ``ApiClient``."""

    def __init__(self, api_client: Any, timeout: float = 10.0) -> None:
        self.api_client = api_client
        self.timeout = timeout

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        query: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> Any:
        headers = {"Accept": "application/json"}
        if body is not None:
            # The REST layer JSON-encodes the body for every ``application/*+json`` type.
            headers["Content-Type"] = content_type
        try:
            serialized = self.api_client.param_serialize(
                method=method,
                resource_path=path,
                query_params=list((query or {}).items()) or None,
                header_params=headers,
                auth_settings=["BearerToken"],
            )
            _method, url, header_params, _body, _post = serialized
            response = self.api_client.call_api(
                method,
                url,
                header_params=header_params,
                body=body,
                _request_timeout=timeout if timeout is not None else self.timeout,
            )
            data = response.read()
            status = int(response.status)
        except k8s_client.ApiException as err:  # raised by some transports on non-2xx
            raise KubeError(int(err.status or 0), _message(err.body) or str(err.reason)) from err
        except Exception as err:  # connection refused, timeout, TLS: not reached
            raise KubeError(0, f"{method} {path}: {type(err).__name__}: {err}") from err
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data or "")
        if not 200 <= status < 300:
            raise KubeError(status, _message(text) or f"{method} {path}: HTTP {status}")
        return json.loads(text) if text else None

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def create(self, path: str, body: JSON, **kw: Any) -> Any:
        return self.request("POST", path, body, **kw)

    def replace(self, path: str, body: JSON, **kw: Any) -> Any:
        return self.request("PUT", path, body, **kw)

    def merge_patch(self, path: str, body: JSON, **kw: Any) -> Any:
        return self.request("PATCH", path, body, content_type=MERGE_PATCH, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.request("DELETE", path, **kw)


def _message(body: Any) -> str:
    if not body:
        return ""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    try:
        status = json.loads(body)
    except (TypeError, ValueError):
        return " ".join(str(body).split())[:300]
    if isinstance(status, dict):
        return str(status.get("message") or status.get("reason") or "")
    return ""

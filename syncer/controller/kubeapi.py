"""The few Kubernetes calls the controller makes itself, and Kubernetes time formats.

The controller's own objects (the leader Lease, the ``syncer-control`` ConfigMap,
Events) are handled as plain JSON ``dict``s, like every other Kubernetes object in syncer
(see docs/architecture.md), sent through :class:`~syncer.cluster.client.KubeClient` like
every other request syncer makes, without the generated model classes: their
constructors and (de)serialisers have changed shape across client releases, and MicroTime
fields (Lease ``renewTime``, Event ``eventTime``) must be sent with exactly six fractional
digits, which ``datetime.isoformat()`` does not guarantee. Every call has a timeout; a
non-2xx answer raises :class:`KubeError` (the client's ``ApiError``) with the status code
and the API server's message.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from syncer.cluster.client import ApiError, KubeClient

JSON = dict[str, Any]

MERGE_PATCH = "application/merge-patch+json"


# The controller's errors are the one client's errors.
KubeError = ApiError


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


class Kube:
    """The verbs the controller's own objects need, over the one JSON client
    (:class:`~syncer.cluster.client.KubeClient`), with a single timeout in seconds."""

    def __init__(self, api_client: Any, timeout: float = 10.0) -> None:
        self.client = api_client if isinstance(api_client, KubeClient) else KubeClient(api_client)
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
        seconds = timeout if timeout is not None else self.timeout
        return self.client.request(
            method, path, body=body, content_type=content_type,
            query=list(query.items()) if query else None, timeout=(min(seconds, 5.0), seconds),
        )

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

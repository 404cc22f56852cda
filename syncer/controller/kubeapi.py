"""How the controller talks to Kubernetes about its own objects, and MicroTime.

The controller's own objects (the leader Lease, the ``syncer-control`` ConfigMap,
Events) are handled as plain JSON ``dict``s, like every other Kubernetes object in syncer
(see docs/architecture.md), and sent with
:meth:`KubeClient.request <syncer.cluster.client.KubeClient.request>` like every other
request syncer makes, without the generated model classes: their constructors and
(de)serialisers have changed shape across client releases, and MicroTime fields (Lease
``renewTime``, Event ``eventTime``) must be sent with exactly six fractional digits, which
``datetime.isoformat()`` does not guarantee. Each of those requests has a short timeout
of its own (a few seconds: a leader renews its Lease well within its renew deadline); a
non-2xx answer raises :class:`~syncer.cluster.client.ApiError` with the status code and
the API server's message.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

JSON = dict[str, Any]


def micro_time() -> str:
    """Now as a Kubernetes MicroTime: RFC 3339 in UTC with exactly six fractional digits."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

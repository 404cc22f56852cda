"""ConfigMaps as syncer keeps its own records in them: read whole, written key by key.

:func:`read_data` reads a ConfigMap's ``data`` (None when the ConfigMap does not exist):
the inputs (``syncer-fleet``, ``windows-instances``) and syncer's own records.
:func:`patch_data` writes syncer's own records in the fleet namespace —
``windows-ssh-host-keys`` (host-key pins of hosts without a Node), ``syncer-host-state``
(failure records of hosts without a Node), ``syncer-node-status`` (the last report) — as a
JSON merge patch of ``data`` naming only the keys it changes (``None`` deletes a key), so
writers of different keys never undo each other. The first write that sets a key creates
the ConfigMap, labelled ``app.kubernetes.io/managed-by: syncer``; a patch that only
deletes keys leaves a missing ConfigMap missing.
"""

from __future__ import annotations

from collections.abc import Mapping

from syncer import names
from syncer.cluster.client import MERGE_PATCH, ApiError, KubeClient, Resource

CONFIGMAPS = Resource("", "v1", "ConfigMap", "configmaps", True)


def read_data(api: KubeClient, namespace: str, name: str) -> dict[str, str] | None:
    """The ConfigMap's ``data`` ({} when it has none), or None when it does not exist."""
    cm = api.get(CONFIGMAPS, namespace, name)
    return None if cm is None else dict(cm.get("data") or {})


def patch_data(
    api: KubeClient, namespace: str, name: str, data: Mapping[str, str | None]
) -> None:
    """Set (str) or delete (None) exactly these keys, creating the ConfigMap if needed."""
    path = CONFIGMAPS.path(namespace, name)
    patch = {"data": dict(data)}
    try:
        api.request("PATCH", path, body=patch, content_type=MERGE_PATCH)
        return
    except ApiError as err:
        if not err.not_found:
            raise
    kept = {k: v for k, v in data.items() if v is not None}
    if not kept:
        return  # nothing to delete from a ConfigMap that does not exist
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {names.LABEL_MANAGED_BY: names.MANAGED_BY_VALUE},
        },
        "data": kept,
    }
    try:
        api.request("POST", CONFIGMAPS.path(namespace), body=body)
    except ApiError as err:
        if err.status != 409:
            raise
        api.request("PATCH", path, body=patch, content_type=MERGE_PATCH)

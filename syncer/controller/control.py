"""Suspend/resume and "reconcile now", through the ``syncer-control`` ConfigMap.

An operator controls a running controller with ``kubectl`` or ``syncer``, never by
restarting it, and the setting survives restarts and leader changes because it lives in
the cluster:

- ``data.suspend: "true"`` stops reconciles (Flux's ``spec.suspend``): the leader keeps
  its Lease, serves probes and metrics, and skips every trigger until the value is
  ``"false"`` or removed. ``syncer suspend`` / ``syncer resume`` set it.
- the annotation ``syncer.io/reconcile-requested-at: <any new value>`` asks for a
  reconcile now (Flux's ``reconcile.fluxcd.io/requestedAt``); ``syncer reconcile`` writes
  the current time. When the leader has run that reconcile it copies the value to
  ``syncer.io/last-handled-reconcile-at`` (Flux's ``status.lastHandledReconcileAt``), which
  is what ``syncer reconcile --wait`` waits for. A request made while suspended stays
  pending and runs on resume.

The same annotation carries webhook deliveries that reach a follower (the Service sends
them to any ready replica): the follower writes it, the leader sees it at its next control
poll. The ConfigMap is created on first write; a missing one means "not suspended, nothing
requested". All writes are JSON merge patches that touch only syncer's keys.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

from syncer import names
from syncer.cluster.client import MERGE_PATCH, ApiError, KubeClient
from syncer.cluster.objects import JSON, micro_time

TRUE_VALUES = frozenset({"true", "yes", "on", "1"})
FALSE_VALUES = frozenset({"false", "no", "off", "0", ""})
TIMEOUT = (5.0, 5.0)  # (connect, read) seconds of each request


@dataclass(frozen=True)
class ControlState:
    suspended: bool = False
    requested_at: str | None = None
    handled_at: str | None = None
    invalid_suspend: str | None = None  # a value of data.suspend that is not a boolean

    @property
    def pending_request(self) -> bool:
        return bool(self.requested_at) and self.requested_at != self.handled_at


def parse_state(configmap: JSON | None) -> ControlState:
    if not configmap:
        return ControlState()
    data = configmap.get("data") or {}
    annotations = (configmap.get("metadata") or {}).get("annotations") or {}
    raw = str(data.get(names.CONTROL_SUSPEND_KEY, "")).strip().lower()
    invalid = None
    if raw in TRUE_VALUES:
        suspended = True
    else:
        suspended = False
        if raw not in FALSE_VALUES:
            # Not a boolean: safer to stop than to keep applying what an operator meant to
            # pause. Reported by the loop so the operator sees why.
            suspended, invalid = True, raw
    return ControlState(
        suspended=suspended,
        requested_at=annotations.get(names.ANNOTATION_RECONCILE_REQUESTED_AT) or None,
        handled_at=annotations.get(names.ANNOTATION_RECONCILE_HANDLED_AT) or None,
        invalid_suspend=invalid,
    )


class ControlSource(Protocol):
    """Where the loop reads suspend and "reconcile now" from: the ``syncer-control``
    ConfigMap, or a WindowsFleet (:mod:`syncer.controller.fleetobject`)."""

    @property
    def title(self) -> str: ...

    def read(self) -> ControlState: ...

    def request_reconcile(self, stamp: str | None = None) -> str: ...

    def mark_handled(self, stamp: str) -> None: ...


class Control:
    """Reads and writes the control ConfigMap of one controller namespace."""

    def __init__(
        self, client: KubeClient, namespace: str, name: str = names.CONTROL_CONFIGMAP
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.name = name

    @property
    def path(self) -> str:
        return f"/api/v1/namespaces/{self.namespace}/configmaps/{self.name}"

    @property
    def title(self) -> str:
        return f"the {self.name} ConfigMap"

    def read(self) -> ControlState:
        try:
            return parse_state(self.client.request("GET", self.path, timeout=TIMEOUT))
        except ApiError as err:
            if err.not_found:
                return ControlState()
            raise

    def _patch(self, patch: dict[str, Any]) -> None:
        try:
            self._merge_patch(patch)
            return
        except ApiError as err:
            if not err.not_found:
                raise
        body: JSON = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": {names.LABEL_MANAGED_BY: names.MANAGED_BY_VALUE},
                **({"annotations": patch["metadata"]["annotations"]} if "metadata" in patch
                   else {}),
            },
            **({"data": patch["data"]} if "data" in patch else {}),
        }
        try:
            self.client.request("POST", f"/api/v1/namespaces/{self.namespace}/configmaps",
                                body=body, timeout=TIMEOUT)
        except ApiError as err:
            if not err.conflict:  # created meanwhile by someone else: patch it
                raise
            self._merge_patch(patch)

    def _merge_patch(self, patch: dict[str, Any]) -> None:
        self.client.request("PATCH", self.path, body=patch, content_type=MERGE_PATCH,
                            timeout=TIMEOUT)

    def set_suspended(self, suspended: bool) -> None:
        self._patch({"data": {names.CONTROL_SUSPEND_KEY: "true" if suspended else "false"}})

    def request_reconcile(self, stamp: str | None = None) -> str:
        stamp = stamp or micro_time()
        key = names.ANNOTATION_RECONCILE_REQUESTED_AT
        self._patch({"metadata": {"annotations": {key: stamp}}})
        return stamp

    def mark_handled(self, stamp: str) -> None:
        key = names.ANNOTATION_RECONCILE_HANDLED_AT
        self._patch({"metadata": {"annotations": {key: stamp}}})

    def wait_handled(self, stamp: str, timeout: float, poll: float = 1.0) -> bool:
        """Wait until the controller reports ``stamp`` handled; False on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            handled = self.read().handled_at
            # Requests coalesce: a later request handled in the same reconcile counts too
            # (stamps written by syncer are ISO 8601 UTC, so they sort as text).
            if handled is not None and (handled == stamp or handled > stamp):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll)

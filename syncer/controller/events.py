"""Kubernetes Events (``events.k8s.io/v1``) for the actions an operator wants to see.

``kubectl events -n syncer-system`` (or ``kubectl describe`` of the object) then tells the
story without reading logs: a revision applied, a revision that failed validation, a
prune that was refused, a rollout that started, halted or finished, reconciles suspended
and resumed, a new leader. Each Event regards an object: the one the caller names, by
default the controller's own Pod (``POD_NAME`` and ``POD_NAMESPACE`` from the downward
API), or the ``syncer-control`` ConfigMap outside a Pod.

Events are best effort: a failure to record one is logged and never fails a reconcile.
Like client-go's event recorder, identical events (same object, reason and note) within
``dedupe_window`` are recorded once, so a revision that keeps failing validation on every
poll does not flood the namespace.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from syncer import names
from syncer.cluster.client import ApiError, KubeClient
from syncer.cluster.objects import JSON, micro_time

log = logging.getLogger(__name__)

REPORTING_CONTROLLER = "syncer.io/syncer"
NORMAL = "Normal"
WARNING = "Warning"

# Reasons (CamelCase, as Kubernetes and Flux spell them).
REVISION_APPLIED = "RevisionApplied"
RECONCILE_FAILED = "ReconciliationFailed"
VALIDATION_FAILED = "ValidationFailed"
PRUNE_REFUSED = "PruneRefused"
ROLLOUT_STARTED = "RolloutStarted"
ROLLOUT_HALTED = "RolloutHalted"
ROLLOUT_FINISHED = "RolloutFinished"
SUSPENDED = "Suspended"
RESUMED = "Resumed"
LEADER_ELECTED = "LeaderElected"
SHUTDOWN_PARKED = "ShutdownParked"


def default_regarding(namespace: str) -> JSON:
    pod = os.environ.get("POD_NAME")
    if pod:
        ref: JSON = {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": pod,
            "namespace": os.environ.get("POD_NAMESPACE", namespace),
        }
        if os.environ.get("POD_UID"):
            ref["uid"] = os.environ["POD_UID"]
        return ref
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": names.CONTROL_CONFIGMAP,
        "namespace": namespace,
    }


class EventRecorder:
    def __init__(
        self,
        client: KubeClient | None,
        namespace: str,
        instance: str,
        regarding: JSON | Callable[[], JSON] | None = None,
        dedupe_window: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.instance = instance[:128]
        # A callable is asked at each Event (an object's uid is known once it was read).
        self.regarding = regarding or default_regarding(namespace)
        self.dedupe_window = dedupe_window
        self._clock = clock
        self._recent: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()

    def record(
        self,
        reason: str,
        note: str,
        type: str = NORMAL,
        regarding: JSON | None = None,
        action: str = "Reconcile",
    ) -> JSON | None:
        """Record one Event; returns the created Event, or None (deduplicated / failed)."""
        default = self.regarding
        target = regarding or (default() if callable(default) else default)
        note = " ".join(note.split())[:1024]
        key = (target.get("namespace", ""), target.get("kind", ""), target.get("name", ""),
               reason, note)
        now = self._clock()
        with self._lock:
            last = self._recent.get(key)
            if last is not None and now - last < self.dedupe_window:
                return None
            self._recent[key] = now
            if len(self._recent) > 1000:
                cutoff = now - self.dedupe_window
                self._recent = {k: t for k, t in self._recent.items() if t >= cutoff}
        log.log(
            logging.WARNING if type == WARNING else logging.INFO,
            "event",
            extra={"reason": reason, "note": note, "object": f"{target.get('kind')}/"
                   f"{target.get('name')}"},
        )
        if self.client is None:
            return None
        # Events about cluster-scoped objects live in "default" (API server validation).
        namespace = target.get("namespace") or "default"
        body: dict[str, Any] = {
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {
                # client-go's naming: <object>.<unix nanoseconds in hex>
                "name": f"{target.get('name') or 'syncer'}.{time.time_ns():x}",
                "namespace": namespace,
            },
            "eventTime": micro_time(),
            "reportingController": REPORTING_CONTROLLER,
            "reportingInstance": self.instance,
            "action": action[:128],
            "reason": reason[:128],
            "note": note,
            "type": type,
            "regarding": target,
        }
        try:
            created: JSON = self.client.request(
                "POST", f"/apis/events.k8s.io/v1/namespaces/{namespace}/events", body=body,
                timeout=(5.0, 5.0),
            )
        except ApiError as err:
            log.warning("recording an event failed", extra={"reason": reason, "error": str(err)})
            return None
        return created

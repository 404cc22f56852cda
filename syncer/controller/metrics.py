"""Prometheus metrics of ``syncer run``.

One :class:`Metrics` object owns its own :class:`~prometheus_client.CollectorRegistry`
(not the global one), so tests can build several controllers in one process and
``/metrics`` shows exactly syncer's series plus the process/platform collectors.

Series (names follow Prometheus conventions; Flux users will recognise the shape):

=====================================  =========  ==========================================
``syncer_reconcile_duration_seconds``  histogram  wall time of each reconcile
``syncer_reconciles_total{result}``    counter    success | failed | parked | skipped
``syncer_last_applied_revision_info``  gauge      1 for the ``revision`` last applied
``syncer_objects{result}``             gauge      objects of the last apply by result
                                                  (created, configured, unchanged, pruned,
                                                  failed, ...)
``syncer_hosts{phase}``                gauge      Windows hosts by phase of their state
                                                  machine (up-to-date, draining, ...)
``syncer_rollout_hosts_done``          gauge      hosts at the desired version
``syncer_rollout_hosts_total``         gauge      hosts in the current rollout
``syncer_git_errors_total``            counter    failed Git operations (fetch, push)
``syncer_writeback_pending``           gauge      status/note commits queued, not yet pushed
``syncer_forge_errors_total``          counter    failed forge API actions (PR previews)
``syncer_ssh_errors_total``            counter    failed SSH sessions or commands
``syncer_webhooks_total{provider,      counter    webhook deliveries by answer
code}``
``syncer_leader``                      gauge      1 while this replica holds the Lease
``syncer_suspended``                   gauge      1 while reconciles are suspended
=====================================  =========  ==========================================

Gauges that describe the last reconcile are replaced as a whole (a phase that no host is
in any more disappears instead of keeping its old count).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import (
    PlatformCollector as _PlatformCollector,
)
from prometheus_client import (
    ProcessCollector as _ProcessCollector,
)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
RESULTS = ("success", "failed", "parked", "skipped")
# Reconciles range from a no-op poll (well under a second) to a rollout over many hosts.
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self._lock = threading.Lock()
        self.reconcile_duration = Histogram(
            "syncer_reconcile_duration_seconds",
            "Duration of a reconcile.",
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.reconciles = Counter(
            "syncer_reconciles", "Reconciles by result.", ["result"], registry=r
        )
        for result in RESULTS:
            self.reconciles.labels(result)
        self.last_applied_revision = Gauge(
            "syncer_last_applied_revision_info",
            "The Git revision last applied (value 1).",
            ["revision"],
            registry=r,
        )
        self.objects = Gauge(
            "syncer_objects", "Objects of the last apply by result.", ["result"], registry=r
        )
        self.hosts = Gauge("syncer_hosts", "Windows hosts by phase.", ["phase"], registry=r)
        self.rollout_done = Gauge(
            "syncer_rollout_hosts_done", "Hosts of the rollout at the desired version.",
            registry=r,
        )
        self.rollout_total = Gauge(
            "syncer_rollout_hosts_total", "Hosts in the rollout.", registry=r
        )
        self.git_errors = Counter("syncer_git_errors", "Failed Git operations.", registry=r)
        self.ssh_errors = Counter("syncer_ssh_errors", "Failed SSH operations.", registry=r)
        self.writeback_pending = Gauge(
            "syncer_writeback_pending", "Status and note commits queued, not yet pushed.",
            registry=r,
        )
        self.forge_errors = Counter(
            "syncer_forge_errors", "Failed forge API actions (PR previews).", registry=r
        )
        self.webhooks = Counter(
            "syncer_webhooks", "Webhook deliveries by answer.", ["provider", "code"], registry=r
        )
        self.leader = Gauge("syncer_leader", "1 while this replica is the leader.", registry=r)
        self.suspended = Gauge(
            "syncer_suspended", "1 while reconciles are suspended.", registry=r
        )
        _ProcessCollector(registry=r)
        _PlatformCollector(registry=r)
        self._revision: str | None = None

    # --- updates (all thread-safe) ---------------------------------------------------------

    def set_revision(self, revision: str) -> None:
        with self._lock:
            if revision == self._revision:
                return
            if self._revision is not None:
                self.last_applied_revision.remove(self._revision)
            self.last_applied_revision.labels(revision).set(1)
            self._revision = revision

    def set_objects(self, counts: Mapping[str, int]) -> None:
        _replace(self.objects, counts, self._lock)

    def set_hosts(self, counts: Mapping[str, int]) -> None:
        _replace(self.hosts, counts, self._lock)

    def set_rollout(self, done: int, total: int) -> None:
        self.rollout_done.set(done)
        self.rollout_total.set(total)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def _replace(gauge: Gauge, counts: Mapping[str, int], lock: threading.Lock) -> None:
    with lock:
        gauge.clear()
        for label, value in sorted(counts.items()):
            gauge.labels(label).set(value)

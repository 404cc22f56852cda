"""Prometheus metrics of ``syncer run``.

One :class:`Metrics` object owns its own :class:`~prometheus_client.CollectorRegistry`
(not the global one), so tests can build several controllers in one process and
``/metrics`` shows exactly syncer's series plus the process/platform collectors.

Series (names follow Prometheus conventions; Flux users will recognise the shape). The
series of a reconcile carry the label ``fleet``: the WindowsFleet the loop follows
(``--fleet-object NAME``, or each of ``'*'``), empty when the controller follows the
repository its own flags name. With ``'*'`` every fleet has its own series, as every
Kustomization has in Flux's ``gotk_reconcile_*``; a fleet that is no longer followed has
its series removed.

==============================================  =========  ===============================
``syncer_reconcile_duration_seconds{fleet}``    histogram  wall time of each reconcile
``syncer_reconciles_total{fleet,result}``       counter    success | failed | parked |
                                                           skipped
``syncer_last_applied_revision_info{fleet,      gauge      1 for the ``revision`` last
revision}``                                                applied
``syncer_objects{fleet,result}``                gauge      objects of the last apply by
                                                           result (created, configured,
                                                           unchanged, pruned, failed, ...)
``syncer_hosts{fleet,phase}``                   gauge      Windows hosts by phase of their
                                                           state machine
``syncer_rollout_hosts_done{fleet}``            gauge      hosts at the desired version
``syncer_rollout_hosts_total{fleet}``           gauge      hosts in the current rollout
``syncer_writeback_pending{fleet}``             gauge      status/note commits queued, not
                                                           yet pushed
``syncer_suspended{fleet}``                     gauge      1 while reconciles are suspended
``syncer_git_errors_total``                     counter    failed Git operations (fetch,
                                                           push)
``syncer_forge_errors_total``                   counter    failed forge API actions (PR
                                                           previews)
``syncer_ssh_errors_total``                     counter    failed SSH sessions or commands
``syncer_webhooks_total{provider,code}``        counter    webhook deliveries by answer
``syncer_leader``                               gauge      1 while this replica holds the
                                                           Lease
==============================================  =========  ===============================

Gauges that describe the last reconcile are replaced as a whole, per fleet (a phase that
no host is in any more disappears instead of keeping its old count).
"""

from __future__ import annotations

import contextlib
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
FLEET = "fleet"
RESULTS = ("success", "failed", "parked", "skipped")
# Reconciles range from a no-op poll (well under a second) to a rollout over many hosts.
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)


class Metrics:
    """The controller's registry and series; :meth:`fleet` gives one loop its view."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self._lock = threading.Lock()
        self.reconcile_duration = Histogram(
            "syncer_reconcile_duration_seconds",
            "Duration of a reconcile.",
            [FLEET],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.reconciles = Counter(
            "syncer_reconciles", "Reconciles by result.", [FLEET, "result"], registry=r
        )
        self.last_applied_revision = Gauge(
            "syncer_last_applied_revision_info",
            "The Git revision last applied (value 1).",
            [FLEET, "revision"],
            registry=r,
        )
        self.objects = Gauge(
            "syncer_objects", "Objects of the last apply by result.", [FLEET, "result"],
            registry=r,
        )
        self.hosts = Gauge("syncer_hosts", "Windows hosts by phase.", [FLEET, "phase"],
                           registry=r)
        self.rollout_done = Gauge(
            "syncer_rollout_hosts_done", "Hosts of the rollout at the desired version.",
            [FLEET], registry=r,
        )
        self.rollout_total = Gauge(
            "syncer_rollout_hosts_total", "Hosts in the rollout.", [FLEET], registry=r
        )
        self.writeback_pending = Gauge(
            "syncer_writeback_pending", "Status and note commits queued, not yet pushed.",
            [FLEET], registry=r,
        )
        self.suspended = Gauge(
            "syncer_suspended", "1 while reconciles are suspended.", [FLEET], registry=r
        )
        self.git_errors = Counter("syncer_git_errors", "Failed Git operations.", registry=r)
        self.ssh_errors = Counter("syncer_ssh_errors", "Failed SSH operations.", registry=r)
        self.forge_errors = Counter(
            "syncer_forge_errors", "Failed forge API actions (PR previews).", registry=r
        )
        self.webhooks = Counter(
            "syncer_webhooks", "Webhook deliveries by answer.", ["provider", "code"], registry=r
        )
        self.leader = Gauge("syncer_leader", "1 while this replica is the leader.", registry=r)
        _ProcessCollector(registry=r)
        _PlatformCollector(registry=r)

    def fleet(self, name: str) -> FleetMetrics:
        """The series of the fleet ``name`` ("" for the flags' own repository)."""
        return FleetMetrics(self, name)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class FleetMetrics:
    """One loop's view: its fleet's series (all updates thread-safe), and the
    controller-wide counters every loop adds to."""

    def __init__(self, metrics: Metrics, name: str) -> None:
        self.metrics, self.name = metrics, name
        self._lock = threading.Lock()
        self._revision: str | None = None
        self._shown: dict[str, set[str]] = {}  # gauge name -> label values set
        for result in RESULTS:
            metrics.reconciles.labels(name, result)
        metrics.suspended.labels(name)
        self.git_errors = metrics.git_errors
        self.ssh_errors = metrics.ssh_errors
        self.forge_errors = metrics.forge_errors
        self.leader = metrics.leader

    def observe_duration(self, seconds: float) -> None:
        self.metrics.reconcile_duration.labels(self.name).observe(seconds)

    def count(self, result: str) -> None:
        self.metrics.reconciles.labels(self.name, result).inc()

    def set_revision(self, revision: str) -> None:
        with self._lock:
            if revision == self._revision:
                return
            gauge = self.metrics.last_applied_revision
            if self._revision is not None:
                gauge.remove(self.name, self._revision)
            gauge.labels(self.name, revision).set(1)
            self._revision = revision

    def set_objects(self, counts: Mapping[str, int]) -> None:
        self._replace("objects", self.metrics.objects, counts)

    def set_hosts(self, counts: Mapping[str, int]) -> None:
        self._replace("hosts", self.metrics.hosts, counts)

    def set_rollout(self, done: int, total: int) -> None:
        self.metrics.rollout_done.labels(self.name).set(done)
        self.metrics.rollout_total.labels(self.name).set(total)

    def set_suspended(self, suspended: bool) -> None:
        self.metrics.suspended.labels(self.name).set(1 if suspended else 0)

    def set_writeback_pending(self, pending: int) -> None:
        self.metrics.writeback_pending.labels(self.name).set(pending)

    def forget(self) -> None:
        """Remove every series of this fleet (it is no longer followed)."""
        m = self.metrics
        with self._lock:
            labelled: list[tuple[Counter | Gauge, str]] = [(m.reconciles, r) for r in RESULTS]
            labelled += [(m.objects, v) for v in self._shown.pop("objects", set())]
            labelled += [(m.hosts, v) for v in self._shown.pop("hosts", set())]
            if self._revision is not None:
                labelled.append((m.last_applied_revision, self._revision))
                self._revision = None
            for family, value in labelled:
                with contextlib.suppress(KeyError):
                    family.remove(self.name, value)
            for single in (m.reconcile_duration, m.rollout_done, m.rollout_total,
                           m.writeback_pending, m.suspended):
                with contextlib.suppress(KeyError):
                    single.remove(self.name)

    def _replace(self, key: str, gauge: Gauge, counts: Mapping[str, int]) -> None:
        with self._lock:
            shown = self._shown.setdefault(key, set())
            for label in shown - set(counts):
                gauge.remove(self.name, label)
            for label, value in sorted(counts.items()):
                gauge.labels(self.name, label).set(value)
            shown.clear()
            shown.update(counts)

"""Leader election with a ``coordination.k8s.io/v1`` Lease, as client-go does it.

Several replicas of ``syncer run`` may run; exactly one reconciles. Each replica runs a
:class:`LeaderElector` in a thread:

- *acquire*: every ``retry_period`` read the Lease. Create it if it does not exist. Take
  it over if its holder is empty (released) or if its record has not changed for
  ``lease_duration`` as observed *on this replica's monotonic clock* (like client-go, the
  holder's ``renewTime`` is recorded but never compared with our wall clock, so clock skew
  between nodes cannot shorten a lease).
- *renew*: the leader rewrites ``renewTime`` every ``retry_period``; when no renewal has
  succeeded for ``renew_deadline`` it stops leading (calls ``on_stopped_leading``) and
  goes back to acquiring. Because ``renew_deadline < lease_duration``, the old leader
  has stopped before any other replica may take over.
- every write is a PUT carrying the ``resourceVersion`` that was read, so two candidates
  racing for an expired lease cannot both win: the API server answers one with 409.
- *release* on graceful shutdown: the leader clears ``holderIdentity`` (and sets a 1 s
  duration), so a follower takes over at its next retry instead of waiting for expiry.

Defaults are client-go's (15 s / 10 s / 2 s); tests shorten them. The identity is the Pod
name plus a random suffix (see ``config.default_identity``).

Why not ``kubernetes.leaderelection`` from the official client: its loop cannot be
stopped (``run`` blocks forever), it never releases the lease on shutdown (a failover
always waits for expiry), it builds its ``CoordinationV1Api`` from the global default
configuration instead of a given ``ApiClient``, it runs the leader's work in a daemon
thread it does not own, and it does not report a lost lease until the renew deadline has
passed in a sleeping loop that ignores shutdown. The algorithm is small; this module is
that algorithm with those gaps closed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from syncer import __version__, names
from syncer.cluster.client import ApiError, KubeClient
from syncer.cluster.objects import JSON, micro_time

log = logging.getLogger(__name__)
# Who holds the Lease runs this version (`syncer version` reads it).
_ANNOTATIONS = {names.ANNOTATION_CONTROLLER_VERSION: __version__}


@dataclass(frozen=True)
class LeaseSettings:
    name: str
    namespace: str
    identity: str
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0


def lease_path(namespace: str, name: str | None = None) -> str:
    base = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
    return f"{base}/{name}" if name else base


class LeaderElector:
    """Campaigns for one Lease until stopped; calls back on gaining and losing it."""

    def __init__(
        self,
        client: KubeClient,
        settings: LeaseSettings,
        on_started_leading: Callable[[], None] = lambda: None,
        on_stopped_leading: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.settings = settings
        self._on_started = on_started_leading
        self._on_stopped = on_stopped_leading
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.leading = threading.Event()
        self._observed: JSON | None = None  # last Lease read or written
        self._observed_at = 0.0  # our clock when the observed record last changed
        self._last_renew = 0.0
        self._holder: str | None = None  # the leader as last observed

    # --- public ------------------------------------------------------------------------

    @property
    def identity(self) -> str:
        return self.settings.identity

    @property
    def is_leader(self) -> bool:
        return self.leading.is_set()

    def start(self) -> threading.Thread:
        self._thread = threading.Thread(target=self.run, name="leader-election", daemon=True)
        self._thread.start()
        return self._thread

    def run(self) -> None:
        """Campaign and renew until :meth:`stop`. Never raises."""
        settings = self.settings
        while not self._stop.is_set():
            try:
                if self.is_leader:
                    if self.try_acquire_or_renew():
                        self._last_renew = self._clock()
                    elif self._holder not in (None, self.identity):
                        log.warning(
                            "leader election lost: another replica holds the lease",
                            extra={"lease": settings.name, "leader": self._holder},
                        )
                        self._set_leading(False)
                    elif self._clock() - self._last_renew >= settings.renew_deadline:
                        log.warning(
                            "leader election lost: could not renew the lease in time",
                            extra={"lease": settings.name, "identity": self.identity},
                        )
                        self._set_leading(False)
                elif self.try_acquire_or_renew():
                    self._last_renew = self._clock()
                    self._set_leading(True)
            except Exception:  # never let the election thread die
                log.exception("leader election step failed", extra={"lease": settings.name})
            self._stop.wait(settings.retry_period)

    def stop(self, release: bool = True, timeout: float = 10.0) -> None:
        """Stop campaigning; with ``release`` give the lease up if we hold it."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        was_leader = self.is_leader
        if was_leader:
            if release:
                self.release()
            self._set_leading(False)

    # --- the algorithm -----------------------------------------------------------------

    def _record(self, now_iso: str, old: JSON | None) -> JSON:
        s = self.settings
        spec = (old or {}).get("spec") or {}
        ours = spec.get("holderIdentity") == s.identity
        return {
            "holderIdentity": s.identity,
            "leaseDurationSeconds": max(1, round(s.lease_duration)),
            "acquireTime": spec.get("acquireTime") if ours and spec.get("acquireTime") else now_iso,
            "renewTime": now_iso,
            "leaseTransitions": int(spec.get("leaseTransitions") or 0) + (0 if ours else 1),
        }

    def _observe(self, lease: JSON) -> None:
        spec = lease.get("spec") or {}
        old = (self._observed or {}).get("spec") or {}
        if self._observed is None or spec != old:
            self._observed_at = self._clock()
        holder = spec.get("holderIdentity") or None
        if holder != self._holder:
            self._holder = holder
            if holder and holder != self.identity:
                log.info("new leader observed", extra={"leader": holder})
        self._observed = lease

    def try_acquire_or_renew(self) -> bool:
        """One attempt; True when we hold the lease afterwards."""
        s = self.settings
        seconds = max(0.5, min(s.renew_deadline / 2, 5.0))
        timeout = (seconds, seconds)
        now_iso = micro_time()
        try:
            lease = self.client.request("GET", lease_path(s.namespace, s.name), timeout=timeout)
        except ApiError as err:
            if not err.not_found:
                log.info("reading the lease failed", extra={"lease": s.name, "reason": str(err)})
                return False
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": s.name, "namespace": s.namespace,
                             "annotations": _ANNOTATIONS},
                "spec": {**self._record(now_iso, None), "leaseTransitions": 0},
            }
            try:
                created = self.client.request("POST", lease_path(s.namespace), body=body,
                                              timeout=timeout)
            except ApiError as create_err:
                log.info("creating the lease failed", extra={"reason": str(create_err)})
                return False
            self._observe(created)
            return True

        self._observe(lease)
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        duration = float(spec.get("leaseDurationSeconds") or s.lease_duration)
        if holder and holder != s.identity and self._clock() - self._observed_at < duration:
            return False  # held by another replica and not expired
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": s.name,
                "namespace": s.namespace,
                "resourceVersion": (lease.get("metadata") or {}).get("resourceVersion"),
                "annotations": _ANNOTATIONS,
            },
            "spec": self._record(now_iso, lease),
        }
        try:
            updated = self.client.request("PUT", lease_path(s.namespace, s.name), body=body,
                                          timeout=timeout)
        except ApiError as err:
            if not err.conflict:
                log.info("updating the lease failed", extra={"lease": s.name, "reason": str(err)})
            return False
        if holder != s.identity:
            log.info(
                "lease acquired",
                extra={"lease": s.name, "identity": s.identity, "previous": holder or None},
            )
        self._observe(updated)
        return True

    def release(self) -> bool:
        """Give the lease up (only if we still hold it, checked by resourceVersion)."""
        s = self.settings
        path, timeout = lease_path(s.namespace, s.name), (5.0, 5.0)
        try:
            lease = self.client.request("GET", path, timeout=timeout)
            spec = lease.get("spec") or {}
            if spec.get("holderIdentity") != s.identity:
                return False
            now_iso = micro_time()
            lease["spec"] = {
                **spec,
                "holderIdentity": None,
                "leaseDurationSeconds": 1,
                "acquireTime": now_iso,
                "renewTime": now_iso,
            }
            self.client.request("PUT", path, body=lease, timeout=timeout)
        except ApiError as err:
            log.warning("releasing the lease failed", extra={"lease": s.name, "reason": str(err)})
            return False
        log.info("lease released", extra={"lease": s.name, "identity": s.identity})
        return True

    def _set_leading(self, leading: bool) -> None:
        if leading == self.is_leader:
            return
        fields = {"lease": self.settings.name, "identity": self.identity}
        if leading:
            self.leading.set()
            log.info("started leading", extra=fields)
            self._safe(self._on_started)
        else:
            self.leading.clear()
            log.info("stopped leading", extra=fields)
            self._safe(self._on_stopped)

    @staticmethod
    def _safe(callback: Callable[..., Any], *args: Any) -> None:
        try:
            callback(*args)
        except Exception:
            log.exception("leader election callback failed")


class AlwaysLeader:
    """Stand-in when leader election is off (``--no-leader-elect``): leads at once."""

    def __init__(
        self,
        identity: str,
        on_started_leading: Callable[[], None] = lambda: None,
        on_stopped_leading: Callable[[], None] = lambda: None,
    ) -> None:
        self.identity = identity
        self.leading = threading.Event()
        self._on_started = on_started_leading
        self._on_stopped = on_stopped_leading

    @property
    def is_leader(self) -> bool:
        return self.leading.is_set()

    def start(self) -> None:
        self.leading.set()
        self._on_started()

    def stop(self, release: bool = True, timeout: float = 10.0) -> None:
        if self.leading.is_set():
            self.leading.clear()
            self._on_stopped()

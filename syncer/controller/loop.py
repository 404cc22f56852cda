"""The reconcile loop of ``syncer run``: when to reconcile, and one reconcile at a time.

The loop does not know what a reconcile does. It calls a :data:`Reconciler`::

    Reconciler = Callable[[ReconcileRequest, threading.Event], ReconcileOutcome]

with the triggers that caused the run, a :class:`Progress` to report through while it
works (hosts by phase, rollout counts, Git/SSH errors, Kubernetes Events, a heartbeat),
and a *park token*: a :class:`threading.Event` that is set when the reconcile must stop
taking new work — SIGTERM, or this replica lost the Lease. A reconcile checks it between
steps (before starting the next host, between the steps of a host where that is safe)
and returns ``ReconcileOutcome(result="parked")`` once nothing is half done. The state of
a rollout lives in the cluster (Node annotations, the rollout Lease), so the next leader
resumes it; the token only decides *where* this process stops.

When a reconcile runs:

- only while this replica leads (``leadership_changed``); at once on becoming leader (a
  new leader resumes a rollout in progress);
- every ``interval`` ± ``jitter`` (default 1 m ± 10 %, so replicas of many installations
  do not poll a forge in lockstep), counted from the end of the previous run;
- at once on a webhook trigger (:meth:`Loop.trigger`), or when the control object (the
  ``syncer-control`` ConfigMap, or the WindowsFleet that ``--fleet-object`` names) carries
  a new "reconcile now" stamp (polled every ``control_poll_interval`` by the leader);
- never while suspended (``data.suspend: "true"``): triggers are counted as ``skipped``,
  a reconcile-now request stays pending until resume.

Triggers that arrive while a reconcile runs are coalesced into the next one, so a burst
of pushes causes at most one extra reconcile. A webhook that reaches a follower is relayed
through the control ConfigMap, so it is not lost behind the Service.

Failures never end the loop: an exception from the reconcile is logged, counted and
reported as a ``ReconciliationFailed`` Event, and the next trigger runs again.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from syncer.cluster.client import ApiError
from syncer.controller import events as ev
from syncer.controller import heap
from syncer.controller.control import ControlSource, ControlState
from syncer.controller.events import EventRecorder
from syncer.controller.metrics import FleetMetrics
from syncer.controller.webhooks import HookEvent
from syncer.problems import UserError

log = logging.getLogger(__name__)

# Trigger reasons.
LEADER = "leader"
INTERVAL = "interval"
WEBHOOK = "webhook"
REQUESTED = "requested"

# Outcome results (also the label values of syncer_reconciles_total).
SUCCESS = "success"
FAILED = "failed"
PARKED = "parked"
SKIPPED = "skipped"


@dataclass(frozen=True)
class Trigger:
    reason: str
    detail: str = ""
    event: HookEvent | None = None
    stamp: str | None = None  # the reconcile-requested-at value of a REQUESTED trigger


class Progress:
    """What a running reconcile reports through; every call also counts as a heartbeat."""

    def __init__(
        self,
        metrics: FleetMetrics,
        events: EventRecorder | None,
        heartbeat: Callable[[], None] = lambda: None,
    ) -> None:
        self._metrics = metrics
        self._events = events
        self._heartbeat = heartbeat

    def beat(self) -> None:
        """Tell the loop the reconcile is making progress (for the stuck check)."""
        self._heartbeat()

    def hosts(self, counts: Mapping[str, int]) -> None:
        self._metrics.set_hosts(counts)
        self.beat()

    def rollout(self, done: int, total: int) -> None:
        self._metrics.set_rollout(done, total)
        self.beat()

    def objects(self, counts: Mapping[str, int]) -> None:
        self._metrics.set_objects(counts)
        self.beat()

    def git_error(self) -> None:
        self._metrics.git_errors.inc()
        self.beat()

    def ssh_error(self) -> None:
        self._metrics.ssh_errors.inc()
        self.beat()

    def writeback(self, pending: int, forge_errors: int = 0) -> None:
        """After the write-back: entries still queued, forge actions that failed."""
        self._metrics.set_writeback_pending(pending)
        if forge_errors:
            self._metrics.forge_errors.inc(forge_errors)
        self.beat()

    def event(self, reason: str, note: str, type: str = ev.NORMAL) -> None:
        if self._events is not None:
            self._events.record(reason, note, type)
        self.beat()


@dataclass(frozen=True)
class ReconcileRequest:
    triggers: tuple[Trigger, ...]
    progress: Progress
    identity: str = ""

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(t.reason for t in self.triggers))

    @property
    def pull_requests(self) -> tuple[int, ...]:
        numbers = (t.event.pull_request for t in self.triggers if t.event)
        return tuple(sorted({n for n in numbers if n is not None}))


@dataclass(frozen=True)
class HostEntry:
    """One host as the WindowsFleet's ``status.hostTable`` shows it."""

    name: str
    phase: str
    version: str = ""
    message: str = ""


@dataclass(frozen=True)
class ReconcileOutcome:
    result: str = SUCCESS
    revision: str | None = None  # the revision now applied (None: unchanged / unknown)
    message: str = ""
    objects: Mapping[str, int] | None = None
    hosts: Mapping[str, int] | None = None
    rollout: tuple[int, int] | None = None  # (done, total)
    retry_after: float | None = None  # run again sooner than the interval
    ref: str | None = None  # branch of the revision, for the "Applied revision" message
    reported: bool = False  # the reconcile already recorded a Warning Event for the failure
    # Why the fleet is not Ready (Flux-style reason; None when it is), and whether only a
    # person can change that (a refused revision, WMCO managing the nodes): kstatus Stalled.
    reason: str | None = None
    stalled: bool = False
    attempted: str | None = None  # the revision this reconcile tried
    table: tuple[HostEntry, ...] = ()


class Observer(Protocol):
    """Told when a reconcile starts and how it ended (the WindowsFleet's status)."""

    def reconciling(self, message: str) -> None: ...

    def finished(self, outcome: ReconcileOutcome) -> None: ...


Reconciler = Callable[[ReconcileRequest, threading.Event], ReconcileOutcome]


@dataclass
class LoopStatus:
    suspended: bool = False
    running_since: float | None = None
    last_beat: float | None = None
    last_result: str | None = None
    last_revision: str | None = None


class Loop:
    def __init__(
        self,
        reconcile: Reconciler,
        *,
        metrics: FleetMetrics,
        events: EventRecorder | None = None,
        control: ControlSource | None = None,
        observer: Observer | None = None,
        interval: float = 60.0,
        jitter: float = 0.1,
        control_poll_interval: float = 5.0,
        stuck_timeout: float = 1800.0,
        identity: str = "",
        ref: str = "main",
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._reconcile = reconcile
        self.metrics = metrics
        self.events = events
        self.control = control
        self.observer = observer
        self.interval = interval
        self.jitter = jitter
        self.control_poll_interval = control_poll_interval
        self.stuck_timeout = stuck_timeout
        self.identity = identity
        self.ref = ref
        self._clock = clock
        self._rng = rng or random.Random()
        self._cond = threading.Condition()
        self._pending: list[Trigger] = []
        self._stopping = False
        self._leading = False
        self._park: threading.Event | None = None
        self._next_due: float | None = None
        self._next_control = 0.0
        self._control_state = ControlState()
        self._control_error_logged = False
        self.status = LoopStatus()
        self._thread: threading.Thread | None = None
        self.finished = threading.Event()
        self._retired = False

    # --- inputs (thread-safe) ----------------------------------------------------------

    def leadership_changed(self, leading: bool) -> None:
        with self._cond:
            self._leading = leading
            self.metrics.leader.set(1 if leading else 0)
            if leading:
                self._pending.append(Trigger(LEADER, "became leader"))
                self._next_control = 0.0
            elif self._park is not None:
                log.warning("lost leadership during a reconcile: parking it")
                self._park.set()
            self._cond.notify_all()
        if leading and self.events is not None:
            self.events.record(ev.LEADER_ELECTED, f"{self.identity} became leader")

    def trigger(self, trigger: Trigger) -> str:
        """Ask for a reconcile. Returns ``queued`` (this replica leads), ``relayed``
        (written to the control ConfigMap for the leader) or ``dropped``."""
        with self._cond:
            if self._leading and not self._stopping:
                self._pending.append(trigger)
                self._cond.notify_all()
                return "queued"
        if self.control is None:
            return "dropped"
        try:
            self.control.request_reconcile()
        except ApiError as err:
            log.warning("relaying a trigger to the leader failed", extra={"error": str(err)})
            return "dropped"
        return "relayed"

    def shutdown(self) -> None:
        """Stop taking work; park the running reconcile. ``run`` returns when it has."""
        with self._cond:
            self._stopping = True
            if self._park is not None:
                self._park.set()
            self._cond.notify_all()

    # --- status ------------------------------------------------------------------------

    def _beat(self) -> None:
        self.status.last_beat = self._clock()

    @property
    def suspended(self) -> bool:
        return self.status.suspended

    def stuck(self) -> bool:
        """True when a reconcile has run without any progress for ``stuck_timeout``."""
        if self._thread is not None and not self._thread.is_alive() and not self.finished.is_set():
            return True
        beat = self.status.last_beat
        return self.status.running_since is not None and beat is not None and (
            self._clock() - beat > self.stuck_timeout
        )

    # --- the loop ----------------------------------------------------------------------

    def start(self) -> threading.Thread:
        self._thread = threading.Thread(target=self.run, name="reconcile-loop", daemon=True)
        self._thread.start()
        return self._thread

    def join(self, timeout: float | None = None) -> bool:
        """Wait for :meth:`run` to return; True when it has."""
        return self.finished.wait(timeout)

    def retire(self) -> None:
        """Stop for good (its fleet is no longer followed): as :meth:`shutdown`, and the
        fleet's series leave ``/metrics`` once the running reconcile has ended."""
        self._retired = True
        self.shutdown()
        if self.finished.is_set():
            self.metrics.forget()

    def run(self) -> None:
        try:
            self._run()
        finally:
            if self._retired:
                self.metrics.forget()
            self.finished.set()

    def _jittered(self, seconds: float) -> float:
        return max(0.0, seconds * (1 + self._rng.uniform(-self.jitter, self.jitter)))

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._stopping:
                    return
                if not self._leading:
                    self._cond.wait(timeout=1.0)
                    continue
                now = self._clock()
                poll_control = self.control is not None and now >= self._next_control
            if poll_control:
                self._poll_control()
            with self._cond:
                if self._stopping:
                    return
                if not self._leading:
                    continue
                now = self._clock()
                if self._next_due is None:
                    self._next_due = now + self._jittered(self.interval)
                if now >= self._next_due:
                    self._pending.append(Trigger(INTERVAL))
                if not self._pending:
                    wake = self._next_due
                    if self.control is not None:
                        wake = min(wake, self._next_control)
                    self._cond.wait(timeout=max(0.01, wake - now))
                    continue
                triggers = tuple(self._pending)
                self._pending.clear()
                suspended = self._control_state.suspended
                if suspended:
                    self._next_due = now + self._jittered(self.interval)
                else:
                    park = threading.Event()
                    self._park = park
            if suspended:
                self._skip(triggers)
                continue
            try:
                outcome = self._run_one(triggers, park)
            finally:
                with self._cond:
                    self._park = None
            with self._cond:
                delay = self.interval
                if outcome.retry_after is not None:
                    delay = min(delay, outcome.retry_after)
                self._next_due = self._clock() + self._jittered(delay)

    def _skip(self, triggers: tuple[Trigger, ...]) -> None:
        reasons = sorted({t.reason for t in triggers})
        self.metrics.count(SKIPPED)
        self.status.last_result = SKIPPED
        log.info("reconcile skipped: suspended", extra={"triggers": ",".join(reasons)})

    def _poll_control(self) -> None:
        assert self.control is not None
        try:
            state = self.control.read()
        except ApiError as err:
            if not self._control_error_logged:
                log.warning("reading the control object failed",
                            extra={"object": self.control.title, "error": str(err)})
                self._control_error_logged = True
            with self._cond:
                self._next_control = self._clock() + self.control_poll_interval
            return
        self._control_error_logged = False
        previous = self._control_state
        if state.suspended != previous.suspended:
            self.metrics.set_suspended(state.suspended)
            self.status.suspended = state.suspended
            if state.suspended:
                note = f"reconciles suspended by {self.control.title}"
                if state.invalid_suspend is not None:
                    note += f" (suspend: {state.invalid_suspend!r} is not true/false)"
                log.info("suspended", extra={"value": state.invalid_suspend or "true"})
                if self.events is not None:
                    self.events.record(ev.SUSPENDED, note, ev.WARNING)
            else:
                log.info("resumed")
                if self.events is not None:
                    self.events.record(ev.RESUMED, "reconciles resumed")
        with self._cond:
            self._control_state = state
            self._next_control = self._clock() + self.control_poll_interval
            if state.pending_request and not state.suspended:
                already = any(
                    t.reason == REQUESTED and t.stamp == state.requested_at for t in self._pending
                )
                if not already:
                    self._pending.append(Trigger(REQUESTED, "reconcile requested",
                                                 stamp=state.requested_at))

    def _run_one(self, triggers: tuple[Trigger, ...], park: threading.Event) -> ReconcileOutcome:
        progress = Progress(self.metrics, self.events, self._beat)
        request = ReconcileRequest(triggers, progress, self.identity)
        reasons = ",".join(request.reasons)
        start = self._clock()
        self.status.running_since = start
        self.status.last_beat = start
        log.info("reconcile started", extra={"triggers": reasons})
        if self.observer is not None:
            self.observer.reconciling(f"reconciling ({reasons})")
        try:
            outcome = self._reconcile(request, park)
        except UserError as err:
            outcome = ReconcileOutcome(FAILED, message="; ".join(str(p) for p in err.problems))
        except Exception as err:
            log.exception("reconcile raised")
            outcome = ReconcileOutcome(FAILED, message=f"{type(err).__name__}: {err}")
        duration = self._clock() - start
        self.status.running_since = None
        self.status.last_result = outcome.result
        heap.give_back()  # what the reconcile held for a moment, back to the kernel
        self._record(outcome, duration, reasons)
        if self.observer is not None and outcome.result != PARKED:
            self.observer.finished(outcome)
        stamps = [t.stamp for t in triggers if t.reason == REQUESTED and t.stamp]
        if stamps and outcome.result != PARKED and self.control is not None:
            try:
                self.control.mark_handled(max(stamps))
            except ApiError as err:
                log.warning("marking the reconcile request handled failed",
                            extra={"error": str(err)})
        return outcome

    def _record(self, outcome: ReconcileOutcome, duration: float, reasons: str) -> None:
        m = self.metrics
        m.observe_duration(duration)
        m.count(outcome.result)
        if outcome.objects is not None:
            m.set_objects(outcome.objects)
        if outcome.hosts is not None:
            m.set_hosts(outcome.hosts)
        if outcome.rollout is not None:
            m.set_rollout(*outcome.rollout)
        fields = {"result": outcome.result, "duration": round(duration, 3), "triggers": reasons}
        if outcome.revision:
            fields["revision"] = outcome.revision
        if outcome.message:
            fields["detail"] = outcome.message
        level = logging.WARNING if outcome.result == FAILED else logging.INFO
        log.log(level, "reconcile finished", extra=fields)
        if outcome.revision and outcome.result == SUCCESS:
            m.set_revision(outcome.revision)
            if outcome.revision != self.status.last_revision and self.events is not None:
                ref = outcome.ref or self.ref
                self.events.record(
                    ev.REVISION_APPLIED, f"Applied revision: {ref}@sha1:{outcome.revision}"
                )
            self.status.last_revision = outcome.revision
        if outcome.result == FAILED and not outcome.reported and self.events is not None:
            self.events.record(ev.RECONCILE_FAILED, outcome.message or "reconcile failed",
                               ev.WARNING)
        if outcome.result == PARKED and self.events is not None:
            self.events.record(ev.SHUTDOWN_PARKED, outcome.message or "reconcile parked")

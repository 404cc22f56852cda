"""The rollout across hosts: never more than ``maxUnavailable`` out, resume first, halt on
failure.

Input: the :class:`~syncer.nodes.hostplan.HostPlan` of every host (from concurrent probes,
see :mod:`syncer.nodes.stage`). Only ``configure`` and ``upgrade`` plans take part; the
others need no slot.

1. **Resume first.** Slots a previous controller left in the rollout Lease (its process
   stopped mid-upgrade: :meth:`RolloutLock.orphans`) are resumed before anything else —
   :meth:`RolloutLock.acquire` refuses every other host until they are. An orphaned slot
   whose host no longer needs work (removed from the fleet) is handed back.
2. **Then the rest, in plan order**, each after the lock granted it a slot; whenever
   slots are free, the hosts next in line ask for them together
   (:meth:`RolloutLock.acquire_many`: one read of the cluster, one Lease write), so the
   first ``maxUnavailable`` hosts start at once rather than one Lease round trip apart;
   and a host that finishes hands its slot to the host next in line in the write that
   gives it back (``release`` of :meth:`RolloutLock.acquire_many`), from its own thread.
   The count is taken from the cluster at every acquire (slot holders, Nodes
   labelled ``upgrading``, failed hosts), so it holds across restarts and replicas. Up to
   ``maxUnavailable`` hosts run at once on a thread pool; when no slot is free the
   rollout waits for one of its own hosts to finish; when no slot is free and none of its
   own hosts runs (another controller's, or failed hosts hold them all), it stops and
   says why.
3. **A failed host halts the rollout**: no new host starts, nor one whose slot was granted
   but which has not taken its first step (:class:`~syncer.nodes.configure.StartGate`;
   its slot goes back); running ones finish, and the result says
   ``rollout halted: <address> failed at step <step>: <error>``. The failed host keeps
   counting against ``maxUnavailable`` (its failure record), so the next round does not
   start another host either until it is fixed.
4. **Shutdown** (an event): no new host starts; running hosts stop at their next safe
   point (:mod:`syncer.nodes.configure`) and keep their slots for the next controller.
5. **Staging ahead**: the next ``maxUnavailable`` hosts in line connect and upload their
   payloads to content-addressed staging paths while they wait for a slot
   (:meth:`HostRun.prepare`). That needs no slot — nothing the host runs is touched — and
   takes the connect and the transfer out of the time a host is unavailable.

Held slots are renewed by one background thread every ``Timeouts.slot_renew`` seconds.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from syncer.cluster.client import ApiError
from syncer.desired import OnFailure
from syncer.nodes.configure import HostRun, NotStarted, Recovery, StartGate
from syncer.nodes.context import HostOutcome, StageContext
from syncer.nodes.hostplan import HostPlan
from syncer.nodes.progress import NullProgress, ProgressReporter
from syncer.nodes.rollback import roll_back
from syncer.nodes.slots import SlotResult
from syncer.nodes.status import Phase

log = logging.getLogger(__name__)


@dataclass
class RolloutResult:
    outcomes: dict[str, HostOutcome] = field(default_factory=dict)
    total: int = 0
    halted: str | None = None  # why the rollout stopped early
    interrupted: bool = False
    max_concurrency: int = 0

    @property
    def done(self) -> int:
        return sum(1 for o in self.outcomes.values() if o.ok)


class _Renewer:
    def __init__(self, ctx: StageContext) -> None:
        self.ctx = ctx
        self.held: dict[str, str | None] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="syncer-slot-renew", daemon=True)

    def __enter__(self) -> _Renewer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def add(self, address: str, node: str | None) -> None:
        with self._lock:
            self.held[address] = node

    def remove(self, address: str) -> None:
        with self._lock:
            self.held.pop(address, None)

    def _loop(self) -> None:
        while not self._stop.wait(self.ctx.timeouts.slot_renew):
            with self._lock:
                held = dict(self.held)
            for address, node in held.items():
                try:
                    self.ctx.lock.renew(address, node)
                except Exception as err:  # a missed renewal only ages the slot
                    log.info("renewing the slot of %s failed: %s", address, err)


def run_rollout(
    ctx: StageContext,
    plans: list[HostPlan],
    orphans: Collection[str],
    *,
    progress: ProgressReporter | None = None,
    on_outcome: Callable[[str, HostOutcome], None] | None = None,
) -> RolloutResult:
    """Configure every plan that needs a slot (see the module docstring). ``orphans``:
    the addresses of the orphaned slots (:meth:`RolloutLock.orphans`, as the plans were
    made); ``on_outcome`` hears of each host as it finishes."""
    progress = progress or NullProgress()
    recovery: Recovery | None = (
        roll_back if ctx.desired.rollout.on_failure is OnFailure.ROLLBACK else None)
    work = [p for p in plans if p.needs_slot]
    result = RolloutResult(total=len(work))
    addresses = {p.address for p in plans}
    for address in sorted(orphans):
        if address not in addresses:
            log.info("releasing the orphaned slot of %s (no longer a host)", address)
            ctx.lock.release(address)
    work.sort(key=lambda p: (p.address not in orphans, not p.resume))
    if not work:
        return result

    progress.start(len(work))
    user_step = ctx.on_step

    def on_step(address: str, step: str) -> None:
        progress.step(address, step)
        user_step(address, step)

    ctx.on_step = on_step
    # `pending` and `running` change on this thread and on hosts' threads (a finished
    # host hands its slot over): under `guard`; slot decisions under `swap`.
    guard = threading.Lock()
    swap = threading.Lock()
    pending = list(work)
    handing: list[str] = []  # finished hosts whose slots wait to be handed over
    running: dict[Future[HostOutcome | None], HostPlan] = {}
    gate = StartGate()  # closed once a host failed or was interrupted: start no other
    active = 0
    active_lock = threading.Lock()
    workers = max(1, ctx.lock.max_unavailable)

    runs: dict[str, HostRun] = {}
    prepared: dict[str, Future[None]] = {}

    def host_run(plan: HostPlan) -> HostRun:
        """The host's run: it hands its slot over when it ends, and stops the rollout
        from starting others the moment it fails."""
        return HostRun(ctx, plan, recovery, hand_over, gate)

    def prepare_ahead() -> None:
        """Stage the next hosts' payloads while they wait for a slot (no slot needed:
        staging paths only, nothing the host runs is touched)."""
        for plan in pending[:workers]:
            if plan.address not in runs:
                run = runs[plan.address] = host_run(plan)
                prepared[plan.address] = stager.submit(run.prepare)

    def start(plan: HostPlan) -> None:
        """``plan``, first in line, was granted a slot: run it. Under ``guard``."""
        assert pending[0] is plan
        pending.pop(0)
        renewer.add(plan.address, _node(plan))
        running[pool.submit(run_one, plan)] = plan

    def take_slots(count: int, release: list[str]) -> SlotResult | None:
        """Give back the slots of ``release`` and ask for up to ``count`` slots for the
        hosts next in line, in one Lease write; start those granted. The refusal, if one
        was refused. Under ``swap``: the rollout's slot decisions one at a time."""
        with guard:
            batch = pending[:count]
        if not batch and not release:
            return None
        slots = ctx.lock.acquire_many([(p.address, _node(p)) for p in batch], release=release)
        with guard:
            for plan, slot in zip(batch, slots, strict=False):  # none after a refusal
                if slot.granted:
                    start(plan)
        return None if not slots or slots[-1].granted else slots[-1]

    def hand_over(address: str) -> None:
        """A host's last step: give its slot back and, in the same Lease write, take it
        for the host next in line, which starts at once rather than after this loop
        wakes and asks again. Hosts that finish together share one write: whoever writes
        takes every slot waiting to be handed over."""
        with guard:
            handing.append(address)
        with swap:
            with guard:
                release = handing[:]
                handing.clear()
                go_on = not (gate.closed or ctx.shutdown.is_set()
                             or result.halted is not None)
            if release:  # else an earlier write gave this slot back
                take_slots(len(release) if go_on else 0, release)

    def run_one(plan: HostPlan) -> HostOutcome | None:
        """The host's run; None when another host failed between this one's slot being
        granted and its first step: it does not start, and its slot goes back."""
        nonlocal active
        with active_lock:
            active += 1
            result.max_concurrency = max(result.max_concurrency, active)
        try:
            ready = prepared.pop(plan.address, None)
            if ready is not None:
                ready.result()
            run = runs.pop(plan.address, None) or host_run(plan)
            try:
                outcome = run.run()
            except NotStarted:  # the gate closed before its first step
                try:
                    ctx.lock.release(plan.address)
                except ApiError as err:  # an orphaned slot: the next round hands it back
                    log.warning("%s: cannot give back its slot: %s", plan.address, err)
                return None
            if not outcome.ok:
                gate.close()
            return outcome
        finally:
            with active_lock:
                active -= 1

    def collect(block: bool) -> None:
        with guard:
            futures = list(running)
        if not futures:
            return
        done, _ = wait(futures, timeout=None if block else 0, return_when=FIRST_COMPLETED)
        for future in done:
            with guard:
                plan = running.pop(future)
            renewer.remove(plan.address)
            outcome = future.result()
            if outcome is None:  # never started
                continue
            result.outcomes[plan.address] = outcome
            if on_outcome is not None:
                on_outcome(plan.address, outcome)
            if outcome.ok:
                progress.finished(plan.address, True, "configured")
            elif outcome.phase is Phase.INTERRUPTED:
                result.interrupted = True
                progress.finished(plan.address, False, f"interrupted before {outcome.step}")
            else:
                summary = f"failed at step {outcome.step}: {outcome.error}"
                progress.finished(plan.address, False, summary)
                if result.halted is None:
                    result.halted = f"rollout halted: {plan.address} {summary}"

    stager = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="syncer-stage")
    try:
        with _Renewer(ctx) as renewer, ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="syncer-host"
        ) as pool:
            while result.halted is None:
                if ctx.shutdown.is_set():
                    result.interrupted = True
                    break
                collect(block=False)
                if result.halted is not None:
                    break
                with guard:
                    if not pending:
                        break
                    prepare_ahead()
                if gate.closed:  # a host failed: its end halts the rollout
                    collect(block=True)
                    continue
                with swap:  # every free slot at once: one Lease write for the next hosts
                    refused = take_slots(max(0, workers - len(running)), [])
                if refused is not None and not running:
                    result.halted = f"rollout halted: {refused.reason}"
                    break
                collect(block=True)  # every slot is taken, or the next host must wait
            while running:
                collect(block=True)
    finally:
        stager.shutdown(wait=True, cancel_futures=True)
        for address in list(runs):  # staged ahead, never started: close their sessions
            runs.pop(address).discard()
        ctx.on_step = user_step
        progress.close()
    if result.halted:
        log.warning("%s", result.halted)
    return result


def _node(plan: HostPlan) -> str | None:
    return plan.node.name if plan.node else None

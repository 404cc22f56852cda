"""Every WindowsFleet in the namespace, each with its own reconcile loop.

``syncer run --fleet-object '*'`` follows all WindowsFleets of ``--namespace``: a
supervisor lists them every ``control_poll_interval`` and keeps one :class:`Loop` per
object, as Flux's kustomize-controller keeps one reconcile per Kustomization:

- one leader for all of them (the replica's election); each loop runs one reconcile at a
  time, and loops of different fleets run side by side;
- each fleet has its own work directory (``--workdir``/NAME), inventory ConfigMap
  (``syncer-inventory-NAME``), status, Events and "reconcile now" annotation; the loop
  is built exactly as for ``--fleet-object NAME`` (:func:`~.wiring.following`);
- a new object gets a loop at the next listing; a deleted one has its loop stopped
  between reconciles (its objects stay in the cluster: deleting a WindowsFleet is not a
  prune);
- a webhook triggers every loop (each compares its own branch with the remote: a push to
  another repository costs one ``ls-remote``).

``/metrics`` has each fleet's series under its label ``fleet`` (applied revision, hosts
by phase, objects, reconciles); a deleted fleet's series go with its loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from syncer import names
from syncer.cluster.client import ApiError, KubeClient
from syncer.controller.events import EventRecorder
from syncer.controller.fleetobject import TIMEOUT, FleetObject
from syncer.controller.loop import Loop, Trigger
from syncer.controller.wiring import ReconcilerContext, following

log = logging.getLogger(__name__)

ALL = "*"  # --fleet-object value: every WindowsFleet of the namespace


class FleetLoops:
    """One :class:`Loop` per WindowsFleet (see the module docstring)."""

    def __init__(self, context: ReconcilerContext, make_loop: Callable[..., Loop]) -> None:
        self.context = context
        self.client: KubeClient = context.client
        self.namespace = context.config.namespace
        self._make_loop = make_loop
        self._loops: dict[str, Loop] = {}
        self._lock = threading.Lock()
        self._leading = False
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.finished = threading.Event()

    # --- the same interface as one Loop, for the app ------------------------------------
    def leadership_changed(self, leading: bool) -> None:
        with self._lock:
            self._leading = leading
            loops = list(self._loops.values())
        for loop in loops:
            loop.leadership_changed(leading)

    def trigger(self, trigger: Trigger) -> str:
        with self._lock:
            loops = list(self._loops.values())
        results = {loop.trigger(trigger) for loop in loops}
        return "queued" if "queued" in results else ("relayed" if results else "dropped")

    def stuck(self) -> bool:
        with self._lock:
            return any(loop.stuck() for loop in self._loops.values())

    @property
    def suspended(self) -> bool:
        with self._lock:
            loops = list(self._loops.values())
        return bool(loops) and all(loop.status.suspended for loop in loops)

    def start(self) -> threading.Thread:
        self._thread = threading.Thread(target=self._run, name="fleet-loops", daemon=True)
        self._thread.start()
        return self._thread

    def shutdown(self) -> None:
        self._stopping.set()
        with self._lock:
            loops = list(self._loops.values())
        for loop in loops:
            loop.shutdown()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for every loop (within ``timeout`` in all); True when all returned."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            loops = list(self._loops.values())
        done = True
        for loop in loops:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            done = loop.join(left) and done
        if self._thread is not None:
            self._thread.join(5)
        return done

    # --- the supervisor -------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                self.sync()
                self._stopping.wait(self.context.config.control_poll_interval)
        finally:
            self.finished.set()

    def sync(self) -> None:
        """Start a loop for each new WindowsFleet, stop those of deleted ones."""
        path = (f"/apis/{names.FLEET_RESOURCE_GROUP}/{names.FLEET_RESOURCE_VERSION}/"
                f"namespaces/{self.namespace}/{names.FLEET_RESOURCE_PLURAL}")
        try:
            listed = self.client.request("GET", path, timeout=TIMEOUT)
        except ApiError as err:
            log.warning("listing WindowsFleets failed", extra={"error": str(err)})
            return
        wanted = {(item.get("metadata") or {}).get("name") for item in listed.get("items") or []}
        wanted.discard(None)
        with self._lock:
            gone = [name for name in self._loops if name not in wanted]
            new = sorted(str(name) for name in wanted if name not in self._loops)
            leading = self._leading
        for name in gone:
            log.info("WindowsFleet deleted: stopping its loop", extra={"object": name})
            with self._lock:
                loop = self._loops.pop(name)
            loop.retire()
        for name in new:
            loop = self._loop_for(name)
            with self._lock:
                self._loops[name] = loop
            loop.start()
            if leading:
                loop.leadership_changed(True)
            log.info("following WindowsFleet", extra={"object": name})

    def _loop_for(self, name: str) -> Loop:
        config = replace(self.context.config, workdir=self.context.config.workdir / name,
                         inventory_name=f"{names.INVENTORY_CONFIGMAP}-{name}")
        return fleet_loop(replace(self.context, config=config), name, self._make_loop)


def fleet_loop(context: ReconcilerContext, name: str, make_loop: Callable[..., Loop]) -> Loop:
    """The loop that follows the WindowsFleet ``name`` (``--fleet-object NAME``, or one
    of ``'*'``): the object is its control and its observer, its Events regard it."""
    fleet = FleetObject(context.client, context.config.namespace, name)
    events = EventRecorder(context.client, context.config.namespace, context.identity,
                           regarding=lambda: fleet.reference)
    holder: list[Loop] = []
    reconcile = following(fleet, context, lambda seconds: setattr(holder[0], "interval", seconds))
    loop = make_loop(reconcile, events=events, control=fleet, observer=fleet, fleet=name)
    holder.append(loop)
    return loop

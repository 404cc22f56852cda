"""The Node's phase annotation, written behind the host's steps.

A host passes through thirteen steps (:mod:`syncer.nodes.configure`), most of which end
within tens of milliseconds; writing ``syncer.io/phase`` and ``syncer.io/since`` to the
Node at the start of each step that makes no Node write of its own put ten Node writes
on every host's critical path, each one a round trip while the host holds a slot, and
each one an update of a Node object (a Windows Node's status is most of its bytes) that
the API server stores and sends to every Node watcher: in a 200-host rollout, leaving
out the writes of the steps that end sooner (below) took a fifth of the API server's CPU
time off.

What a reader of the phase needs is where a host *is*: the step it has been in for a
while, and since when. So a :class:`PhaseWriter` writes a step's phase once the step has
lasted :data:`PHASE_DELAY`, on a thread of its own, with ``since`` the moment the step
began; a step that ends sooner is never written, and the host's thread never waits for
the write. The Node's phase is therefore at most one delay (plus one write) behind a step
that lasts, and never shows a step that took less.

What must be exact is written by the host's thread itself, in the write that does the
step's work (the ``upgrading`` label at lock, ``configured`` at release, ``failed`` when
a step fails): before each such write :meth:`PhaseWriter.settle` drops the host's
pending phase and waits for one in flight, so a late write never overtakes it. Whether
a host was mid-upgrade when a controller stopped is read from that label (and the
rollout Lease), not from the step (:mod:`syncer.nodes.hostplan`).

A phase write that fails is logged and not retried: the phase is what the host was
doing, and the next step, or the step's own write, says the rest.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from syncer.cluster.client import ApiError, KubeClient
from syncer.nodes import annotations as node_meta

log = logging.getLogger(__name__)

PHASE_DELAY = 0.5  # seconds a step lasts before its phase is written


@dataclass(frozen=True)
class _Pending:
    step: str
    since: str  # when the step began (RFC 3339)
    due: float  # monotonic time of the write


class PhaseWriter:
    """Writes each Node's latest step once it has lasted ``delay`` (module docstring)."""

    def __init__(self, api: KubeClient, delay: float = PHASE_DELAY) -> None:
        self.api = api
        self.delay = delay
        self._cond = threading.Condition()
        self._pending: dict[str, _Pending] = {}  # Node name -> its latest step
        self._writing: set[str] = set()  # Nodes with a write in flight
        self._thread: threading.Thread | None = None
        self._closed = False

    def post(self, node: str, step: str, since: str) -> None:
        """``node``'s host began ``step`` at ``since``: write it if the host is still
        there after the delay (replaces a pending step of the same Node)."""
        with self._cond:
            if self._closed:
                return
            self._pending[node] = _Pending(step, since, time.monotonic() + self.delay)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="syncer-phases",
                                                daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def settle(self, node: str) -> None:
        """Drop ``node``'s pending step and wait for a write in flight: what the caller
        writes next is not overtaken."""
        with self._cond:
            self._pending.pop(node, None)
            while node in self._writing:
                self._cond.wait()

    def close(self) -> None:
        """Stop, dropping what is pending (every host has settled by then)."""
        with self._cond:
            self._closed = True
            self._pending.clear()
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _next(self) -> tuple[str, _Pending] | None:
        """The next due write (marked in flight), or None once closed."""
        with self._cond:
            while not self._closed:
                if not self._pending:
                    self._cond.wait()
                    continue
                node, pending = min(self._pending.items(), key=lambda item: item[1].due)
                wait = pending.due - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                del self._pending[node]
                self._writing.add(node)
                return node, pending
            return None

    def _loop(self) -> None:
        while (job := self._next()) is not None:
            node, pending = job
            try:
                node_meta.set_phase(self.api, node, pending.step, since=pending.since)
            except ApiError as err:
                log.info("Node %s: phase %s not written: %s", node, pending.step, err)
            except Exception as err:  # the writer outlives any one write
                log.warning("Node %s: phase %s not written: %s", node, pending.step, err)
            finally:
                with self._cond:
                    self._writing.discard(node)
                    self._cond.notify_all()

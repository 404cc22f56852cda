"""Pause Python's cyclic garbage collector while a reconcile validates, plans and applies.

A reconcile parses the fleet, renders it and decodes every live object of the fleet
(4,000 objects: hundreds of thousands of dicts and lists), then projects each onto its
desired form. Little of that forms reference cycles, so reference counting frees it, yet
the allocations trigger the cyclic collector again and again, and each older-generation
pass walks everything still alive:

- a plan of a 4,000-object no-change resync took 0.38-0.57 s with the collector and
  0.22-0.28 s without (benchmarks/apply_vs_kubectl.py's fleet, 2026-12-06);
- in ``syncer run`` with 4,000 objects, its parse cache and 100 hosts, a full collection
  took 0.13-0.31 s, and one landed between a push and its objects applied in most
  reconciles: validation 0.21-0.23 s instead of 0.09 s.

:func:`paused` disables it for the duration and restores it afterwards; pauses of several
threads (one loop per WindowsFleet) nest, and the collector comes back when the last one
ends. The reconcile pauses it from the fetch to the inventory written, never for the
write-back or the node stage (a rollout's hours of SSH sessions): what it put off runs
then, after the objects are applied.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0
_was_enabled = False


@contextmanager
def paused() -> Iterator[None]:
    global _depth, _was_enabled
    with _lock:
        if _depth == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _was_enabled:
                gc.enable()

"""Pause Python's cyclic garbage collector while a plan parses and compares objects.

A plan decodes every live object of the fleet (4,000 objects: hundreds of thousands of
dicts and lists) and projects each onto its desired form. None of that forms reference
cycles, so reference counting frees all of it, yet the allocations trigger the cyclic
collector again and again, and each older-generation pass walks everything still alive:
measured on a 4,000-object no-change resync, 0.38-0.57 s with the collector and
0.22-0.28 s without (benchmarks/apply_vs_kubectl.py's fleet, 2026-12-06).

:func:`paused` disables it for the duration and restores it afterwards; pauses of several
threads (one loop per WindowsFleet) nest, and the collector comes back when the last one
ends.
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

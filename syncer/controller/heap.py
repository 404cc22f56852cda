"""How much memory the controller keeps: one glibc malloc arena, trimmed after each reconcile.

glibc gives each new thread that allocates an arena of its own, up to eight per
core (``mallopt(3)``, ``M_ARENA_MAX``). The controller runs many threads at once — the
apply's workers, a probe pool, a thread per host in a rollout and per SSH transport — and
each arena keeps the memory it once held (freed chunks stay fragmented in it and are not
handed back to the kernel). Measured with ``benchmarks/controller_run.py`` (4,000
objects and 500 hosts): 258 to 290 MiB resident after ten reconciles with glibc's
default, 227 MiB with two arenas, push-to-applied latency unchanged. Heroku's "Tuning
glibc memory behavior" recommends ``MALLOC_ARENA_MAX=2`` for threaded servers;
``mallopt(3)`` documents the knob. A Python process allocates under its interpreter
lock, so its threads hardly contend for one arena: with one (later, after the work the
reconcile frees was made smaller), the glibc heaps held 36 MiB where two held 45, and
``syncer run`` was 154 MiB resident after ten reconciles where two arenas gave 170-179.

:func:`limit_arenas` applies it at start, before the threads exist, unless the
environment already sets ``MALLOC_ARENA_MAX`` (glibc reads it itself; the operator's
choice wins).

A reconcile of 4,000 objects holds tens of MiB for a moment (the live objects it lists,
the rendered fleet, the status report) and frees them when it ends, but glibc hands
memory back to the kernel only from the top of a heap: pages freed between chunks still
in use stay resident. :func:`give_back` (``malloc_trim(0)``, which since glibc 2.8
releases every whole free page of every arena) runs after each reconcile: 1-3 ms, and
177 -> 163 MiB resident after ten reconciles of 4,000 objects and 100 hosts.

Elsewhere than on glibc (musl, macOS) both do nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
from typing import Any

M_ARENA_MAX = -8  # <malloc.h>
ARENAS = 1


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas at ``arenas``. True when the cap was set here."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    mallopt = _glibc("mallopt")
    if mallopt is None:
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_ARENA_MAX, arenas))


def give_back() -> bool:
    """Return the whole free pages of every arena to the kernel. True when some were."""
    trim = _glibc("malloc_trim")
    if trim is None:
        return False
    trim.argtypes = (ctypes.c_size_t,)
    trim.restype = ctypes.c_int
    return bool(trim(0))


@functools.cache
def _glibc(function: str) -> Any:
    """``function`` of the C library when it is glibc's, else None."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return getattr(ctypes.CDLL(name), function)
    except (OSError, AttributeError):  # not glibc
        return None

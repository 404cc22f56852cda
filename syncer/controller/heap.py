"""How much memory the controller's threads may keep: at most two glibc malloc arenas.

glibc gives each new thread that allocates an arena of its own, up to eight per
core (``mallopt(3)``, ``M_ARENA_MAX``). The controller runs many threads at once — the
apply's workers, a probe pool, a thread per host in a rollout and per SSH transport — and
each arena keeps the memory it once held (freed chunks stay fragmented in it and are not
handed back to the kernel). Measured with ``benchmarks/controller_run.py`` (4,000
objects and 500 hosts): 258 to 290 MiB resident after ten reconciles with glibc's
default, 227 MiB with two arenas, push-to-applied latency unchanged. The same setting
(``MALLOC_ARENA_MAX=2``) is what Heroku's "Tuning glibc memory behavior" recommends for
threaded servers; ``mallopt(3)`` documents the knob.

:func:`limit_arenas` applies it at start, before the threads exist, unless the
environment already sets ``MALLOC_ARENA_MAX`` (glibc reads it itself; the operator's
choice wins). Elsewhere than on glibc (musl, macOS) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_ARENA_MAX = -8  # <malloc.h>
ARENAS = 2


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas at ``arenas``. True when the cap was set here."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_ARENA_MAX, arenas))

"""The controller caps glibc's malloc arenas, so its many threads do not each keep a heap."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")

# Eight threads allocate at once, then glibc's malloc_stats() lists the arenas (stderr).
SCRIPT = """
import ctypes, ctypes.util, sys, threading
from syncer.controller import heap
capped = heap.limit_arenas() if sys.argv[1] == "cap" else None
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = (ctypes.c_void_p,)
barrier = threading.Barrier(8)
def work():
    barrier.wait()
    blocks = [libc.malloc(4096) for _ in range(200)]
    barrier.wait()
    for b in blocks:
        libc.free(b)
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
print(capped)
sys.stdout.flush()
libc.malloc_stats()
"""


def arenas(mode: str, **env: str) -> tuple[str, int]:
    environ = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"} | env
    done = subprocess.run([sys.executable, "-c", SCRIPT, mode], env=environ,
                          capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.strip(), len(re.findall(r"^Arena \d+:", done.stderr, re.M))


def test_threads_share_at_most_two_arenas() -> None:
    capped, count = arenas("cap")
    assert capped == "True" and 1 <= count <= 2
    # The same threads without the cap: glibc gives them arenas of their own.
    assert arenas("none")[1] > 2


def test_the_operators_malloc_arena_max_wins() -> None:
    capped, count = arenas("cap", MALLOC_ARENA_MAX="4")
    assert capped == "False" and 2 < count <= 4

"""The controller caps glibc's malloc arenas, so its many threads do not each keep a heap,
and hands freed pages back to the kernel after each reconcile."""

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


def test_threads_share_one_arena() -> None:
    capped, count = arenas("cap")
    assert capped == "True" and count == 1
    # The same threads without the cap: glibc gives them arenas of their own.
    assert arenas("none")[1] > 2


def test_the_operators_malloc_arena_max_wins() -> None:
    capped, count = arenas("cap", MALLOC_ARENA_MAX="4")
    assert capped == "False" and 2 < count <= 4


# A reconcile's worth of 4 KiB blocks, one in ten kept: the freed pages lie between blocks
# still in use, so free() cannot shrink the heap and the process stays as large as before.
TRIM = """
import ctypes, ctypes.util, sys
from syncer.controller import heap
heap.limit_arenas()
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
libc.memset.argtypes = (ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t)
def rss():
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) for l in status if l.startswith("VmRSS")) // 1024
blocks = [libc.malloc(4096) for _ in range(50_000)]
for b in blocks:
    libc.memset(b, 1, 4096)
for i, b in enumerate(blocks):
    if i % 10:
        libc.free(b)
before = rss()
if sys.argv[1] == "trim":
    heap.give_back()
print(before, rss())
"""


def test_freed_pages_go_back_to_the_kernel() -> None:
    def resident(mode: str) -> tuple[int, int]:
        done = subprocess.run([sys.executable, "-c", TRIM, mode], capture_output=True,
                              text=True, timeout=60, check=True)
        before, after = done.stdout.split()
        return int(before), int(after)

    before, after = resident("trim")
    assert before - after > 100, (before, after)  # MiB: 180 of 200 were freed
    before, after = resident("keep")  # without it, freeing gave nothing back
    assert before - after < 10, (before, after)

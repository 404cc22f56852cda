"""What the harnesses that start servers share: a free loopback port, and child processes
that never outlive this one.

:func:`die_with_parent` is the ``preexec_fn`` for ``subprocess.Popen`` (together with
``start_new_session=True``): the kernel kills the child with SIGKILL when this process
dies, even by SIGKILL (Linux ``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import threading
from collections.abc import Callable
from typing import Any

_PR_SET_PDEATHSIG = 1

_libc: Any = None
with contextlib.suppress(OSError):
    _libc = ctypes.CDLL(None, use_errno=True)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on at the moment (the caller binds it soon after)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child die with this process, or None off the main
    thread: PDEATHSIG fires when the forking *thread* exits, and only the main thread
    lives as long as the interpreter."""
    if threading.current_thread() is not threading.main_thread():
        return None
    parent = os.getpid()

    def preexec() -> None:
        if _libc is not None:
            _libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec

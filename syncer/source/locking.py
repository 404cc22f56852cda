"""Exclusive use of a work dir, across threads of one process and across processes.

The source clone and the write-back journal are each owned by one controller at a time;
two processes pointed at the same directory (a restarted pod overlapping the old one)
must not interleave fetches or journal writes. :class:`WorkdirLock` is a re-entrant
context manager around ``flock`` on ``<dir>/.lock`` (released by the kernel if the process
dies) combined with a thread lock.
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path
from types import TracebackType


class WorkdirLock:
    def __init__(self, directory: Path):
        self.path = directory / ".lock"
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._fd: int | None = None

    def __enter__(self) -> WorkdirLock:
        self._thread_lock.acquire()
        try:
            if self._depth == 0:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                except BaseException:
                    os.close(fd)
                    raise
                self._fd = fd
            self._depth += 1
        except BaseException:
            self._thread_lock.release()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self._depth -= 1
            if self._depth == 0 and self._fd is not None:
                os.close(self._fd)  # releases the flock
                self._fd = None
        finally:
            self._thread_lock.release()

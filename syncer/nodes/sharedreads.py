"""Cluster reads shared by the hosts of one round.

While hosts join, each one polls for its Node and approves its kubelet's CSRs, and every
poll of every host listed every Windows Node and every CSR of the cluster: fifty hosts
joining a 500-Node cluster at once read tens of thousands of objects a second between
them, and the API server and the controller spent their time serializing and decoding
the same lists (joining 300 hosts into 200 took 337 s where 50 into none took 29 s,
``benchmarks/node_rollout.py``).

A :class:`SharedList` hands the last LIST to every host that asks within ``max_age`` (the
poll interval: no host learns anything later than its own poll would have) and lists
again only after that — one request at a time, the others wait for its answer — or at
once after a write that changed what it lists (:meth:`SharedList.stale`, after a CSR
approval).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class SharedList(Generic[T]):
    def __init__(self, fetch: Callable[[], list[T]], max_age: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self.max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._items: list[T] | None = None
        self._at = 0.0

    def get(self) -> list[T]:
        """The items, listed at most ``max_age`` seconds ago."""
        with self._lock:
            if self._items is None or self._clock() - self._at >= self.max_age:
                self._items = self._fetch()
                self._at = self._clock()
            return self._items

    def stale(self) -> None:
        """What was listed changed: the next :meth:`get` lists again."""
        with self._lock:
            self._items = None

"""SharedList: the hosts of a round share one LIST per poll interval."""

from __future__ import annotations

import threading
import time

from syncer.nodes.sharedreads import SharedList


def test_one_list_per_interval_for_every_host_and_again_after_a_write() -> None:
    now = [0.0]
    calls: list[float] = []

    def fetch() -> list[int]:
        calls.append(now[0])
        return [len(calls)]

    shared = SharedList(fetch, max_age=1.0, clock=lambda: now[0])
    assert [shared.get() for _ in range(50)] == [[1]] * 50  # fifty hosts polling: one LIST
    now[0] = 0.99
    assert shared.get() == [1]
    now[0] = 1.0
    assert shared.get() == [2]  # as old as a poll interval: listed again
    shared.stale()  # an approval changed what it lists
    assert shared.get() == [3]
    assert calls == [0.0, 1.0, 1.0]


def test_hosts_asking_during_a_list_wait_for_it_instead_of_listing_too() -> None:
    started = threading.Event()
    release = threading.Event()
    calls = []

    def slow_fetch() -> list[str]:
        calls.append(1)
        started.set()
        release.wait(5)
        return ["csr-1"]

    shared = SharedList(slow_fetch, max_age=10.0)
    results: list[list[str]] = []
    threads = [threading.Thread(target=lambda: results.append(shared.get())) for _ in range(8)]
    threads[0].start()
    assert started.wait(5)
    for t in threads[1:]:
        t.start()
    time.sleep(0.1)
    release.set()
    for t in threads:
        t.join(5)
    assert results == [["csr-1"]] * 8 and calls == [1]

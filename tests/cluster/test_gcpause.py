"""The cyclic collector is paused during a plan and always comes back, also when plans of
several fleets overlap in threads."""

from __future__ import annotations

import gc
import threading

import pytest

from syncer.cluster import gcpause


def test_overlapping_pauses_restore_the_collector_after_the_last() -> None:
    assert gc.isenabled()
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: list[bool] = []

    def first() -> None:
        with gcpause.paused():
            first_in.set()
            second_in.wait(5)
        first_out.set()

    def second() -> None:
        first_in.wait(5)
        with gcpause.paused():
            second_in.set()
            first_out.wait(5)
            seen.append(gc.isenabled())  # the first pause ended: still paused here

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen == [False]
    assert gc.isenabled()


def test_an_exception_inside_does_not_leave_it_off() -> None:
    with pytest.raises(RuntimeError), gcpause.paused():
        raise RuntimeError("plan failed")
    assert gc.isenabled()


def test_a_collector_switched_off_by_someone_else_stays_off() -> None:
    gc.disable()
    try:
        with gcpause.paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()

"""The reconcile loop: when it reconciles, coalescing, suspend, parking, leadership."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from syncer.controller.control import ControlState
from syncer.controller.loop import (
    FAILED,
    INTERVAL,
    LEADER,
    PARKED,
    REQUESTED,
    WEBHOOK,
    Loop,
    ReconcileOutcome,
    ReconcileRequest,
    Trigger,
)
from syncer.controller.metrics import Metrics


class FakeControl:
    title = "the fake control"

    def __init__(self) -> None:
        self.state = ControlState()
        self.handled: list[str] = []
        self.requests = 0

    def read(self) -> ControlState:
        return self.state

    def mark_handled(self, stamp: str) -> None:
        self.handled.append(stamp)
        self.state = ControlState(self.state.suspended, self.state.requested_at, stamp)

    def request_reconcile(self, stamp: str | None = None) -> str:
        self.requests += 1
        return "relayed"


class Recorder:
    """A reconcile that records its requests; optionally blocks until released."""

    def __init__(self, body: Callable[[ReconcileRequest, threading.Event], Any] | None = None):
        self.requests: list[ReconcileRequest] = []
        self.running = threading.Event()
        self.concurrent = 0
        self.max_concurrent = 0
        self._lock = threading.Lock()
        self.body = body

    def __call__(self, request: ReconcileRequest, park: threading.Event) -> ReconcileOutcome:
        with self._lock:
            self.concurrent += 1
            self.max_concurrent = max(self.max_concurrent, self.concurrent)
        self.requests.append(request)
        self.running.set()
        try:
            if self.body is not None:
                result = self.body(request, park)
                if isinstance(result, ReconcileOutcome):
                    return result
            return ReconcileOutcome(revision="a" * 40)
        finally:
            with self._lock:
                self.concurrent -= 1
            self.running.clear()

    def reasons(self) -> list[tuple[str, ...]]:
        return [r.reasons for r in self.requests]


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


@pytest.fixture
def make_loop() -> Iterator[Callable[..., Loop]]:
    loops: list[Loop] = []

    def make(reconcile: Any, **kw: Any) -> Loop:
        kw.setdefault("interval", 60.0)
        kw.setdefault("control_poll_interval", 0.05)
        loop = Loop(reconcile, metrics=kw.pop("metrics", Metrics().fleet("")), **kw)
        loops.append(loop)
        loop.start()
        return loop

    yield make
    for loop in loops:
        loop.shutdown()
        assert loop.join(5)


def test_nothing_runs_until_leader_then_at_once(make_loop: Callable[..., Loop]) -> None:
    rec = Recorder()
    loop = make_loop(rec)
    time.sleep(0.2)
    assert rec.requests == []
    assert loop.trigger(Trigger(WEBHOOK)) == "dropped"  # follower without control
    loop.leadership_changed(True)
    assert wait_for(lambda: len(rec.requests) == 1)
    assert rec.reasons() == [(LEADER,)]


def test_interval_with_jitter(make_loop: Callable[..., Loop]) -> None:
    rec = Recorder()
    loop = make_loop(rec, interval=0.2, jitter=0.5)
    loop.leadership_changed(True)
    assert wait_for(lambda: len(rec.requests) >= 4, timeout=5)
    assert all(r == (INTERVAL,) for r in rec.reasons()[1:])
    # the interval's jitter stays inside ±50 %
    assert 0.1 <= loop._jittered(0.2) <= 0.3


def test_triggers_coalesce_and_one_reconcile_at_a_time(make_loop: Callable[..., Loop]) -> None:
    release = threading.Event()
    rec = Recorder(lambda request, park: release.wait(5) if len(rec.requests) == 1 else None)
    loop = make_loop(rec)
    loop.leadership_changed(True)
    assert wait_for(rec.running.is_set)
    for _ in range(5):
        assert loop.trigger(Trigger(WEBHOOK)) == "queued"
    release.set()
    assert wait_for(lambda: len(rec.requests) == 2)
    time.sleep(0.2)
    assert len(rec.requests) == 2  # five webhooks during the run -> one more reconcile
    assert rec.requests[1].reasons == (WEBHOOK,) and len(rec.requests[1].triggers) == 5
    assert rec.max_concurrent == 1


def test_suspend_skips_and_requests_wait_for_resume(make_loop: Callable[..., Loop]) -> None:
    control = FakeControl()
    control.state = ControlState(suspended=True)
    metrics = Metrics()
    rec = Recorder()
    loop = make_loop(rec, control=control, metrics=metrics.fleet(""))
    loop.leadership_changed(True)
    assert wait_for(lambda: metrics.reconciles.labels("", "skipped")._value.get() >= 1)
    control.state = ControlState(suspended=True, requested_at="2026-01-01T00:00:00.000000Z")
    loop.trigger(Trigger(WEBHOOK))
    time.sleep(0.3)
    assert rec.requests == [] and loop.status.suspended
    control.state = ControlState(suspended=False, requested_at="2026-01-01T00:00:00.000000Z")
    assert wait_for(lambda: len(rec.requests) == 1)
    assert rec.requests[0].reasons == (REQUESTED,)
    assert wait_for(lambda: control.handled == ["2026-01-01T00:00:00.000000Z"])
    time.sleep(0.3)
    assert len(rec.requests) == 1  # handled: not run again


def test_reconcile_now_request(make_loop: Callable[..., Loop]) -> None:
    control = FakeControl()
    rec = Recorder()
    loop = make_loop(rec, control=control)
    loop.leadership_changed(True)
    assert wait_for(lambda: len(rec.requests) == 1)
    control.state = ControlState(requested_at="2026-02-02T00:00:00.000000Z")
    assert wait_for(lambda: len(rec.requests) == 2)
    assert rec.requests[1].reasons == (REQUESTED,)
    assert wait_for(lambda: control.handled == ["2026-02-02T00:00:00.000000Z"])


def test_follower_relays_webhooks_to_the_leader(make_loop: Callable[..., Loop]) -> None:
    control = FakeControl()
    loop = make_loop(Recorder(), control=control)
    assert loop.trigger(Trigger(WEBHOOK)) == "relayed"
    assert control.requests == 1


def test_shutdown_parks_the_running_reconcile(make_loop: Callable[..., Loop]) -> None:
    steps: list[str] = []

    def rollout(request: ReconcileRequest, park: threading.Event) -> ReconcileOutcome:
        for host in ("h1", "h2", "h3", "h4"):
            if park.is_set():
                return ReconcileOutcome(PARKED, message=f"parked before {host}")
            steps.append(host)
            time.sleep(0.2)  # one host step; never interrupted in the middle
        return ReconcileOutcome()

    rec = Recorder(rollout)
    loop = make_loop(rec)
    loop.leadership_changed(True)
    assert wait_for(lambda: steps == ["h1"])
    loop.shutdown()
    assert loop.join(5)
    assert steps == ["h1"] and loop.status.last_result == PARKED


def test_lost_leadership_parks_and_stops(make_loop: Callable[..., Loop]) -> None:
    parked = threading.Event()

    def work(request: ReconcileRequest, park: threading.Event) -> ReconcileOutcome:
        if park.wait(5):
            parked.set()
            return ReconcileOutcome(PARKED)
        return ReconcileOutcome()

    rec = Recorder(work)
    loop = make_loop(rec, interval=0.05, jitter=0)
    loop.leadership_changed(True)
    assert wait_for(rec.running.is_set)
    loop.leadership_changed(False)
    assert parked.wait(2)
    time.sleep(0.3)
    assert len(rec.requests) == 1  # a follower does not reconcile


def test_failures_do_not_end_the_loop(make_loop: Callable[..., Loop]) -> None:
    metrics = Metrics()
    calls: list[int] = []

    def flaky(request: ReconcileRequest, park: threading.Event) -> ReconcileOutcome:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("cluster exploded")
        return ReconcileOutcome(FAILED, message="validation failed") if len(calls) == 2 else (
            ReconcileOutcome(revision="b" * 40))

    rec = Recorder(flaky)
    loop = make_loop(rec, interval=0.05, jitter=0, metrics=metrics.fleet(""))
    loop.leadership_changed(True)
    assert wait_for(lambda: len(calls) >= 3)
    assert metrics.reconciles.labels("", "failed")._value.get() == 2
    assert loop.status.last_revision == "b" * 40


def test_stuck_detection(make_loop: Callable[..., Loop]) -> None:
    release = threading.Event()

    def slow(request: ReconcileRequest, park: threading.Event) -> None:
        request.progress.beat()
        release.wait(5)

    loop = make_loop(Recorder(slow), stuck_timeout=0.2)
    loop.leadership_changed(True)
    assert not loop.stuck()
    assert wait_for(loop.stuck, timeout=3)
    release.set()
    assert wait_for(lambda: not loop.stuck())

"""Leader election on a real API server: one leader, takeover on release and on expiry."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from syncer.cluster.client import KubeClient
from syncer.controller.leader import LeaderElector, LeaseSettings, lease_path

FAST = {"lease_duration": 1.5, "renew_deadline": 1.0, "retry_period": 0.1}


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


class Candidate:
    def __init__(self, kube: KubeClient, namespace: str, identity: str) -> None:
        self.log: list[str] = []
        self.elector = LeaderElector(
            kube,
            LeaseSettings("syncer-leader", namespace, identity, **FAST),
            on_started_leading=lambda: self.log.append("started"),
            on_stopped_leading=lambda: self.log.append("stopped"),
        )

    def start(self) -> Candidate:
        self.elector.start()
        return self


@pytest.fixture
def candidates(kube: Any, namespace: str) -> Iterator[Callable[[str], Candidate]]:
    made: list[Candidate] = []

    def make(identity: str) -> Candidate:
        candidate = Candidate(KubeClient(kube), namespace, identity).start()
        made.append(candidate)
        return candidate

    yield make
    for candidate in made:
        candidate.elector.stop(release=False)


def lease(kube: Any, namespace: str) -> dict[str, Any]:
    result: dict[str, Any] = KubeClient(kube).request("GET", lease_path(namespace, "syncer-leader"))
    return result


def test_one_leader_and_fast_takeover_on_release(
    candidates: Callable[[str], Candidate], kube: Any, namespace: str
) -> None:
    a = candidates("replica-a")
    assert wait_for(lambda: a.elector.is_leader)
    b = candidates("replica-b")
    time.sleep(FAST["lease_duration"] * 2)  # far beyond expiry: a keeps renewing
    assert a.elector.is_leader and not b.elector.is_leader
    assert lease(kube, namespace)["spec"]["holderIdentity"] == "replica-a"

    released_at = time.monotonic()
    a.elector.stop(release=True)
    assert a.log == ["started", "stopped"]
    assert wait_for(lambda: b.elector.is_leader)
    # released: b does not wait for the lease duration, only for its next retry
    assert time.monotonic() - released_at < FAST["lease_duration"]
    spec = lease(kube, namespace)["spec"]
    assert spec["holderIdentity"] == "replica-b" and spec["leaseTransitions"] >= 1


def test_takeover_after_expiry_when_the_leader_dies(
    candidates: Callable[[str], Candidate], kube: Any, namespace: str
) -> None:
    a = candidates("replica-a")
    assert wait_for(lambda: a.elector.is_leader)
    b = candidates("replica-b")
    time.sleep(0.3)
    died_at = time.monotonic()
    a.elector.stop(release=False)  # like SIGKILL: no release
    assert wait_for(lambda: b.elector.is_leader)
    # not before the lease duration has passed unrenewed
    assert time.monotonic() - died_at >= FAST["lease_duration"] - FAST["retry_period"]
    assert lease(kube, namespace)["spec"]["holderIdentity"] == "replica-b"


def test_leader_steps_down_when_another_takes_the_lease(
    candidates: Callable[[str], Candidate], kube: Any, namespace: str
) -> None:
    a = candidates("replica-a")
    assert wait_for(lambda: a.elector.is_leader)
    # an operator (or a split brain) hands the Lease to someone else
    current = lease(kube, namespace)
    current["spec"]["holderIdentity"] = "replica-z"
    KubeClient(kube).request("PUT", lease_path(namespace, "syncer-leader"), body=current)
    assert wait_for(lambda: not a.elector.is_leader, timeout=FAST["renew_deadline"] + 2)
    assert a.log == ["started", "stopped"]


def test_racing_candidates_never_both_lead(
    candidates: Callable[[str], Candidate], namespace: str
) -> None:
    racers = [candidates(f"racer-{i}") for i in range(4)]
    both = threading.Event()
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        if sum(r.elector.is_leader for r in racers) > 1:
            both.set()
        time.sleep(0.005)
    assert not both.is_set()
    assert sum(r.elector.is_leader for r in racers) == 1

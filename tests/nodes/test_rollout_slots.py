"""The rollout lock: maxUnavailable holds across threads, API clients, restarts, and
counts failed and upgrading hosts, all from the cluster."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from nodehelpers import create_node, scope_selector, set_upgrading, unique, unique_ip

from syncer import names
from syncer.cluster.client import KubeClient
from syncer.nodes.annotations import record_failure
from syncer.nodes.slots import RolloutLock
from syncer_lab.kube import ControlPlane


def _lock(api: KubeClient, namespace: str, scope: str, **kw: object) -> RolloutLock:
    return RolloutLock(api, namespace, node_selector=scope_selector(scope), **kw)  # type: ignore[arg-type]


def test_acquire_up_to_the_limit_then_refuse_then_release(
    api: KubeClient, namespace: str, scope: str
) -> None:
    lock = _lock(api, namespace, scope, max_unavailable=2)
    a, b, c = unique_ip(), unique_ip(), unique_ip()
    assert lock.acquire(a).granted and lock.acquire(b).granted
    assert lock.acquire(a).reason == "slot already held"
    refused = lock.acquire(c)
    assert not refused.granted
    assert "2 of maxUnavailable 2 hosts are out" in refused.reason and a in refused.reason
    assert lock.release(a)
    assert lock.acquire(c).granted
    assert [h.address for h in lock.holders()] == sorted([b, c])


def test_concurrent_controllers_never_exceed_the_limit(
    control_plane: ControlPlane, namespace: str, scope: str
) -> None:
    clients = [KubeClient(control_plane.api_client()) for _ in range(2)]
    locks = [
        _lock(clients[i % 2], namespace, scope, max_unavailable=3, identity=f"replica-{i % 2}")
        for i in range(2)
    ]
    addresses = [unique_ip() for _ in range(12)]
    granted: list[str] = []
    guard = threading.Lock()
    barrier = threading.Barrier(len(addresses))

    def worker(i: int) -> None:
        barrier.wait()
        result = locks[i % 2].acquire(addresses[i])
        if result.granted:
            with guard:
                granted.append(addresses[i])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(addresses))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert len(granted) == 3
        assert sorted(h.address for h in locks[0].holders()) == sorted(granted)
    finally:
        for c in clients:
            c.close()


def test_restarted_controller_resumes_the_interrupted_host_first(
    api: KubeClient, namespace: str, scope: str
) -> None:
    before = _lock(api, namespace, scope, max_unavailable=2, identity="syncer")
    interrupted, other = unique_ip(), unique_ip()
    assert before.acquire(interrupted, "win-1").granted

    after = _lock(api, namespace, scope, max_unavailable=2, identity="syncer")  # new process
    assert [h.address for h in after.orphans()] == [interrupted]
    refused = after.acquire(other)
    assert not refused.granted and refused.reason.startswith(f"resume first: {interrupted}")
    resumed = after.acquire(interrupted)
    assert (
        resumed.granted and resumed.resumed and resumed.reason == "resumed an interrupted upgrade"
    )
    assert after.orphans() == []
    assert after.acquire(other).granted


def test_a_live_replica_keeps_its_slot_but_a_dead_one_is_adopted(
    api: KubeClient, namespace: str, scope: str
) -> None:
    now = [1000.0]
    a = _lock(api, namespace, scope, identity="replica-a", stale_after=60, clock=lambda: now[0])
    b = _lock(api, namespace, scope, identity="replica-b", stale_after=60, clock=lambda: now[0])
    host = unique_ip()
    assert a.acquire(host).granted
    held = b.acquire(host)
    assert not held.granted and "being upgraded by replica-a" in held.reason
    now[0] += 30
    assert a.renew(host)
    now[0] += 45  # 45s since the renewal: still live
    assert not b.acquire(host).granted
    now[0] += 30  # 75s: replica-a is gone
    taken = b.acquire(host)
    assert taken.granted and taken.resumed
    assert not a.renew(host)  # replica-a lost it


def test_failed_and_upgrading_hosts_count(api: KubeClient, namespace: str, scope: str) -> None:
    lock = _lock(api, namespace, scope, max_unavailable=2)
    failed_ip, labelled_ip, new_ip, no_node_ip = (unique_ip() for _ in range(4))
    failed_node, labelled_node = unique("failed"), unique("labelled")
    create_node(
        api,
        failed_node,
        ip=failed_ip,
        labels={"syncer-test": scope},
        annotations={names.ANNOTATION_ADDRESS: failed_ip},
    )
    create_node(api, labelled_node, ip=labelled_ip, labels={"syncer-test": scope})
    record_failure(api, failed_node, "verify", "kubelet reports v1.33.0, want v1.34.4")
    set_upgrading(api, labelled_node, True)  # e.g. set by WMCO

    out = {u.key: u.reason for u in lock.unavailable()}
    assert out == {
        failed_ip: "failed at verify: kubelet reports v1.33.0, want v1.34.4",
        f"node/{labelled_node}": f"Node {labelled_node} is labelled {names.LABEL_UPGRADING}=true",
    }
    refused = lock.acquire(new_ip)
    assert not refused.granted and "failed at verify" in refused.reason
    # the failed host itself may be retried: it is already out
    assert lock.acquire(failed_ip, failed_node).granted
    lock.release(failed_ip)

    lock.clear_failure(failed_ip, failed_node)
    set_upgrading(api, labelled_node, False)
    assert lock.unavailable() == []

    # a host without a Node yet: recorded in syncer-host-state
    lock.record_failure(no_node_ip, None, "bootstrap", "kubelet never registered")
    cm = api.request(
        "GET", f"/api/v1/namespaces/{namespace}/configmaps/{names.HOST_STATE_CONFIGMAP}"
    )
    assert no_node_ip in cm["data"]
    assert [f.step for f in lock.failures()] == ["bootstrap"]
    lock2 = _lock(api, namespace, scope, max_unavailable=1)  # a restarted controller sees it
    assert not lock2.acquire(new_ip).granted
    lock2.clear_failure(no_node_ip)
    assert lock2.acquire(new_ip).granted


def test_counting_who_is_out_reads_only_the_nodes_metadata(
    api: KubeClient, namespace: str, scope: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slot is taken at every host of a rollout: the Nodes it counts come without their
    status (a Windows Node's image list is most of its bytes), yet labels still count."""
    lock = _lock(api, namespace, scope, max_unavailable=1)
    labelled = unique("labelled")
    create_node(api, labelled, ip=unique_ip(), labels={"syncer-test": scope})
    set_upgrading(api, labelled, True)
    node_lists: list[str] = []
    send = api.request

    def request(method: str, path: str, **kw: Any) -> Any:
        if method == "GET" and path == "/api/v1/nodes":
            node_lists.append(kw.get("accept", "application/json"))
        return send(method, path, **kw)

    monkeypatch.setattr(api, "request", request)
    refused = lock.acquire(unique_ip())
    assert not refused.granted and f"Node {labelled} is labelled" in refused.reason
    assert node_lists and all("as=PartialObjectMetadataList" in a for a in node_lists)


def test_free_slots_are_taken_in_order_with_one_lease_write(
    api: KubeClient, namespace: str, scope: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rollout asks for all its free slots at once: one Lease write for the hosts next in
    line, each counted as if it had asked alone, and none after the first refusal."""
    lock = _lock(api, namespace, scope, max_unavailable=3)
    failed_ip, a, b, c, d = (unique_ip() for _ in range(5))
    failed_node = unique("failed")
    create_node(api, failed_node, ip=failed_ip, labels={"syncer-test": scope},
                annotations={names.ANNOTATION_ADDRESS: failed_ip})
    record_failure(api, failed_node, "verify", "kubelet never became Ready")
    lease_writes: list[str] = []
    send = api.request

    def request(method: str, path: str, **kw: Any) -> Any:
        if method in ("PUT", "POST") and "/leases" in path:
            lease_writes.append(method)
        return send(method, path, **kw)

    monkeypatch.setattr(api, "request", request)
    results = lock.acquire_many([(a, None), (b, None), (c, None), (d, None)])
    assert [(r.address, r.granted) for r in results] == [(a, True), (b, True), (c, False)]
    assert "3 of maxUnavailable 3 hosts are out" in results[-1].reason
    assert a in results[-1].reason and b in results[-1].reason and failed_ip in results[-1].reason
    assert lease_writes.count("PUT") == 1
    assert [h.address for h in lock.holders()] == sorted([a, b])

    # the failed host is already out: it may take a slot, the next one may not
    lease_writes.clear()
    retried = lock.acquire_many([(failed_ip, failed_node), (a, None), (d, None)])
    assert [(r.address, r.granted, r.reason) for r in retried][:2] == [
        (failed_ip, True, "slot acquired"), (a, True, "slot already held")]
    assert not retried[2].granted and lease_writes == ["PUT"]

    # a restarted controller: the orphan first, then the rest in the same write
    assert lock.release(a) and lock.release(b) and lock.release(failed_ip)
    orphan = unique_ip()
    assert lock.acquire(orphan).granted
    after = _lock(api, namespace, scope, max_unavailable=3)
    first = after.acquire_many([(c, None), (orphan, None)])
    assert [r.granted for r in first] == [False] and first[0].reason.startswith("resume first")
    lease_writes.clear()
    resumed = after.acquire_many([(orphan, None), (c, None), (d, None)])
    assert [(r.address, r.granted, r.resumed) for r in resumed] == [
        (orphan, True, True), (c, True, False), (d, False, False)]  # failed + orphan + c
    assert lease_writes == ["PUT"]


def test_a_write_starts_from_the_lease_this_process_wrote_last(
    control_plane: ControlPlane, namespace: str, scope: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hand-over reads no Lease it wrote itself; when another controller wrote since,
    the compare-and-swap fails and the write is decided again on the Lease read anew."""
    api = KubeClient(control_plane.api_client())
    ours = _lock(api, namespace, scope, max_unavailable=2, identity="ours")
    theirs = _lock(KubeClient(control_plane.api_client()), namespace, scope,
                   max_unavailable=2, identity="theirs")
    a, b, c, d = (unique_ip() for _ in range(4))
    assert ours.acquire(a).granted
    calls: list[str] = []
    send = api.request

    def request(method: str, path: str, **kw: Any) -> Any:
        if "/leases" in path:
            calls.append(method)
        return send(method, path, **kw)

    monkeypatch.setattr(api, "request", request)
    assert ours.acquire_many([(b, None)], release=[a])[0].granted
    assert calls == ["PUT"]
    assert theirs.acquire(c).granted  # ours' copy of the Lease is out of date now
    calls.clear()
    assert ours.acquire_many([(d, None)], release=[b])[0].granted
    assert calls == ["PUT", "GET", "PUT"]  # 409, read, decided again
    assert [(h.address, h.holder) for h in ours.holders()] == sorted(
        [(c, "theirs"), (d, "ours")])
    # Two out of two: the count sees the other controller's slot.
    refused = ours.acquire(unique_ip())
    assert not refused.granted and c in refused.reason

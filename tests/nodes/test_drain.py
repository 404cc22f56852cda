"""Cordon and drain with the Eviction API, against the real API server.

The test control plane has no kubelet, scheduler or disruption controller: pods are created
bound to the node (``spec.nodeName``), and PodDisruptionBudget status is set by the test,
as the disruption controller would.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from nodehelpers import create_node, unique

from syncer.cluster.client import KubeClient
from syncer.nodes.drain import DrainOptions, PodRef, cordon, drain, selector_matches, uncordon

FAST = DrainOptions(
    timeout=3.0,
    retry_interval=0.2,
    max_retry_interval=0.5,
    poll_interval=0.1,
    grace_period_seconds=0,
)


def _pod(
    api: KubeClient,
    namespace: str,
    name: str,
    node: str,
    *,
    labels: dict[str, str] | None = None,
    owner: str | None = None,
    mirror: bool = False,
    empty_dir: bool = False,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": labels or {}}
    if owner:
        meta["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": owner,
                "name": f"{name}-owner",
                "uid": "00000000-0000-0000-0000-000000000001",
                "controller": True,
            }
        ]
    if mirror:
        meta["annotations"] = {"kubernetes.io/config.mirror": "hash"}
    spec: dict[str, Any] = {"nodeName": node, "containers": [{"name": "c", "image": "pause"}]}
    if empty_dir:
        spec["volumes"] = [{"name": "scratch", "emptyDir": {}}]
        spec["containers"][0]["volumeMounts"] = [{"name": "scratch", "mountPath": "/scratch"}]
    path = f"/api/v1/namespaces/{namespace}/pods"
    api.request(
        "POST", path, body={"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}
    )
    # Running and Ready, as a kubelet would report: the Eviction API ignores budgets for
    # Pending pods.
    status = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    pod: dict[str, Any] = api.request(
        "PATCH",
        f"{path}/{name}/status",
        body={"status": status},
        content_type="application/merge-patch+json",
    )
    return pod


def _pdb(api: KubeClient, namespace: str, name: str, labels: dict[str, str], allowed: int) -> None:
    body = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": labels}},
    }
    path = f"/apis/policy/v1/namespaces/{namespace}/poddisruptionbudgets"
    created = api.request("POST", path, body=body)
    _pdb_status(api, namespace, name, allowed, created["metadata"]["generation"])


def _pdb_status(
    api: KubeClient, namespace: str, name: str, allowed: int, generation: int = 1
) -> None:
    status = {
        "observedGeneration": generation,
        "disruptionsAllowed": allowed,
        "currentHealthy": 1 + allowed,
        "desiredHealthy": 1,
        "expectedPods": 1 + allowed,
    }
    api.request(
        "PATCH",
        f"/apis/policy/v1/namespaces/{namespace}/poddisruptionbudgets/{name}/status",
        body={"status": status},
        content_type="application/merge-patch+json",
    )


def _pod_names(api: KubeClient, namespace: str) -> set[str]:
    return {
        p["metadata"]["name"]
        for p in api.request("GET", f"/api/v1/namespaces/{namespace}/pods")["items"]
    }


def test_cordon_and_uncordon(api: KubeClient, scope: str) -> None:
    node = unique("drain")
    create_node(api, node, labels={"syncer-test": scope})
    cordon(api, node)
    assert api.request("GET", f"/api/v1/nodes/{node}")["spec"]["unschedulable"] is True
    uncordon(api, node)
    assert not api.request("GET", f"/api/v1/nodes/{node}")["spec"].get("unschedulable")


def test_drain_evicts_workloads_and_skips_daemonsets_and_mirror_pods(
    api: KubeClient, namespace: str, scope: str
) -> None:
    node, other = unique("drain"), unique("drain")
    create_node(api, node, labels={"syncer-test": scope})
    create_node(api, other, labels={"syncer-test": scope})
    _pod(api, namespace, "web", node, owner="ReplicaSet")
    _pod(api, namespace, "cache", node, owner="ReplicaSet", empty_dir=True)
    _pod(api, namespace, "bare", node)  # no controller: evicted anyway (WMCO drains with force)
    _pod(api, namespace, "agent", node, owner="DaemonSet")
    _pod(api, namespace, "static", node, mirror=True)
    _pod(api, namespace, "elsewhere", other, owner="ReplicaSet")

    result = drain(api, node, FAST)

    assert result.ok, result.message
    assert [str(p) for p in result.evicted] == [
        f"{namespace}/{n}" for n in ("bare", "cache", "web")
    ]
    assert {(str(p), why) for p, why in result.skipped} == {
        (f"{namespace}/agent", "DaemonSet agent-owner"),
        (f"{namespace}/static", "mirror pod"),
    }
    assert _pod_names(api, namespace) == {"agent", "static", "elsewhere"}
    assert result.message.startswith(f"drained {node}: 3 evicted, 2 skipped")


def test_pdb_blocks_until_timeout_and_names_the_budget(
    api: KubeClient, namespace: str, scope: str
) -> None:
    node = unique("drain")
    create_node(api, node, labels={"syncer-test": scope})
    _pod(api, namespace, "db-0", node, labels={"app": "db"}, owner="StatefulSet")
    _pdb(api, namespace, "db-budget", {"app": "db"}, allowed=0)

    start = time.monotonic()
    result = drain(api, node, FAST)

    assert not result.ok and result.timed_out
    assert 2.5 < time.monotonic() - start < 10
    reason = result.blocked[PodRef(namespace, "db-0")]
    assert reason.startswith("blocked by PodDisruptionBudget db-budget: ")
    assert "disruption budget" in reason
    assert "db-0" in result.message and "did not finish" in result.message
    assert "db-0" in _pod_names(api, namespace)  # never forced by default


def test_pdb_retry_succeeds_when_budget_allows(api: KubeClient, namespace: str, scope: str) -> None:
    node = unique("drain")
    create_node(api, node, labels={"syncer-test": scope})
    _pod(api, namespace, "db-0", node, labels={"app": "db"}, owner="StatefulSet")
    _pdb(api, namespace, "db-budget", {"app": "db"}, allowed=0)
    timer = threading.Timer(0.8, _pdb_status, args=(api, namespace, "db-budget", 1))
    timer.start()
    try:
        result = drain(
            api,
            node,
            DrainOptions(
                timeout=20, retry_interval=0.2, max_retry_interval=0.4, grace_period_seconds=0
            ),
        )
    finally:
        timer.cancel()
    assert result.ok, result.message
    assert result.evicted == [PodRef(namespace, "db-0")]


def test_force_delete_after_timeout_is_opt_in(api: KubeClient, namespace: str, scope: str) -> None:
    node = unique("drain")
    create_node(api, node, labels={"syncer-test": scope})
    _pod(api, namespace, "db-0", node, labels={"app": "db"}, owner="StatefulSet")
    _pdb(api, namespace, "db-budget", {"app": "db"}, allowed=0)
    options = DrainOptions(
        timeout=1.0, retry_interval=0.2, grace_period_seconds=0, force_delete_after_timeout=True
    )
    result = drain(api, node, options)
    assert result.ok and result.timed_out
    assert result.force_deleted == [PodRef(namespace, "db-0")]
    assert "db-0" not in _pod_names(api, namespace)


def test_drain_waits_for_evicted_pods_to_terminate(
    api: KubeClient, namespace: str, scope: str
) -> None:
    """Without a kubelet a bound pod stays Terminating after eviction; drain waits (as
    kubectl does) and finishes when the 'kubelet' confirms the deletion."""
    node = unique("drain")
    create_node(api, node, labels={"syncer-test": scope})
    _pod(api, namespace, "web", node, owner="ReplicaSet")

    def kubelet() -> None:  # confirm deletion of terminating pods, like a kubelet would
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            pod = api.request("GET", f"/api/v1/namespaces/{namespace}/pods")["items"]
            for p in pod:
                if p["metadata"].get("deletionTimestamp"):
                    api.request(
                        "DELETE",
                        f"/api/v1/namespaces/{namespace}/pods/{p['metadata']['name']}",
                        body={"gracePeriodSeconds": 0},
                    )
                    return
            time.sleep(0.1)

    thread = threading.Thread(target=kubelet)
    thread.start()
    result = drain(api, node, DrainOptions(timeout=15, poll_interval=0.1))
    thread.join()
    assert result.ok and result.evicted == [PodRef(namespace, "web")]


def test_terminating_pod_that_never_goes_is_reported(
    api: KubeClient, namespace: str, scope: str
) -> None:
    node = unique("drain")
    create_node(api, node, labels={"syncer-test": scope})
    _pod(api, namespace, "stuck", node, owner="ReplicaSet")
    result = drain(api, node, DrainOptions(timeout=1.0, poll_interval=0.1))
    assert not result.ok and result.blocked == {
        PodRef(namespace, "stuck"): "evicted, still terminating"
    }


@pytest.mark.parametrize(
    "selector,labels,matches",
    [
        ({}, {"a": "1"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"}, True),
        ({"matchLabels": {"a": "2"}}, {"a": "1"}, False),
        (
            {"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "3"]}]},
            {"a": "1"},
            True,
        ),
        (
            {"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]},
            {"a": "1"},
            False,
        ),
        ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {}, False),
        ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {}, True),
    ],
)
def test_selector_matching(selector: dict[str, Any], labels: dict[str, str], matches: bool) -> None:
    assert selector_matches(selector, labels) is matches

"""Evictions and PodDisruptionBudgets (the Eviction API lives in kube-apiserver).

No kube-controller-manager runs, so the disruption controller never fills in PDB status;
the tests set it, as that controller would. No kubelet runs either: Pods stay Pending
(the Eviction API ignores budgets for Pending pods), so the tests report them Running and
Ready as a kubelet would; and a Pod bound to a node stays Terminating after an eviction
until someone deletes it with grace period 0.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException


def _pod(kube: client.ApiClient, namespace: str, name: str, node: str | None = None) -> None:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "mcr.microsoft.com/pause"}]}
    if node:
        spec["nodeName"] = node
    core = client.CoreV1Api(kube)
    core.create_namespaced_pod(
        namespace, {"metadata": {"name": name, "labels": {"app": "web"}}, "spec": spec}
    )
    # What a kubelet would report. A Pending pod is evicted whatever its PDB says, and an
    # unready one may be too, so without this no budget would ever block anything.
    core.patch_namespaced_pod_status(
        name,
        namespace,
        {"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}},
    )


def _evict(kube: client.ApiClient, namespace: str, name: str) -> None:
    client.CoreV1Api(kube).create_namespaced_pod_eviction(
        name, namespace, {"metadata": {"name": name, "namespace": namespace}}
    )


def _pdb(kube: client.ApiClient, namespace: str, allowed: int | None) -> None:
    policy = client.PolicyV1Api(kube)
    pdb = policy.create_namespaced_pod_disruption_budget(
        namespace,
        {
            "metadata": {"name": "web"},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}},
        },
    )
    if allowed is None:
        return
    # What kube-controller-manager's disruption controller would write.
    policy.patch_namespaced_pod_disruption_budget_status(
        "web",
        namespace,
        {
            "status": {
                "observedGeneration": pdb.metadata.generation,
                "disruptionsAllowed": allowed,
                "currentHealthy": 1 + allowed,
                "desiredHealthy": 1,
                "expectedPods": 1 + allowed,
            }
        },
    )


def test_eviction_of_a_pod_bound_to_a_node(kube: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(kube)
    _pod(kube, namespace, "web-1", node="win-evict")
    _evict(kube, namespace, "web-1")
    pod = core.read_namespaced_pod("web-1", namespace)
    assert pod.metadata.deletion_timestamp is not None  # Terminating; no kubelet finishes it
    core.delete_namespaced_pod("web-1", namespace, grace_period_seconds=0)
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod("web-1", namespace)
    assert err.value.status == 404


def test_pdb_blocks_the_eviction_with_429(kube: client.ApiClient, namespace: str) -> None:
    _pod(kube, namespace, "web-1", node="win-evict")
    _pdb(kube, namespace, allowed=0)
    with pytest.raises(ApiException) as err:
        _evict(kube, namespace, "web-1")
    assert err.value.status == 429
    body = json.loads(err.value.body)
    assert "disruption budget" in body["message"]
    assert (
        client.CoreV1Api(kube).read_namespaced_pod("web-1", namespace).metadata.deletion_timestamp
        is None
    )


def test_pdb_allowing_one_disruption(kube: client.ApiClient, namespace: str) -> None:
    _pod(kube, namespace, "web-1", node="win-evict")
    _pod(kube, namespace, "web-2", node="win-evict")
    _pdb(kube, namespace, allowed=1)
    _evict(kube, namespace, "web-1")
    # The API server itself spends the budget.
    pdb = client.PolicyV1Api(kube).read_namespaced_pod_disruption_budget("web", namespace)
    assert pdb.status.disruptions_allowed == 0
    assert "web-1" in (pdb.status.disrupted_pods or {})
    with pytest.raises(ApiException) as err:
        _evict(kube, namespace, "web-2")
    assert err.value.status == 429


def test_pdb_without_controller_status_blocks_every_eviction(
    kube: client.ApiClient, namespace: str
) -> None:
    """Without the disruption controller a PDB's status is never observed: 429 always."""
    _pod(kube, namespace, "web-1", node="win-evict")
    _pdb(kube, namespace, allowed=None)
    with pytest.raises(ApiException) as err:
        _evict(kube, namespace, "web-1")
    assert err.value.status == 429

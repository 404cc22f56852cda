"""Built-in objects syncer reads and writes, created through the official Python client."""

from __future__ import annotations

import base64

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from syncer import names
from syncer_lab.kube import unique_name


def test_node_with_status_via_the_status_subresource(kube: client.ApiClient) -> None:
    core = client.CoreV1Api(kube)
    node_name = unique_name("win-node")
    core.create_node(
        {
            "metadata": {
                "name": node_name,
                "labels": {"kubernetes.io/os": "windows", names.LABEL_WORKER_ROLE: ""},
                "annotations": {names.ANNOTATION_VERSION: "1.0.0"},
            },
            "spec": {"providerID": "aws:///us-east-1a/i-0123"},
        }
    )
    status = {
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "ok"}
        ],
        "nodeInfo": {"kubeletVersion": "v1.34.4", "operatingSystem": "windows"},
        "addresses": [{"type": "InternalIP", "address": "10.0.128.7"}],
    }
    core.patch_node_status(node_name, {"status": status})
    node = core.read_node(node_name)
    assert node.status.conditions[0].type == "Ready"
    assert node.status.node_info.kubelet_version == "v1.34.4"
    assert node.metadata.annotations[names.ANNOTATION_VERSION] == "1.0.0"
    # Cordon like a drain does: a plain spec patch.
    core.patch_node(node_name, {"spec": {"unschedulable": True}})
    assert core.read_node(node_name).spec.unschedulable is True
    core.delete_node(node_name)  # Nodes have no finalizers: deletion completes at once
    with pytest.raises(ApiException) as err:
        core.read_node(node_name)
    assert err.value.status == 404


def test_configmap_and_secret(kube: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(kube)
    core.create_namespaced_config_map(
        namespace,
        {"metadata": {"name": names.BYOH_CONFIGMAP}, "data": {"10.1.42.1": "username=core"}},
    )
    core.create_namespaced_secret(
        namespace,
        {
            "metadata": {"name": names.PRIVATE_KEY_SECRET},
            "stringData": {names.PRIVATE_KEY_SECRET_KEY: "-----BEGIN KEY-----"},
        },
    )
    cm = core.read_namespaced_config_map(names.BYOH_CONFIGMAP, namespace)
    assert cm.data == {"10.1.42.1": "username=core"}
    secret = core.read_namespaced_secret(names.PRIVATE_KEY_SECRET, namespace)
    assert base64.b64decode(secret.data[names.PRIVATE_KEY_SECRET_KEY]) == b"-----BEGIN KEY-----"


def test_configmap_data_is_validated(kube: client.ApiClient, namespace: str) -> None:
    with pytest.raises(ApiException) as err:
        client.CoreV1Api(kube).create_namespaced_config_map(
            namespace, {"metadata": {"name": "bad"}, "data": {"not a key!": "x"}}
        )
    assert err.value.status == 422


def test_runtimeclass(kube: client.ApiClient) -> None:
    name = unique_name("windows2022")
    node = client.NodeV1Api(kube)
    node.create_runtime_class(
        {
            "metadata": {"name": name},
            "handler": "runhcs-wcow-process",
            "scheduling": {
                "nodeSelector": {
                    "kubernetes.io/os": "windows",
                    "node.kubernetes.io/windows-build": "10.0.20348",
                },
                "tolerations": [{"key": "os", "value": "Windows", "effect": "NoSchedule"}],
            },
        }
    )
    rc = node.read_runtime_class(name)
    assert rc.handler == "runhcs-wcow-process"
    # The handler is immutable, as on any cluster.
    with pytest.raises(ApiException) as err:
        node.patch_runtime_class(name, {"handler": "other"})
    assert err.value.status == 422
    node.delete_runtime_class(name)


def test_lease_and_resource_version_conflict(kube: client.ApiClient, namespace: str) -> None:
    coord = client.CoordinationV1Api(kube)
    coord.create_namespaced_lease(
        namespace,
        {
            "metadata": {"name": "syncer-rollout"},
            "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15},
        },
    )
    first = coord.read_namespaced_lease("syncer-rollout", namespace)
    first.spec.holder_identity = "b"
    coord.replace_namespaced_lease("syncer-rollout", namespace, first)
    # A second writer still holding the old resourceVersion loses.
    stale = client.V1Lease(
        metadata=client.V1ObjectMeta(
            name="syncer-rollout", resource_version=first.metadata.resource_version
        ),
        spec=client.V1LeaseSpec(holder_identity="c"),
    )
    with pytest.raises(ApiException) as err:
        coord.replace_namespaced_lease("syncer-rollout", namespace, stale)
    assert err.value.status == 409
    assert coord.read_namespaced_lease("syncer-rollout", namespace).spec.holder_identity == "b"

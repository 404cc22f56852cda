"""Helpers shared by the node-stage tests: objects in the test control plane.

The test control plane has no scheduler, kubelet or controllers, so tests create Nodes and
Pods directly (``spec.nodeName`` set) and set status fields themselves.
"""

from __future__ import annotations

import base64
import itertools
from typing import Any

from syncer import names
from syncer.cluster.client import KubeClient
from syncer.nodes.annotations import NodeRecord, patch_node_metadata

_counter = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_counter)}"


def create_node(
    api: KubeClient,
    name: str,
    *,
    ip: str | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    ready: bool = True,
    kubelet_version: str = "v1.34.4",
    windows: bool = True,
) -> dict[str, Any]:
    all_labels = {"kubernetes.io/os": "windows" if windows else "linux"}
    all_labels.update(labels or {})
    body = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": all_labels, "annotations": annotations or {}},
    }
    api.request("POST", "/api/v1/nodes", body=body)
    status: dict[str, Any] = {
        "conditions": [{"type": "Ready", "status": "True" if ready else "False", "reason": "Test"}],
        "nodeInfo": {
            "kubeletVersion": kubelet_version,
            "machineID": "m",
            "systemUUID": "s",
            "bootID": "b",
            "kernelVersion": "10.0",
            "osImage": "Windows Server 2022",
            "containerRuntimeVersion": "containerd://1.7",
            "kubeProxyVersion": "",
            "operatingSystem": "windows",
            "architecture": "amd64",
        },
    }
    if ip:
        status["addresses"] = [
            {"type": "InternalIP", "address": ip},
            {"type": "Hostname", "address": name},
        ]
    node: dict[str, Any] = api.request(
        "PATCH",
        f"/api/v1/nodes/{name}/status",
        body={"status": status},
        content_type="application/merge-patch+json",
    )
    return node


def delete_node(api: KubeClient, name: str) -> None:
    api.request("DELETE", f"/api/v1/nodes/{name}")


def create_configmap(api: KubeClient, namespace: str, name: str, data: dict[str, str]) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": data,
    }
    api.request("POST", f"/api/v1/namespaces/{namespace}/configmaps", body=body)


def create_secret(api: KubeClient, namespace: str, name: str, data: dict[str, bytes]) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
    }
    api.request("POST", f"/api/v1/namespaces/{namespace}/secrets", body=body)


def create_machine(
    api: KubeClient,
    namespace: str,
    name: str,
    *,
    ip: str | None,
    labels: dict[str, str] | None = None,
    provider_kind: str = "AWSMachineProviderConfig",
    node_ref: str | None = None,
) -> None:
    all_labels = {"machine.openshift.io/os-id": "Windows"}
    all_labels.update(labels or {})
    body = {
        "apiVersion": "machine.openshift.io/v1beta1",
        "kind": "Machine",
        "metadata": {"name": name, "namespace": namespace, "labels": all_labels},
        "spec": {
            "providerSpec": {
                "value": {"apiVersion": "machine.openshift.io/v1beta1", "kind": provider_kind}
            }
        },
    }
    path = f"/apis/machine.openshift.io/v1beta1/namespaces/{namespace}/machines"
    api.request("POST", path, body=body)
    status: dict[str, Any] = {}
    if ip:
        status["addresses"] = [{"type": "InternalIP", "address": ip}]
    if node_ref:
        status["nodeRef"] = {"kind": "Node", "name": node_ref}
    if status:
        api.request(
            "PATCH",
            f"{path}/{name}/status",
            body={"status": status},
            content_type="application/merge-patch+json",
        )


def scope_selector(token: str) -> str:
    """Label selector for the Windows Nodes one test created (Nodes are cluster-wide and
    the control plane is shared by the whole session)."""
    return f"kubernetes.io/os=windows,syncer-test={token}"


_ips = itertools.count(1)


def unique_ip() -> str:
    """An IPv4 address no other test in this session uses (10.201.0.0/16)."""
    n = next(_ips)
    return f"10.201.{n // 250}.{n % 250 + 1}"


def set_upgrading(api: KubeClient, name: str, upgrading: bool) -> NodeRecord:
    """Add or remove the ``upgrading=true`` label, as WMCO or an operator would."""
    return patch_node_metadata(
        api, name, labels={names.LABEL_UPGRADING: "true" if upgrading else None})

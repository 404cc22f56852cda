"""The machine-API simulator: Windows MachineSets -> Machines -> simulated hosts -> Nodes."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from typing import Any

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from kubernetes import client
from winhelpers import install, run, wait_for

from syncer import names
from syncer.nodes.windows import vocabulary as c
from syncer_lab.kube import ControlPlane
from syncer_lab.machineapi import MachineAPISimulator
from syncer_lab.winhost import HostLab, SimClient
from syncer_lab.winhost.kubelet import Kubelets

G, V, NS = names.MACHINE_API_GROUP, "v1beta1", names.MACHINE_API_NAMESPACE


@pytest.fixture
def cloud_key(control_plane: ControlPlane, kube: client.ApiClient) -> paramiko.PKey:
    """Secret cloud-private-key, as the user would create it for WMCO."""
    pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption())
    core = client.CoreV1Api(kube)
    try:
        core.create_namespace({"metadata": {"name": names.WMCO_NAMESPACE}})
    except client.ApiException as err:
        if err.status != 409:
            raise
    secret: Any = {
        "metadata": {"name": names.PRIVATE_KEY_SECRET},
        "data": {names.PRIVATE_KEY_SECRET_KEY: base64.b64encode(pem).decode()},
    }
    try:
        core.create_namespaced_secret(names.WMCO_NAMESPACE, secret)
    except client.ApiException as err:
        if err.status != 409:
            raise
        core.replace_namespaced_secret(names.PRIVATE_KEY_SECRET, names.WMCO_NAMESPACE, secret)
    import io

    return paramiko.Ed25519Key(file_obj=io.StringIO(pem.decode()))


@pytest.fixture
def machine_api(kube: client.ApiClient) -> Iterator[MachineAPISimulator]:
    with HostLab(kubelets=Kubelets(heartbeat_seconds=0.3, status_seconds=0.6,
                                   lifecycle_api=kube)) as lab:
        yield MachineAPISimulator(kube, lab)


def machineset(name: str, replicas: int) -> dict[str, Any]:
    labels = {names.LABEL_CLUSTER_API_CLUSTER: "sim-abc12",
              names.LABEL_CLUSTER_API_MACHINESET: name,
              names.LABEL_OS_ID: "Windows"}
    return {
        "apiVersion": names.MACHINE_API_VERSION, "kind": "MachineSet",
        "metadata": {"name": name, "namespace": NS,
                     "labels": {names.LABEL_CLUSTER_API_CLUSTER: "sim-abc12"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {names.LABEL_CLUSTER_API_MACHINESET: name}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "metadata": {"labels": {names.LABEL_WORKER_ROLE: ""}},
                    "providerSpec": {"value": {
                        "apiVersion": "machine.openshift.io/v1beta1",
                        "kind": "AWSMachineProviderConfig",
                        "placement": {"availabilityZone": "us-east-1b", "region": "us-east-1"},
                        "userDataSecret": {"name": names.USER_DATA_SECRET},
                    }},
                },
            },
        },
    }


def machines(kube: client.ApiClient, ms: str) -> list[dict[str, Any]]:
    items = client.CustomObjectsApi(kube).list_namespaced_custom_object(
        G, V, NS, "machines", label_selector=f"{names.LABEL_CLUSTER_API_MACHINESET}={ms}")
    return list(items["items"])


def settle(sim: MachineAPISimulator, passes: int = 3) -> None:
    for _ in range(passes):
        sim.reconcile_once()


def test_machinesets_become_hosts_and_nodes(
    control_plane: ControlPlane, kube: client.ApiClient, cloud_key: paramiko.PKey,
    machine_api: MachineAPISimulator,
) -> None:
    custom = client.CustomObjectsApi(kube)
    name = f"win{secrets.token_hex(2)}"  # at most 9 characters, as on Azure and vSphere
    custom.create_namespaced_custom_object(G, V, NS, "machinesets", machineset(name, 2))
    settle(machine_api)
    found = machines(kube, name)
    assert len(found) == 2
    for m in found:
        assert m["metadata"]["name"].startswith(name + "-") and len(m["metadata"]["name"]) == 13
        assert m["metadata"]["labels"][names.LABEL_OS_ID] == "Windows"
        assert m["metadata"]["ownerReferences"][0]["name"] == name
        assert "machine.machine.openshift.io" in m["metadata"]["finalizers"]
        status = m["status"]
        assert status["phase"] == "Provisioned"
        assert m["spec"]["providerID"].startswith("aws:///us-east-1b/i-0")
        host = machine_api.hosts[m["metadata"]["name"]]
        assert {"type": "InternalIP", "address": host.address} in status["addresses"]
        # The instance authorises the public half of cloud-private-key, as user data would.
        with SimClient(host.address, host.port, host.host_key_line, cloud_key) as ssh:
            assert c.parse_hostname(run(ssh, c.hostname())) == m["metadata"]["name"]
    ms = custom.get_namespaced_custom_object(G, V, NS, "machinesets", name)
    assert ms["status"]["replicas"] == 2 and ms["status"]["readyReplicas"] == 0

    # The kubelet joins: the Machine is Running with a nodeRef, the MachineSet counts it.
    first = found[0]["metadata"]["name"]
    host = machine_api.hosts[first]
    install(host, control_plane)
    host.scm.start("containerd")
    assert wait_for(lambda: host.scm.state("containerd") == 4)
    host.scm.start("kubelet")
    core = client.CoreV1Api(kube)

    def linked() -> bool:
        machine_api.reconcile_once()
        m = custom.get_namespaced_custom_object(G, V, NS, "machines", first)
        return m["status"].get("phase") == "Running"

    assert wait_for(linked, 20), machine_api.errors
    m = custom.get_namespaced_custom_object(G, V, NS, "machines", first)
    assert m["status"]["nodeRef"]["name"] == first
    node = core.read_node(first)
    assert node.spec.provider_id == m["spec"]["providerID"]
    # The lifecycle stand-in (lifecycle_api) lifts the not-ready taint once Ready.
    assert wait_for(lambda: not [t for t in core.read_node(first).spec.taints or []
                                 if t.key == "node.kubernetes.io/not-ready"], 10)

    def counted() -> bool:
        machine_api.reconcile_once()
        return custom.get_namespaced_custom_object(
            G, V, NS, "machinesets", name)["status"]["readyReplicas"] == 1

    assert wait_for(counted, 10)

    # Scale down to one: the newest Machine goes, with its host.
    custom.patch_namespaced_custom_object(G, V, NS, "machinesets", name, {"spec": {"replicas": 1}},
                                          _content_type="application/merge-patch+json")
    settle(machine_api)
    left = [m["metadata"]["name"] for m in machines(kube, name)]
    assert len(left) == 1
    assert set(machine_api.hosts) == set(left)
    assert all(h in machine_api.lab.hosts for h in left)

    # Deleting a Machine: its host and Node are deleted, the MachineSet replaces it.
    victim = left[0]
    victim_address = machine_api.hosts[victim].address
    custom.delete_namespaced_custom_object(G, V, NS, "machines", victim)
    settle(machine_api)
    now = [m["metadata"]["name"] for m in machines(kube, name)]
    assert victim not in now and len(now) == 1
    assert victim not in machine_api.lab.hosts
    assert machine_api.lab.by_address(victim_address) is None or victim_address in {
        machine_api.hosts[n].address for n in now}
    if victim == first:
        with pytest.raises(client.ApiException):
            core.read_node(first)

    # Deleting the MachineSet: its Machines are garbage-collected, the hosts go.
    custom.delete_namespaced_custom_object(G, V, NS, "machinesets", name)
    settle(machine_api)
    assert machines(kube, name) == []
    assert machine_api.hosts == {}


def test_machines_wait_for_the_private_key_secret(
    control_plane: ControlPlane, kube: client.ApiClient, machine_api: MachineAPISimulator,
) -> None:
    machine_api.wmco_namespace = "no-such-namespace"
    custom = client.CustomObjectsApi(kube)
    name = f"win{secrets.token_hex(2)}"
    custom.create_namespaced_custom_object(G, V, NS, "machinesets", machineset(name, 1))
    try:
        settle(machine_api)
        (m,) = machines(kube, name)
        assert m["status"]["phase"] == "Provisioning"
        assert machine_api.hosts == {}
    finally:
        custom.delete_namespaced_custom_object(G, V, NS, "machinesets", name)
        settle(machine_api)

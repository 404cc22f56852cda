"""machine.openshift.io MachineSets and Machines on the test control plane's CRDs."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from syncer import names
from syncer_lab.kube import ControlPlane, unique_name

GROUP, VERSION = "machine.openshift.io", "v1beta1"
APPLY = "application/apply-patch+yaml"


def _machineset(name: str, replicas: int = 1) -> dict[str, Any]:
    """A Windows MachineSet as the documentation shows it for AWS."""
    selector = {
        names.LABEL_CLUSTER_API_CLUSTER: "demo-x7k2p",
        names.LABEL_CLUSTER_API_MACHINESET: name,
    }
    return {
        "apiVersion": names.MACHINE_API_VERSION,
        "kind": "MachineSet",
        "metadata": {"name": name, "labels": {names.LABEL_CLUSTER_API_CLUSTER: "demo-x7k2p"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {
                    "labels": {
                        **selector,
                        names.LABEL_CLUSTER_API_MACHINE_ROLE: "worker",
                        names.LABEL_CLUSTER_API_MACHINE_TYPE: "worker",
                        names.LABEL_OS_ID: "Windows",
                    }
                },
                "spec": {
                    "metadata": {"labels": {"node-role.kubernetes.io/worker": ""}},
                    "providerSpec": {
                        "value": {
                            "apiVersion": "machine.openshift.io/v1beta1",
                            "kind": "AWSMachineProviderConfig",
                            "ami": {"id": "ami-0123456789"},
                            "instanceType": "m5a.large",
                            "blockDevices": [{"ebs": {"volumeSize": 120, "volumeType": "gp2"}}],
                            "placement": {"availabilityZone": "us-east-1a", "region": "us-east-1"},
                            "userDataSecret": {"name": names.USER_DATA_SECRET},
                            "metadataServiceOptions": {},
                        }
                    },
                },
            },
        },
    }


def test_machineset_applies_and_scales(kube: client.ApiClient, namespace: str) -> None:
    co = client.CustomObjectsApi(kube)
    co.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        "machinesets",
        "win-a",
        _machineset("win-a"),
        field_manager="syncer",
        _content_type=APPLY,
    )
    # (Read back: CustomObjectsApi returns None when an apply creates the object, because
    # the client declares no body for the 201 answer.)
    ms = co.get_namespaced_custom_object(GROUP, VERSION, namespace, "machinesets", "win-a")
    assert ms["metadata"]["managedFields"][0]["manager"] == "syncer"
    # Unknown provider fields survive: providerSpec.value preserves them, as on OpenShift.
    value = ms["spec"]["template"]["spec"]["providerSpec"]["value"]
    assert value["blockDevices"][0]["ebs"]["volumeSize"] == 120
    assert value["metadataServiceOptions"] == {}

    scale = co.get_namespaced_custom_object_scale(GROUP, VERSION, namespace, "machinesets", "win-a")
    assert scale["spec"]["replicas"] == 1
    co.patch_namespaced_custom_object_scale(
        GROUP, VERSION, namespace, "machinesets", "win-a", {"spec": {"replicas": 3}}
    )
    ms = co.get_namespaced_custom_object(GROUP, VERSION, namespace, "machinesets", "win-a")
    assert ms["spec"]["replicas"] == 3

    # The machine-API controller's side: status through the status subresource.
    co.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        namespace,
        "machinesets",
        "win-a",
        {"status": {"replicas": 3, "readyReplicas": 2, "labelSelector": "a=b"}},
    )
    scale = co.get_namespaced_custom_object_scale(GROUP, VERSION, namespace, "machinesets", "win-a")
    assert scale["status"] == {"replicas": 3, "selector": "a=b"}


def test_machineset_schema_is_enforced(kube: client.ApiClient, namespace: str) -> None:
    bad = _machineset("win-bad")
    bad["spec"]["replicas"] = "three"
    with pytest.raises(ApiException) as err:
        client.CustomObjectsApi(kube).create_namespaced_custom_object(
            GROUP, VERSION, namespace, "machinesets", bad
        )
    assert err.value.status == 422
    assert "spec.replicas" in json.loads(err.value.body)["message"]


def test_machine_status_subresource(kube: client.ApiClient, namespace: str) -> None:
    co = client.CustomObjectsApi(kube)
    machine = {
        "apiVersion": names.MACHINE_API_VERSION,
        "kind": "Machine",
        "metadata": {"name": "win-a-x1", "labels": {names.LABEL_OS_ID: "Windows"}},
        "spec": {"providerSpec": {"value": {"instanceType": "m5a.large"}}},
        "status": {"phase": "Running"},  # ignored on create: status is a subresource
    }
    created = co.create_namespaced_custom_object(GROUP, VERSION, namespace, "machines", machine)
    assert "status" not in created
    co.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        namespace,
        "machines",
        "win-a-x1",
        {
            "status": {
                "phase": "Provisioned",
                "addresses": [{"type": "InternalIP", "address": "10.0.128.9"}],
                "providerStatus": {"instanceId": "i-0abc", "instanceState": "running"},
            }
        },
    )
    got = co.get_namespaced_custom_object(GROUP, VERSION, namespace, "machines", "win-a-x1")
    assert got["status"]["phase"] == "Provisioned"
    assert got["status"]["addresses"] == [{"type": "InternalIP", "address": "10.0.128.9"}]
    assert got["status"]["providerStatus"]["instanceId"] == "i-0abc"


def test_printer_columns_like_openshift(
    control_plane: ControlPlane, kube: client.ApiClient, namespace: str
) -> None:
    client.CustomObjectsApi(kube).create_namespaced_custom_object(
        GROUP, VERSION, namespace, "machinesets", _machineset("win-b", replicas=2)
    )
    out = control_plane.kubectl("get", "machinesets.machine.openshift.io", "-n", namespace).stdout
    header, row = out.splitlines()[:2]
    assert header.split() == ["NAME", "DESIRED", "CURRENT", "READY", "AVAILABLE", "AGE"]
    assert row.split()[:2] == ["win-b", "2"]


def test_machineset_in_openshift_machine_api(kube: client.ApiClient) -> None:
    """The namespace rendered MachineSets go to exists, as on every OpenShift cluster.

    It is shared by the whole session (a machine-API simulator may act on what is there),
    so the MachineSet gets a unique name, 0 replicas, and is deleted again.
    """
    co, name = client.CustomObjectsApi(kube), unique_name("win-machine-api")
    ns = names.MACHINE_API_NAMESPACE
    co.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        ns,
        "machinesets",
        name,
        _machineset(name, replicas=0),
        field_manager="syncer",
        _content_type=APPLY,
    )
    co.delete_namespaced_custom_object(GROUP, VERSION, ns, "machinesets", name)

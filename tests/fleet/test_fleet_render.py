"""Rendering: what each kind becomes, per platform, and the properties every render has."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import pytest
from fleet_builders import (
    COMPONENTS,
    HOST_KEY,
    SHA_A,
    byoh,
    fleet,
    host,
    machine_set,
    runtime_class,
    write,
)
from ruamel.yaml import YAML

from syncer.fleet import load_fleet, render, to_json, to_yaml
from syncer.fleet.rendering import merge_patch

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
WMCO_NS = "openshift-windows-machine-config-operator"
SYNCER_LABELS = {"app.kubernetes.io/managed-by": "syncer", "syncer.io/fleet": "prod"}


def rendered(tmp_path: Path, files: dict[str, str]) -> list[dict[str, Any]]:
    return render(load_fleet(write(tmp_path, files)))


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, [(o["kind"], o["metadata"]["name"]) for o in objects]
    return matches[0]


def provider(objects: list[dict[str, Any]], name: str = "win") -> dict[str, Any]:
    value: dict[str, Any] = find(objects, "MachineSet", name)["spec"]["template"]["spec"][
        "providerSpec"
    ]["value"]
    return value


# --- MachineSets ------------------------------------------------------------------------


@pytest.mark.parametrize("platform", ["aws", "azure", "gcp", "vsphere", "nutanix"])
def test_machine_set_common_shape(tmp_path: Path, platform: str) -> None:
    objects = rendered(
        tmp_path,
        {
            "fleet.yaml": fleet(platform),
            "m.yaml": machine_set(
                "win", platform, extra="  replicas: 3\n  labels: {example.com/pool: a}\n"
            ).replace("  replicas: 1\n", ""),
        },
    )
    ms = find(objects, "MachineSet", "win")
    cluster = {"machine.openshift.io/cluster-api-cluster": "prod-x7k2p"}
    assert ms["apiVersion"] == "machine.openshift.io/v1beta1"
    assert ms["metadata"] == {
        "name": "win",
        "namespace": "openshift-machine-api",
        "labels": {**cluster, **SYNCER_LABELS},
    }
    assert ms["spec"]["replicas"] == 3
    assert ms["spec"]["selector"] == {
        "matchLabels": {**cluster, "machine.openshift.io/cluster-api-machineset": "win"}
    }
    assert ms["spec"]["template"]["metadata"]["labels"] == {
        **cluster,
        "machine.openshift.io/cluster-api-machine-role": "worker",
        "machine.openshift.io/cluster-api-machine-type": "worker",
        "machine.openshift.io/cluster-api-machineset": "win",
        "machine.openshift.io/os-id": "Windows",
    }
    assert ms["spec"]["template"]["spec"]["metadata"] == {
        "labels": {"example.com/pool": "a", "node-role.kubernetes.io/worker": ""}
    }
    value = provider(objects)
    assert value["userDataSecret"]["name"] == "windows-user-data"
    assert value["credentialsSecret"]["name"] == f"{platform}-cloud-credentials".replace(
        "nutanix-cloud-credentials", "nutanix-credentials"
    )


def test_aws_provider_spec(tmp_path: Path) -> None:
    value = provider(rendered(tmp_path, {"fleet.yaml": fleet("aws"), "m.yaml": machine_set()}))
    assert value == {
        "ami": {"id": "ami-0a1b2c3d4e5f67890"},
        "apiVersion": "machine.openshift.io/v1beta1",
        "blockDevices": [{"ebs": {"iops": 0, "volumeSize": 120, "volumeType": "gp2"}}],
        "credentialsSecret": {"name": "aws-cloud-credentials"},
        "deviceIndex": 0,
        "iamInstanceProfile": {"id": "prod-x7k2p-worker-profile"},
        "instanceType": "m5a.large",
        "kind": "AWSMachineProviderConfig",
        "placement": {"availabilityZone": "us-east-1a", "region": "us-east-1"},
        "securityGroups": [{"filters": [{"name": "tag:Name", "values": ["prod-x7k2p-worker-sg"]}]}],
        "subnet": {"filters": [{"name": "tag:Name", "values": ["prod-x7k2p-private-us-east-1a"]}]},
        "tags": [{"name": "kubernetes.io/cluster/prod-x7k2p", "value": "owned"}],
        "userDataSecret": {"name": "windows-user-data"},  # a LocalObjectReference on AWS
    }


def test_azure_provider_spec(tmp_path: Path) -> None:
    objects = rendered(
        tmp_path,
        {
            "fleet.yaml": fleet("azure"),
            "m.yaml": machine_set(
                "win", "azure", extra="  zone: 1\n  instanceType: Standard_D4s_v3\n"
            ),
            "n.yaml": machine_set("win19", "azure", '"2019"'),
        },
    )
    value = provider(objects)
    assert value["kind"] == "AzureMachineProviderSpec"
    assert value["image"] == {
        "offer": "WindowsServer",
        "publisher": "MicrosoftWindowsServer",
        "resourceID": "",
        "sku": "2022-datacenter-smalldisk",
        "version": "latest",
    }
    assert value["location"] == "centralus"
    assert value["zone"] == "1"
    assert value["vmSize"] == "Standard_D4s_v3"
    assert value["credentialsSecret"] == {
        "name": "azure-cloud-credentials",
        "namespace": "openshift-machine-api",
    }
    for key, expected in {
        "managedIdentity": "prod-x7k2p-identity",
        "networkResourceGroup": "prod-x7k2p-rg",
        "resourceGroup": "prod-x7k2p-rg",
        "subnet": "prod-x7k2p-worker-subnet",
        "vnet": "prod-x7k2p-vnet",
    }.items():
        assert value[key] == expected
    assert value["osDisk"]["osType"] == "Windows"
    assert value["publicIP"] is False
    value19 = provider(objects, "win19")
    assert value19["image"]["sku"] == "2019-Datacenter-with-Containers"
    assert "zone" not in value19


def test_gcp_provider_spec(tmp_path: Path) -> None:
    value = provider(
        rendered(tmp_path, {"fleet.yaml": fleet("gcp"), "m.yaml": machine_set("win", "gcp")})
    )
    assert value["kind"] == "GCPMachineProviderSpec"
    assert value["region"] == "us-central1"
    assert value["zone"] == "us-central1-a"
    assert value["machineType"] == "n1-standard-4"
    assert value["projectID"] == "my-project"
    assert value["disks"][0]["image"].endswith("windows-2022-core")
    assert value["networkInterfaces"] == [
        {"network": "prod-x7k2p-network", "subnetwork": "prod-x7k2p-worker-subnet"}
    ]
    assert value["serviceAccounts"][0]["email"] == "prod-x7k2p-w@my-project.iam.gserviceaccount.com"
    assert value["tags"] == ["prod-x7k2p-worker"]


def test_vsphere_provider_spec(tmp_path: Path) -> None:
    value = provider(
        rendered(
            tmp_path, {"fleet.yaml": fleet("vsphere"), "m.yaml": machine_set("win", "vsphere")}
        )
    )
    assert value["kind"] == "VSphereMachineProviderSpec"
    assert value["template"] == "golden/windows-2022"
    assert value["network"] == {"devices": [{"networkName": "vm-net"}]}
    assert value["workspace"] == {
        "datacenter": "dc1",
        "datastore": "ds1",
        "folder": "/dc1/vm/prod-x7k2p",
        "server": "vcenter.example.com",
    }
    assert (value["numCPUs"], value["memoryMiB"], value["diskGiB"]) == (4, 16384, 128)


def test_nutanix_provider_spec(tmp_path: Path) -> None:
    uuid = "0005f6a2-37d0-4c1e-9a61-ac1f6b3e0c4d"
    value = provider(
        rendered(
            tmp_path,
            {
                "fleet.yaml": fleet("nutanix"),
                "m.yaml": machine_set(
                    "win",
                    "nutanix",
                    fields=f"image: windows-2022\n  cluster: {uuid}\n  subnet: ocp-subnet\n",
                ),
            },
        )
    )
    assert value["apiVersion"] == "machine.openshift.io/v1"
    assert value["kind"] == "NutanixMachineProviderConfig"
    assert value["cluster"] == {"type": "uuid", "uuid": uuid}
    assert value["subnets"] == [{"type": "name", "name": "ocp-subnet"}]
    assert value["image"] == {"type": "name", "name": "windows-2022"}
    assert value["bootType"] == "Legacy"
    assert (value["memorySize"], value["systemDiskSize"]) == ("16Gi", "120Gi")
    assert (value["vcpuSockets"], value["vcpusPerSocket"]) == (4, 1)


def test_provider_spec_override_is_a_merge_patch(tmp_path: Path) -> None:
    override = (
        "  providerSpec:\n"
        "    placement: {tenancy: dedicated}\n"  # mappings merge
        "    tags: null\n"  # null deletes
        "    blockDevices: [{ebs: {volumeSize: 300}}]\n"  # lists replace
        "    metadataServiceOptions: {authentication: Required}\n"  # new fields are added
    )
    value = provider(
        rendered(tmp_path, {"fleet.yaml": fleet(), "m.yaml": machine_set(extra=override)})
    )
    assert value["placement"] == {
        "availabilityZone": "us-east-1a",
        "region": "us-east-1",
        "tenancy": "dedicated",
    }
    assert "tags" not in value
    assert value["blockDevices"] == [{"ebs": {"volumeSize": 300}}]
    assert value["metadataServiceOptions"] == {"authentication": "Required"}


def test_merge_patch_rfc7386_examples() -> None:
    assert merge_patch({"a": "b"}, {"a": "c"}) == {"a": "c"}
    assert merge_patch({"a": "b"}, {"b": "c"}) == {"a": "b", "b": "c"}
    assert merge_patch({"a": "b"}, {"a": None}) == {}
    assert merge_patch({"a": [{"b": "c"}]}, {"a": [1]}) == {"a": [1]}
    assert merge_patch({"e": None}, {"a": 1}) == {"e": None, "a": 1}
    assert merge_patch({}, {"a": {"bb": {"ccc": None}}}) == {"a": {"bb": {}}}
    target = {"a": {"b": 1}}
    merge_patch(target, {"a": {"b": 2}})
    assert target == {"a": {"b": 1}}


# --- BYOH, Fleet ConfigMap, RuntimeClasses -------------------------------------------------


def test_windows_instances_is_exactly_wmco_format(tmp_path: Path) -> None:
    objects = rendered(
        tmp_path,
        {
            "fleet.yaml": fleet(),
            "hosts/a.yaml": byoh(
                host("10.1.42.1"),
                host("win-build-7.example.com", "core", f'hostKey: "{HOST_KEY}", labels: {{a: b}}'),
            ),
            "hosts/b.yaml": byoh(host("10.1.42.2", "Administrator"), name="other"),
        },
    )
    cm = find(objects, "ConfigMap", "windows-instances")
    assert cm == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "windows-instances", "namespace": WMCO_NS, "labels": SYNCER_LABELS},
        "data": {
            "10.1.42.1": "username=Administrator",
            "10.1.42.2": "username=Administrator",
            "win-build-7.example.com": "username=core",
        },
    }


def test_no_windows_instances_without_byoh(tmp_path: Path) -> None:
    objects = rendered(tmp_path, {"fleet.yaml": fleet(), "m.yaml": machine_set()})
    assert [o["metadata"]["name"] for o in objects if o["kind"] == "ConfigMap"] == ["syncer-fleet"]


def test_fleet_configmap_layout(tmp_path: Path) -> None:
    objects = rendered(
        tmp_path,
        {
            "fleet.yaml": fleet(
                components=COMPONENTS.replace(SHA_A, SHA_A.upper()),
                extra="  namespace: wmco\n  rollout: {maxUnavailable: 2}\n"
                "  nodes: {sshPort: 2222, apiServer: 'https://api-int.example.com:6443'}\n",
            ),
            "h.yaml": byoh(
                host("10.0.0.1"),
                host("10.0.0.2", extra=f'hostKey: "{HOST_KEY}"'),
                host("10.0.0.3", extra="labels: {example.com/gpu: t4}"),
            ),
        },
    )
    cm = find(objects, "ConfigMap", "syncer-fleet")
    assert cm["metadata"] == {"name": "syncer-fleet", "namespace": "wmco", "labels": SYNCER_LABELS}
    data = cm["data"]
    assert sorted(data) == ["components.json", "fleet", "hosts.json", "nodes.json", "version"]
    assert (data["fleet"], data["version"]) == ("prod", "1.4.0")
    assert json.loads(data["components.json"]) == {
        "cni": {
            "sha256": "ce4230da0cb3d1b01d2d8517ed274a3ab6a304e316497598d7765c98a937240c",
            "url": "https://artifacts.example.com/cni-plugins.tar.gz",
            "version": "v1.5.1",
        },
        "kube-log-runner": {
            "sha256": "7b1d7c9bbf2b4bd1e4a6d3a8c1a6a7e0f9e2c3b4d5e6f7a8091a2b3c4d5e6f70",
            "url": "https://artifacts.example.com/kube-log-runner.exe",
            "version": "v1.30.4",
        },
        "containerd": {
            "sha256": "babc204f1d1f9fe16c974577f976843603c7122471b88bd85318befda4b2ce53",
            "url": "https://artifacts.example.com/containerd.tar.gz",
            "version": "v1.7.20",
        },
        "kubelet": {
            "sha256": SHA_A,  # normalised to lowercase
            "url": "https://artifacts.example.com/kubelet.exe",
            "version": "v1.30.4",
        },
    }
    assert json.loads(data["nodes.json"]) == {
        "platform": "aws",
        "rollout": {
            "maxUnavailable": 2,
            "drainTimeout": "10m",
            "onFailure": "halt",
            "paused": False,
        },
        "nodes": {
            "sshPort": 2222,
            "hostKeyPolicy": "tofu",
            "userData": "syncer",
            "apiServer": "https://api-int.example.com:6443",
        },
    }
    assert json.loads(data["hosts.json"]) == {
        "10.0.0.2": {"hostKey": HOST_KEY},
        "10.0.0.3": {"labels": {"example.com/gpu": "t4"}},
    }
    # The extras never reach WMCO's ConfigMap.
    assert find(objects, "ConfigMap", "windows-instances")["data"] == {
        f"10.0.0.{n}": "username=Administrator" for n in (1, 2, 3)
    }
    # The JSON documents are stable text: sorted keys.
    assert data["components.json"].index('"containerd"') < data["components.json"].index(
        '"kubelet"'
    )


def test_fleet_configmap_without_extras(tmp_path: Path) -> None:
    objects = rendered(tmp_path, {"fleet.yaml": fleet(), "m.yaml": machine_set()})
    assert json.loads(find(objects, "ConfigMap", "syncer-fleet")["data"]["hosts.json"]) == {}


@pytest.mark.parametrize(
    ("windows_server", "build"),
    [
        ('"2019"', "10.0.17763"),
        ("2022", "10.0.20348"),
        ('"2025"', "10.0.26100"),
        ("10.0.20348", "10.0.20348"),
    ],
)
def test_runtime_class(tmp_path: Path, windows_server: str, build: str) -> None:
    objects = rendered(
        tmp_path,
        {
            "fleet.yaml": fleet(),
            "h.yaml": byoh(host("10.0.0.1")),
            "rc.yaml": runtime_class("w", windows_server),
        },
    )
    assert find(objects, "RuntimeClass", "w") == {
        "apiVersion": "node.k8s.io/v1",
        "kind": "RuntimeClass",
        "metadata": {"name": "w", "labels": SYNCER_LABELS},
        "handler": "runhcs-wcow-process",
        "scheduling": {
            "nodeSelector": {
                "kubernetes.io/os": "windows",
                "node.kubernetes.io/windows-build": build,
            },
            "tolerations": [
                {"effect": "NoSchedule", "key": "os", "operator": "Equal", "value": "Windows"}
            ],
        },
    }


# --- pass-through and properties of every render ------------------------------------------


def test_pass_through_keeps_the_object_and_adds_labels(tmp_path: Path) -> None:
    objects = rendered(
        tmp_path,
        {
            "fleet.yaml": fleet(),
            "h.yaml": byoh(host("10.0.0.1")),
            "ns.yaml": "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: apps\n"
            "  labels: {team: payments}\n  annotations: {note: kept}\n",
            "q.yaml": "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: q, namespace: apps}\n"
            "spec:\n  hard: {requests.cpu: '16', pods: 10, enabled: true, ratio: 0.5}\n",
        },
    )
    assert find(objects, "Namespace", "apps") == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": "apps",
            "labels": {"team": "payments", **SYNCER_LABELS},
            "annotations": {"note": "kept"},
        },
    }
    quota = find(objects, "ResourceQuota", "q")
    assert quota["spec"] == {
        "hard": {"requests.cpu": "16", "pods": 10, "enabled": True, "ratio": 0.5}
    }
    assert quota["metadata"]["labels"] == SYNCER_LABELS


def test_every_object_carries_the_syncer_labels(tmp_path: Path) -> None:
    for example in sorted(p for p in EXAMPLES.iterdir() if p.is_dir()):
        model = load_fleet(example)
        for obj in render(model):
            labels = obj["metadata"]["labels"]
            assert labels["app.kubernetes.io/managed-by"] == "syncer", obj
            assert labels["syncer.io/fleet"] == model.fleet.name, obj


def _assert_plain(value: Any) -> None:
    if isinstance(value, dict):
        assert type(value) is dict
        for key, item in value.items():
            assert type(key) is str
            _assert_plain(item)
    elif isinstance(value, list):
        assert type(value) is list
        for item in value:
            _assert_plain(item)
    else:
        assert value is None or type(value) in (str, int, float, bool), type(value)


def test_render_is_plain_json_with_sorted_keys_and_order(tmp_path: Path) -> None:
    for example in sorted(p for p in EXAMPLES.iterdir() if p.is_dir()):
        objects = render(load_fleet(example))
        _assert_plain(objects)
        json.dumps(objects)
        keys = [
            (
                o["apiVersion"].rpartition("/")[0] if "/" in o["apiVersion"] else "",
                o["kind"],
                o["metadata"].get("namespace", ""),
                o["metadata"]["name"],
            )
            for o in objects
        ]
        assert keys == sorted(keys)

        def sorted_keys(value: Any) -> None:
            if isinstance(value, dict):
                assert list(value) == sorted(value)
                for item in value.values():
                    sorted_keys(item)
            elif isinstance(value, list):
                for item in value:
                    sorted_keys(item)

        sorted_keys(objects)


def test_render_does_not_change_the_model(tmp_path: Path) -> None:
    model = load_fleet(EXAMPLES / "aws")
    first = render(model)
    first[0]["metadata"]["labels"]["x"] = "y"
    for obj in first:
        obj.setdefault("spec", {})["mutated"] = True
    assert render(model) != first
    assert to_yaml(render(model)) == to_yaml(render(load_fleet(EXAMPLES / "aws")))


# --- determinism ------------------------------------------------------------------------------


@pytest.mark.parametrize("example", ["aws", "vsphere", "byoh"])
def test_render_is_deterministic(tmp_path: Path, example: str) -> None:
    """Same input -> byte-identical output, whatever the order files were created in."""
    reference = to_yaml(render(load_fleet(EXAMPLES / example)))
    assert to_yaml(render(load_fleet(EXAMPLES / example))) == reference
    files = sorted(p for p in (EXAMPLES / example).rglob("*.yaml"))
    for seed in range(3):
        copy = tmp_path / f"copy{seed}"
        order = files[:]
        random.Random(seed).shuffle(order)
        for path in order:
            target = copy / path.relative_to(EXAMPLES / example)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
        assert to_yaml(render(load_fleet(copy))) == reference
        assert to_json(render(load_fleet(copy))) == to_json(render(load_fleet(EXAMPLES / example)))


def test_moving_documents_between_files_does_not_change_the_render(tmp_path: Path) -> None:
    rc_a, rc_b = runtime_class("a"), runtime_class("b", '"2019"')
    hosts_x = byoh(host("10.0.0.9"), host("10.0.0.2"), name="x")
    hosts_y = byoh(host("10.0.0.1", extra="labels: {a: b}"), name="y")
    one = write(
        tmp_path / "one",
        {"fleet.yaml": fleet(), "all.yaml": "---\n".join([rc_b, hosts_x, rc_a, hosts_y])},
    )
    two = write(
        tmp_path / "two",
        {
            "z/fleet.yaml": fleet(),
            "a/rc.yaml": rc_a + "---\n" + rc_b,
            "b.yml": hosts_y + "---\n" + hosts_x,
        },
    )
    assert to_yaml(render(load_fleet(one))) == to_yaml(render(load_fleet(two)))


# --- serialisation --------------------------------------------------------------------------


def test_yaml_output_reads_back_and_quotes_yaml11_words(tmp_path: Path) -> None:
    objects = rendered(
        tmp_path,
        {
            "fleet.yaml": fleet(),
            "h.yaml": byoh(host("10.0.0.1")),
            "cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: flags, namespace: apps}\n"
            "data: {a: 'on', b: 'yes', c: 'n', d: '1:20', e: '~', f: '0755', g: 'true',"
            " h: 'plain'}\n",
        },
    )
    text = to_yaml(objects)
    assert text.startswith("---\n")
    assert "&" not in text and "*" not in text  # no anchors or aliases
    for quoted in (
        "a: 'on'",
        "b: 'yes'",
        "c: 'n'",
        "d: '1:20'",
        "e: '~'",
        "f: '0755'",
        "g: 'true'",
    ):
        assert quoted in text
    assert "h: plain" in text
    assert "components.json: |" in text  # JSON documents are block literals
    assert list(YAML(typ="safe", pure=True).load_all(text)) == objects
    # A YAML 1.1 reader (like Kubernetes' decoder) reads the same strings.
    yaml11 = YAML(typ="safe", pure=True)
    yaml11.version = (1, 1)
    assert list(yaml11.load_all(text)) == objects


def test_json_output_is_a_v1_list(tmp_path: Path) -> None:
    objects = render(load_fleet(EXAMPLES / "byoh"))
    document = json.loads(to_json(objects))
    assert document == {"apiVersion": "v1", "kind": "List", "items": objects}
    assert to_json(objects).endswith("}\n")

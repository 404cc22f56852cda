"""Machine-backed hosts (machine-API simulator) join through the same rollout as BYOH
hosts, and hostile repository data stays data."""

from __future__ import annotations

from kubernetes import client

from syncer import names
from syncer_lab.machineapi import MachineAPISimulator
from syncer_lab.nodelab import NodeLab, entries
from syncer_lab.wmco import wmco_decrypt


def _machineset(namespace: str, name: str, replicas: int) -> dict[str, object]:
    labels = {names.LABEL_OS_ID: "Windows", names.LABEL_CLUSTER_API_MACHINESET: name}
    return {
        "apiVersion": names.MACHINE_API_VERSION,
        "kind": "MachineSet",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"providerSpec": {"value": {
                    "apiVersion": "machine.openshift.io/v1beta1",
                    "kind": "AWSMachineProviderConfig",
                    "placement": {"availabilityZone": "us-east-1a", "region": "us-east-1"},
                }}},
            },
        },
    }


def test_machines_of_a_scaled_machineset_are_configured(node_lab: NodeLab, kube: client.ApiClient
                                                       ) -> None:
    ns = node_lab.namespace
    node_lab.set_fleet("1.0.0")
    sim = MachineAPISimulator(kube, node_lab.lab, namespace=ns, wmco_namespace=ns)
    path = f"/apis/{names.MACHINE_API_VERSION}/namespaces/{ns}/machinesets"
    node_lab.api.request("POST", path, body=_machineset(ns, f"w{node_lab.scope}", 1))

    def settle() -> list[str]:
        for _ in range(3):
            sim.reconcile_once()
        assert sim.errors == []
        return sorted(sim.hosts)

    def run() -> None:
        machines = settle()
        node_lab.extra_nodes[:] = machines
        selector = "kubernetes.io/hostname in (" + ",".join(machines) + ")"
        result = node_lab.run(node_selector=selector, approve_machine_csrs=True)
        assert result.ok, (result.summary(), result.rows)
        sim.reconcile_once()

    run()
    node_lab.api.request("PATCH", f"{path}/w{node_lab.scope}", body={"spec": {"replicas": 2}},
                         content_type="application/merge-patch+json")
    run()
    machines = sorted(sim.hosts)
    assert len(machines) == 2
    for machine in machines:
        node = node_lab.api.request("GET", f"/api/v1/nodes/{machine}")
        ann, labels = node["metadata"]["annotations"], node["metadata"]["labels"]
        assert ann[names.ANNOTATION_VERSION] == "1.0.0"
        assert wmco_decrypt(ann[names.ANNOTATION_USERNAME], node_lab.key_pem) == "Administrator"
        assert names.LABEL_BYOH not in labels
        assert node["spec"]["providerID"].startswith("aws:///")
        assert node["status"]["nodeInfo"]["kubeletVersion"] == "v1.30.4"
    obj = node_lab.api.request("GET", f"/apis/{names.MACHINE_API_VERSION}/namespaces/{ns}/"
                               f"machines/{machines[0]}")
    assert obj["status"]["nodeRef"]["name"] == machines[0]
    assert all(not h.unexpected_commands for h in sim.hosts.values())


def test_hostile_repository_data_stays_data(node_lab: NodeLab) -> None:
    good, bad_labels, bad_user = node_lab.add_hosts(3)
    node_lab.extras[bad_labels.address]["labels"] = {"a": "x,kubernetes.io/role=master"}
    node_lab.set_fleet("1.0.0")
    hostile_user = "Administrator\"& del /q C:\\k\\* & rem '; Remove-Item C:\\ -Recurse; $(x)"
    node_lab.write_instances([good], extra={
        bad_labels.address: "username=Administrator",
        bad_user.address: f"username={hostile_user}",
        "bad_host.example": "username=Administrator",
    })
    result = node_lab.run()
    rows = {r.address: r for r in result.rows}
    assert rows[good.address].text == "up-to-date"
    assert rows[bad_labels.address].text == "blocked (invalid)"
    assert "not a valid Kubernetes label value" in (rows[bad_labels.address].last_error or "")
    assert [e.split(" ")[0] for e in entries(bad_labels)] == [
        "shell-probe", "inventory", "node-facts"]
    assert rows[bad_user.address].text == "blocked (unreachable)"  # authentication refused
    assert entries(bad_user) == []
    assert any("bad_host.example" in str(p) for p in result.problems)
    for host in (good, bad_labels):
        # Nothing from the repository ever reached a command line unencoded.
        for command in host.commands:
            assert "del /q" not in command.command and "Remove-Item C:\\" not in command.command
    assert node_lab.node_of(good) is not None
    assert node_lab.node_of(bad_labels) is None

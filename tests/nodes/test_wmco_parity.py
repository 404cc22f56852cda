"""What a real Windows node needs, each against the grounded simulator.

One test (or more) per difference the WMCO comparison (``../shared/reference/
wmco-parity.md``, part D) found between syncer's first node stage and WMCO, each of which
would have broken a real node: the simulated kubelet and kube-proxy judge their command
lines and configuration files with their own Go code (node-check), hybrid-overlay makes
the HNS networks kube-proxy and the CNI plugin need, the Containers feature, containerd
shims holding their files, serving CSRs, encrypted user names, host keys of every type.
The end-to-end story with WMCO-configured nodes is the last test.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import pytest
from kubernetes import client

from syncer import names
from syncer.cluster.client import ApiError, KubeClient
from syncer.desired import NodePolicy, Platform
from syncer.nodes.clusterinfo import ClusterFactsError, read_cluster_facts
from syncer.nodes.configure import kubelet_matches
from syncer.nodes.csr import SERVING_SIGNER
from syncer.nodes.hostkeys import HostKey
from syncer_lab.kube import ControlPlane
from syncer_lab.machineapi import MachineAPISimulator
from syncer_lab.nodelab import NodeLab, downtime, entries, max_overlap
from syncer_lab.winhost import SimHost, key_line

OVERLAY = "OVNKubernetesHybridOverlayNetwork"


def _join(node_lab: NodeLab, count: int = 1, **fleet: Any) -> list[SimHost]:
    hosts = node_lab.add_hosts(count)
    node_lab.set_fleet("1.0.0", **fleet)
    node_lab.write_instances()
    result = node_lab.run()
    assert result.ok, (result.summary(), result.rows)
    return hosts


def _wait(predicate: Any, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return bool(predicate())


def _pod(api: KubeClient, namespace: str, name: str, node: str, owner: str | None = None
         ) -> None:
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": owner,
                                    "name": f"{name}-owner", "controller": True,
                                    "uid": "00000000-0000-0000-0000-000000000002"}]
    api.request("POST", f"/api/v1/namespaces/{namespace}/pods", body={
        "apiVersion": "v1", "kind": "Pod", "metadata": meta,
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "servercore"}],
                 "tolerations": [{"key": "os", "value": "Windows", "effect": "NoSchedule"}]}})


def _pod_status(api: KubeClient, namespace: str, name: str) -> dict[str, Any]:
    status: dict[str, Any] = api.request(
        "GET", f"/api/v1/namespaces/{namespace}/pods/{name}").get("status") or {}
    return status


# --- 1, 2, 3: command lines the kubelet accepts, a pod network, pods that start -----------
def test_pods_start_on_a_new_node(node_lab: NodeLab) -> None:
    """The kubelet accepted its command line and kubelet.conf (node-check, the kubelet's
    own code), the pod network exists, and a pod gets a sandbox: resolvConf is "" (any
    other value fails every sandbox on Windows) and cni.conf names the overlay network."""
    [host] = _join(node_lab)
    node = host.name.lower()
    _pod(node_lab.api, node_lab.namespace, "web", node)
    assert _wait(lambda: _pod_status(node_lab.api, node_lab.namespace, "web")
                 .get("phase") == "Running"), _events(node_lab)
    subnet = node_lab.node_of(host)["metadata"]["annotations"][  # type: ignore[index]
        "k8s.ovn.org/hybrid-overlay-node-subnet"]
    ip = _pod_status(node_lab.api, node_lab.namespace, "web")["podIP"]
    assert ip.rsplit(".", 1)[0] == subnet.split("/")[0].rsplit(".", 1)[0]
    assert _events(node_lab) == []
    assert node_lab.lab.programs.running(host).kube_proxy == "proxying"
    # kube-log-runner keeps the kubelet's log where `oc adm node-logs --path=kubelet/` reads
    # it; a Windows service's own stderr goes nowhere.
    log_file = "C:\\var\\log\\kubelet\\kubelet.log"
    assert host.fs.is_file(log_file)
    assert b"Starting kubelet main sync loop" in host.fs.read_bytes(log_file)


def _events(node_lab: NodeLab) -> list[str]:
    doc = node_lab.api.request("GET", f"/api/v1/namespaces/{node_lab.namespace}/events")
    return [e["message"] for e in doc.get("items") or []
            if e.get("reason") == "FailedCreatePodSandBox"]


# --- 4: host keys of every type ----------------------------------------------------------------
def test_an_rsa_host_key_pinned_in_git_is_the_one_compared(node_lab: NodeLab) -> None:
    """Windows OpenSSH offers RSA, ECDSA and Ed25519 keys; a pin of any of them (the first
    line of ssh-keyscan is RSA) is compared with the host's key of that type."""
    [host] = node_lab.add_hosts(1)
    node_lab.extras[host.address]["hostKey"] = key_line(host.host_keys["rsa"])
    node_lab.set_fleet("1.0.0", host_key_policy="pinned")
    node_lab.write_instances()
    result = node_lab.run()
    assert result.ok, (result.summary(), result.rows)
    other = HostKey.from_pkey(host.host_keys["ed25519"])
    node_lab.extras[host.address]["hostKey"] = other.line
    node_lab.set_fleet("1.0.1", host_key_policy="pinned")
    assert node_lab.run().ok  # a pin of another type works as well


# --- 5: containerd shims hold their files ----------------------------------------------------
def test_upgrading_containerd_ends_the_shims_of_daemonset_pods(node_lab: NodeLab) -> None:
    """A drain leaves DaemonSet pods; their containerd-shim-runhcs-v1 processes hold
    C:\\k\\containerd\\containerd-shim-runhcs-v1.exe, so tar cannot replace it until they
    end (WMCO's cleanup ends them)."""
    [host] = _join(node_lab)
    _pod(node_lab.api, node_lab.namespace, "agent", host.name.lower(), owner="DaemonSet")
    assert _wait(lambda: bool(host.scm.processes("containerd-shim-runhcs-v1")))
    node_lab.set_fleet("1.1.0", versions={"containerd": "v1.1.0"})
    result = node_lab.run()
    assert result.ok, (result.summary(), result.rows)
    assert host.fs.read_bytes("C:\\k\\containerd\\containerd-shim-runhcs-v1.exe") == \
        b"containerd-shim-runhcs-v1 v1.1.0\n"
    assert any(e.startswith("stop-process containerd-shim-runhcs-v1") for e in entries(host))


# --- 6: serving CSRs, every round -----------------------------------------------------------
SERVING_PEM = "C:\\var\\lib\\kubelet\\pki\\kubelet-server-current.pem"
CSRS = "/apis/certificates.k8s.io/v1/certificatesigningrequests"


def _serving(node_lab: NodeLab, host: SimHost, approved: bool) -> list[str]:
    node = host.name.lower()
    doc = node_lab.api.request("GET", CSRS)
    return [c["metadata"]["name"] for c in doc["items"]
            if c["spec"]["signerName"] == SERVING_SIGNER
            and c["spec"]["username"] == f"system:node:{node}"
            and approved == any(x["type"] == "Approved"
                                for x in (c.get("status") or {}).get("conditions") or [])]


def _restart_node_services(node_lab: NodeLab, host: SimHost) -> None:
    """Restart the kubelet and what depends on it, and wait until the new kubelet has
    registered and asked for whatever it asks for at start."""
    for service in ("kube-proxy", "hybrid-overlay-node", "kubelet"):
        host.scm.stop(service)
        assert _wait(lambda s=service: host.scm.state(s).name == "STOPPED")  # type: ignore
    old = node_lab.lab.kubelets.get(host.name) if node_lab.lab.kubelets else None
    for service in ("kubelet", "hybrid-overlay-node", "kube-proxy"):
        host.scm.start(service)
        assert _wait(lambda s=service: host.scm.state(s).name == "RUNNING")  # type: ignore

    def started() -> bool:
        kubelet = node_lab.lab.kubelets.get(host.name) if node_lab.lab.kubelets else None
        return (kubelet is not None and kubelet is not old and kubelet.registered
                and not kubelet.busy.locked())

    assert _wait(started)


def test_serving_csrs_are_approved_in_every_round(node_lab: NodeLab) -> None:
    """The kubelet asks for a serving certificate whenever it needs one (here: its
    certificate store lost it before a restart); the next round approves it, though the
    host needs nothing else. A restart alone asks for none: the kubelet keeps the
    certificate its store holds."""
    [host] = _join(node_lab)
    assert _serving(node_lab, host, approved=True)  # verify waited for it
    assert not _serving(node_lab, host, approved=False)
    assert _wait(lambda: host.fs.is_file(SERVING_PEM))
    _restart_node_services(node_lab, host)
    assert not _serving(node_lab, host, approved=False)
    host.fs.remove(SERVING_PEM, recursive=False)
    _restart_node_services(node_lab, host)
    assert _wait(lambda: bool(_serving(node_lab, host, approved=False)))
    result = node_lab.run()
    assert [r.text for r in result.rows] == ["up-to-date"]
    assert _serving(node_lab, host, approved=False) == []


def test_an_upgrade_after_the_csr_cleaner_ran(node_lab: NodeLab) -> None:
    """kube-controller-manager's CSR cleaner deletes approved CSRs after an hour
    (pkg/controller/certificates/cleaner/cleaner.go, approvedExpiration), and a restarted
    kubelet asks for no serving certificate while its own still serves: an upgrade a day
    after the join finds no serving CSR of the Node, and needs none."""
    [host] = _join(node_lab)
    assert _wait(lambda: host.fs.is_file(SERVING_PEM))
    node_lab.api.request("DELETE", CSRS)
    node_lab.set_fleet("1.1.0", kubelet="v1.30.5")
    result = node_lab.run()
    assert result.ok, (result.summary(), result.rows)
    assert node_lab.node_of(host)["status"]["nodeInfo"]["kubeletVersion"] == "v1.30.5"
    assert _serving(node_lab, host, approved=False) == []
    assert _serving(node_lab, host, approved=True) == []


# --- 8: the Containers feature; vSphere host names ------------------------------------------
def test_a_host_without_the_containers_feature_is_prepared(node_lab: NodeLab) -> None:
    [host] = node_lab.add_hosts(1, containers_feature=False)
    node_lab.set_fleet("1.0.0")
    node_lab.write_instances()
    result = node_lab.run()
    assert result.ok, (result.summary(), result.rows)
    assert host.features["Containers"] and host.reboots == 1
    assert any(e.startswith("enable-containers") for e in entries(host))


def test_vsphere_machines_take_their_machine_name(node_lab: NodeLab, kube: client.ApiClient
                                                  ) -> None:
    """A clone of a vSphere template boots as WIN-…; its Node must be named after the
    Machine, or the cluster's machine approver never approves its CSRs."""
    ns = node_lab.namespace
    node_lab.set_fleet("1.0.0", platform="vsphere")
    sim = MachineAPISimulator(kube, node_lab.lab, namespace=ns, wmco_namespace=ns)
    labels = {names.LABEL_OS_ID: "Windows", names.LABEL_CLUSTER_API_MACHINESET: "wv"}
    node_lab.api.request("POST", f"/apis/{names.MACHINE_API_VERSION}/namespaces/{ns}/"
                         "machinesets", body={
        "apiVersion": names.MACHINE_API_VERSION, "kind": "MachineSet",
        "metadata": {"name": f"wv{node_lab.scope}", "namespace": ns},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": labels}, "spec": {"providerSpec": {"value": {
                "apiVersion": "machine.openshift.io/v1beta1",
                "kind": "VSphereMachineProviderSpec"}}}}}})
    for _ in range(3):
        sim.reconcile_once()
    [(machine, host)] = sim.hosts.items()
    assert host.computer_name.startswith("WIN-")
    node_lab.extra_nodes[:] = [machine]
    result = node_lab.run(node_selector=f"kubernetes.io/hostname={machine}",
                          approve_machine_csrs=True)
    assert result.ok, (result.summary(), result.rows)
    assert host.computer_name == machine and host.reboots == 1
    node = node_lab.api.request("GET", f"/api/v1/nodes/{machine}")
    assert node["spec"]["providerID"].startswith("vsphere://")


# --- 9: bootstrap facts from the cluster, the kubelet's client CA kept current ----------------
def test_hosts_are_given_the_clusters_internal_api_url(control_plane: ControlPlane,
                                                      kube: client.ApiClient) -> None:
    control_plane.start_ovn_kubernetes()
    api = KubeClient(kube)
    facts = read_cluster_facts(api, NodePolicy())
    infrastructure = api.request("GET", "/apis/config.openshift.io/v1/infrastructures/cluster")
    assert facts.api_server == infrastructure["status"]["apiServerInternalURI"]
    assert (facts.service_network, facts.cluster_dns) == ("172.30.0.0/16", "172.30.0.10")
    override = read_cluster_facts(api, NodePolicy(api_server="https://api-int.x:6443",
                                                  service_network="10.96.0.0/12",
                                                  platform=Platform.AWS))
    assert (override.api_server, override.cluster_dns, override.platform) == (
        "https://api-int.x:6443", "10.96.0.10", Platform.AWS)


def test_without_openshift_objects_the_round_says_what_to_set() -> None:
    """Never the controller's own URL (in a cluster, a Service IP no host can reach)."""
    with ControlPlane() as bare, bare.api_client() as raw:
        with pytest.raises(ClusterFactsError, match=r"set spec\.nodes\.apiServer"):
            read_cluster_facts(KubeClient(raw), NodePolicy())
        with pytest.raises(ClusterFactsError, match=r"set spec\.nodes\.serviceNetwork"):
            read_cluster_facts(KubeClient(raw), NodePolicy(api_server="https://a:6443"))


def test_a_rotated_kubelet_client_ca_reaches_every_host_without_a_drain(
        node_lab: NodeLab) -> None:
    hosts = _join(node_lab, 2)
    ns, name = "openshift-kube-apiserver-operator", "kube-apiserver-to-kubelet-client-ca"
    with contextlib.suppress(ApiError):
        node_lab.api.request("POST", "/api/v1/namespaces", body={
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    node_lab.api.request("POST", f"/api/v1/namespaces/{ns}/configmaps", body={
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
        "data": {"ca-bundle.crt": "ROTATED-CA\n"}})
    try:
        seen = {h.name: len(h.commands) for h in hosts}
        result = node_lab.run()
        assert result.ok, (result.summary(), result.rows)
        assert [p.action.value for p in result.plans] == ["refresh", "refresh"]
        for host in hosts:
            assert host.fs.read_bytes("C:\\k\\kubelet-ca.crt") == b"ROTATED-CA\n"
            assert not any(e.startswith("stop-service") for e in entries(host)[seen[host.name]:])
    finally:
        node_lab.api.request("DELETE", f"/api/v1/namespaces/{ns}/configmaps/{name}")


# --- 10: hybrid-overlay's identity and the cluster's VXLAN port -----------------------------
def test_hybrid_overlay_has_its_own_identity_and_the_clusters_vxlan_port(
        node_lab: NodeLab) -> None:
    path = "/apis/operator.openshift.io/v1/networks/cluster"
    node_lab.api.request("PATCH", path, body={"spec": {"defaultNetwork": {
        "ovnKubernetesConfig": {"hybridOverlayConfig": {"hybridOverlayVXLANPort": 9898}}}}},
        content_type="application/merge-patch+json")
    try:
        [host] = _join(node_lab)
    finally:
        node_lab.api.request("PATCH", path, body={"spec": {"defaultNetwork": {
            "ovnKubernetesConfig": {"hybridOverlayConfig": {"hybridOverlayVXLANPort": None}}}}},
            content_type="application/merge-patch+json")
    network = host.hns.network(OVERLAY)
    assert network is not None and network.vxlan_port == 9898
    node = host.name.lower()
    assert node_lab.lab.overlays is not None
    assert node_lab.lab.overlays.identities[host.name] == f"system:ovn-node:{node}"
    annotations = node_lab.node_of(host)["metadata"]["annotations"]  # type: ignore[index]
    assert "k8s.ovn.org/hybrid-overlay-distributed-router-gateway-mac" in annotations


# --- next in line ------------------------------------------------------------------------------
def test_a_recent_windows_exporter_runs(node_lab: NodeLab) -> None:
    """windows_exporter v0.31 refuses the removed "cs" collector and exits."""
    [host] = _join(node_lab, extra=("windows_exporter",))
    assert host.scm.state("windows_exporter").name == "RUNNING"  # type: ignore[union-attr]


def test_registry_mirrors_trusted_cas_and_the_proxy_reach_the_hosts(
        node_lab: NodeLab, control_plane: ControlPlane) -> None:
    """What a disconnected or proxied cluster needs on its Windows nodes, as WMCO carries
    it: containerd mirror files (no drain), the trusted CA bundle imported into the
    machine's roots (no drain), the proxy set machine-wide (a reboot: services read the
    machine environment at boot)."""
    [host] = _join(node_lab)
    api, config = node_lab.api, "/api/v1/namespaces/openshift-config"
    ca = control_plane.ca_cert_path.read_text()
    objects = [
        ("/apis/config.openshift.io/v1/imagedigestmirrorsets", {
            "apiVersion": "config.openshift.io/v1", "kind": "ImageDigestMirrorSet",
            "metadata": {"name": f"mirrors-{node_lab.scope}"},
            "spec": {"imageDigestMirrors": [{"source": "registry.redhat.io/ubi9",
                                             "mirrors": ["mirror.corp.example/ubi9"]}]}}),
        (f"{config}/configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                  "metadata": {"name": "user-ca-bundle"},
                                  "data": {"ca-bundle.crt": ca}}),
    ]
    created = []
    try:
        for path, body in objects:
            api.request("POST", path, body=body)
            created.append(f"{path}/{body['metadata']['name']}")  # type: ignore[index]
        proxy = "/apis/config.openshift.io/v1/proxies/cluster"
        api.request("POST", "/apis/config.openshift.io/v1/proxies", body={
            "apiVersion": "config.openshift.io/v1", "kind": "Proxy",
            "metadata": {"name": "cluster"}, "spec": {"trustedCA": {"name": "user-ca-bundle"}}})
        created.append(proxy)
        api.request("PATCH", f"{proxy}/status", body={"status": {
            "httpProxy": "http://proxy.corp.example:3128",
            "noProxy": ".cluster.local,10.0.0.0/8"}},
            content_type="application/merge-patch+json")
        seen = len(host.commands)
        result = node_lab.run()
        assert result.ok, (result.summary(), result.rows)
        toml = host.fs.read_bytes("C:\\k\\containerd\\registries\\registry.redhat.io\\"
                                  "hosts.toml").decode()
        assert '[host."https://mirror.corp.example/v2"]' in toml
        assert len(host.trusted_roots) == 1
        assert host.reboots == 1
        assert host.service_environment == {"HTTP_PROXY": "http://proxy.corp.example:3128",
                                            "NO_PROXY": ".cluster.local,10.0.0.0/8"}
        assert result.plans[0].reboot and any(
            e.startswith("set-machine-environment") for e in entries(host)[seen:])
    finally:
        for path in reversed(created):
            with contextlib.suppress(ApiError):
                api.request("DELETE", path)
    # Gone from the cluster: the next round takes the proxy and the mirrors away again.
    result = node_lab.run()
    assert result.ok, (result.summary(), result.rows)
    assert not host.fs.exists("C:\\k\\containerd\\registries\\registry.redhat.io")
    assert host.reboots == 2 and host.service_environment == {}


def test_a_host_listed_by_name_and_by_address_is_configured_once(node_lab: NodeLab) -> None:
    [host] = node_lab.add_hosts(1)
    node_lab.set_fleet("1.0.0")
    node_lab.write_instances(extra={"win-a.example.test": "username=Administrator"})

    def resolver(name: str) -> list[str]:
        return [host.address] if name == "win-a.example.test" else [name]

    result = node_lab.run(resolver=resolver)
    assert [r.address for r in result.rows] == [host.address]
    assert any("the same host as" in str(p) for p in result.problems), result.problems


def test_kubelet_versions_with_build_metadata_match() -> None:
    assert kubelet_matches("v1.30.4+ab12cd3", "v1.30.4")
    assert kubelet_matches("v1.30.4", "v1.30.4")
    assert not kubelet_matches("v1.30.40", "v1.30.4")
    assert not kubelet_matches("v1.30.4-rc.1", "v1.30.4")


# --- the story --------------------------------------------------------------------------------
def test_fresh_and_wmco_hosts_join_upgrade_and_one_leaves(node_lab: NodeLab) -> None:
    """Two fresh hosts from upstream-format payloads and two WMCO configured (its service
    lines, WICD, encrypted user name, ECDSA pin): adopted, upgraded, one removed, never
    more than maxUnavailable out, and the kubelet's and kube-proxy's own validation
    accepted every definition the hosts ran."""
    wmco_hosts = node_lab.add_wmco_hosts(2)
    fresh = node_lab.add_hosts(2)
    pods_before = {h.name: len(h.commands) for h in wmco_hosts}
    node_lab.set_fleet("1.0.0", max_unavailable=2)
    node_lab.write_instances()
    result = node_lab.run()
    assert result.ok, (result.summary(), result.rows)
    for host in wmco_hosts:
        assert not host.scm.exists("windows-instance-config-daemon")
        assert host.scm.get("kubelet").description == "OpenShift managed (syncer) kubelet"
        assert entries(host)[pods_before[host.name]:]  # adopted, in a slot
    spans = [s for h in node_lab.hosts if (s := downtime(h)) is not None]
    assert max_overlap(spans) <= 2

    start = time.time()
    node_lab.set_fleet("1.1.0", kubelet="v1.31.0", max_unavailable=2)
    result = node_lab.run()
    assert result.ok, (result.summary(), result.rows)
    spans = []
    for host in node_lab.hosts:
        node = node_lab.node_of(host)
        assert node is not None and node["status"]["nodeInfo"]["kubeletVersion"] == "v1.31.0"
        recent = [c for c in host.commands if c.received_at >= start]
        stops = [c.received_at for c in recent if c.summary.startswith("stop-service")]
        starts = [c.received_at for c in recent if c.summary.startswith("start-service")]
        spans.append((min(stops), max(starts)))
    assert max_overlap(spans) <= 2

    leaving = wmco_hosts[1]
    node_lab.write_instances([*fresh, wmco_hosts[0]])
    result = node_lab.run()
    assert result.ok, (result.summary(), result.rows, result.removals)
    assert [r.node_name for r in result.removals] == [leaving.name.lower()]
    assert not leaving.fs.exists("C:\\k") and leaving.hns.network(OVERLAY) is None
    judged = node_lab.lab.programs.judged
    assert [(c, v.error) for c, _, v in judged if not v.ok] == []
    assert {c for c, _, _ in judged} == {"kubelet", "kube-proxy", "kube-log-runner"}

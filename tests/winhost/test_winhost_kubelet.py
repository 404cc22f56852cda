"""The simulated kubelet against the real test control plane (kube-apiserver + etcd)."""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Iterator
from typing import Any

import paramiko
import pytest
from kubernetes import client
from winhelpers import dump_yaml, install, kubeconfig, payload, run, wait_for

from syncer import names
from syncer.nodes.windows import vocabulary as c
from syncer_lab.kube import ControlPlane
from syncer_lab.winhost import HostLab, SimClient, SimHost
from syncer_lab.winhost.kubelet import Kubelets, payload_version


@pytest.fixture
def kube_lab(request: pytest.FixtureRequest) -> Iterator[HostLab]:
    with HostLab(kubelets=Kubelets(heartbeat_seconds=0.3, status_seconds=0.6)) as lab:
        yield lab
        unexpected = [cmd for h in lab.hosts.values() for cmd in h.unexpected_commands]
    assert unexpected == []


def start(client_: SimClient, host: SimHost, name: str) -> None:
    c.parse_sc_status(run(client_, c.sc_start(name)), "sc-start")
    assert wait_for(lambda: host.scm.state(name) == c.ServiceState.RUNNING)


def node(kube: client.ApiClient, name: str) -> Any:
    try:
        return client.CoreV1Api(kube).read_node(name)
    except client.ApiException:
        return None


def ready(kube: client.ApiClient, name: str) -> str | None:
    n = node(kube, name)
    if n is None or not n.status or not n.status.conditions:
        return None
    return next((cond.status for cond in n.status.conditions if cond.type == "Ready"), None)


@pytest.fixture
def kube_host(kube_lab: HostLab, admin_key_line: str, request: pytest.FixtureRequest) -> SimHost:
    # A unique host (and Node) name per test: Nodes outlive tests in the shared cluster.
    suffix = str(abs(hash(request.node.name)) % 10**6)
    return kube_lab.add_host(f"WIN-K{suffix}", authorized_keys=[admin_key_line],
                             os_build="10.0.17763.6054")


def connect(host: SimHost, key: paramiko.PKey) -> SimClient:
    return SimClient(host.address, host.port, host.host_key_line, key)


def test_payload_version() -> None:
    assert payload_version(b"kubelet v1.30.4\n") == "v1.30.4"
    assert payload_version(b"containerd 1.7.20\r\nrest") == "v1.7.20"
    assert payload_version(b"MZ\x90\x00") is None


def test_kubelet_registers_heartbeats_and_goes_unknown(
    control_plane: ControlPlane, kube: client.ApiClient, kube_host: SimHost,
    admin_key: paramiko.PKey,
) -> None:
    install(kube_host, control_plane)
    name = kube_host.name.lower()
    with connect(kube_host, admin_key) as ssh:
        start(ssh, kube_host, "containerd")
        start(ssh, kube_host, "kubelet")
        assert wait_for(lambda: ready(kube, name) == "True", 20), kube_lab_error(kube_host)
        n = node(kube, name)
        labels = n.metadata.labels
        assert labels[names.LABEL_OS] == "windows"
        assert labels[names.LABEL_WINDOWS_BUILD] == "10.0.17763"
        assert labels[names.LABEL_NODE_OS_ID] == "Windows"
        # The API server adds node.kubernetes.io/not-ready at registration; without a
        # lifecycle controller (no lifecycle_api here) it stays.
        assert ("os", "Windows", "NoSchedule") in [(t.key, t.value, t.effect)
                                                   for t in n.spec.taints]
        assert n.status.node_info.kubelet_version == "v1.30.4"
        assert n.status.node_info.container_runtime_version == "containerd://1.7.20"
        assert n.status.node_info.os_image == "Windows Server 2019 Datacenter"
        assert {(a.type, a.address) for a in n.status.addresses} >= {
            ("InternalIP", kube_host.address)}
        leases = client.CoordinationV1Api(kube)
        first = leases.read_namespaced_lease(name, "kube-node-lease").spec.renew_time
        beat = _heartbeat(n)
        assert wait_for(lambda: leases.read_namespaced_lease(
            name, "kube-node-lease").spec.renew_time > first, 10)
        assert wait_for(lambda: _heartbeat(node(kube, name)) > beat, 10)

        c.parse_sc_status(run(ssh, c.sc_stop("kubelet")), "sc-stop")
        assert wait_for(lambda: ready(kube, name) == "Unknown", 10)


def test_each_kubelet_renews_its_lease_on_its_own_phase(
    control_plane: ControlPlane, kube: client.ApiClient, admin_key_line: str,
    admin_key: paramiko.PKey, request: pytest.FixtureRequest,
) -> None:
    """Each kubelet renews its Lease every interval counted from its own start, as each
    real kubelet's own lease loop does — not all of them in the same instant, which on a
    benchmark's two cores made every pass that met the burst slow."""
    interval = 2.0
    suffix = str(abs(hash(request.node.name)) % 10**6)
    leases = client.CoordinationV1Api(kube)

    def renewed(host: SimHost) -> float:
        lease = leases.read_namespaced_lease(host.name.lower(), "kube-node-lease")
        return float(lease.spec.renew_time.timestamp())

    with HostLab(kubelets=Kubelets(heartbeat_seconds=interval, status_seconds=60)) as lab:
        hosts = [lab.add_host(f"WIN-L{suffix}{i}", authorized_keys=[admin_key_line])
                 for i in range(3)]
        first = []
        for host in hosts:
            install(host, control_plane)
            with connect(host, admin_key) as ssh:
                start(ssh, host, "containerd")
                start(ssh, host, "kubelet")
            assert wait_for(lambda h=host: node(kube, h.name.lower()) is not None, 20)
            first.append(renewed(host))  # renewed as it registered
        time.sleep(2.5 * interval)
        latest = [renewed(h) for h in hosts]
    for began, last in zip(first, latest, strict=True):
        assert last - began >= interval  # renewed since
        phase = (last - began) % interval
        assert min(phase, interval - phase) < 0.25, (first, latest)


def test_kubelet_version_follows_the_binary_and_reboots(
    control_plane: ControlPlane, kube: client.ApiClient, kube_host: SimHost,
    admin_key: paramiko.PKey,
) -> None:
    install(kube_host, control_plane)
    name = kube_host.name.lower()
    kube_host.process_linger_seconds = 0.2
    kube_host.reboot_downtime = 0.5
    with connect(kube_host, admin_key) as ssh:
        start(ssh, kube_host, "containerd")
        start(ssh, kube_host, "kubelet")
        assert wait_for(lambda: ready(kube, name) == "True", 20), kube_lab_error(kube_host)
        boot_id = node(kube, name).status.node_info.boot_id
        c.parse_sc_status(run(ssh, c.sc_stop("kubelet")), "sc-stop")
        assert c.parse_wait_process_exit(run(ssh, c.wait_process_exit(["kubelet"], 30))) == []
        sftp = ssh.sftp()
        sftp.putfo(io.BytesIO(payload("kubelet", "v1.31.2")), "/C:/k/kubelet.exe")
        sftp.close()
        start(ssh, kube_host, "kubelet")
        assert wait_for(lambda: node(kube, name).status.node_info.kubelet_version == "v1.31.2"
                        and ready(kube, name) == "True", 20)
    kube_host.reboot()
    assert wait_for(lambda: ready(kube, name) == "Unknown", 10)
    # Back from the reboot: automatic services start, the kubelet reports Ready again.
    assert wait_for(lambda: ready(kube, name) == "True"
                    and node(kube, name).status.node_info.boot_id != boot_id, 20)


def test_tls_bootstrap(control_plane: ControlPlane, kube: client.ApiClient,
                       kube_host: SimHost, admin_key: paramiko.PKey) -> None:
    install(kube_host, control_plane, node_credentials=False)
    ns = control_plane.create_namespace("bootstrap")
    control_plane.ensure_service_account(ns, "node-bootstrapper")
    rbac = client.RbacAuthorizationV1Api(kube)
    rbac.create_cluster_role_binding({
        "metadata": {"name": f"{ns}-node-bootstrapper"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": "system:node-bootstrapper"},
        "subjects": [{"kind": "ServiceAccount", "name": "node-bootstrapper", "namespace": ns}],
    })
    token = control_plane.service_account_token(ns, "node-bootstrapper")
    kube_host.fs.write_bytes("C:\\k\\bootstrap-kubeconfig",
                             dump_yaml(kubeconfig(control_plane, {"token": token})))
    name = kube_host.name.lower()
    certs = client.CertificatesV1Api(kube)

    def pending() -> Any:
        for csr in certs.list_certificate_signing_request().items:
            if csr.spec.username.endswith(":node-bootstrapper") and not csr.status.conditions:
                return csr
        return None

    with connect(kube_host, admin_key) as ssh:
        start(ssh, kube_host, "containerd")
        start(ssh, kube_host, "kubelet")
        assert wait_for(lambda: pending() is not None, 15), kube_lab_error(kube_host)
        csr = pending()
        assert csr.spec.signer_name == "kubernetes.io/kube-apiserver-client-kubelet"
        request = base64.b64decode(csr.spec.request).decode()
        assert "CERTIFICATE REQUEST" in request
        assert node(kube, name) is None  # nothing before the approval
        csr.status.conditions = [client.V1CertificateSigningRequestCondition(
            type="Approved", status="True", reason="Test", message="approved by test")]
        certs.replace_certificate_signing_request_approval(csr.metadata.name, csr)
        assert wait_for(lambda: ready(kube, name) == "True", 20), kube_lab_error(kube_host)
        assert kube_host.fs.is_file("C:\\k\\kubeconfig")
        assert kube_host.fs.is_file("C:\\var\\lib\\kubelet\\pki\\kubelet-client-current.pem")


def test_kubelet_without_credentials_crashes(kube_host: SimHost, control_plane: ControlPlane,
                                             admin_key: paramiko.PKey) -> None:
    install(kube_host, control_plane, node_credentials=False)
    with connect(kube_host, admin_key) as ssh:
        start(ssh, kube_host, "containerd")
        c.parse_sc_status(run(ssh, c.sc_start("kubelet")), "sc-start")
        assert wait_for(lambda: c.parse_sc_status(run(ssh, c.sc_query("kubelet"))).state
                        is c.ServiceState.STOPPED, 10)
        assert c.parse_sc_status(run(ssh, c.sc_query("kubelet"))).win32_exit_code == 1067


def _heartbeat(n: Any) -> Any:
    return next(cond.last_heartbeat_time for cond in n.status.conditions if cond.type == "Ready")


def kube_lab_error(host: SimHost) -> str:
    kubelets = host.lab.kubelets
    kubelet = kubelets.get(host.name) if kubelets else None
    return f"kubelet error: {kubelet.error if kubelet else 'not running'}"


def test_lifecycle_taints_survive_a_concurrent_node_write(
    kube: client.ApiClient, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The simulated node lifecycle controller, like nodelifecycle's SwapNodeControllerTaint
    under RetryOnConflict, retries on the fresh Node when another writer (here syncer
    labelling the Node) changed it between its read and its write."""
    name = f"win-conflict-{abs(hash(request.node.name)) % 10**6}"
    core = client.CoreV1Api(kube)
    core.create_node({"metadata": {"name": name}, "spec": {"taints": [
        {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}]}})
    request.addfinalizer(lambda: core.delete_node(name))
    reads = []
    read_node = client.CoreV1Api.read_node

    def read_then_someone_writes(self: client.CoreV1Api, node_name: str, **kw: Any) -> Any:
        fresh = read_node(self, node_name, **kw)
        reads.append(fresh.metadata.resource_version)
        if len(reads) == 1:
            core.patch_node(node_name, {"metadata": {"labels": {"syncer.io/test": "x"}}})
        return fresh

    monkeypatch.setattr(client.CoreV1Api, "read_node", read_then_someone_writes)
    Kubelets(lifecycle_api=kube)._lifecycle_taints(name, ready=True)
    monkeypatch.undo()
    assert len(reads) == 2 and reads[0] != reads[1]  # a 409, then the fresh Node
    after = core.read_node(name)
    assert not after.spec.taints and after.metadata.labels["syncer.io/test"] == "x"

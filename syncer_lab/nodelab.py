"""A fleet of simulated Windows hosts wired to a test control plane, for the node-stage
tests and benchmarks.

:class:`NodeLab` puts hosts into a :class:`~syncer_lab.winhost.HostLab` (with simulated
kubelets, so Nodes register after bootstrap and CSR approval), writes the
``syncer-fleet`` and ``windows-instances`` ConfigMaps and ``cloud-private-key`` into a
namespace, serves payloads as ``file://`` URLs in the layout of the upstream release
artifacts (:func:`payload_files`; simulated binaries are text files whose first line
states the version; archives are deterministic ``.tar.gz``), and runs the node stage
with small timeouts. Cluster-wide Nodes are scoped to the lab by a label
(``syncer-test=<scope>``, set through the hosts' extra labels), so labs sharing a
control plane do not see each other's Nodes."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import tarfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from syncer import names
from syncer.cluster.client import ApiError, KubeClient
from syncer.nodes.clusterinfo import cluster_dns_of
from syncer.nodes.context import Timeouts
from syncer.nodes.downloads import FetchPolicy
from syncer.nodes.drain import DrainOptions
from syncer.nodes.ssh import SshOptions
from syncer.nodes.stage import NodeStageOptions, NodeStageResult, run_node_stage
from syncer.nodes.windows.keys import parse_private_key
from syncer_lab.winhost import HostLab, SimHost, key_line
from syncer_lab.winhost.workers import LabProcesses, RemoteHost

SSH = SshOptions(
    connect_timeout=5.0,
    connect_timeout_total=3.0,
    auth_timeout_total=3.0,
    retry_interval=0.3,
    command_timeout=60.0,
    upload_attempts=3,
    reboot_down_timeout=20.0,
    reboot_up_timeout=30.0,
    poll_interval=0.1,
)
TIMEOUTS = Timeouts(
    node_wait=60.0, ready_wait=60.0, network_wait=60.0, service_wait=20.0, process_exit=20,
    poll=0.1, slot_renew=2.0,
)
DRAIN = DrainOptions(timeout=20.0, retry_interval=0.2, max_retry_interval=1.0, poll_interval=0.2)
# The lab's payloads are local files: the node stage runs as `syncer sync --once
# --allow-file-payloads` does on a workstation (the controller never reads file:// URLs).
PAYLOADS = FetchPolicy(allow_file=True)

# The components the tests roll out: the kubelet and kube-proxy under kube-log-runner,
# the runtime, and the pod network (hybrid-overlay, its CNI plugins, hns.psm1).
COMPONENTS = ("containerd", "kubelet", "kube-log-runner", "hybrid-overlay-node", "kube-proxy",
              "cni", "hns")
# Components that come out of the Kubernetes Windows node tarball
# (kubernetes-node-windows-amd64.tar.gz: kubernetes/node/bin/<name>.exe).
NODE_TARBALL = ("kubelet", "kube-proxy", "kube-log-runner")


def tar_gz(files: dict[str, bytes]) -> bytes:
    """A deterministic .tar.gz (no timestamps), so the same payload has the same sha256."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def payload_files(component: str, version: str) -> tuple[bytes, str | None]:
    """(payload bytes, member path) as the upstream release publishes the component:
    the Kubernetes node tarball (kubelet, kube-proxy, kube-log-runner in
    ``kubernetes/node/bin/``), containerd's Windows tarball (``bin/``), the CNI plugins
    tarball (``./`` prefixed), single files for the rest."""
    if component in NODE_TARBALL:
        data = tar_gz({f"kubernetes/node/bin/{name}.exe": f"{name} {version}\n".encode()
                       for name in (*NODE_TARBALL, "kubeadm", "kubectl")})
        return data, f"kubernetes/node/bin/{component}.exe"
    if component == "containerd":
        return tar_gz({f"bin/{name}": f"{name.removesuffix('.exe')} {version}\n".encode()
                       for name in ("containerd.exe", "containerd-shim-runhcs-v1.exe",
                                    "ctr.exe")}), None
    if component == "cni":
        return tar_gz({f"./{n}": f"{n} {version}\n".encode()
                       for n in ("win-bridge.exe", "win-overlay.exe", "host-local.exe")}), None
    return f"{component} {version}\n".encode(), None


@dataclass
class NodeLab:
    api: KubeClient
    namespace: str
    lab: HostLab | LabProcesses
    root: Path
    scope: str
    key_pem: bytes = field(default_factory=lambda: ed25519.Ed25519PrivateKey.generate()
                           .private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.OpenSSH,
                                          serialization.NoEncryption()))
    hosts: list[SimHost] = field(default_factory=list)
    remote_hosts: list[RemoteHost] = field(default_factory=list)  # in LabProcesses
    extras: dict[str, dict[str, Any]] = field(default_factory=dict)
    fleet_version: str = ""
    components: dict[str, dict[str, str]] = field(default_factory=dict)
    # Nodes outside the scope label (e.g. of Machine hosts) to delete after the test.
    extra_nodes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.key: paramiko.PKey = parse_private_key(self.key_pem).pkey
        body = {
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": names.PRIVATE_KEY_SECRET, "namespace": self.namespace},
            "data": {names.PRIVATE_KEY_SECRET_KEY: base64.b64encode(self.key_pem).decode()},
        }
        path = f"/api/v1/namespaces/{self.namespace}/secrets"
        try:
            self.api.request("POST", path, body=body)
        except ApiError as err:
            if not err.conflict:
                raise
            self.api.request("PUT", f"{path}/{names.PRIVATE_KEY_SECRET}", body=body)

    @property
    def key_line(self) -> str:
        return key_line(self.key)

    # --- hosts ---------------------------------------------------------------------------
    def add_hosts(self, count: int, **options: Any) -> list[SimHost]:
        assert isinstance(self.lab, HostLab), "hosts in lab processes: add_remote_hosts"
        new = []
        for _ in range(count):
            name = f"{self.scope}-{len(self.hosts) + 1}".upper()
            host = self.lab.add_host(name, authorized_keys=[self.key_line],
                                     **_host_options(options))
            self.hosts.append(host)
            self.extras[host.address] = {"labels": {"syncer-test": self.scope}}
            new.append(host)
        return new

    def add_remote_hosts(self, count: int, **options: Any) -> list[RemoteHost]:
        """Hosts in the lab processes (:class:`LabProcesses`), as ``add_hosts``."""
        assert isinstance(self.lab, LabProcesses), "hosts in this process: add_hosts"
        first = len(self.remote_hosts) + 1
        new = self.lab.add_hosts([f"{self.scope}-{first + i}".upper() for i in range(count)],
                                 authorized_keys=[self.key_line], **_host_options(options))
        for host in new:
            self.extras[host.address] = {"labels": {"syncer-test": self.scope}}
        self.remote_hosts.extend(new)
        return new

    def add_wmco_hosts(self, count: int, kubernetes_version: str = "v1.30.4",
                       **options: Any) -> list[SimHost]:
        """Hosts WMCO configured (:mod:`syncer_lab.wmco`): Nodes up and Ready, listed in
        ``windows-instances`` by the caller."""
        from syncer_lab import openshift, wmco

        new = self.add_hosts(count, **options)
        kubeconfig, ca = self._mco_bootstrap_kubeconfig()
        server = self.api.api_client.configuration.host
        for host in new:
            wmco.configure(self.api.api_client, host, kubernetes_version=kubernetes_version,
                           bootstrap_kubeconfig=kubeconfig, ca=ca, api_server=server,
                           service_cidr=openshift.SERVICE_NETWORK,
                           cluster_dns=cluster_dns_of(openshift.SERVICE_NETWORK),
                           private_key=self.key_pem, public_key_line=self.key_line,
                           labels={"syncer-test": self.scope})
        return new

    def _mco_bootstrap_kubeconfig(self) -> tuple[bytes, bytes]:
        """What WMCO hands a host: MCO's ``node-bootstrapper`` token and the cluster CA."""
        from syncer.nodes.kubeconfig import render_kubeconfig

        ns, sa = "openshift-machine-config-operator", "node-bootstrapper"
        for path, body in (
            ("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                    "metadata": {"name": ns}}),
            (f"/api/v1/namespaces/{ns}/serviceaccounts",
             {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa}}),
            ("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
             {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
              "metadata": {"name": "system-bootstrap-node-bootstrapper"},
              "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                          "name": "system:node-bootstrapper"},
              "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": ns}]}),
            (f"/api/v1/namespaces/{ns}/secrets",
             {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
              "metadata": {"name": f"{sa}-token",
                           "annotations": {"kubernetes.io/service-account.name": sa}}}),
        ):
            try:
                self.api.request("POST", path, body=body)
            except ApiError as err:
                if not err.conflict:
                    raise
        for _ in range(100):
            data = self.api.request(
                "GET", f"/api/v1/namespaces/{ns}/secrets/{sa}-token").get("data") or {}
            if data.get("token"):
                token = base64.b64decode(data["token"]).decode()
                ca = base64.b64decode(data["ca.crt"])
                return render_kubeconfig(self.api.api_client.configuration.host, ca, token), ca
            time.sleep(0.1)
        raise TimeoutError("MCO's node-bootstrapper token Secret was never filled")

    def host(self, address: str) -> SimHost:
        return next(h for h in self.hosts if h.address == address)

    def write_instances(self, hosts: Sequence[SimHost | RemoteHost] | None = None,
                        extra: dict[str, str] | None = None) -> None:
        chosen: Sequence[SimHost | RemoteHost] = (
            [*self.hosts, *self.remote_hosts] if hosts is None else hosts)
        data = {h.address: "username=Administrator" for h in chosen}
        data.update(extra or {})
        self._put_configmap(names.BYOH_CONFIGMAP, data)

    # --- fleet ---------------------------------------------------------------------------
    def payload(self, component: str, version: str, *, corrupt: bool = False) -> dict[str, str]:
        data, member = payload_files(component, version)
        name = "kubernetes-node" if component in NODE_TARBALL else component
        path = self.root / "payloads" / f"{name}-{version}{'-bad' if corrupt else ''}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data + (b"tampered" if corrupt else b""))
        entry = {"version": version, "url": path.as_uri(),
                 "sha256": hashlib.sha256(data).hexdigest()}
        if member:
            entry["path"] = member
        return entry

    def set_fleet(self, version: str, kubelet: str = "v1.30.4", *, max_unavailable: int = 1,
                  on_failure: str = "halt", paused: bool = False, corrupt: str | None = None,
                  versions: dict[str, str] | None = None, platform: str = "none",
                  host_key_policy: str = "tofu", extra: tuple[str, ...] = ()) -> None:
        versions = dict(versions or {})
        components = {}
        for name in (*COMPONENTS, *extra):
            v = versions.get(name, kubelet if name in NODE_TARBALL else "v1.0.0")
            components[name] = self.payload(name, v, corrupt=corrupt == name)
        self.fleet_version = version
        self.components = components
        nodes = {
            "platform": platform,
            "rollout": {"maxUnavailable": max_unavailable, "drainTimeout": "20s",
                        "onFailure": on_failure, "paused": paused},
            "nodes": {"sshPort": self.lab.port, "hostKeyPolicy": host_key_policy,
                      "userData": "syncer"},
        }
        self._put_configmap(names.FLEET_CONFIGMAP, {
            "fleet": "test",
            "version": version,
            "components.json": json.dumps(components),
            "nodes.json": json.dumps(nodes),
            "hosts.json": json.dumps(self.extras),
        })

    def _put_configmap(self, name: str, data: dict[str, str]) -> None:
        path = f"/api/v1/namespaces/{self.namespace}/configmaps"
        body = {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": self.namespace}, "data": data}
        try:
            self.api.request("PUT", f"{path}/{name}", body=body)
        except Exception:
            self.api.request("POST", path, body=body)

    # --- running ---------------------------------------------------------------------------
    def options(self, **overrides: Any) -> NodeStageOptions:
        values: dict[str, Any] = {
            "namespace": self.namespace,
            "machine_namespace": self.namespace,
            "cache_dir": self.root / "cache",
            "payloads": PAYLOADS,
            "ssh": SSH,
            "timeouts": TIMEOUTS,
            "drain": DRAIN,
            "node_selector": scope_selector(self.scope),
            "reverse": _no_ptr,
            "stale_after": 30.0,
        }
        values.update(overrides)
        return NodeStageOptions(**values)

    def child_config(self, kubeconfig: Path, identity: str = "syncer",
                     hold: tuple[str, str] | None = None) -> dict[str, Any]:
        """What :mod:`syncer_lab.nodestage_child` needs to run this lab's round; ``hold``
        (address, step): that host waits for a line on the child's stdin as it enters it."""
        return {"kubeconfig": str(kubeconfig), "namespace": self.namespace,
                "cache_dir": str(self.root / "cache"), "stale_after": 30.0,
                "node_selector": scope_selector(self.scope), "identity": identity,
                "hold": list(hold) if hold else None}

    def run(self, shutdown: threading.Event | None = None, **overrides: Any) -> NodeStageResult:
        return run_node_stage(self.api, self.options(**overrides), shutdown=shutdown)

    # --- observation -----------------------------------------------------------------------
    def nodes(self) -> dict[str, dict[str, Any]]:
        doc = self.api.request("GET", "/api/v1/nodes",
                               query=[("labelSelector", scope_selector(self.scope))])
        return {n["metadata"]["name"]: n for n in doc.get("items") or []}

    def node_of(self, host: SimHost) -> dict[str, Any] | None:
        return self.nodes().get(host.name.lower())

    def unexpected(self) -> list[str]:
        return [f"{h.name}: {c.summary}" for h in self.hosts for c in h.unexpected_commands]


def _host_options(options: dict[str, Any]) -> dict[str, Any]:
    return {"process_linger_seconds": 0.2, "service_transition_seconds": 0.05,
            "reboot_delay": 0.2, "reboot_downtime": 0.5, **options}


def scope_selector(scope: str) -> str:
    return f"kubernetes.io/os=windows,syncer-test={scope}"


def _no_ptr(address: str) -> list[str]:
    raise OSError("no PTR record")


def entries(host: SimHost) -> list[str]:
    """The summaries of the commands a host received, in order."""
    return [c.summary for c in host.commands]


def downtime(host: SimHost) -> tuple[float, float] | None:
    """(first service stop, last service start) on a host: when it was out."""
    stops = [c.received_at for c in host.commands if c.summary.startswith("stop-service")]
    starts = [c.received_at for c in host.commands if c.summary.startswith("start-service")]
    if not stops or not starts:
        return None
    return min(stops), max(starts)


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    best = current = 0
    for _, delta in events:
        current += delta
        best = max(best, current)
    return best



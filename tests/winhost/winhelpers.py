"""Helpers shared by the simulated-host tests."""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Callable
from typing import Any

from ruamel.yaml import YAML

from syncer.nodes.windows.vocabulary import CommandResult
from syncer_lab.kube import ControlPlane
from syncer_lab.pki import cert_pem, key_pem
from syncer_lab.winhost import SimClient, SimHost

KUBELET_ARGS = (
    "C:\\k\\kubelet.exe --config=C:\\k\\kubelet.conf "
    "--bootstrap-kubeconfig=C:\\k\\bootstrap-kubeconfig --kubeconfig=C:\\k\\kubeconfig "
    "--cert-dir=c:\\var\\lib\\kubelet\\pki\\ --windows-service "
    "--node-labels=node.openshift.io/os_id=Windows "
    "--register-with-taints=os=Windows:NoSchedule "
    "--windows-priorityclass=ABOVE_NORMAL_PRIORITY_CLASS"
)
# A KubeletConfiguration a Windows kubelet accepts (the kubelet's own validation judges it).
KUBELET_CONF = (
    b'{"kind": "KubeletConfiguration", "apiVersion": "kubelet.config.k8s.io/v1beta1", '
    b'"cgroupsPerQOS": false, "enforceNodeAllocatable": ["none"], "resolvConf": ""}'
)
CONTAINERD_CONF = (
    b'version = 2\n[plugins."io.containerd.grpc.v1.cri".cni]\n'
    b'  bin_dir = "C:\\\\k\\\\cni"\n  conf_dir = "C:\\\\k\\\\cni\\\\config"\n'
)
CNI_CONF = (
    b'{"cniVersion": "0.2.0", "name": "OVNKubernetesHybridOverlayNetwork", '
    b'"type": "win-overlay", "ipam": {"type": "host-local", "subnet": "10.132.0.0/24"}}'
)


def run(client: SimClient, command: str, timeout: float | None = None) -> CommandResult:
    """Run ``command`` over SSH exec and return it as the product's CommandResult."""
    r = client.run(command, timeout=timeout)
    return CommandResult(r.exit_code, r.stdout, r.stderr)


def payload(component: str, version: str) -> bytes:
    """A simulated payload binary: a text file whose first line states its version."""
    return f"{component} {version}\n".encode()


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def dump_yaml(doc: dict[str, Any]) -> bytes:
    out = io.StringIO()
    YAML().dump(doc, out)
    return out.getvalue().encode()


def kubeconfig(cp: ControlPlane, user: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Config",
        # A Windows path inside the kubeconfig, as the node stage writes it.
        "clusters": [{"name": "cluster", "cluster": {
            "server": cp.server, "certificate-authority": "C:\\k\\kubelet-ca.crt"}}],
        "users": [{"name": "kubelet", "user": user}],
        "contexts": [{"name": "ctx", "context": {"cluster": "cluster", "user": "kubelet"}}],
        "current-context": "ctx",
    }


def install(host: SimHost, cp: ControlPlane, *, version: str = "v1.30.4",
            node_credentials: bool = True) -> None:
    """What the node stage does before starting the kubelet (simplified)."""
    fs = host.fs
    fs.make_directory("C:\\k\\containerd")
    fs.write_bytes("C:\\k\\containerd\\containerd.exe", payload("containerd", "v1.7.20"))
    fs.write_bytes("C:\\k\\kubelet.exe", payload("kubelet", version))
    fs.write_bytes("C:\\k\\kubelet-ca.crt", cp.ca_cert_path.read_bytes())
    fs.write_bytes("C:\\k\\kubelet.conf", KUBELET_CONF)
    fs.write_bytes("C:\\k\\containerd\\containerd_conf.toml", CONTAINERD_CONF)
    fs.make_directory("C:\\k\\cni\\config")
    fs.write_bytes("C:\\k\\cni\\config\\cni.conf", CNI_CONF)
    if node_credentials:
        key, cert = cp.ca.issue(f"system:node:{host.name.lower()}", ["system:nodes"],
                                client=True)
        fs.write_bytes("C:\\k\\kubeconfig", dump_yaml(kubeconfig(cp, {
            "client-certificate-data": base64.b64encode(cert_pem(cert)).decode(),
            "client-key-data": base64.b64encode(key_pem(key)).decode(),
        })))
    host.scm.create("containerd", "C:\\k\\containerd\\containerd.exe --config "
                    "C:\\k\\containerd\\containerd_conf.toml", "auto")
    host.scm.create("kubelet", KUBELET_ARGS, "auto", ["containerd"])

"""Where things go on a Windows host, and how each managed service is configured.

Remote layout (``C:\\k`` is the root, as in WMCO):

- a ``file`` component lives at its catalogue ``target`` (``C:\\k\\kubelet.exe``); its
  installed digest is that file's SHA-256;
- an ``archive`` component is expanded into its ``target`` directory
  (``C:\\k\\containerd``); the archive itself is kept at ``C:\\k\\payloads\\<name>.tar.gz``
  so its digest tells what is installed with one ``Get-FileHash``;
- payloads are uploaded first to ``C:\\k\\staging\\<sha256>`` (files) or
  ``…\\<sha256>.tar.gz`` (archives), *before* any service stops, and moved into place in
  the ``replace`` step. Staging names are content-addressed, so a controller that resumes
  a host finds what it already uploaded and does not send it again.

Services (:func:`service_spec`): the binary path with WMCO-like arguments (the kubelet
runs with ``--windows-priorityclass=ABOVE_NORMAL_PRIORITY_CLASS``, registers with the
taint ``os=Windows:NoSchedule`` and label ``node.openshift.io/os_id=Windows`` plus the
host's extra labels a kubelet may set on itself), the dependencies of
:mod:`syncer.components`, start type ``auto``, recovery ``restart`` and the description
``OpenShift managed (syncer) <component>``. Every description that starts with
``OpenShift managed`` marks a managed service (WMCO's and syncer's alike), which is how
cleanup finds services of older versions too.

Labels from Git are validated as Kubernetes labels here (:func:`check_labels`), so a
hostile value can never reach a command line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from syncer import names
from syncer.components import CATALOGUE, Component, PayloadKind, start_order

ROOT = "C:\\k"
STAGING_DIR = ROOT + "\\staging"
PAYLOADS_DIR = ROOT + "\\payloads"
KUBECONFIG = ROOT + "\\kubeconfig"
KUBELET_CONFIG = ROOT + "\\kubelet.conf"
CERT_DIR = "C:\\var\\lib\\kubelet\\pki"
LOG_ROOT = "C:\\var\\log"
MANAGED_PREFIX = "OpenShift managed"
DESCRIPTION = MANAGED_PREFIX + " (syncer) {component}"

_LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_LABEL_PREFIX = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_LABEL_KEY = re.compile(rf"^({_LABEL_PREFIX}/)?{_LABEL_NAME}$")
_LABEL_VALUE = re.compile(rf"^({_LABEL_NAME})?$")
# Label namespaces a kubelet may not set on its own Node (NodeRestriction), except the
# kubelet's own ones; such labels are set through the API by the annotate step instead.
_RESTRICTED = re.compile(r"(^|\.)(kubernetes\.io|k8s\.io)/")
_KUBELET_ALLOWED = re.compile(
    r"^(kubelet\.kubernetes\.io/|node\.kubernetes\.io/|[^/]*\.node\.kubernetes\.io/)"
)


def staged_path(component: str, sha256: str) -> str:
    suffix = ".tar.gz" if CATALOGUE[component].kind is PayloadKind.ARCHIVE else ""
    return f"{STAGING_DIR}\\{sha256}{suffix}"


def installed_path(component: str) -> str:
    """The file whose SHA-256 says which version of ``component`` is installed."""
    c = CATALOGUE[component]
    if c.kind is PayloadKind.ARCHIVE:
        return f"{PAYLOADS_DIR}\\{c.name}.tar.gz"
    return c.target


def process_name(component: Component) -> str | None:
    """The process of a component's service as Get-Process names it (no ``.exe``)."""
    binary = component.service_binary
    if binary is None:
        return None
    image = binary.rsplit("\\", 1)[-1]
    return image[:-4] if image.lower().endswith(".exe") else image


def check_labels(labels: Mapping[str, str]) -> list[str]:
    """Why each label is not a valid Kubernetes label (empty when all are)."""
    problems = []
    for key, value in sorted(labels.items()):
        if len(key) > 316 or not _LABEL_KEY.match(key):
            problems.append(f"label key {key!r} is not a valid Kubernetes label key")
        elif not isinstance(value, str) or not _LABEL_VALUE.match(value):
            problems.append(f"label {key}: value {value!r} is not a valid Kubernetes label value")
    return problems


def kubelet_settable(key: str) -> bool:
    """Whether NodeRestriction lets a kubelet set this label on its own Node."""
    return not _RESTRICTED.search(key) or bool(_KUBELET_ALLOWED.match(key))


@dataclass(frozen=True)
class HostIdentity:
    """What the service arguments need to know about the host."""

    node_ip: str  # the kubelet's --node-ip: the IPv4 syncer reaches the host at
    node_name: str  # the name the kubelet registers (host name, lowercased)
    labels: Mapping[str, str]  # extra labels from Git (validated)


@dataclass(frozen=True)
class ServiceSpec:
    component: str
    name: str
    binary_path: str  # the full ImagePath: executable and arguments
    depends_on: tuple[str, ...]
    description: str


def service_spec(component: str, host: HostIdentity) -> ServiceSpec | None:
    """The service ``component`` runs as on ``host`` (None for payload-only components)."""
    c = CATALOGUE[component]
    if c.service is None or c.service_binary is None:
        return None
    args = _arguments(component, host)
    binary = c.service_binary + (" " + " ".join(args) if args else "")
    return ServiceSpec(
        component, c.service, binary, c.depends_on, DESCRIPTION.format(component=component)
    )


def _arguments(component: str, host: HostIdentity) -> list[str]:
    log_dir = f"{LOG_ROOT}\\{component}"
    if component == "kubelet":
        labels = {names.LABEL_NODE_OS_ID: "Windows"}
        labels.update({k: v for k, v in host.labels.items() if kubelet_settable(k)})
        node_labels = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        return [
            f"--config={KUBELET_CONFIG}",
            f"--bootstrap-kubeconfig={ROOT}\\bootstrap-kubeconfig",
            f"--kubeconfig={KUBECONFIG}",
            f"--cert-dir={CERT_DIR}",
            "--windows-service",
            "--logtostderr=false",
            f"--log-file={log_dir}\\kubelet.log",
            f"--register-with-taints={names.WINDOWS_TAINT_KEY}={names.WINDOWS_TAINT_VALUE}"
            ":NoSchedule",
            f"--node-labels={node_labels}",
            "--container-runtime-endpoint=npipe://./pipe/containerd-containerd",
            "--windows-priorityclass=ABOVE_NORMAL_PRIORITY_CLASS",
            f"--node-ip={host.node_ip}",
            "--v=2",
        ]
    if component == "containerd":
        return [
            f"--config={ROOT}\\containerd\\containerd_conf.toml",
            f"--log-file={log_dir}\\containerd.log",
            "--run-service",
            "--log-level=info",
        ]
    if component == "hybrid-overlay-node":
        return [
            f"--node={host.node_name}",
            f"--k8s-kubeconfig={KUBECONFIG}",
            "--windows-service",
            f"--logfile={log_dir}\\hybrid-overlay.log",
        ]
    if component == "kube-proxy":
        return [
            "--windows-service",
            "--proxy-mode=kernelspace",
            f"--hostname-override={host.node_name}",
            f"--kubeconfig={KUBECONFIG}",
            "--logtostderr=false",
            f"--log-file={log_dir}\\kube-proxy.log",
            "--v=2",
        ]
    if component == "windows_exporter":
        return [
            "--collectors.enabled=cpu,cs,logical_disk,net,os,service,system,textfile,"
            "container,memory,cpu_info",
        ]
    if component == "csi-proxy":
        return ["-windows-service", "-logtostderr=false", f"-log_file={log_dir}\\csi-proxy.log"]
    return []


def kubelet_config(kubelet_ca: str = ROOT + "\\kubelet-ca.crt") -> bytes:
    """``C:\\k\\kubelet.conf``: a KubeletConfiguration like WMCO's (JSON is valid YAML)."""
    doc = {
        "kind": "KubeletConfiguration",
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": kubelet_ca},
        },
        "authorization": {"mode": "Webhook"},
        "cgroupsPerQOS": False,
        "enforceNodeAllocatable": [],
        "clusterDomain": "cluster.local",
        "logging": {"flushFrequency": 5000000000},
        "rotateCertificates": True,
        "serverTLSBootstrap": True,
        "systemReserved": {"cpu": "500m", "ephemeral-storage": "1Gi", "memory": "1Gi"},
        "tlsCipherSuites": [
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        ],
        "tlsMinVersion": "VersionTLS12",
    }
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode("utf-8")


def managed_components(components: Mapping[str, object] | list[str]) -> list[str]:
    """The catalogue components among ``components``, in start (dependency) order."""
    return start_order([c for c in components if c in CATALOGUE])


def dependents_closure(changed: set[str], present: list[str]) -> set[str]:
    """``changed`` plus every present component whose service depends on one of them,
    transitively (they must stop before, and start after, what they depend on)."""
    by_service = {c.service: c.name for c in CATALOGUE.values() if c.service}
    out = set(changed)
    grew = True
    while grew:
        grew = False
        for name in present:
            if name in out:
                continue
            deps = {by_service.get(d) for d in CATALOGUE[name].depends_on}
            if deps & out:
                out.add(name)
                grew = True
    return out

"""Where things go on a Windows host, and how each managed service is started.

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

Services (:func:`service_spec`) are WMCO's (``pkg/services/services.go``), so a node
syncer configured looks like one WMCO configured, and adopting a WMCO node changes as
little as possible:

- the kubelet and kube-proxy run under ``kube-log-runner.exe -log-file=…``: Kubernetes
  1.26 removed ``--logtostderr``/``--log-file`` from both (kubernetes PR #112120), so
  the wrapper writes their log file;
- everything the kubelet can read from ``kubelet.conf`` is there
  (:mod:`syncer.nodes.windows.files`); its command line keeps WMCO's flags: config and
  credential paths, ``--windows-service``, the ``node.openshift.io/os_id=Windows`` label
  (plus the host's extra labels a kubelet may set on itself),
  ``--windows-priorityclass=ABOVE_NORMAL_PRIORITY_CLASS``, ``--v=2``,
  ``--cloud-provider=external`` on cloud platforms, ``--hostname-override`` where WMCO
  sets one (the cloud's host name on AWS and GCP, the FQDN on vSphere) and ``--node-ip``
  (the IPv4 of the default route's interface, read from the host like WMCO's pre-script);
- hybrid-overlay-node gets a client certificate of its own (``system:ovn-node:<node>``,
  requested with the kubelet's credentials as ``--bootstrap-kubeconfig``), the API
  server URL and CA, and the cluster's VXLAN port;
- kube-proxy reads ``C:\\k\\kube-proxy.conf``, written once the overlay network exists;
- windows_exporter runs WMCO's collector list (no ``cs``, removed upstream in v0.31, and
  no ``textfile``).

Each service has the dependencies of :mod:`syncer.components`, start type ``auto``,
recovery ``restart`` and the description ``OpenShift managed (syncer) <component>``. Every
description that starts with ``OpenShift managed`` marks a managed service (WMCO's,
including its ``windows-instance-config-daemon``, and syncer's alike), which is how
cleanup and adoption find services syncer does not run itself.

Labels from Git are validated as Kubernetes labels here (:func:`check_labels`), so a
hostile value can never reach a command line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from syncer import names
from syncer.components import CATALOGUE, Component, PayloadKind, start_order
from syncer.desired import Platform

ROOT = "C:\\k"
STAGING_DIR = ROOT + "\\staging"
PAYLOADS_DIR = ROOT + "\\payloads"
KUBECONFIG = ROOT + "\\kubeconfig"
BOOTSTRAP_KUBECONFIG = ROOT + "\\bootstrap-kubeconfig"
BOOTSTRAP_CA = ROOT + "\\bootstrap-ca.crt"
KUBELET_CA = ROOT + "\\kubelet-ca.crt"
KUBELET_CONFIG = ROOT + "\\kubelet.conf"
KUBE_PROXY_CONFIG = ROOT + "\\kube-proxy.conf"
KUBE_LOG_RUNNER = ROOT + "\\kube-log-runner.exe"
HNS_MODULE = ROOT + "\\hns.psm1"
CNI_DIR = ROOT + "\\cni"
CNI_CONFIG_DIR = CNI_DIR + "\\config"
CNI_CONFIG = CNI_CONFIG_DIR + "\\cni.conf"
CONTAINERD_DIR = ROOT + "\\containerd"
CONTAINERD_CONFIG = CONTAINERD_DIR + "\\containerd_conf.toml"
REGISTRIES_DIR = CONTAINERD_DIR + "\\registries"
CERT_DIR = "c:\\var\\lib\\kubelet\\pki\\"  # WMCO's spelling, trailing separator included
# Where the kubelet keeps its serving certificate and key (its certificate store,
# pkg/kubelet/certificate/kubelet.go NewFileStore("kubelet-server", certDirectory, ...):
# <prefix>-current.pem, written only once a CSR was signed, kept across restarts).
KUBELET_SERVING_CERT = CERT_DIR + "kubelet-server-current.pem"
LOG_ROOT = "C:\\var\\log"
MANAGED_PREFIX = "OpenShift managed"
DESCRIPTION = MANAGED_PREFIX + " (syncer) {component}"
WICD_SERVICE = "windows-instance-config-daemon"
# The process of every pod sandbox on a containerd host: it holds its executable in
# C:\k\containerd while the pod runs, even after containerd itself stopped.
SHIM_PROCESS = "containerd-shim-runhcs-v1"
# windows_exporter's collectors as WMCO runs them (services.go; "cs" was removed upstream
# in v0.31, prometheus-community/windows_exporter PR #1693, and by WMCO in PR #3835).
EXPORTER_COLLECTORS = "cpu,logical_disk,net,os,service,system,container,memory,cpu_info"
# Platforms whose cloud controller manager runs outside the kubelet.
CLOUD_PLATFORMS = frozenset({Platform.AWS, Platform.AZURE, Platform.GCP, Platform.VSPHERE,
                             Platform.NUTANIX})
# Log directories WMCO uses where they are not the component's name (must-gather reads them).
_LOG_DIRS = {"hybrid-overlay-node": "hybrid-overlay"}

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


def log_dir(component: str) -> str:
    return f"{LOG_ROOT}\\{_LOG_DIRS.get(component, component)}"


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
        if len(key) > 316 or not _LABEL_KEY.fullmatch(key):
            problems.append(f"label key {key!r} is not a valid Kubernetes label key")
        elif not isinstance(value, str) or not _LABEL_VALUE.fullmatch(value):
            problems.append(f"label {key}: value {value!r} is not a valid Kubernetes label value")
    return problems


def kubelet_settable(key: str) -> bool:
    """Whether NodeRestriction lets a kubelet set this label on its own Node."""
    return not _RESTRICTED.search(key) or bool(_KUBELET_ALLOWED.match(key))


@dataclass(frozen=True)
class HostIdentity:
    """What the service arguments need to know about the host."""

    node_ip: str  # the kubelet's --node-ip: the host's default-route IPv4
    node_name: str  # the name the kubelet registers (lowercased)
    labels: Mapping[str, str]  # extra labels from Git (validated)
    hostname_override: str | None = None  # where the platform names the node (WMCO)


@dataclass(frozen=True)
class NodeSettings:
    """What the service arguments need to know about the cluster."""

    api_server: str  # the URL hosts reach the API server at
    platform: Platform = Platform.NONE
    vxlan_port: int | None = None  # hybrid overlay VXLAN port (None: the default)


@dataclass(frozen=True)
class ServiceSpec:
    component: str
    name: str
    binary_path: str  # the full ImagePath: executable and arguments
    depends_on: tuple[str, ...]
    description: str


def service_spec(component: str, host: HostIdentity, cluster: NodeSettings
                 ) -> ServiceSpec | None:
    """The service ``component`` runs as on ``host`` (None for payload-only components)."""
    c = CATALOGUE[component]
    if c.service is None or c.service_binary is None:
        return None
    args = _arguments(component, host, cluster)
    command = [c.service_binary, *args]
    if c.log_runner:
        log_file = f"{log_dir(component)}\\{component}.log"
        command = [KUBE_LOG_RUNNER, f"-log-file={log_file}", *command]
    return ServiceSpec(
        component, c.service, " ".join(command), c.depends_on,
        DESCRIPTION.format(component=component),
    )


def _arguments(component: str, host: HostIdentity, cluster: NodeSettings) -> list[str]:
    if component == "kubelet":
        labels = {names.LABEL_NODE_OS_ID: "Windows"}
        labels.update({k: v for k, v in host.labels.items() if kubelet_settable(k)})
        node_labels = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        args = [
            f"--config={KUBELET_CONFIG}",
            f"--bootstrap-kubeconfig={BOOTSTRAP_KUBECONFIG}",
            f"--kubeconfig={KUBECONFIG}",
            f"--cert-dir={CERT_DIR}",
            "--windows-service",
            f"--node-labels={node_labels}",
            "--windows-priorityclass=ABOVE_NORMAL_PRIORITY_CLASS",
            "--v=2",
        ]
        if cluster.platform in CLOUD_PLATFORMS:
            args.append("--cloud-provider=external")
        if host.hostname_override:
            args.append(f"--hostname-override={host.hostname_override}")
        return [*args, f"--node-ip={host.node_ip}"]
    if component == "containerd":
        return ["--config", CONTAINERD_CONFIG, "--log-file",
                f"{log_dir(component)}\\containerd.log", "--run-service", "--log-level", "info"]
    if component == "hybrid-overlay-node":
        args = [
            "--node", host.node_name,
            f"--bootstrap-kubeconfig={KUBECONFIG}",
            f"--cert-dir={CNI_CONFIG_DIR}",
            "--cert-duration=24h",
            "--windows-service",
            "--logfile", f"{log_dir(component)}\\hybrid-overlay.log",
            f"--k8s-apiserver={cluster.api_server}",
            "--k8s-cacert", BOOTSTRAP_CA,
        ]
        if cluster.vxlan_port is not None:
            args += ["--hybrid-overlay-vxlan-port", str(cluster.vxlan_port)]
        return args
    if component == "kube-proxy":
        return ["--config", KUBE_PROXY_CONFIG, "--windows-service"]
    if component == "windows_exporter":
        return ["--collectors.enabled", EXPORTER_COLLECTORS, "--log.level", "info",
                "--log.file", f"{log_dir(component)}\\windows_exporter.log"]
    if component == "csi-proxy":
        return [f"-log_file={log_dir(component)}\\csi-proxy.log", "-logtostderr=false",
                "-windows-service", "--v=2"]
    if component == "cloud-node-manager":
        return ["--windows-service", f"--node-name={host.node_name}", "--wait-routes=false",
                f"--kubeconfig={KUBECONFIG}"]
    return []


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

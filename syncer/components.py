"""The catalogue of Windows node components syncer manages.

This is the one place that says, for each component name a Fleet may list, where its
payload goes on the host (``C:\\k`` is the root, as in WMCO), whether the payload is a
single file or a ``.tar.gz`` archive expanded into a directory, and which Windows service
runs it with which dependencies. The fleet validator uses it to reject unknown names and
missing companions; the node stage uses it to plan transfers and service changes.

Payloads are the upstream release artifacts as published: a file component may come
from a ``.tar.gz`` whose ``path`` names the file inside it (``kubelet``, ``kube-proxy``
and ``kube-log-runner`` are in ``kubernetes/node/bin/`` of the Kubernetes Windows node
tarball, ``hack/lib/golang.sh`` ``KUBE_NODE_BINARIES_WIN``); an archive component is
expanded with its leading directories stripped so that its ``binary`` lands at the
``target`` (containerd's release tarball has ``bin/containerd.exe``).

Service dependencies follow WMCO (``pkg/services/services.go``): containerd <- kubelet <-
hybrid-overlay-node <- kube-proxy; windows_exporter, csi-proxy and cloud-node-manager
stand alone. Start in dependency order, stop in reverse. The kubelet and kube-proxy run
under ``kube-log-runner`` (Kubernetes 1.26 removed their ``--log-file``; WMCO PR #1395).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class PayloadKind(StrEnum):
    FILE = "file"  # the payload is copied to `target` as is
    ARCHIVE = "archive"  # the payload is a .tar.gz expanded into the directory `target`


@dataclass(frozen=True)
class Component:
    name: str
    kind: PayloadKind
    target: str  # Windows path: the file, or the directory an archive expands into
    service: str | None  # Windows service name, None for payload-only components
    depends_on: tuple[str, ...] = ()  # services this component's service depends on
    binary: str | None = None  # the service executable (defaults to target for files)
    requires: tuple[str, ...] = ()  # components a Fleet listing this one must list too
    log_runner: bool = False  # the service runs under kube-log-runner

    @property
    def service_binary(self) -> str | None:
        if self.service is None:
            return None
        return self.binary or self.target


CATALOGUE: dict[str, Component] = {
    c.name: c
    for c in (
        Component(
            "containerd",
            PayloadKind.ARCHIVE,
            r"C:\k\containerd",
            service="containerd",
            binary=r"C:\k\containerd\containerd.exe",
        ),
        Component(
            "kubelet", PayloadKind.FILE, r"C:\k\kubelet.exe", "kubelet", ("containerd",),
            requires=("kube-log-runner",), log_runner=True,
        ),
        Component("kube-log-runner", PayloadKind.FILE, r"C:\k\kube-log-runner.exe", None),
        Component(
            "hybrid-overlay-node",
            PayloadKind.FILE,
            r"C:\k\hybrid-overlay-node.exe",
            "hybrid-overlay-node",
            ("kubelet",),
            requires=("cni", "hns", "kube-proxy"),
        ),
        Component(
            "kube-proxy",
            PayloadKind.FILE,
            r"C:\k\kube-proxy.exe",
            "kube-proxy",
            ("hybrid-overlay-node",),
            requires=("hybrid-overlay-node", "kube-log-runner", "hns"),
            log_runner=True,
        ),
        Component("cni", PayloadKind.ARCHIVE, r"C:\k\cni", service=None,
                  binary=r"C:\k\cni\win-overlay.exe"),
        # hns.psm1 (microsoft/SDN Kubernetes/windows): New-HnsEndpoint and
        # Attach-HnsHostEndpoint for kube-proxy's source VIP, as WMCO ships it.
        Component("hns", PayloadKind.FILE, r"C:\k\hns.psm1", service=None),
        Component(
            "windows_exporter",
            PayloadKind.FILE,
            r"C:\k\windows_exporter.exe",
            "windows_exporter",
        ),
        Component("csi-proxy", PayloadKind.FILE, r"C:\k\csi-proxy.exe", "csi-proxy"),
        # Azure with the external cloud controller manager (WMCO services.go).
        Component(
            "cloud-node-manager",
            PayloadKind.FILE,
            r"C:\k\azure-cloud-node-manager.exe",
            "cloud-node-manager",
        ),
    )
}

# Components every Fleet must list: without them a host cannot become a Ready Node (the
# kubelet, under kube-log-runner; the runtime; the pod network's plugins).
REQUIRED = ("kubelet", "kube-log-runner", "containerd", "cni")


def start_order(names: list[str] | tuple[str, ...]) -> list[str]:
    """Names sorted so every component comes after the services it depends on."""
    by_service = {c.service: c.name for c in CATALOGUE.values() if c.service}
    ordered: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        for dep in CATALOGUE[name].depends_on:
            dep_name = by_service.get(dep)
            if dep_name is not None and dep_name in names:
                visit(dep_name)
        ordered.append(name)

    for name in sorted(names, key=list(CATALOGUE).index):
        visit(name)
    return ordered

"""The catalogue of Windows node components syncer manages.

This is the one place that says, for each component name a Fleet may list, where its
payload goes on the host (``C:\\k`` is the root, as in WMCO), whether the payload is a
single file or a ``.tar.gz`` archive expanded into a directory, and which Windows service
runs it with which dependencies. The fleet validator uses it to reject unknown names;
the node stage uses it to plan transfers and service changes.

Service dependencies follow WMCO: containerd <- kubelet <- hybrid-overlay-node <-
kube-proxy; windows_exporter and csi-proxy stand alone. Start in dependency order,
stop in reverse.
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
            "kubelet", PayloadKind.FILE, r"C:\k\kubelet.exe", "kubelet", ("containerd",)
        ),
        Component(
            "hybrid-overlay-node",
            PayloadKind.FILE,
            r"C:\k\hybrid-overlay-node.exe",
            "hybrid-overlay-node",
            ("kubelet",),
        ),
        Component(
            "kube-proxy",
            PayloadKind.FILE,
            r"C:\k\kube-proxy.exe",
            "kube-proxy",
            ("hybrid-overlay-node",),
        ),
        Component("cni", PayloadKind.ARCHIVE, r"C:\k\cni", service=None),
        Component(
            "windows_exporter",
            PayloadKind.FILE,
            r"C:\k\windows_exporter.exe",
            "windows_exporter",
        ),
        Component("csi-proxy", PayloadKind.FILE, r"C:\k\csi-proxy.exe", "csi-proxy"),
    )
}

# Components every Fleet must list: without them a host cannot become a Node.
REQUIRED = ("kubelet", "containerd")


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

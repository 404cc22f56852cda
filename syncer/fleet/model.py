"""The typed fleet model: what a validated fleet repository says.

Loading produces these dataclasses; rendering and the later stages read them. Field
names are Python's snake_case of the contract's camelCase fields; defaults are the
contract's defaults (docs/fleet-repository.md). Every object remembers where it
came from (:class:`Source`) so plans, statuses and PR comments can point at the line a
user should edit.

Compact objects keep only what rendering needs; pass-through objects
(:class:`RawObject`) keep their body as plain JSON-compatible dicts, exactly as written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from syncer.desired import HostKeyPolicy, OnFailure, Platform, UserDataMode
from syncer.problems import Problem

__all__ = [
    "HostKeyPolicy",
    "OnFailure",
    "Platform",
    "UserDataMode",
]


@dataclass(frozen=True, order=True)
class Source:
    """Where an object was written: path relative to the fleet root, 1-based line."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class ComponentSpec:
    version: str
    url: str
    sha256: str  # lowercase hex
    path: str | None = None  # the file inside a .tar.gz payload (file components)


@dataclass(frozen=True)
class Rollout:
    max_unavailable: int = 1
    drain_timeout: str = "10m"  # Go-style duration as written
    drain_timeout_seconds: float = 600.0
    on_failure: OnFailure = OnFailure.HALT
    paused: bool = False


@dataclass(frozen=True)
class NodePolicy:
    ssh_port: int = 22
    host_key_policy: HostKeyPolicy = HostKeyPolicy.TOFU
    user_data: UserDataMode = UserDataMode.SYNCER
    api_server: str | None = None
    # Cluster facts the node stage otherwise reads from OpenShift's cluster objects.
    service_network: str | None = None
    cluster_dns: str | None = None
    vxlan_port: int | None = None


@dataclass(frozen=True)
class PrunePolicy:
    enabled: bool = True
    # An absolute number of deletions, a percentage string like "25%" of the inventory,
    # or None: then only deleting every object of the inventory is refused.
    max_deletions: int | str | None = None

    def deletion_limit(self, inventory_size: int) -> int | None:
        """The most objects one apply may delete, or None for "anything but all"."""
        if self.max_deletions is None:
            return None
        if isinstance(self.max_deletions, int):
            return self.max_deletions
        percent = int(self.max_deletions.rstrip("%"))
        return inventory_size * percent // 100


@dataclass(frozen=True)
class StatusPolicy:
    branch: str = "syncer/status"
    notes: bool = True
    pull_requests: bool = True


@dataclass(frozen=True)
class Fleet:
    name: str
    platform: Platform
    infrastructure_id: str | None
    namespace: str
    version: str
    components: dict[str, ComponentSpec]
    rollout: Rollout = field(default_factory=Rollout)
    nodes: NodePolicy = field(default_factory=NodePolicy)
    prune: PrunePolicy = field(default_factory=PrunePolicy)
    status: StatusPolicy = field(default_factory=StatusPolicy)
    source: Source = Source("", 0)


@dataclass(frozen=True)
class WindowsMachineSet:
    name: str
    replicas: int
    windows_server: str  # "2019" | "2022"
    # Platform fields in the contract's camelCase, defaults filled in (see platforms.py).
    fields: dict[str, Any]
    node_labels: dict[str, str]
    labels: dict[str, str]  # metadata.labels of the MachineSet
    annotations: dict[str, str]
    provider_spec: dict[str, Any]  # JSON merge patch onto the rendered providerSpec.value
    source: Source


@dataclass(frozen=True)
class BYOHHost:
    address: str
    username: str
    host_key: str | None
    labels: dict[str, str]
    file: str
    line: int

    @property
    def source(self) -> Source:
        return Source(self.file, self.line)


@dataclass(frozen=True)
class WindowsRuntimeClass:
    name: str
    windows_server: str  # as written: "2019", "2022", "2025" or "10.0.NNNNN"
    build: str  # the node.kubernetes.io/windows-build value
    labels: dict[str, str]
    annotations: dict[str, str]
    source: Source


@dataclass(frozen=True)
class RawObject:
    """Any other Kubernetes object, passed through as written."""

    api_version: str
    kind: str
    namespace: str | None
    name: str
    body: dict[str, Any]
    source: Source


ObjectKey = tuple[str, str, str]  # (kind, namespace or "", name)


@dataclass
class FleetModel:
    root: Path
    fleet: Fleet
    machine_sets: list[WindowsMachineSet] = field(default_factory=list)
    byoh_hosts: list[BYOHHost] = field(default_factory=list)
    byoh_sources: list[Source] = field(default_factory=list)  # the BYOHHosts documents
    runtime_classes: list[WindowsRuntimeClass] = field(default_factory=list)
    objects: list[RawObject] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    # (kind, namespace, name) of each rendered object -> where it was written.
    sources: dict[ObjectKey, Source] = field(default_factory=dict)

    def source_of(self, kind: str, namespace: str | None, name: str) -> tuple[str, int]:
        """File and line of the document that produced a rendered object.

        ``namespace`` is None or "" for cluster-scoped objects. Raises ``KeyError`` for an
        object this fleet does not render.
        """
        src = self.sources[(kind, namespace or "", name)]
        return src.file, src.line

"""Node labels and annotations: what WMCO and syncer record on a Windows Node.

The Node object *is* the durable state of a configured host (like WMCO, syncer keeps no
database): a controller that restarts reads everything it needs back from here.

WMCO's names (prefix ``windowsmachineconfig.openshift.io/``) keep WMCO's meaning, so a
user moving between WMCO and syncer sees the same thing:

- ``version`` (set once the host is configured and Ready), ``desired-version``,
  ``pub-key-hash``, ``username`` (encrypted as WMCO does, :mod:`syncer.nodes.usernames`),
  ``ssh-host-key`` / ``ssh-host-key-type``;
- labels ``byoh=true`` (BYOH hosts) and ``upgrading=true`` (the host is out for an
  upgrade; see :mod:`syncer.nodes.slots`).

syncer's own record (prefix ``syncer.io/``): ``components`` (JSON ``name -> {"version",
"sha256", "url", "path"}`` of what is installed, as committed; ``url`` and ``path``
optional), ``phase`` (the host state
machine's step), ``failed-step`` / ``last-error`` (present only while the host is
failed), ``since`` (when the phase or failure began) and ``address`` (the address
syncer configured the Node from; syncer's "I configured this" marker).

Every write is a JSON merge patch of ``metadata.labels`` / ``metadata.annotations`` that
names only the keys it changes (``None`` deletes a key), so other writers' keys — the
kubelet's, WMCO's, a user's — are never touched and no read-modify-write race exists.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from syncer import names
from syncer.cluster.client import MERGE_PATCH, KubeClient, Resource
from syncer.cluster.objects import now

# Cap on what a Node annotation may carry for one error (annotations total 256 KiB).
MAX_ERROR_LENGTH = 4000



@dataclass(frozen=True)
class ComponentRecord:
    """One installed component as syncer recorded it on the Node."""

    version: str
    sha256: str = ""
    # Where the payload came from; lets a restarted controller fetch it again to roll back.
    url: str = ""
    path: str = ""  # the file inside a .tar.gz payload, if it came from one


@dataclass(frozen=True)
class NodeRecord:
    """The parts of a Node the node stage reads. Build with :meth:`from_node`."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    annotations: Mapping[str, str] = field(default_factory=dict, hash=False)
    # (type, address) pairs from status.addresses, in the order the kubelet reports them.
    addresses: tuple[tuple[str, str], ...] = ()
    unschedulable: bool = False
    ready: bool = False
    kubelet_version: str = ""
    uid: str = ""

    @classmethod
    def from_node(cls, node: Mapping[str, Any]) -> NodeRecord:
        meta = node.get("metadata") or {}
        spec = node.get("spec") or {}
        status = node.get("status") or {}
        addresses = tuple(
            (str(a.get("type", "")), str(a.get("address", "")))
            for a in status.get("addresses") or []
        )
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
        return cls(
            name=str(meta.get("name", "")),
            labels=dict(meta.get("labels") or {}),
            annotations=dict(meta.get("annotations") or {}),
            addresses=addresses,
            unschedulable=bool(spec.get("unschedulable", False)),
            ready=ready,
            kubelet_version=str((status.get("nodeInfo") or {}).get("kubeletVersion", "")),
            uid=str(meta.get("uid", "")),
        )

    # -- addresses ---------------------------------------------------------------------

    @property
    def internal_ip(self) -> str | None:
        for kind, address in self.addresses:
            if kind == "InternalIP":
                return address
        return None

    def has_address(self, address: str) -> bool:
        """True if any status address (InternalIP, ExternalIP, Hostname, DNS) equals it."""
        wanted = address.lower().rstrip(".")
        return any(a.lower().rstrip(".") == wanted for _, a in self.addresses)

    # -- WMCO's record -----------------------------------------------------------------

    @property
    def version(self) -> str | None:
        return self.annotations.get(names.ANNOTATION_VERSION)

    @property
    def desired_version(self) -> str | None:
        return self.annotations.get(names.ANNOTATION_DESIRED_VERSION)

    @property
    def pub_key_hash(self) -> str | None:
        return self.annotations.get(names.ANNOTATION_PUB_KEY_HASH)

    @property
    def username(self) -> str | None:
        return self.annotations.get(names.ANNOTATION_USERNAME)

    @property
    def ssh_host_key(self) -> tuple[str, str] | None:
        """(key type, base64 wire blob) pinned on this Node, or None."""
        blob = self.annotations.get(names.ANNOTATION_SSH_HOST_KEY)
        kind = self.annotations.get(names.ANNOTATION_SSH_HOST_KEY_TYPE)
        if not blob:
            return None
        return (kind or "", blob)

    @property
    def byoh(self) -> bool:
        return self.labels.get(names.LABEL_BYOH) == "true"

    @property
    def upgrading(self) -> bool:
        return self.labels.get(names.LABEL_UPGRADING) == "true"

    # -- syncer's record ---------------------------------------------------------------

    @property
    def address(self) -> str | None:
        """The address syncer configured this Node from (syncer's own marker)."""
        return self.annotations.get(names.ANNOTATION_ADDRESS)

    @property
    def components(self) -> dict[str, ComponentRecord]:
        """Installed components as recorded; {} when absent or unreadable."""
        return parse_components(self.annotations.get(names.ANNOTATION_COMPONENTS))

    @property
    def phase(self) -> str | None:
        return self.annotations.get(names.ANNOTATION_PHASE)

    @property
    def failed_step(self) -> str | None:
        return self.annotations.get(names.ANNOTATION_FAILED_STEP)

    @property
    def last_error(self) -> str | None:
        return self.annotations.get(names.ANNOTATION_LAST_ERROR)

    @property
    def since(self) -> str | None:
        return self.annotations.get(names.ANNOTATION_SINCE)

    @property
    def failed(self) -> bool:
        return self.failed_step is not None

    @property
    def configured(self) -> bool:
        """Configured by WMCO or syncer: has WMCO's ``version`` or syncer's marker."""
        return self.version is not None or self.address is not None


def parse_components(text: str | None) -> dict[str, ComponentRecord]:
    if not text:
        return {}
    try:
        doc = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(doc, dict):
        return {}
    out: dict[str, ComponentRecord] = {}
    for name, value in doc.items():
        if isinstance(value, dict) and isinstance(value.get("version"), str):
            out[str(name)] = ComponentRecord(
                value["version"], str(value.get("sha256", "")), str(value.get("url", "")),
                str(value.get("path", "")),
            )
    return out


def format_components(components: Mapping[str, ComponentRecord]) -> str:
    """Deterministic JSON (sorted keys, compact) for ``syncer.io/components``."""
    doc = {
        name: {"version": c.version, "sha256": c.sha256, **({"url": c.url} if c.url else {}),
               **({"path": c.path} if c.path else {})}
        for name, c in sorted(components.items())
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


# --- reading ---------------------------------------------------------------------------


NODES = Resource("", "v1", "Node", "nodes", False)


def node_path(name: str) -> str:
    return NODES.path(name=name)


def read_node(api: KubeClient, name: str) -> NodeRecord | None:
    """The Node, or None if it does not exist."""
    node = api.get(NODES, "", name)
    return None if node is None else NodeRecord.from_node(node)


WINDOWS_NODES = f"{names.LABEL_OS}=windows"


# Nodes per page of a Node LIST. A record keeps a small part of a Node (no image list,
# no managed fields), and while hosts join their shared poll lists every Windows Node
# several times a second: decoding 500 Nodes at once held 14 MiB for a moment to keep
# 2 MiB of records (simulated kubelets, benchmarks/node_rollout.py's join); 100 per page
# held 4.6 MiB, in the same time. A metadata-only Node is small: the rollout lock's
# count, at every slot hand-over, reads up to 500 in one request.
NODE_PAGE = 100
METADATA_PAGE = 500

# The API server's metadata-only answer (what the metadata informers use): labels and
# annotations without the status, a fraction of the bytes.
METADATA = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"


def list_windows_nodes(api: KubeClient, selector: str = WINDOWS_NODES, *,
                       metadata_only: bool = False) -> list[NodeRecord]:
    """Every Node labelled ``kubernetes.io/os=windows`` (or matching ``selector``, which
    tests narrow to their own Nodes), sorted by name, read :data:`NODE_PAGE` at a time.
    ``metadata_only``: records without spec and status (addresses, readiness, versions
    unknown; the API server's metadata-only LIST, :data:`METADATA_PAGE` at a time), for
    what labels and annotations answer."""
    nodes = [NodeRecord.from_node(n) for n in api.list(
        NODES, label_selector=selector, metadata_only=metadata_only,
        page_size=METADATA_PAGE if metadata_only else NODE_PAGE)]
    return sorted(nodes, key=lambda n: n.name)


# --- writing ---------------------------------------------------------------------------


def patch_node_metadata(
    api: KubeClient,
    name: str,
    *,
    annotations: Mapping[str, str | None] | None = None,
    labels: Mapping[str, str | None] | None = None,
) -> NodeRecord:
    """Set (str) or remove (None) exactly the given annotation and label keys. Returns the
    Node's metadata only: the API server answers without spec and status (a Windows
    Node's status, with its image list, is most of its bytes, and a rollout writes a
    host's step at every step), so readiness and versions are unknown in the record."""
    meta: dict[str, Any] = {}
    if annotations:
        meta["annotations"] = dict(annotations)
    if labels:
        meta["labels"] = dict(labels)
    return _patch_node(api, name, {"metadata": meta})


def _patch_node(api: KubeClient, name: str, body: dict[str, Any]) -> NodeRecord:
    node = api.request("PATCH", node_path(name), body=body, content_type=MERGE_PATCH,
                       accept=METADATA)
    return NodeRecord.from_node(node)


def set_phase(api: KubeClient, name: str, phase: str, *, since: str | None = None) -> NodeRecord:
    """Record the state machine's step and when it began."""
    return patch_node_metadata(
        api,
        name,
        annotations={
            names.ANNOTATION_PHASE: phase,
            names.ANNOTATION_SINCE: since or now(),
        },
    )


def record_failure(
    api: KubeClient, name: str, step: str, error: str, *, since: str | None = None
) -> NodeRecord:
    """Mark the host failed at ``step``. The failure counts against maxUnavailable until
    :func:`clear_failure` (see :mod:`syncer.nodes.slots`)."""
    return patch_node_metadata(
        api,
        name,
        annotations={
            names.ANNOTATION_FAILED_STEP: step,
            names.ANNOTATION_LAST_ERROR: truncate_error(error),
            names.ANNOTATION_PHASE: names.PHASE_FAILED,
            names.ANNOTATION_SINCE: since or now(),
        },
    )


def clear_failure(api: KubeClient, name: str) -> NodeRecord:
    return patch_node_metadata(
        api,
        name,
        annotations={names.ANNOTATION_FAILED_STEP: None, names.ANNOTATION_LAST_ERROR: None},
    )


def set_ssh_host_key(api: KubeClient, name: str, key_type: str, key_base64: str) -> NodeRecord:
    """Pin the host key on the Node, in WMCO's two annotations."""
    return patch_node_metadata(
        api,
        name,
        annotations={
            names.ANNOTATION_SSH_HOST_KEY: key_base64,
            names.ANNOTATION_SSH_HOST_KEY_TYPE: key_type,
        },
    )


@dataclass(frozen=True)
class ConfiguredRecord:
    """What the annotate step writes once a host is configured, Ready and verified."""

    version: str  # the fleet version (WMCO's ``version`` and ``desired-version``)
    pub_key_hash: str
    username: str
    address: str
    components: Mapping[str, ComponentRecord] = field(default_factory=dict, hash=False)
    byoh: bool = False


def mark_configured(api: KubeClient, name: str, record: ConfiguredRecord, *,
                    labels: Mapping[str, str | None] | None = None,
                    annotations: Mapping[str, str | None] | None = None,
                    uncordon: bool = False) -> NodeRecord:
    """Write the configured record: WMCO's ``version``/``desired-version``/
    ``pub-key-hash``/``username``, ``byoh=true`` for BYOH, syncer's components, address
    and phase ``configured``; clears any failure record; and ``labels`` and
    ``annotations`` in the same write. With ``uncordon`` (the end of an upgrade), the
    same write also makes the Node schedulable and drops ``upgrading``: the host is back
    in service the moment it is recorded configured, never one without the other."""
    written: dict[str, str | None] = {
        **(annotations or {}),
        names.ANNOTATION_VERSION: record.version,
        names.ANNOTATION_DESIRED_VERSION: record.version,
        names.ANNOTATION_PUB_KEY_HASH: record.pub_key_hash,
        names.ANNOTATION_USERNAME: record.username,
        names.ANNOTATION_ADDRESS: record.address,
        names.ANNOTATION_COMPONENTS: format_components(record.components),
        names.ANNOTATION_PHASE: names.PHASE_CONFIGURED,
        names.ANNOTATION_SINCE: now(),
        names.ANNOTATION_FAILED_STEP: None,
        names.ANNOTATION_LAST_ERROR: None,
    }
    marks: dict[str, str | None] = dict(labels or {})
    if record.byoh:
        marks[names.LABEL_BYOH] = "true"
    if not uncordon:
        return patch_node_metadata(api, name, annotations=written, labels=marks or None)
    marks[names.LABEL_UPGRADING] = None
    return _patch_node(api, name, {"metadata": {"annotations": written, "labels": marks},
                                   "spec": {"unschedulable": False}})


def mark_deconfigured(api: KubeClient, name: str) -> NodeRecord:
    """Remove WMCO's ``version`` (the host is no longer configured) and syncer's record,
    as the deconfigure flow does before deleting the Node."""
    return patch_node_metadata(
        api,
        name,
        annotations={
            names.ANNOTATION_VERSION: None,
            names.ANNOTATION_COMPONENTS: None,
            names.ANNOTATION_PHASE: names.PHASE_DECONFIGURED,
            names.ANNOTATION_SINCE: now(),
        },
    )


def truncate_error(error: str) -> str:
    error = error.strip()
    if len(error) <= MAX_ERROR_LENGTH:
        return error
    marker = " ... (truncated)"
    return error[: MAX_ERROR_LENGTH - len(marker)] + marker

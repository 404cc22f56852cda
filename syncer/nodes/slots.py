"""The rollout lock: never more than ``maxUnavailable`` Windows hosts out at once.

One lock for BYOH and Machine hosts together (WMCO's rule: upgrading both kinds in
parallel was a real bug), and it lives in the cluster, not in memory, so it holds across
controller restarts and between replicas.

**What counts as "out"** (:meth:`RolloutLock.unavailable`), de-duplicated per host:

1. every slot holder recorded in the Lease ``syncer-rollout`` (fleet namespace), in its
   annotation ``syncer.io/slot-holders`` (JSON: address -> holder record);
2. every Windows Node labelled ``windowsmachineconfig.openshift.io/upgrading=true``
   (whoever set it: syncer, WMCO or a user);
3. every **failed** host: a Node annotated ``syncer.io/failed-step`` (with
   ``syncer.io/last-error``), or, for a host that has no Node yet, an entry keyed by
   address in the ConfigMap ``syncer-host-state`` (fleet namespace; value JSON
   ``{"step", "error", "since", "node"}``). A failed host stays out — cordoned, counted —
   until it is fixed or an operator clears the record, so a bad version cannot roll
   across the fleet one slot at a time.

**Acquiring** (:meth:`RolloutLock.acquire`) is a compare-and-swap on the Lease: read it,
count, add the holder, ``PUT`` with the ``resourceVersion`` read; a ``409 Conflict`` means
another controller changed it meanwhile, so read and decide again. Two controllers can
therefore never both take the last slot. A host that is already out (failed or labelled)
may take a slot without making things worse, so a failed host can be retried.
:meth:`RolloutLock.acquire_many` decides several hosts in order on one read and adds them
in one write (the rollout's free slots at once). A process starts its next write from
the Lease its last write returned rather than from a ``GET``: the ``PUT`` checks that
``resourceVersion`` all the same, so a Lease another controller changed meanwhile makes
it fail with the 409 that sends it to read again.

**Restarts.** Each holder record names the controller (``identity``, stable across
restarts, e.g. the Deployment name) and the process (``incarnation``, new per
:class:`RolloutLock` object), and is renewed (:meth:`RolloutLock.renew`) while its host is
being worked on. A record is an **orphan** when its controller restarted (same identity,
other incarnation) or it was not renewed for ``stale_after`` seconds (its controller
died). While orphans exist, :meth:`acquire` refuses every *other* host ("resume first"):
the controller must resume the orphaned host — :meth:`acquire` on its address adopts it —
before it starts a second one. :meth:`orphans` lists them.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from syncer import names
from syncer.cluster import configmaps
from syncer.cluster.client import ApiError, KubeClient
from syncer.cluster.objects import now
from syncer.nodes import annotations as node_meta
from syncer.nodes.annotations import WINDOWS_NODES, NodeRecord, list_windows_nodes

MAX_ATTEMPTS = 50


@dataclass(frozen=True)
class SlotHolder:
    address: str
    node_name: str | None
    holder: str  # controller identity
    incarnation: str  # controller process
    acquired: str  # RFC 3339
    renewed: float  # unix time of the last renewal

    @classmethod
    def from_json(cls, address: str, doc: dict[str, Any]) -> SlotHolder:
        return cls(
            address=address,
            node_name=doc.get("node") or None,
            holder=str(doc.get("holder", "")),
            incarnation=str(doc.get("incarnation", "")),
            acquired=str(doc.get("acquired", "")),
            renewed=float(doc.get("renewed", 0.0)),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "node": self.node_name,
            "holder": self.holder,
            "incarnation": self.incarnation,
            "acquired": self.acquired,
            "renewed": self.renewed,
        }


@dataclass(frozen=True)
class Unavailable:
    """One host that is out, and why."""

    key: str  # the host's address, or "node/<name>" when only the Node is known
    reason: str
    node_name: str | None = None


@dataclass(frozen=True)
class FailureRecord:
    address: str | None
    node_name: str | None
    step: str
    error: str
    since: str


@dataclass(frozen=True)
class SlotResult:
    granted: bool
    address: str
    reason: str
    resumed: bool = False  # the slot was an orphan this controller adopted
    unavailable: tuple[Unavailable, ...] = field(default=())


class RolloutLock:
    """The rollout lock of one fleet namespace (see the module docstring)."""

    def __init__(
        self,
        api: KubeClient,
        namespace: str,
        *,
        max_unavailable: int = 1,
        identity: str = "syncer",
        stale_after: float = 300.0,
        node_selector: str = WINDOWS_NODES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_unavailable < 1:
            raise ValueError("max_unavailable must be at least 1")
        self.api = api
        self.namespace = namespace
        self.max_unavailable = max_unavailable
        self.identity = identity
        self.incarnation = uuid.uuid4().hex[:12]
        self.stale_after = stale_after
        self.node_selector = node_selector
        self.clock = clock
        # This process's Lease writes one at a time: its own hosts' CAS never conflict.
        self._guard = threading.Lock()
        self._written: dict[str, Any] | None = None  # the Lease as our last write left it

    # -- paths ---------------------------------------------------------------------------

    @property
    def _lease_path(self) -> str:
        return (
            f"/apis/coordination.k8s.io/v1/namespaces/{quote(self.namespace)}/leases/"
            f"{names.ROLLOUT_LEASE}"
        )

    # -- reading -------------------------------------------------------------------------

    def _read_lease(self) -> dict[str, Any]:
        """The Lease, created empty if missing."""
        try:
            lease: dict[str, Any] = self.api.request("GET", self._lease_path)
            return lease
        except ApiError as err:
            if not err.not_found:
                raise
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": names.ROLLOUT_LEASE,
                "namespace": self.namespace,
                "labels": {names.LABEL_MANAGED_BY: names.MANAGED_BY_VALUE},
                "annotations": {names.ANNOTATION_SLOT_HOLDERS: "{}"},
            },
            "spec": {},
        }
        try:
            created: dict[str, Any] = self.api.request(
                "POST",
                f"/apis/coordination.k8s.io/v1/namespaces/{quote(self.namespace)}/leases",
                body=body,
            )
            return created
        except ApiError as err:
            if err.status != 409:
                raise
        again: dict[str, Any] = self.api.request("GET", self._lease_path)
        return again

    def _last_lease(self) -> dict[str, Any]:
        """The Lease to change: as this process last wrote it, else read. Under
        ``_guard``; :meth:`_write` finds out if it is out of date."""
        return self._written if self._written is not None else self._read_lease()

    @staticmethod
    def _holders_of(lease: dict[str, Any]) -> dict[str, SlotHolder]:
        text = ((lease.get("metadata") or {}).get("annotations") or {}).get(
            names.ANNOTATION_SLOT_HOLDERS, "{}"
        )
        try:
            doc = json.loads(text)
        except ValueError:
            doc = {}
        if not isinstance(doc, dict):
            doc = {}
        return {
            address: SlotHolder.from_json(address, value)
            for address, value in doc.items()
            if isinstance(value, dict)
        }

    def holders(self) -> list[SlotHolder]:
        """Every slot holder recorded in the Lease, by address."""
        return sorted(self._holders_of(self._read_lease()).values(), key=lambda h: h.address)

    def is_orphan(self, holder: SlotHolder) -> bool:
        restarted = holder.holder == self.identity and holder.incarnation != self.incarnation
        stale = self.clock() - holder.renewed > self.stale_after
        return restarted or stale

    def orphans(self) -> list[SlotHolder]:
        """Hosts that were mid-upgrade when their controller stopped: resume these first."""
        return [h for h in self.holders() if self.is_orphan(h)]

    def failures(self, nodes: Iterable[NodeRecord] | None = None) -> list[FailureRecord]:
        """Every failed host: Node annotations, then host-state entries without a Node.
        ``nodes``: the Windows Nodes, when the caller has read them already."""
        if nodes is None:
            nodes = list_windows_nodes(self.api, self.node_selector)
        out = [
            FailureRecord(
                node.address,
                node.name,
                node.failed_step or "",
                node.last_error or "",
                node.since or "",
            )
            for node in nodes
            if node.failed
        ]
        for address, doc in sorted(self._state().items()):
            out.append(
                FailureRecord(
                    address,
                    doc.get("node") or None,
                    str(doc.get("step", "")),
                    str(doc.get("error", "")),
                    str(doc.get("since", "")),
                )
            )
        return out

    def _state(self) -> dict[str, dict[str, Any]]:
        data = configmaps.read_data(self.api, self.namespace, names.HOST_STATE_CONFIGMAP) or {}
        out: dict[str, dict[str, Any]] = {}
        for address, text in data.items():
            try:
                doc = json.loads(text)
            except ValueError:
                doc = {"step": "unknown", "error": text}
            out[address] = doc if isinstance(doc, dict) else {"step": "unknown"}
        return out

    def unavailable(self, holders: dict[str, SlotHolder] | None = None) -> list[Unavailable]:
        """Every host that is out right now, counted from the cluster."""
        if holders is None:
            holders = self._holders_of(self._read_lease())
        found: dict[str, Unavailable] = {}
        by_node = {h.node_name: h.address for h in holders.values() if h.node_name}
        for h in holders.values():
            found[h.address] = Unavailable(
                h.address, f"slot held by {h.holder} since {h.acquired}", h.node_name
            )
        # Labels and annotations say who is out: the metadata is enough, and at hundreds
        # of Nodes the full objects made every slot cost a large LIST.
        nodes = list_windows_nodes(self.api, self.node_selector, metadata_only=True)
        for node in nodes:
            if not (node.upgrading or node.failed):
                continue
            key = node.address or by_node.get(node.name) or f"node/{node.name}"
            if key in found:
                continue
            if node.failed:
                reason = f"failed at {node.failed_step}: {node.last_error or ''}".rstrip(": ")
            else:
                reason = f"Node {node.name} is labelled {names.LABEL_UPGRADING}=true"
            found[key] = Unavailable(key, reason, node.name)
        for address, doc in self._state().items():
            if address not in found:
                step = doc.get("step", "unknown")
                found[address] = Unavailable(
                    address,
                    f"failed at {step}: {doc.get('error', '')}".rstrip(": "),
                    doc.get("node") or None,
                )
        return sorted(found.values(), key=lambda u: u.key)

    # -- acquiring and releasing ---------------------------------------------------------

    def acquire(self, address: str, node_name: str | None = None) -> SlotResult:
        """Take a slot for ``address``; see the module docstring for the rules."""
        return self.acquire_many([(address, node_name)])[0]

    def acquire_many(self, candidates: Sequence[tuple[str, str | None]], *,
                     release: Collection[str] = ()) -> list[SlotResult]:
        """Take slots for several hosts, ``(address, node name)`` in order, with one read
        of the cluster and one Lease write: each is decided as :meth:`acquire` would
        decide it after the ones before it. Deciding stops at the first refusal (so hosts
        start in the order given), which is the last result; every earlier one is
        granted. ``release``: hosts whose slots are given back in the same write, first
        (finished hosts handing their slots to the next)."""
        for _attempt in range(MAX_ATTEMPTS):
            with self._guard:
                results = self._decide(candidates, release)
            if results is not None:
                return results
            time.sleep(random.uniform(0.0, 0.05))
        return [SlotResult(False, candidates[0][0] if candidates else "",
                           "the rollout Lease kept changing; try again")]

    def _decide(self, candidates: Sequence[tuple[str, str | None]],
                release: Collection[str]) -> list[SlotResult] | None:
        """One read-decide-write of :meth:`acquire_many`; None on a write conflict. The
        Lease is read before the Nodes: a host that fails records that before it gives
        its slot back, so it is counted in one or the other (a Lease this process wrote
        earlier is as good as read here: the write succeeds only if it is unchanged)."""
        lease = self._last_lease()
        holders = self._holders_of(lease)
        out: list[Unavailable] | None = None  # counted once, when first needed
        results: list[SlotResult] = []
        written = False
        for address in release:
            written = holders.pop(address, None) is not None or written
        for address, node_name in candidates:
            mine = holders.get(address)
            resumed = False
            if mine is not None:
                if mine.holder == self.identity and mine.incarnation == self.incarnation:
                    results.append(SlotResult(True, address, "slot already held"))
                    continue
                if not self.is_orphan(mine):
                    results.append(SlotResult(
                        False, address,
                        f"{address} is being upgraded by {mine.holder} "
                        f"(since {mine.acquired})"))
                    break
                resumed = True
            else:
                orphans = [h for h in holders.values() if self.is_orphan(h)]
                if orphans:
                    listed = ", ".join(sorted(h.address for h in orphans))
                    results.append(SlotResult(
                        False, address,
                        f"resume first: {listed} was mid-upgrade when its controller "
                        "stopped"))
                    break
                if out is None:
                    out = self.unavailable(holders)
                others = [u for u in out if u.key != address
                          and (node_name is None or u.node_name != node_name)]
                if len(others) >= self.max_unavailable:
                    listed = "; ".join(f"{u.key}: {u.reason}" for u in others)
                    results.append(SlotResult(
                        False, address,
                        f"{len(others)} of maxUnavailable {self.max_unavailable} hosts "
                        f"are out: {listed}",
                        unavailable=tuple(others)))
                    break
            holder = holders[address] = SlotHolder(
                address=address,
                node_name=node_name or (mine.node_name if mine else None),
                holder=self.identity,
                incarnation=self.incarnation,
                acquired=mine.acquired if mine else now(),
                renewed=self.clock(),
            )
            if out is not None and not any(
                    u.key == address or (node_name and u.node_name == node_name)
                    for u in out):  # counted from now on, once
                out.append(Unavailable(address, f"slot held by {holder.holder} since "
                                       f"{holder.acquired}", holder.node_name))
            written = True
            reason = "resumed an interrupted upgrade" if resumed else "slot acquired"
            results.append(SlotResult(True, address, reason, resumed=resumed))
        if not written or self._write(lease, holders):
            return results
        return None

    def renew(self, address: str, node_name: str | None = None) -> bool:
        """Heartbeat for a held slot (and record the Node once it exists). False if this
        controller does not hold it any more."""
        for _attempt in range(MAX_ATTEMPTS):
            with self._guard:
                lease = self._last_lease()
                holders = self._holders_of(lease)
                mine = holders.get(address)
                if mine is None or mine.incarnation != self.incarnation:
                    return False
                holders[address] = SlotHolder(
                    address,
                    node_name or mine.node_name,
                    mine.holder,
                    mine.incarnation,
                    mine.acquired,
                    self.clock(),
                )
                if self._write(lease, holders):
                    return True
        return False

    def release(self, address: str) -> bool:
        """Give the slot back. False if it was not held. Failure records are separate:
        a failed host keeps counting until :meth:`clear_failure`."""
        for _attempt in range(MAX_ATTEMPTS):
            with self._guard:
                lease = self._last_lease()
                holders = self._holders_of(lease)
                if address not in holders:
                    return False
                del holders[address]
                if self._write(lease, holders):
                    return True
        return False

    def _write(self, lease: dict[str, Any], holders: dict[str, SlotHolder]) -> bool:
        """PUT with the read resourceVersion; False on a conflict."""
        doc = {a: h.to_json() for a, h in sorted(holders.items())}
        meta = dict(lease.get("metadata") or {})
        meta["annotations"] = {
            **(meta.get("annotations") or {}),
            names.ANNOTATION_SLOT_HOLDERS: json.dumps(doc, sort_keys=True, separators=(",", ":")),
        }
        meta.pop("managedFields", None)
        body = {**lease, "metadata": meta}
        self._written = None
        try:
            written: dict[str, Any] = self.api.request("PUT", self._lease_path, body=body)
        except ApiError as err:
            if err.status == 409:
                return False
            raise
        self._written = written
        return True

    # -- failure records -----------------------------------------------------------------

    def record_failure(self, address: str, node_name: str | None, step: str, error: str) -> None:
        """Record that ``address`` failed at ``step`` (on its Node if it has one, else in
        ``syncer-host-state``). The host counts as out until :meth:`clear_failure`."""
        if node_name and node_meta.read_node(self.api, node_name) is not None:
            node_meta.record_failure(self.api, node_name, step, error)
            return
        doc = {
            "step": step,
            "error": node_meta.truncate_error(error),
            "since": now(),
            "node": node_name,
        }
        self._patch_state({address: json.dumps(doc, sort_keys=True)})

    def clear_failure(self, address: str, node_name: str | None = None) -> None:
        """Forget a failure (host fixed, or an operator's decision)."""
        if node_name and node_meta.read_node(self.api, node_name) is not None:
            node_meta.clear_failure(self.api, node_name)
        if address in self._state():
            self._patch_state({address: None})

    def _patch_state(self, data: dict[str, str | None]) -> None:
        configmaps.patch_data(self.api, self.namespace, names.HOST_STATE_CONFIGMAP, data)


__all__ = [
    "FailureRecord",
    "RolloutLock",
    "SlotHolder",
    "SlotResult",
    "Unavailable",
]

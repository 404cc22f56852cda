"""What the demo watches: the cluster as ``syncer status`` shows it, and the hosts' logs.

:func:`snapshot` reads the rows ``syncer status`` prints (:func:`syncer.nodes.status.live_rows`:
the node stage's last report refreshed from the live Nodes) and completes them for the
demo's hosts the report does not list yet (the very first round has not finished): from
the host's Node when it has one, else from the rollout Lease (a host holding a slot is
being configured). Desired versions are the version committed on ``main``, which the
demo knows before the controller's round has finished, so a waiting host shows
``1.0.0 -> 1.1.0`` instead of its last report's ``up-to-date``.

:func:`outages` and :func:`most_out_at_once` check ``maxUnavailable`` from the hosts' own
records — when each simulated host received its first ``stop-service`` and its last
``start-service`` after a moment — independent of anything syncer reports.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from urllib.parse import quote

from syncer import names
from syncer.cluster.client import ApiError, KubeClient
from syncer.nodes.annotations import NodeRecord, list_windows_nodes
from syncer.nodes.status import HostStatus, Phase, live_rows
from syncer_lab.nodelab import max_overlap
from syncer_lab.winhost import SimHost


@dataclass
class Snapshot:
    rows: list[HostStatus]
    nodes: dict[str, NodeRecord] = field(default_factory=dict)  # by host address
    upgrading: set[str] = field(default_factory=set)  # addresses labelled upgrading

    def ready(self) -> int:
        return sum(1 for n in self.nodes.values() if n.ready)

    def at(self, version: str) -> int:
        """Hosts up to date at ``version`` with a Ready Node."""
        return sum(1 for r in self.rows
                   if r.current == version and r.done
                   and (node := self.nodes.get(r.address)) is not None and node.ready)

    def rollout(self, version: str) -> dict[str, int]:
        return {"total": len(self.rows), "done": self.at(version)}


def _slot_holders(api: KubeClient) -> set[str]:
    path = (f"/apis/coordination.k8s.io/v1/namespaces/{quote(names.WMCO_NAMESPACE)}/leases/"
            f"{names.ROLLOUT_LEASE}")
    try:
        lease = api.request("GET", path)
    except ApiError:
        return set()
    text = ((lease.get("metadata") or {}).get("annotations") or {}).get(
        names.ANNOTATION_SLOT_HOLDERS, "{}")
    try:
        return set(json.loads(text))
    except ValueError:
        return set()


def _node_of(address: str, nodes: list[NodeRecord]) -> NodeRecord | None:
    for node in nodes:
        if node.annotations.get(names.ANNOTATION_ADDRESS) == address:
            return node
    return next((n for n in nodes if n.has_address(address)), None)


def snapshot(api: KubeClient, addresses: list[str], committed: str) -> Snapshot:
    """The demo hosts' rows (see the module docstring)."""
    reported, _ = live_rows(api, names.WMCO_NAMESPACE)
    by_address = {r.address: r for r in reported}
    nodes = list_windows_nodes(api)
    holders = _slot_holders(api)
    out = Snapshot(rows=[])
    for address in addresses:
        node = _node_of(address, nodes)
        if node is not None:
            out.nodes[address] = node
            if node.upgrading:
                out.upgrading.add(address)
        row = by_address.get(address)
        if row is None:
            row = HostStatus(address=address, node=node.name if node else None,
                             current=node.version if node else None, desired=committed,
                             phase=_moving(address, holders), action="configure")
            if node is not None and node.phase:
                row = replace(row, phase=Phase.RUNNING, step=node.phase)
        row = replace(row, desired=committed)
        if row.current != committed and row.done:
            row = replace(row, phase=_moving(address, holders), action="upgrade")
        out.rows.append(row)
    return out


def _moving(address: str, holders: set[str]) -> Phase:
    """A host not at the committed version yet: in the rollout or waiting for a slot."""
    return Phase.RUNNING if address in holders else Phase.WAITING


def outages(hosts: list[SimHost], since: float) -> dict[str, tuple[float, float]]:
    """Per host, (first ``stop-service``, last ``start-service``) received after ``since`` (unix
    time): the span its services were out."""
    spans = {}
    for host in hosts:
        recent = [c for c in list(host.commands) if c.received_at >= since]
        stops = [c.received_at for c in recent if c.summary.startswith("stop-service")]
        starts = [c.received_at for c in recent if c.summary.startswith("start-service")]
        if stops and starts:
            spans[host.address] = (min(stops), max(starts))
    return spans


def most_out_at_once(spans: dict[str, tuple[float, float]]) -> int:
    return max_overlap(list(spans.values())) if spans else 0

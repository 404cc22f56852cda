"""The node stage's report: one row per host, kept in the cluster for ``syncer status``.

Each round ends by writing the ConfigMap ``syncer-node-status`` (fleet namespace):
``hosts.json`` (address -> row: node, current and desired version, phase, last error,
since, kind, shell) and ``rollout.json`` (hosts done / total, halted reason, blocked reason).
It is written only when its content changed, so a no-change round writes nothing; the
``since`` of a row only moves when its phase or error changes.

``syncer status`` reads it back and refreshes the live parts from the Nodes (current
version, failure records), so it is right even while a round is running.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from syncer import names
from syncer.cluster import configmaps
from syncer.cluster.client import KubeClient
from syncer.cluster.objects import now
from syncer.nodes.annotations import list_windows_nodes


@dataclass(frozen=True)
class HostStatus:
    address: str
    node: str | None
    current: str | None  # the version the Node records (WMCO's ``version``)
    desired: str
    phase: str
    last_error: str | None = None
    since: str = ""
    kind: str = "byoh"
    shell: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> HostStatus:
        return cls(
            address=str(doc.get("address", "")),
            node=doc.get("node") or None,
            current=doc.get("current") or None,
            desired=str(doc.get("desired", "")),
            phase=str(doc.get("phase", "")),
            last_error=doc.get("last_error") or None,
            since=str(doc.get("since", "")),
            kind=str(doc.get("kind", "byoh")),
            shell=doc.get("shell") or None,
        )


@dataclass
class StatusReport:
    hosts: dict[str, HostStatus] = field(default_factory=dict)
    rollout: dict[str, Any] = field(default_factory=dict)


def read_status(api: KubeClient, namespace: str) -> StatusReport:
    data = configmaps.read_data(api, namespace, names.NODE_STATUS_CONFIGMAP)
    report = StatusReport()
    if data is None:
        return report
    try:
        for address, row in (json.loads(data.get("hosts.json") or "{}")).items():
            report.hosts[address] = HostStatus.from_json({**row, "address": address})
        report.rollout = dict(json.loads(data.get("rollout.json") or "{}"))
    except (ValueError, AttributeError):
        pass
    return report


def carry_since(rows: list[HostStatus], previous: StatusReport) -> list[HostStatus]:
    """Keep each row's ``since`` unless its phase or error changed."""
    out = []
    stamp = now()
    for row in rows:
        old = previous.hosts.get(row.address)
        if row.since:
            out.append(row)
        elif old is not None and (old.phase, old.last_error) == (row.phase, row.last_error):
            out.append(replace(row, since=old.since or stamp))
        else:
            out.append(replace(row, since=stamp))
    return out


def _rows_json(report: StatusReport) -> dict[str, dict[str, Any]]:
    """``hosts.json``: address -> row without its address."""
    return {
        address: {k: v for k, v in row.to_json().items() if k != "address"}
        for address, row in sorted(report.hosts.items())
    }


def write_status(
    api: KubeClient, namespace: str, report: StatusReport, previous: StatusReport
) -> bool:
    """Write the report if it differs from ``previous``. True if written."""
    hosts = _rows_json(report)
    if hosts == _rows_json(previous) and report.rollout == previous.rollout:
        return False
    data = {
        "hosts.json": json.dumps(hosts, sort_keys=True, indent=1),
        "rollout.json": json.dumps(report.rollout, sort_keys=True),
    }
    configmaps.patch_data(api, namespace, names.NODE_STATUS_CONFIGMAP, data)
    return True


def live_rows(api: KubeClient, namespace: str) -> tuple[list[HostStatus], dict[str, Any]]:
    """The rows for ``syncer status``: the last report, refreshed from the live Nodes."""
    report = read_status(api, namespace)
    nodes = {n.name: n for n in list_windows_nodes(api)}
    rows = []
    for row in sorted(report.hosts.values(), key=lambda r: r.address):
        node = nodes.get(row.node) if row.node else None
        if node is not None:
            phase = row.phase
            error = row.last_error
            since = row.since
            if node.failed:
                phase = f"failed at {node.failed_step}"
                error = node.last_error
                since = node.since or since
            elif node.phase and node.phase not in ("configured",) and row.phase != "blocked":
                phase = node.phase
                since = node.since or since
            row = replace(row, current=node.version, phase=phase, last_error=error, since=since)
        rows.append(row)
    return rows, report.rollout


def format_table(rows: list[HostStatus], rollout: Mapping[str, Any]) -> str:
    """The plain-text table ``syncer status`` prints."""
    header = ("ADDRESS", "NODE", "VERSION", "PHASE", "SINCE", "LAST ERROR")
    table = [header]
    for r in rows:
        version = f"{r.current or '-'} -> {r.desired}" if r.current != r.desired else r.desired
        table.append((r.address, r.node or "-", version, r.phase, r.since or "-",
                      (r.last_error or "")[:200]))
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    lines = []
    for row in table:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    summary = []
    if rollout.get("total") is not None:
        summary.append(
            f"{rollout.get('done', 0)}/{rollout.get('total', 0)} hosts at the committed version"
        )
    if rollout.get("halted"):
        summary.append(str(rollout["halted"]))
    if rollout.get("blocked"):
        summary.append(str(rollout["blocked"]))
    return "\n".join(lines + summary) + "\n"

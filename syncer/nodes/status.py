"""The node stage's report: one row per host, kept in the cluster for ``syncer status``.

Each round ends by writing the ConfigMap ``syncer-node-status`` (fleet namespace):
``hosts.json`` (address -> row: node, current and desired version, phase, last error,
since, kind, shell) and ``rollout.json`` (hosts done / total, halted reason, blocked reason).
It is written only when its content changed, so a no-change round writes nothing; the
``since`` of a row only moves when its phase or error changes. A third key,
``payloads.json``, is where syncer remembers where each payload it applied came from
(:mod:`syncer.nodes.rollback` reads it; it lives here because only syncer writes this
ConfigMap, while a Node's own annotations are writable by its kubelet), and
``nodes.json`` is syncer's record of which Node it configured at which address
(:mod:`syncer.nodes.inputs` trusts it, never what a Node says about itself).

``syncer status`` reads it back and refreshes the live parts from the Nodes (current
version, failure records), so it is right even while a round is running.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from typing import Any

from syncer import names
from syncer.cluster import configmaps
from syncer.cluster.client import KubeClient
from syncer.cluster.objects import now
from syncer.nodes.annotations import list_windows_nodes

PAYLOAD_SOURCES_KEY = "payloads.json"
CONFIGURED_KEY = "nodes.json"


class Phase(StrEnum):
    """Where a host stands. The step or the planned action is a field of its own
    (:class:`HostStatus`); text is made only for people (:attr:`HostStatus.text`)."""

    UP_TO_DATE = "up-to-date"
    PLANNED = "planned"  # no rollout ran: ``action`` is what the plan said
    WAITING = "waiting"  # needs a rollout slot to ``action`` (or, without one, payloads)
    PAUSED = "paused"  # rollout.paused: would ``action``
    RUNNING = "running"  # being configured or upgraded, now at ``step``
    INTERRUPTED = "interrupted"  # a shutdown stopped it before ``step``; resumed first
    FAILED = "failed"  # at ``step``
    ROLLED_BACK = "rolled-back"  # failed at ``step``, previous components restored
    BLOCKED = "blocked"  # ``detail`` says why (unreachable, host-key, invalid, DNS, ...)
    REMOVED = "removed"
    REMOVAL_FAILED = "removal-failed"  # at ``step``
    UNKNOWN = "unknown"  # a row this version cannot read; ``detail`` holds it


# Phases that count against a host being healthy in the rollout's counts.
_FAILED = frozenset({Phase.FAILED, Phase.ROLLED_BACK, Phase.REMOVAL_FAILED})
# Phases of hosts that are not being worked on right now.
_IDLE = frozenset({Phase.WAITING, Phase.PAUSED, Phase.BLOCKED, Phase.PLANNED})


@dataclass(frozen=True)
class HostStatus:
    address: str
    node: str | None
    current: str | None  # the version the Node records (WMCO's ``version``)
    desired: str
    phase: Phase
    last_error: str | None = None
    since: str = ""
    kind: str = "byoh"
    shell: str | None = None
    step: str | None = None  # RUNNING, INTERRUPTED, FAILED, ROLLED_BACK, REMOVAL_FAILED
    action: str | None = None  # PLANNED, WAITING, PAUSED, RUNNING: configure | upgrade | ...
    detail: str | None = None  # BLOCKED: the kind; UNKNOWN: the unreadable phase

    @property
    def text(self) -> str:
        """The phase as ``syncer status``, the status branch and the logs show it."""
        phase, step, action = self.phase, self.step or "?", self.action
        if phase is Phase.PLANNED:
            return action or phase.value
        if phase is Phase.WAITING:
            return f"waiting to {action}" if action else "waiting"
        if phase is Phase.PAUSED:
            return f"paused: would {action}" if action else "paused"
        if phase is Phase.RUNNING:
            verb = "upgrading" if action == "upgrade" else "configuring"
            return f"{verb}: {self.step}" if self.step else verb
        if phase is Phase.INTERRUPTED:
            return f"interrupted before {step}"
        if phase is Phase.FAILED:
            return f"failed at {step}"
        if phase is Phase.ROLLED_BACK:
            return f"rolled back at {step}"
        if phase is Phase.REMOVAL_FAILED:
            return f"removal failed at {step}"
        if phase is Phase.BLOCKED:
            return f"blocked ({self.detail})" if self.detail else "blocked"
        if phase is Phase.UNKNOWN:
            return self.detail or phase.value
        return phase.value

    @property
    def label(self) -> str:
        """The phase as a metric label: the phase, or for a running host its verb."""
        if self.phase is Phase.RUNNING:
            return "upgrading" if self.action == "upgrade" else "configuring"
        if self.phase is Phase.PLANNED and self.action:
            return self.action
        return self.phase.value

    @property
    def wanted(self) -> bool:
        """A host the fleet wants (a removed one has no desired version)."""
        return bool(self.desired)

    @property
    def done(self) -> bool:
        return self.phase is Phase.UP_TO_DATE

    @property
    def failed(self) -> bool:
        return self.phase in _FAILED or bool(self.last_error)

    @property
    def in_progress(self) -> bool:
        return not self.done and not self.failed and self.phase not in _IDLE

    def to_json(self) -> dict[str, Any]:
        # Every field is a str, None or the phase: no deep copy (``asdict``) needed, and
        # the report of a 500-host pass builds this twice per host.
        doc = {f.name: getattr(self, f.name) for f in fields(self)}
        doc["phase"] = self.phase.value
        return {k: v for k, v in doc.items()
                if v is not None or k in ("node", "current", "last_error")}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> HostStatus:
        raw = str(doc.get("phase", ""))
        try:
            phase, detail = Phase(raw), doc.get("detail") or None
        except ValueError:  # written by another version of syncer
            phase, detail = Phase.UNKNOWN, raw
        return cls(
            address=str(doc.get("address", "")),
            node=doc.get("node") or None,
            current=doc.get("current") or None,
            desired=str(doc.get("desired", "")),
            phase=phase,
            last_error=doc.get("last_error") or None,
            since=str(doc.get("since", "")),
            kind=str(doc.get("kind", "byoh")),
            shell=doc.get("shell") or None,
            step=doc.get("step") or None,
            action=doc.get("action") or None,
            detail=detail,
        )


@dataclass(frozen=True)
class Tally:
    """How many wanted hosts are where: the one count every report uses."""

    total: int = 0
    done: int = 0
    failed: int = 0
    in_progress: int = 0

    @classmethod
    def of(cls, rows: Iterable[HostStatus]) -> Tally:
        wanted = [r for r in rows if r.wanted]
        return cls(
            total=len(wanted),
            done=sum(r.done for r in wanted),
            failed=sum(r.failed for r in wanted),
            in_progress=sum(r.in_progress for r in wanted),
        )


@dataclass
class StatusReport:
    hosts: dict[str, HostStatus] = field(default_factory=dict)
    rollout: dict[str, Any] = field(default_factory=dict)
    # "<component>@<sha256>" -> {"version", "url", "path"}: payloads syncer applied.
    payload_sources: dict[str, dict[str, str]] = field(default_factory=dict)
    # address -> Node name: the Nodes syncer configured, and where.
    configured: dict[str, str] = field(default_factory=dict)


def read_status(api: KubeClient, namespace: str) -> StatusReport:
    data = configmaps.read_data(api, namespace, names.NODE_STATUS_CONFIGMAP)
    report = StatusReport()
    if data is None:
        return report
    try:
        for address, row in (json.loads(data.get("hosts.json") or "{}")).items():
            report.hosts[address] = HostStatus.from_json({**row, "address": address})
        report.rollout = dict(json.loads(data.get("rollout.json") or "{}"))
        report.configured = {str(k): str(v) for k, v in
                             json.loads(data.get(CONFIGURED_KEY) or "{}").items()}
        sources = json.loads(data.get(PAYLOAD_SOURCES_KEY) or "{}")
        report.payload_sources = {
            str(k): {f: str(v.get(f) or "") for f in ("version", "url", "path")}
            for k, v in sources.items() if isinstance(v, dict)}
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
        elif old is not None and _where(old) == _where(row):
            out.append(replace(row, since=old.since or stamp))
        else:
            out.append(replace(row, since=stamp))
    return out


def _where(row: HostStatus) -> tuple[object, ...]:
    return row.phase, row.step, row.action, row.detail, row.last_error


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
    if hosts == _rows_json(previous) and report.rollout == previous.rollout and \
            report.configured == previous.configured:
        return False
    data = {
        "hosts.json": json.dumps(hosts, sort_keys=True, indent=1),
        "rollout.json": json.dumps(report.rollout, sort_keys=True),
        CONFIGURED_KEY: json.dumps(report.configured, sort_keys=True, indent=1),
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
            row = replace(row, current=node.version)
            if node.failed:
                row = replace(row, phase=Phase.FAILED, step=node.failed_step,
                              last_error=node.last_error, since=node.since or row.since)
            elif node.phase == names.PHASE_ROLLED_BACK:
                row = replace(row, phase=Phase.ROLLED_BACK, since=node.since or row.since)
            elif (node.phase and node.phase != names.PHASE_CONFIGURED
                  and row.phase is not Phase.BLOCKED):
                row = replace(row, phase=Phase.RUNNING, step=node.phase,
                              action=row.action or "upgrade", since=node.since or row.since)
        rows.append(row)
    return rows, report.rollout


def format_table(rows: list[HostStatus], rollout: Mapping[str, Any]) -> str:
    """The plain-text table ``syncer status`` prints."""
    header = ("ADDRESS", "NODE", "VERSION", "PHASE", "SINCE", "LAST ERROR")
    table = [header]
    for r in rows:
        version = f"{r.current or '-'} -> {r.desired}" if r.current != r.desired else r.desired
        table.append((r.address, r.node or "-", version, r.text, r.since or "-",
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

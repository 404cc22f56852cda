"""From one reconcile to the status report and the note: pure functions, no I/O.

:func:`build_status` turns a :class:`~syncer.reconcile.ReconcileResult` (and the node
stage's result, when it ran) into a :class:`~syncer.writeback.status.model.StatusReport`;
:func:`build_note` turns that report into the :class:`~syncer.writeback.status.notes.ApplyNote` for
the source commit. The write-back stage (:mod:`syncer.writeback.status.record`) does the I/O.

Mapping of the reconcile's stage to the outcome:

================================  ==========  =============================================
reconcile stopped at              outcome     error
================================  ==========  =============================================
``source``, commit rejected       Rejected    the signature/path problem
``source``, remote unreachable    Failed      git's one-line error (revision: last seen)
``validate``                      Rejected    every ``file:line: message``
``guard`` (prune refused)         Rejected    the guard's reason
``plan``/``apply``                Failed      API errors; failed objects carry their own
``done``                          Applied     node stage blocked/halted, if so
================================  ==========  =============================================

**Same state, same bytes.** The status branch gets a commit only when
:meth:`StatusReport.state_key` changes, so a report must describe *state*, not what this
particular run happened to send. A resync of an applied revision reports every object
``unchanged``; :func:`carry_forward` keeps the result the object got when the revision was
first applied (``created``/``configured``) and the objects it pruned, as long as the
revision is the same. A drift correction (``configured`` again) is a real change and
shows.

**All hosts reached.** A revision's ``allHostsReachedAt`` is set once the node stage ran
for it and every host with a desired version is ``up-to-date`` (vacuously true for a
fleet without hosts); the note merge keeps the earliest time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from syncer.nodes.stage import NodeStageResult
from syncer.nodes.status import HostStatus as NodeRow
from syncer.nodes.status import Tally
from syncer.reconcile import ReconcileResult, Stage
from syncer.writeback.status.model import (
    HostStatus,
    ObjectStatus,
    Outcome,
    RolloutStatus,
    SourceStatus,
    StatusReport,
    parse_time,
)
from syncer.writeback.status.notes import ApplyNote

_FIRST_RESULTS = ("created", "configured")


@dataclass(frozen=True)
class RevisionFacts:
    """What the write-back knows about the source beyond the reconcile result."""

    url: str  # redacted
    ref: str
    revision: str  # the commit (or local digest) the report is about
    applied_revision: str = ""  # the last good one
    message: str = ""  # subject of ``revision``
    author: str = ""
    rejected_at_source: bool = False  # the source refused the commit (signature, path)


def outcome_of(result: ReconcileResult, rejected_at_source: bool = False) -> Outcome:
    """The revision-level outcome of a reconcile (see the module table)."""
    if result.stage is Stage.SOURCE:
        return Outcome.REJECTED if rejected_at_source else Outcome.FAILED
    if result.stage.rejects_revision:
        return Outcome.REJECTED
    if result.stage is Stage.DONE and not result.errors:
        return Outcome.APPLIED
    return Outcome.FAILED


def build_status(
    result: ReconcileResult,
    nodes: NodeStageResult | None,
    facts: RevisionFacts,
    *,
    time: datetime,
    controller: str = "",
    previous: StatusReport | None = None,
) -> StatusReport:
    """The status report of one reconcile (see the module docstring)."""
    outcome = outcome_of(result, facts.rejected_at_source)
    objects: list[ObjectStatus] = []
    if result.applied is not None and not result.applied.dry_run:
        objects = [
            ObjectStatus(r.ref.kind, r.ref.namespace, r.ref.name, str(r.outcome), _line(r.error))
            for r in result.applied.results
        ]
    same = previous if previous is not None and previous.source.revision == facts.revision else None
    rows = nodes.rows if nodes is not None and outcome is Outcome.APPLIED else []
    hosts = tuple(host_of(row) for row in rows)
    rollout = rollout_of(rows, paused=bool(nodes and nodes.paused)) if hosts else None
    if same is not None and result.stage is Stage.SOURCE and outcome is Outcome.FAILED:
        # Git could not be read: the cluster still runs what the last report says.
        objects, hosts, rollout = list(same.objects), same.hosts, same.rollout
    elif same is not None and outcome is not Outcome.REJECTED:
        objects = carry_forward(same.objects, objects)
    return StatusReport(
        source=SourceStatus(
            url=facts.url,
            ref=facts.ref,
            revision=facts.revision,
            applied_revision=facts.applied_revision,
            message=facts.message,
            author=facts.author,
        ),
        time=time,
        outcome=outcome,
        error=error_of(result, nodes, outcome),
        objects=tuple(objects),
        hosts=hosts,
        rollout=rollout,
        controller=controller,
    )


def error_of(result: ReconcileResult, nodes: NodeStageResult | None, outcome: Outcome) -> str:
    """The revision-level error: every validation problem, the source or API error, or
    why the node stage did nothing."""
    if result.errors:
        return "\n".join(dict.fromkeys(result.errors))
    if outcome is Outcome.FAILED and result.applied is not None and result.applied.failed:
        first = result.applied.failed[0]
        return f"{len(result.applied.failed)} object(s) failed; {first.ref}: {_line(first.error)}"
    if outcome is Outcome.APPLIED and nodes is not None:
        reason = nodes.blocked or nodes.halted
        if reason:
            return f"nodes: {reason}"
    return ""


def carry_forward(
    previous: Iterable[ObjectStatus], current: Iterable[ObjectStatus]
) -> list[ObjectStatus]:
    """``current`` with ``unchanged`` objects keeping the result they got when the same
    revision was applied, and objects that revision pruned kept as ``pruned``."""
    before = {(o.kind, o.namespace, o.name): o for o in previous}
    out: dict[tuple[str, str, str], ObjectStatus] = {}
    for obj in current:
        key = (obj.kind, obj.namespace, obj.name)
        old = before.get(key)
        keep = obj.result == "unchanged" and old is not None and old.result in _FIRST_RESULTS
        out[key] = old if keep and old is not None else obj
    for key, old in before.items():
        if key not in out and old.result == "pruned":
            out[key] = old
    return list(out.values())


def host_of(row: NodeRow) -> HostStatus:
    """A node stage row as a status host."""
    return HostStatus(
        address=row.address,
        node=row.node or "",
        current_version=row.current or "",
        desired_version=row.desired,
        phase=row.text,
        error=_line(row.last_error or ""),
        since=_since(row.since),
    )


def rollout_of(rows: Iterable[NodeRow], paused: bool = False) -> RolloutStatus:
    """Rollout progress over the hosts that have a desired version (removed ones do not)."""
    rows = list(rows)
    versions = [r.desired for r in rows if r.wanted]
    desired = max(set(versions), key=versions.count) if versions else ""
    tally = Tally.of(rows)
    return RolloutStatus(desired, tally.total, tally.done, tally.in_progress, tally.failed,
                         paused)


def all_hosts_reached(nodes: NodeStageResult | None, outcome: Outcome) -> bool:
    """True when the node stage ran after an apply and every wanted host is up to date."""
    if nodes is None or outcome is not Outcome.APPLIED or nodes.blocked or nodes.paused:
        return False
    return all(r.done for r in nodes.rows if r.wanted)


def build_note(
    report: StatusReport, nodes: NodeStageResult | None, *, controller: str = ""
) -> ApplyNote:
    """The note update for the report's source commit."""
    reached = all_hosts_reached(nodes, report.outcome)
    applied = report.outcome is not Outcome.REJECTED
    return ApplyNote(
        commit=report.source.revision,
        outcome=report.outcome,
        applied_at=report.time,
        controller=controller or report.controller or None,
        reason=report.error,
        objects=report.objects if applied else None,
        hosts=report.hosts if nodes is not None and applied else None,
        all_hosts_reached_at=report.time if reached else None,
    )


def _since(text: str) -> datetime | None:
    try:
        return parse_time(text)
    except ValueError:
        return None


def _line(text: str) -> str:
    return " ".join(text.split())[:500]

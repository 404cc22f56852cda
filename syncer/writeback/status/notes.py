"""The git note syncer attaches to each source commit it applied or rejected.

A note (under ``refs/notes/syncer``) is a small YAML mapping::

    commit: 3f2a9c1…            # the source commit the note is on
    outcome: Applied            # Applied | Failed | Rejected
    appliedAt: 2026-05-04T10:00:00Z
    controller: syncer-7d9f…    # the controller instance that did it
    reason: ''                  # why, when not applied
    objects: [{kind, namespace, name, result, error}]
    hosts: [{address, node, version, phase, error}]
    allHostsReachedAt: 2026-05-04T10:04:12Z   # added later, when the rollout completed

Notes are written in steps (applied first, "all hosts reached" later, possibly by another
controller instance), so :func:`merge_notes` combines what is already there with an update:
keys of the update win, except that the two times keep the *earliest* value, because
"when was it first applied" and "when did all hosts first reach it" must not move when a
second instance repeats the work. A partial update (:meth:`ApplyNote.to_dict` leaves out
what is unset) never erases fields it does not mention.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from syncer.writeback.status.model import (
    HostStatus,
    ObjectStatus,
    Outcome,
    StatusReport,
    dump_yaml,
    format_time,
    load_yaml,
    normal_time,
    parse_time,
)

_EARLIEST = ("appliedAt", "allHostsReachedAt")
_ORDER = (
    "commit",
    "outcome",
    "appliedAt",
    "controller",
    "reason",
    "allHostsReachedAt",
    "objects",
    "hosts",
)


@dataclass(frozen=True)
class ApplyNote:
    """What syncer did with one source commit. Unset fields are left out of updates."""

    commit: str
    outcome: Outcome | None = None
    applied_at: datetime | None = None
    controller: str | None = None
    reason: str | None = None
    objects: tuple[ObjectStatus, ...] | None = None
    hosts: tuple[HostStatus, ...] | None = None
    all_hosts_reached_at: datetime | None = None

    @classmethod
    def from_report(cls, report: StatusReport, controller: str = "") -> ApplyNote:
        """The note for the commit ``report`` is about, at the report's time."""
        return cls(
            commit=report.source.revision,
            outcome=report.outcome,
            applied_at=report.time,
            controller=controller or report.controller,
            reason=report.error,
            objects=report.objects,
            hosts=report.hosts,
            all_hosts_reached_at=_all_reached(report),
        )

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"commit": self.commit}
        if self.outcome is not None:
            data["outcome"] = Outcome(self.outcome).value
        if self.applied_at is not None:
            data["appliedAt"] = format_time(self.applied_at)
        if self.controller is not None:
            data["controller"] = self.controller
        if self.reason is not None:
            data["reason"] = self.reason
        if self.objects is not None:
            data["objects"] = [o.to_dict() for o in self.objects]
        if self.hosts is not None:
            data["hosts"] = [
                {
                    "address": h.address,
                    "node": h.node,
                    "version": h.current_version,
                    "phase": h.phase,
                    "error": h.error,
                }
                for h in self.hosts
            ]
        if self.all_hosts_reached_at is not None:
            data["allHostsReachedAt"] = format_time(self.all_hosts_reached_at)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ApplyNote:
        objects = data.get("objects")
        hosts = data.get("hosts")
        outcome = data.get("outcome")
        return cls(
            commit=str(data.get("commit", "")),
            outcome=Outcome(str(outcome)) if outcome else None,
            applied_at=parse_time(data.get("appliedAt")),
            controller=data.get("controller"),
            reason=data.get("reason"),
            objects=None
            if objects is None
            else tuple(
                ObjectStatus(
                    str(o.get("kind", "")),
                    str(o.get("namespace", "")),
                    str(o.get("name", "")),
                    str(o.get("result", "")),
                    str(o.get("error", "")),
                )
                for o in objects
            ),
            hosts=None
            if hosts is None
            else tuple(
                HostStatus(
                    str(h.get("address", "")),
                    str(h.get("node", "")),
                    current_version=str(h.get("version", "")),
                    phase=str(h.get("phase", "")),
                    error=str(h.get("error", "")),
                )
                for h in hosts
            ),
            all_hosts_reached_at=parse_time(data.get("allHostsReachedAt")),
        )

    def to_yaml(self) -> str:
        return dump_yaml(self.to_dict())

    @classmethod
    def from_yaml(cls, text: str) -> ApplyNote:
        return cls.from_dict(parse_note(text))


def parse_note(text: str) -> dict[str, Any]:
    """A note's mapping; a note that is not syncer's YAML becomes ``{"text": ...}``."""
    try:
        data = load_yaml(text) if text.strip() else {}
    except Exception:  # a human's free-text note is not an error
        return {"text": text}
    return data if isinstance(data, dict) else {"text": text}


def merge_notes(old: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``old`` updated with ``update``; the first-applied/all-reached times keep the earliest."""
    merged = {**old, **update}
    for key in _EARLIEST:
        times = [t for t in (parse_time(old.get(key)), parse_time(update.get(key))) if t]
        if times:
            merged[key] = format_time(min(normal_time(t) for t in times))
    known = {k: merged[k] for k in _ORDER if k in merged}
    return {**known, **{k: v for k, v in sorted(merged.items()) if k not in known}}


def _all_reached(report: StatusReport) -> datetime | None:
    """The report's time when every host is at the desired version, else None."""
    if report.outcome is not Outcome.APPLIED or not report.hosts:
        return None
    progress = report.rollout
    if progress is None or progress.updated < progress.total:
        return None
    return report.time

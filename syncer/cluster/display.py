"""Text for people: the plan as a table with readable diffs, and one-line summaries.

A JSON patch is exact but hard to read in a terminal or a PR comment, so an update is
shown one line per operation, with the old value from the live object::

    update  ConfigMap  openshift-windows-machine-config-operator  windows-instances  byoh.yaml:3
            ~ /data/10.1.2.3: "username=Administrator" -> "username=admin"
            + /metadata/labels/tier: "canary"
            - /metadata/annotations/old

Nothing is cut: a text value of several lines (a script, a config file) changes as a
unified diff under its path; a new one (an added key, or any in a pull-request preview,
which never shows the live value) is shown as its lines, each marked added
(``+ /data/run.ps1: |`` then ``+   Write-Host ...``). A change to the ``syncer-fleet``
ConfigMap — the node components every host runs — is also shown as a table of
components::

    COMPONENT   VERSION              PAYLOAD
    kubelet     v1.34.4 -> v1.34.5   changed

Values of Secrets (``/data``, ``/stringData``) are never printed: plans end up in CI logs
and PR comments. ``-o json`` (:meth:`Plan.to_json`) gives the patches themselves, with the
same redaction (:func:`syncer.cluster.diff.redact_patch`).
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from typing import Any

from jsonpointer import JsonPointerException, resolve_pointer

from syncer import names
from syncer.cluster.apply import ApplyResult, Outcome
from syncer.cluster.diff import REDACTED, is_sensitive
from syncer.cluster.plan import Action, Plan, PlanEntry
from syncer.desired import ComponentVersion, DesiredState

LIVE_HIDDEN = "(live value)"


def patch_lines(entry: PlanEntry, *, live_values: bool = True) -> list[str]:
    """One readable line per patch operation. ``live_values=False`` (pull-request
    previews, which their author reads) never shows what is in the cluster, only what
    the change writes."""
    before = entry.change.before if entry.change is not None else {}
    lines = []
    for op in entry.patch:
        path, kind = op["path"], entry.ref.kind
        old = _show(kind, path, _lookup(before, path)) if live_values else LIVE_HIDDEN
        text = _text_lines(kind, path, op.get("value"))
        if op["op"] == "add" and text is not None:
            lines.append(f"+ {path}: |")
            lines += text
        elif op["op"] == "add":
            lines.append(f"+ {path}: {_show(kind, path, op['value'])}")
        elif op["op"] == "remove":
            lines.append(f"- {path}")
        elif op["op"] == "replace" and live_values and _texts(kind, path, before, op["value"]):
            lines.append(f"~ {path}:")
            lines += ["  " + line for line in text_diff(_lookup(before, path), op["value"])]
        elif op["op"] == "replace" and text is not None:  # the live text is not shown
            lines.append(f"~ {path}: {old} -> |")
            lines += text
        elif op["op"] == "replace":
            lines.append(f"~ {path}: {old} -> {_show(kind, path, op['value'])}")
        else:  # move/copy/test: make_patch may emit move for renamed keys
            lines.append(f"{op['op']} {op.get('from', '')} -> {path}")
    if not lines and entry.change is not None and entry.change.adopt:
        lines.append("(values match; syncer takes ownership of the fields)")
    return lines


@dataclass(frozen=True)
class ComponentChange:
    """One node component whose version or payload (URL, digest, path) changes."""

    name: str
    old: str | None  # None: added
    new: str | None  # None: removed
    payload_changed: bool


def component_changes(entry: PlanEntry) -> list[ComponentChange]:
    """The components a change to the ``syncer-fleet`` ConfigMap changes (syncer's own
    object, rendered from Git: its values are never secret), else []."""
    if entry.ref.kind != "ConfigMap" or entry.ref.name != names.FLEET_CONFIGMAP:
        return []
    if entry.action not in (Action.CREATE, Action.UPDATE):
        return []
    before = _components(entry.change.before if entry.change is not None else None)
    after = _components(entry.desired)
    rows = []
    for name in sorted(before.keys() | after.keys()):
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        payload = old is None or new is None or (old.url, old.sha256, old.path) != (
            new.url, new.sha256, new.path)
        rows.append(ComponentChange(name, old.version if old else None,
                                    new.version if new else None, payload))
    return rows


def component_table(rows: list[ComponentChange]) -> list[str]:
    table = [("COMPONENT", "VERSION", "PAYLOAD")]
    for row in rows:
        if row.old is None:
            version = f"(new) {row.new}"
        elif row.new is None:
            version = f"{row.old} (removed)"
        else:
            version = row.old if row.old == row.new else f"{row.old} -> {row.new}"
        table.append((row.name, version, "changed" if row.payload_changed else "same"))
    widths = [max(len(r[i]) for r in table) for i in range(3)]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
            for r in table]


def _components(obj: dict[str, Any] | None) -> dict[str, ComponentVersion]:
    data = (obj or {}).get("data") or {}
    if not isinstance(data, dict):
        return {}
    return dict(DesiredState.from_data(data, problems=[]).components)


def text_diff(old: str, new: str) -> list[str]:
    """A unified diff of two texts, without its file header lines."""
    lines = list(difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=2))
    return lines[2:]  # the "---"/"+++" header (a removed "-- x" line starts with "---" too)


def plan_table(plan: Plan, *, show_unchanged: bool = True) -> str:
    """The plan, one row per object, diffs under updates, a summary line last."""
    rows = [("ACTION", "KIND", "NAMESPACE", "NAME", "SOURCE")]
    details: dict[int, list[str]] = {}
    for entry in plan.entries:
        if entry.action is Action.UNCHANGED and not show_unchanged:
            continue
        source = f"{entry.source[0]}:{entry.source[1]}" if entry.source else ""
        kind = f"{entry.ref.kind}.{entry.ref.group}" if entry.ref.group else entry.ref.kind
        rows.append((str(entry.action), kind, entry.ref.namespace or "-", entry.ref.name, source))
        extra = patch_lines(entry) if entry.action is Action.UPDATE else []
        components = component_changes(entry)
        if components:
            extra += ["components:", *("  " + line for line in component_table(components))]
        if entry.reason and entry.action is Action.PRUNE_SKIPPED:
            extra.append(f"({entry.reason})")
        if entry.error:
            extra.append(f"error: {entry.error}")
        if extra:
            details[len(rows) - 1] = extra
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for index, row in enumerate(rows):
        out.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        out.extend(" " * (widths[0] + 2) + line for line in details.get(index, []))
    out.append("")
    out.append(plan_summary(plan))
    if plan.refusal:
        out.append(f"REFUSED: {plan.refusal}")
    return "\n".join(out)


def plan_summary(plan: Plan) -> str:
    if plan.offline:
        return (f"Plan (no cluster configured): {plan.count(Action.CREATE)} objects "
                "would be created.")
    return (
        f"Plan: {plan.count(Action.CREATE)} to create, {plan.count(Action.UPDATE)} to update, "
        f"{plan.count(Action.PRUNE)} to prune, {plan.count(Action.UNCHANGED)} unchanged"
        + (f", {plan.count(Action.PRUNE_SKIPPED)} not pruned"
           if plan.count(Action.PRUNE_SKIPPED) else "")
        + "."
    )


def apply_summary(revision: str, result: ApplyResult) -> str:
    """``Applied <rev>: 12 objects (3 created, 1 updated, 8 unchanged), 1 pruned``."""
    applied = [r for r in result.results if not r.prune]
    failed = sum(1 for r in applied if r.outcome is Outcome.FAILED)
    not_pruned = sum(1 for r in result.results if r.prune and r.outcome is Outcome.FAILED)
    parts = [
        f"{result.count(Outcome.CREATED)} created",
        f"{result.count(Outcome.CONFIGURED)} updated",
        f"{result.count(Outcome.UNCHANGED)} unchanged",
    ]
    if failed:
        parts.append(f"{failed} failed")
    if result.dry_run:
        verb = "Dry run of"
    else:
        verb = "Failed to apply" if failed or not_pruned else "Applied"
    text = (f"{verb} {revision}: {len(applied)} objects ({', '.join(parts)}), "
            f"{result.count(Outcome.PRUNED)} pruned")
    if not_pruned:
        text += f", {not_pruned} failed to prune"
    return text + (" (nothing written)" if result.dry_run else "")


def _lookup(doc: Any, path: str) -> Any:
    try:
        return resolve_pointer(doc, path)
    except JsonPointerException:
        return None


def _texts(kind: str, path: str, before: Any, new: Any) -> bool:
    """Both values are text of several lines (and may be shown): diff them."""
    old = _lookup(before, path)
    return (isinstance(old, str) and isinstance(new, str) and ("\n" in old or "\n" in new)
            and not is_sensitive(kind, path))


def _text_lines(kind: str, path: str, value: Any) -> list[str] | None:
    """A new text of several lines that may be shown, one added line each (as a created
    object's lines are); None for anything else."""
    if not isinstance(value, str) or "\n" not in value.rstrip("\n") or is_sensitive(kind, path):
        return None
    return ["+   " + line for line in value.splitlines()]


def _show(kind: str, path: str, value: Any) -> str:
    if is_sensitive(kind, path):
        return REDACTED
    return json.dumps(value, sort_keys=True, separators=(",", ":"))

"""The pull-request preview: what merging this pull request would do, as Markdown.

The plan engine fills plain dataclasses — :class:`Preview` with validation
:class:`~syncer.problems.Problem`\\ s, :class:`ObjectChange`\\ s and :class:`HostUpgrade`\\ s
— and this module renders them:

* :func:`render_comment` — the comment body: verdict, validation errors as
  ``file:line: message`` (linked to the file at the pull request's head when the forge
  gives a web URL), object counts and one collapsible ``<details>`` per changed object
  with its diff, the hosts that would be upgraded (``address/node: current → desired``),
  the evaluated head SHA and time, and the hidden marker the forge client finds the
  comment by.
* :func:`status_state` and :func:`status_description` — the commit status: ``success``
  (valid), ``failure`` (invalid), ``error`` (the plan could not be computed), with a
  one-line summary of at most 140 characters (GitHub's limit).

Output is deterministic: objects, problems and hosts are sorted, the time is rendered in
UTC, and nothing depends on the environment, so tests pin it and an unchanged preview
leaves the comment untouched. User text (messages, names, diffs) is escaped or fenced so
it cannot break the Markdown around it. Size limits are the forge client's job
(:func:`syncer.writeback.forges.truncate`).
"""

from __future__ import annotations

import html
import posixpath
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from syncer.cluster.display import ComponentChange
from syncer.problems import Problem
from syncer.writeback.forges.base import STATUS_DESCRIPTION_MAX
from syncer.writeback.forges.bodies import marker_comment
from syncer.writeback.forges.model import CommitState

FileLink = Callable[[str, int | None], str | None]


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    PRUNE = "prune"
    UNCHANGED = "unchanged"


_ORDER = {Action.CREATE: 0, Action.UPDATE: 1, Action.PRUNE: 2, Action.UNCHANGED: 3}


@dataclass(frozen=True)
class ObjectChange:
    """One Kubernetes object and what applying the revision would do to it."""

    action: Action
    kind: str
    name: str
    namespace: str = ""
    api_version: str = ""
    #: Unified diff (or the full object for a create), shown collapsed; may be empty.
    diff: str = ""

    @property
    def ident(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {where}"

    def sort_key(self) -> tuple[int, str, str, str, str]:
        return (_ORDER[self.action], self.kind, self.namespace, self.name, self.api_version)


@dataclass(frozen=True)
class HostUpgrade:
    """A Windows host whose components would change version."""

    address: str
    desired: str
    current: str | None = None  # None: never configured by syncer/WMCO
    node: str | None = None


@dataclass(frozen=True)
class Preview:
    """Everything the preview shows about one evaluated pull-request head."""

    head_sha: str
    evaluated_at: datetime
    problems: Sequence[Problem] = ()
    objects: Sequence[ObjectChange] = ()
    hosts: Sequence[HostUpgrade] = ()
    #: Node components whose version or payload the revision changes.
    components: Sequence[ComponentChange] = ()
    #: Directory of the fleet inside the repository; problem files are relative to it.
    fleet_path: str = ""
    #: Set when the plan could not be computed (cluster unreachable, …).
    plan_error: str | None = None
    title: str = "syncer preview"

    @property
    def errors(self) -> list[Problem]:
        return sorted(p for p in self.problems if p.is_error)

    @property
    def warnings(self) -> list[Problem]:
        return sorted(p for p in self.problems if not p.is_error)

    @property
    def valid(self) -> bool:
        return not self.errors

    def count(self, action: Action) -> int:
        return sum(1 for o in self.objects if o.action is action)


# --- commit status ---------------------------------------------------------------------


def status_state(preview: Preview) -> CommitState:
    if not preview.valid:
        return CommitState.FAILURE
    if preview.plan_error:
        return CommitState.ERROR
    return CommitState.SUCCESS


def status_description(preview: Preview) -> str:
    """One line, at most 140 characters, e.g. ``valid: 3 to create, 1 to update, …``."""
    errors = preview.errors
    if errors:
        head = f"invalid: {_plural(len(errors), 'error')} ("
        return _fit(head, _one_line(str(errors[0])), ")")
    if preview.plan_error:
        return _fit("error: the plan failed (", _one_line(preview.plan_error), ")")
    hosts = len(preview.hosts)
    text = (
        f"valid: {preview.count(Action.CREATE)} to create, {preview.count(Action.UPDATE)} "
        f"to update, {preview.count(Action.PRUNE)} to prune, "
        f"{_plural(hosts, 'host')} to upgrade"
    )
    return _fit("", text, "")


# --- the comment -----------------------------------------------------------------------


def render_comment(
    preview: Preview, *, marker: str | None = "preview", file_url: FileLink | None = None
) -> str:
    """The preview comment as Markdown (GitHub/GitLab/Gitea flavoured)."""
    out: list[str] = []
    if marker is not None:
        out.append(marker_comment(marker))
    state = status_state(preview)
    icon, verdict = {
        CommitState.SUCCESS: ("✅", "valid"),
        CommitState.FAILURE: ("❌", "invalid"),
        CommitState.ERROR: ("⚠️", "valid, but the plan could not be computed"),
    }[state]
    out += [f"## {icon} {_text(preview.title)}: {verdict}", ""]
    errors, warnings = preview.errors, preview.warnings
    if errors:
        out += [
            f"This revision has {_plural(len(errors), 'validation error')}; "
            "syncer will not apply it until they are fixed (the cluster keeps the last "
            "valid revision).",
            "",
            "### Validation errors",
            "",
        ]
        out += [_problem_line(p, preview.fleet_path, file_url) for p in errors]
        out.append("")
    if warnings:
        out += ["### Warnings", ""]
        out += [_problem_line(p, preview.fleet_path, file_url) for p in warnings]
        out.append("")
    if preview.plan_error:
        out += ["### Plan", "", f"The plan could not be computed: {_text(preview.plan_error)}", ""]
    elif preview.valid or preview.objects or preview.hosts:
        out += _plan_lines(preview)
    out += [
        "---",
        f"<sub>Evaluated {_code(preview.head_sha)} at {_when(preview.evaluated_at)}"
        " by syncer. This comment is updated when the pull request changes.</sub>",
    ]
    return "\n".join(out) + "\n"


def _plan_lines(preview: Preview) -> list[str]:
    counts = (
        f"**{preview.count(Action.CREATE)} to create, {preview.count(Action.UPDATE)} to update, "
        f"{preview.count(Action.PRUNE)} to prune**, {preview.count(Action.UNCHANGED)} unchanged"
    )
    out = ["### Objects", "", counts, ""]
    changed = sorted(
        (o for o in preview.objects if o.action is not Action.UNCHANGED),
        key=ObjectChange.sort_key,
    )
    if not changed and not preview.hosts:
        out += ["No changes: the cluster already matches this revision.", ""]
    if preview.components:
        out += [f"### Components ({len(preview.components)})", "",
                "| component | version | payload |", "| --- | --- | --- |"]
        for c in preview.components:
            if c.old is None:
                version = f"_new_ → {_text(c.new or '')}"
            elif c.new is None:
                version = f"{_text(c.old)} → _removed_"
            elif c.old == c.new:
                version = _text(c.old)
            else:
                version = f"{_text(c.old)} → {_text(c.new)}"
            payload = "changed" if c.payload_changed else "same"
            out.append(f"| {_code(c.name)} | {version} | {payload} |")
        out.append("")
    for o in changed:
        summary = f"{o.action.value} <code>{html.escape(o.ident)}</code>"
        if o.api_version:
            summary += f" ({html.escape(o.api_version)})"
        if not o.diff.strip():
            out += [f"- {summary}", ""]
            continue
        fence = _fence(o.diff)
        out += [
            f"<details><summary>{summary}</summary>",
            "",
            f"{fence}diff",
            *o.diff.rstrip("\n").split("\n"),
            fence,
            "",
            "</details>",
            "",
        ]
    if preview.hosts:
        out += [f"### Hosts to upgrade ({len(preview.hosts)})", ""]
        for h in sorted(preview.hosts, key=lambda h: (h.address, h.node or "")):
            where = _code(h.address) + (f"/{_code(h.node)}" if h.node else "")
            current = _text(h.current) if h.current else "_not configured_"
            out.append(f"- {where}: {current} → {_text(h.desired)}")
        out.append("")
    return out


def _problem_line(problem: Problem, fleet_path: str, file_url: FileLink | None) -> str:
    where = f"{problem.file}:{problem.line}" if problem.line else problem.file
    link = None
    if file_url is not None and problem.file:
        path = (
            posixpath.normpath(posixpath.join(fleet_path, problem.file))
            if fleet_path
            else problem.file
        )
        link = file_url(path, problem.line or None)
    label = _code(where)
    return (
        f"- [{label}]({link}): {_text(problem.message)}"
        if link
        else f"- {label}: {_text(problem.message)}"
    )


# --- Markdown helpers ------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|#~])")


def _text(value: str) -> str:
    """Free text: one line, HTML-escaped, Markdown punctuation neutralised."""
    return _MD_SPECIAL.sub(r"\\\1", html.escape(_one_line(value), quote=False))


def _code(value: str) -> str:
    """An inline code span that survives backticks in ``value``."""
    value = _one_line(value)
    run = max((len(m) for m in re.findall(r"`+", value)), default=0)
    ticks = "`" * (run + 1)
    pad = " " if value.startswith("`") or value.endswith("`") else ""
    return f"{ticks}{pad}{value}{pad}{ticks}"


def _fence(content: str) -> str:
    run = max((len(m) for m in re.findall(r"`{3,}", content)), default=0)
    return "`" * max(3, run + 1)


def _one_line(value: str) -> str:
    return " ".join(value.split())


def _when(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _fit(head: str, middle: str, tail: str, limit: int = STATUS_DESCRIPTION_MAX) -> str:
    room = limit - len(head) - len(tail)
    if len(middle) > room:
        middle = middle[: max(room - 1, 0)].rstrip() + "…"
    return head + middle + tail

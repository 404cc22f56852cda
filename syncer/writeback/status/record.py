"""The write-back stage: after a reconcile, tell Git what happened.

:func:`report_reconcile` runs after :func:`syncer.reconcile.reconcile_once` (the callers
run it through :mod:`syncer.writeback.step`; the reconcile itself knows nothing of
it). It

1. gathers what the reconcile result does not carry (:func:`revision_facts`: the source
   URL and ref, the last good revision, the subject and author of a rejected commit),
2. builds the :class:`~syncer.writeback.status.model.StatusReport`
   (:mod:`syncer.writeback.status.build`),
   carrying per-object results forward from the previous report of the same revision,
3. hands it to :meth:`StatusWriter.publish <syncer.writeback.status.writer.StatusWriter.publish>`,
   which commits only when the state key changed and pushes (or queues) without force,
4. when — and only when — the state changed, updates the git note on the source commit
   (applied, failed or rejected; later the hosts and ``allHostsReachedAt``), so a poll
   that changes nothing writes neither a status commit nor a notes commit.

The previous report lives in ``<writer workdir>/last-status.yaml`` (a restarted controller
with an empty work dir reads it once from the status branch instead). Nothing here is
fatal to the reconcile: Git failures come back as :attr:`WritebackResult.error` (one line,
credentials already scrubbed by the source layer), are logged, and the queued entries go
out with a later reconcile.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from syncer.nodes.stage import NodeStageResult
from syncer.reconcile import ReconcileResult, Stage
from syncer.source import GitSource, SourceError
from syncer.source.auth import base_env
from syncer.source.errors import redact_url
from syncer.source.git import GitRunner
from syncer.source.state import write_atomic
from syncer.writeback.status.build import RevisionFacts, build_note, build_status, outcome_of
from syncer.writeback.status.model import Outcome, StatusReport
from syncer.writeback.status.writer import StatusWriter

log = logging.getLogger(__name__)

LAST_REPORT = "last-status.yaml"
_SHA = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class WritebackResult:
    """What the write-back stage did after one reconcile."""

    summary: str = ""  # the status commit subject (also when nothing changed)
    committed: bool = False  # the state changed: a status commit was queued
    noted: bool = False  # a note update was queued for the source commit
    pushed: int = 0  # entries pushed by this run (also older queued ones)
    pending: int = 0  # entries still queued (the remote was down or raced too often)
    error: str | None = None  # why entries are still queued, or why nothing was reported
    skipped: str | None = None  # nothing to report (dry run, no revision yet)

    @property
    def ok(self) -> bool:
        return self.error is None

    def describe(self) -> str:
        """One line for people, e.g. ``status: committed "Applied 3f2a9c1: …"``."""
        if self.skipped:
            return f"status: not written ({self.skipped})"
        what = f'committed "{self.summary}"' if self.committed else "unchanged"
        if self.noted:
            what += " + note"
        if self.pushed and not self.committed and not self.error:
            what += f"; pushed {self.pushed} queued"
        if self.error:
            return f"status: {what}; {self.pending} queued, not pushed: {self.error}"
        return f"status: {what}"

    def to_json(self) -> dict[str, object]:
        return {
            "summary": self.summary,
            "committed": self.committed,
            "noted": self.noted,
            "pushed": self.pushed,
            "pending": self.pending,
            "error": self.error,
            "skipped": self.skipped,
        }


class LastReport:
    """The report last published, kept next to the writer's journal."""

    def __init__(self, writer: StatusWriter) -> None:
        self._writer = writer
        self._path = writer.workdir / LAST_REPORT
        self._cached: StatusReport | None = None

    def load(self) -> StatusReport | None:
        if self._cached is not None:
            return self._cached
        try:
            self._cached = StatusReport.from_yaml(self._path.read_text(encoding="utf-8"))
            return self._cached
        except (OSError, ValueError):
            pass
        try:  # a fresh work dir: what the status branch says (one fetch, once)
            self._cached = self._writer.read_status()
        except SourceError as err:
            log.info("write-back: cannot read the status branch: %s", err.message)
        return self._cached

    def save(self, report: StatusReport) -> None:
        self._cached = report
        try:
            write_atomic(self._path, report.to_yaml().encode())
        except OSError as err:
            log.warning("write-back: cannot keep %s: %s", self._path, err)


def report_reconcile(
    result: ReconcileResult,
    nodes: NodeStageResult | None,
    writer: StatusWriter,
    *,
    source: GitSource | Path,
    notes: bool = True,
    controller: str | None = None,
    last: LastReport | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> WritebackResult:
    """Publish the state after ``result`` (see the module docstring). Never raises for
    Git trouble."""
    if result.applied is not None and result.applied.dry_run:
        return WritebackResult(skipped="dry run")
    last = last or LastReport(writer)
    controller = controller or writer.instance
    try:
        previous = last.load()
        facts = revision_facts(result, source, previous)
        if not facts.revision:
            flushed = writer.flush()
            return WritebackResult(pushed=flushed.pushed, pending=flushed.pending,
                                   error=flushed.error, skipped="no revision known yet")
        report = build_status(result, nodes, facts, time=clock(), controller=controller,
                              previous=previous)
        published = writer.publish(report)
        last.save(report)
        pushed, pending, error = published.pushed, published.pending, published.error
        noted = False
        if published.committed and notes and _SHA.match(facts.revision):
            done = writer.write_note(facts.revision, build_note(report, nodes,
                                                                controller=controller))
            noted = True
            pushed, pending, error = pushed + done.pushed, done.pending, done.error or error
    except SourceError as err:
        log.warning("write-back failed: %s", err.message)
        return WritebackResult(error=err.message, pending=len(writer.pending))
    except OSError as err:
        log.warning("write-back failed: %s", err)
        return WritebackResult(error=f"write-back: {err.strerror or err}")
    outcome = WritebackResult(report.summary_line(), published.committed, noted, pushed,
                              pending, error)
    if published.committed:
        log.info("write-back: %s", outcome.describe())
    elif error:
        log.warning("write-back: %s", outcome.describe())
    return outcome


def revision_facts(
    result: ReconcileResult, source: GitSource | Path, previous: StatusReport | None
) -> RevisionFacts:
    """The source side of the report: which commit, the last good one, its subject."""
    kept = previous.source.applied_revision if previous is not None else ""
    if isinstance(source, Path):
        applied = result.revision if outcome_of(result) is Outcome.APPLIED else kept
        return RevisionFacts(str(source.resolve()), "", result.revision, applied)
    good = source.last_good
    applied = good.sha if good is not None else kept
    rejected = source.rejected
    base = RevisionFacts(redact_url(source.config.url), source.config.ref, "", applied)
    revision = result.source_revision
    if revision is not None:
        return _with(base, revision.sha, revision.subject, revision.author)
    if result.revision:
        at_source = (result.stage is Stage.SOURCE and rejected is not None
                     and rejected[0] == result.revision)
        return _with(base, result.revision, *commit_info(source, result.revision),
                     rejected=at_source)
    # The remote could not be read at all: the report is about the revision last seen.
    sha = source.last_seen or applied
    return _with(base, sha, *commit_info(source, sha)) if sha else base


def commit_info(source: GitSource, sha: str) -> tuple[str, str]:
    """(subject, author) of a commit in the source's clone; blanks when unknown."""
    if not _SHA.match(sha):
        return "", ""
    runner = GitRunner(source.git_dir, base_env())
    status, out, _ = runner.run_status("log", "-1", "--no-show-signature",
                                       "--format=%s%x1f%an <%ae>", sha)
    if status != 0 or "\x1f" not in out:
        return "", ""
    subject, _, author = out.strip().partition("\x1f")
    return subject, author


def _with(base: RevisionFacts, sha: str, message: str, author: str,
          rejected: bool = False) -> RevisionFacts:
    return RevisionFacts(base.url, base.ref, sha, base.applied_revision, message, author,
                         rejected)

"""Write-back to Git: the status branch and the ``refs/notes/syncer`` notes.

:class:`StatusWriter` owns a scratch bare repository (``<workdir>/writeback.git``) and a
journal (``<workdir>/journal/``). Nothing here touches a work tree:

1. **Queue.** :meth:`StatusWriter.publish` compares the report's state key with the last
   one queued; equal means nothing changed and nothing is committed. Otherwise the files
   (``status.yaml``, ``STATUS.md``) and the message go into the durable journal
   (:mod:`syncer.writeback.status.journal`). :meth:`StatusWriter.write_note` queues a note update
   the same way. From then on the state change survives push failures and restarts.
2. **Build on the remote head.** A flush fetches the remote branch (or notes ref) and
   builds one commit per queued entry on top of it with plumbing — ``hash-object``,
   ``read-tree``/``update-index``/``write-tree`` in a temporary index, ``commit-tree`` —
   so files other writers put on the branch are kept. A note update is merged into the
   note already on the remote (:func:`syncer.writeback.status.notes.merge_notes`).
3. **Push without force.** ``git push origin <commit>:<ref>`` only succeeds as a
   fast-forward. When another writer got there first the push is rejected; the writer
   re-fetches, rebuilds the queued commits on the new head, and tries again with a short
   growing backoff — the other history stays, as an ancestor. Entries leave the journal
   only after their push succeeded; an entry pushed just before a crash is recognised by
   its ``Syncer-Entry`` trailer on the remote and not pushed twice.
4. **Outages.** When the remote cannot be reached the entries stay queued and the next
   attempt waits (exponential backoff up to ``max_backoff``); any later
   :meth:`StatusWriter.publish`, :meth:`StatusWriter.write_note` or
   :meth:`StatusWriter.flush` pushes the whole queue, in order.

Status commits carry the trailers ``Syncer-Source`` (the source commit), ``Syncer-State``
(the state key) and ``Syncer-Entry``. Authentication is the source's
(:func:`syncer.source.auth.git_env`); the status branch may live in another repository.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from syncer.names import NOTES_REF, STATUS_BRANCH, TRAILER_ENTRY, TRAILER_SOURCE, TRAILER_STATE
from syncer.source.auth import base_env, git_env
from syncer.source.config import RemoteConfig
from syncer.source.errors import Reason, SourceError, classify, redact_url
from syncer.source.git import GitRunner, init_bare
from syncer.source.locking import WorkdirLock
from syncer.source.state import write_atomic
from syncer.writeback.status.journal import Journal, JournalEntry
from syncer.writeback.status.model import StatusReport, dump_yaml
from syncer.writeback.status.notes import ApplyNote, merge_notes, parse_note

log = logging.getLogger(__name__)

STATUS_FILE = "status.yaml"
MARKDOWN_FILE = "STATUS.md"


@dataclass(frozen=True)
class Identity:
    """Author and committer of status and notes commits."""

    name: str = "syncer"
    email: str = "syncer@localhost"


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5  # push attempts per flush when other writers race us
    backoff: float = 0.2  # first delay (seconds) between attempts; doubles, with jitter
    max_backoff: float = 60.0  # cap of the wait between flushes while the remote is down


@dataclass(frozen=True)
class PublishResult:
    committed: bool  # a new state (or note) was queued by this call
    pushed: int  # entries pushed by this call
    pending: int  # entries still queued
    error: str | None = None  # why the queue is not empty (one line, no credentials)


@dataclass(frozen=True)
class _Target:
    """A ref we push to: the status branch or the notes ref."""

    kind: str  # "status" | "note"
    remote_ref: str
    tracking_ref: str


def default_instance() -> str:
    """The controller instance id: the host name (the pod name in a cluster)."""
    return socket.gethostname()


@dataclass
class _WriterState:
    last_key: str | None = None
    failures: int = 0
    retry_at: float = 0.0
    last_error: str | None = None


class StatusWriter:
    """Commits status and notes to a remote, never forcing, never losing a state."""

    def __init__(
        self,
        remote: RemoteConfig | str,
        workdir: Path,
        branch: str = STATUS_BRANCH,
        *,
        notes_ref: str = NOTES_REF,
        identity: Identity | None = None,
        instance: str | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.remote = RemoteConfig(remote) if isinstance(remote, str) else remote
        self.remote.check()
        if not notes_ref.startswith("refs/notes/"):
            raise SourceError(f"notes ref {notes_ref!r} must start with refs/notes/",
                              Reason.CONFIG)
        self.workdir = workdir.resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.branch = branch.removeprefix("refs/heads/")
        self.notes_ref = notes_ref
        self.identity = identity or Identity()
        self.instance = instance or default_instance()
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._clock = clock
        self._lock = WorkdirLock(self.workdir)
        self._journal = Journal(self.workdir / "journal")
        self._state_path = self.workdir / "writeback.json"
        # The text of the note this writer built last, and its mapping: the next update
        # of the same note (three per reconcile with a rollout) merges into it without
        # parsing it back, unless someone else changed the note meanwhile.
        self._last_note: tuple[str, dict[str, Any]] | None = None
        self._targets = {
            "status": _Target("status", f"refs/heads/{self.branch}",
                              f"refs/remotes/origin/{self.branch}"),
            "note": _Target("note", notes_ref,
                            "refs/syncer/remote-notes/" + notes_ref.removeprefix("refs/notes/")),
        }
        with self._lock:
            git_dir = self.workdir / "writeback.git"
            init_bare(git_dir)
            remote = self.remote
            # Credentials only reach the git processes that talk to the remote.
            self._git = GitRunner(git_dir, base_env(), remote.url, remote.timeout)
            self._remote = GitRunner(git_dir, lambda: git_env(remote), remote.url,
                                     remote.timeout)
            self._git.run("check-ref-format", self._targets["status"].remote_ref)
            self._git.run("check-ref-format", notes_ref)
            self._git.run("config", "remote.origin.url", self.remote.url)
            self._state = self._load_state()

    # -- public API --------------------------------------------------------------------

    @property
    def pending(self) -> list[JournalEntry]:
        """Entries queued and not yet pushed, oldest first."""
        with self._lock:
            return self._journal.entries()

    def publish(self, report: StatusReport) -> PublishResult:
        """Queue ``report`` as a status commit if the state changed; push the queue."""
        with self._lock:
            key = report.state_key()
            queued = self._journal.entries("status")
            last = queued[-1].data["state_key"] if queued else self._state.last_key
            committed = key != last
            if committed:
                self._journal.append("status", self._status_entry(report, key), report.time)
                self._state.last_key = key
                self._save_state()
            result = self.flush()
            return PublishResult(committed, result.pushed, result.pending, result.error)

    def write_note(self, source_sha: str, note: ApplyNote | Mapping[str, Any]) -> PublishResult:
        """Queue a note update for ``source_sha`` (merged into its note); push the queue."""
        if len(source_sha) != 40 or any(c not in "0123456789abcdef" for c in source_sha):
            raise SourceError(f"a note needs a full commit SHA, not {source_sha!r}",
                              Reason.CONFIG)
        data = note.to_dict() if isinstance(note, ApplyNote) else dict(note)
        data["commit"] = source_sha
        if "outcome" in data and not data.get("controller"):
            data["controller"] = self.instance  # who applied it; partial updates keep it
        with self._lock:
            self._journal.append("note", {"commit": source_sha, "note": data},
                                 datetime.now(UTC))
            result = self.flush()
            return PublishResult(True, result.pushed, result.pending, result.error)

    def flush(self, immediately: bool = False) -> PublishResult:
        """Push everything queued, in order. Waits out the outage backoff unless told not to.

        Never raises for remote trouble: the result says what is still pending and why.
        """
        with self._lock:
            entries = self._journal.entries()
            if not entries:
                return PublishResult(False, 0, 0)
            if not immediately and self._clock() < self._state.retry_at:
                return PublishResult(False, 0, len(entries), self._state.last_error)
            pushed = 0
            try:
                for kind in ("status", "note"):
                    queued = [e for e in entries if e.kind == kind]
                    if queued:
                        pushed += self._push_queue(self._targets[kind], queued)
            except SourceError as err:  # also a token file missing mid-rotation: retry later
                self._state.failures += 1
                delay = min(self.retry.max_backoff,
                            self.retry.backoff * 2 ** self._state.failures)
                self._state.retry_at = self._clock() + delay
                self._state.last_error = err.message
                pending = len(self._journal.entries())
                log.warning("write-back: %s; %d entries queued, next try in %.1fs",
                            err.message, pending, delay)
                return PublishResult(False, pushed, pending, err.message)
            self._state.failures = 0
            self._state.retry_at = 0.0
            self._state.last_error = None
            return PublishResult(False, pushed, len(self._journal.entries()))

    def read_status(self) -> StatusReport | None:
        """The status on the remote branch (fetched now), or None when there is none."""
        with self._lock:
            tip = self._fetch(self._targets["status"])
            if tip is None:
                return None
            status, text, _ = self._git.run_status("cat-file", "blob", f"{tip}:{STATUS_FILE}")
            return StatusReport.from_yaml(text) if status == 0 else None

    def read_note(self, source_sha: str) -> dict[str, Any] | None:
        """The note on ``source_sha`` as on the remote (fetched now), or None."""
        with self._lock:
            tip = self._fetch(self._targets["note"])
            if tip is None:
                return None
            found = self._find_note(tip, source_sha)
            return parse_note(found[1]) if found else None

    # -- queue -> commits -> push ------------------------------------------------------

    def _push_queue(self, target: _Target, entries: list[JournalEntry]) -> int:
        """Push ``entries`` as commits on ``target``; rebuild and retry on races."""
        last_reason = ""
        for attempt in range(self.retry.attempts):
            tip = self._fetch(target)
            done = self._pushed_entry_ids(tip)
            already = [e for e in entries if e.id in done]
            if already:
                log.info("write-back: %d entries were already pushed", len(already))
                self._journal.remove(already)
            todo = [e for e in entries if e.id not in done]
            if not todo:
                return 0
            head = tip
            for entry in todo:
                head = self._build(target, head, entry)
            if head == tip:  # every entry repeated the remote's state
                self._journal.remove(todo)
                return 0
            assert head is not None
            accepted, last_reason = self._push(head, target.remote_ref)
            if accepted:
                self._git.run("update-ref", target.tracking_ref, head)
                self._journal.remove(todo)
                log.info("write-back: pushed %d %s entries to %s", len(todo), target.kind,
                         target.remote_ref)
                return len(todo)
            delay = self.retry.backoff * 2 ** attempt * (0.5 + random.random())
            log.info("write-back: push to %s rejected (%s); rebuilding on the new head",
                     target.remote_ref, last_reason)
            self._sleep(delay)
        raise SourceError(
            f"push to {target.remote_ref} of {redact_url(self.remote.url)} was rejected "
            f"{self.retry.attempts} times ({last_reason})", Reason.PUSH_REJECTED,
        )

    def _fetch(self, target: _Target) -> str | None:
        """Fetch ``target`` into its tracking ref; its commit, or None if it does not exist."""
        status, _, err = self._remote.run_status(
            "fetch", "--no-tags", "--no-write-fetch-head", "--quiet", "origin",
            f"+{target.remote_ref}:{target.tracking_ref}",
        )
        if status == 0:
            return self._git.rev_parse(target.tracking_ref)
        if "couldn't find remote ref" in err:
            self._git.run_status("update-ref", "-d", target.tracking_ref)
            return None
        raise classify(err, self.remote.url)  # err is scrubbed already

    def _pushed_entry_ids(self, tip: str | None) -> set[str]:
        if tip is None:
            return set()
        out = self._git.run(
            "log", "-n", "500", f"--format=%(trailers:key={TRAILER_ENTRY},valueonly)", tip
        )
        return {line.strip() for line in out.splitlines() if line.strip()}

    def _push(self, commit: str, remote_ref: str) -> tuple[bool, str]:
        """Push ``commit`` to ``remote_ref`` as a fast-forward only (never forced)."""
        status, out, err = self._remote.run_status(
            "push", "--porcelain", "--quiet", "origin", f"{commit}:{remote_ref}"
        )
        if status == 0:
            return True, ""
        for line in out.splitlines():
            if line.startswith("!") and "rejected]" in line:
                return False, line.rsplit("\t", 1)[-1].strip()
        if "[rejected]" in err or "[remote rejected]" in err or "fetch first" in err:
            return False, "rejected"
        raise classify(err, self.remote.url)  # err is scrubbed already

    def _build(self, target: _Target, parent: str | None, entry: JournalEntry) -> str | None:
        if target.kind == "status":
            return self._build_status(parent, entry)
        return self._build_note(parent, entry)

    def _build_status(self, parent: str | None, entry: JournalEntry) -> str | None:
        data = entry.data
        if parent is not None and self._state_key_of(parent) == data["state_key"]:
            return parent  # another instance already recorded exactly this state
        tree = self._tree(parent, dict(data["files"]))
        trailers = {TRAILER_SOURCE: data["source"], TRAILER_STATE: data["state_key"],
                    TRAILER_ENTRY: entry.id}
        message = _message(data["subject"], data["body"], trailers)
        return self._commit(tree, parent, message, entry.created)

    def _build_note(self, parent: str | None, entry: JournalEntry) -> str:
        sha = str(entry.data["commit"])
        update = dict(entry.data["note"])
        found = self._find_note(parent, sha) if parent else None
        old: dict[str, Any] = {}
        if found is not None:
            last = self._last_note
            old = last[1] if last is not None and last[0] == found[1] else parse_note(found[1])
        merged = merge_notes(old, update)  # a new mapping; ``old`` is left as it was
        path = found[0] if found else self._note_path(parent, sha)
        text = dump_yaml(merged)
        self._last_note = (text.removesuffix("\n"), merged)  # as git cat-file reads back
        tree = self._tree(parent, {path: text})
        outcome = merged.get("outcome", "updated")
        message = _message(f"Notes added by 'syncer': {outcome} {sha[:7]}", "",
                           {TRAILER_SOURCE: sha, TRAILER_ENTRY: entry.id})
        return self._commit(tree, parent, message, entry.created)

    def _state_key_of(self, commit: str) -> str:
        return self._git.run(
            "log", "-1", f"--format=%(trailers:key={TRAILER_STATE},valueonly)", commit
        ).strip()

    def _find_note(self, tip: str | None, sha: str) -> tuple[str, str] | None:
        """(path, text) of the note on ``sha`` in notes commit ``tip`` (any fan-out)."""
        if tip is None:
            return None
        for path in (sha, f"{sha[:2]}/{sha[2:]}", f"{sha[:2]}/{sha[2:4]}/{sha[4:]}"):
            status, text, _ = self._git.run_status("cat-file", "blob", f"{tip}:{path}")
            if status == 0:
                return path, text
        return None

    def _note_path(self, tip: str | None, sha: str) -> str:
        """Where a new note goes: fanned out like the existing tree (as git notes does)."""
        if tip is None:
            return sha
        listing = self._git.run("ls-tree", f"{tip}^{{tree}}")
        fanned = any(line.split()[1] == "tree" and len(line.split("\t")[-1]) == 2
                     for line in listing.splitlines() if line.strip())
        return f"{sha[:2]}/{sha[2:]}" if fanned else sha

    def _tree(self, parent: str | None, files: Mapping[str, str]) -> str:
        """The tree of ``parent`` with ``files`` added or replaced (temporary index)."""
        scratch = Path(tempfile.mkdtemp(dir=self.workdir, prefix=".index-"))
        try:
            env = {"GIT_INDEX_FILE": str(scratch / "index")}
            if parent is None:
                self._git.run("read-tree", "--empty", extra_env=env)
            else:
                self._git.run("read-tree", f"{parent}^{{tree}}", extra_env=env)
            lines = []
            for path, text in sorted(files.items()):
                blob = self._git.run("hash-object", "-w", "--stdin", stdin=text.encode())
                lines.append(f"100644 blob {blob.strip()}\t{path}\n")
            self._git.run("update-index", "--add", "--index-info",
                          stdin="".join(lines).encode(), extra_env=env)
            return self._git.run("write-tree", extra_env=env).strip()
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _commit(self, tree: str, parent: str | None, message: str, created: datetime) -> str:
        ident = self.identity
        env = {
            "GIT_AUTHOR_NAME": ident.name, "GIT_AUTHOR_EMAIL": ident.email,
            "GIT_AUTHOR_DATE": created.astimezone(UTC).isoformat(),
            "GIT_COMMITTER_NAME": ident.name, "GIT_COMMITTER_EMAIL": ident.email,
        }
        args = ["commit-tree", "--no-gpg-sign", tree, *(["-p", parent] if parent else [])]
        return self._git.run(*args, "-F", "-", stdin=message.encode(), extra_env=env).strip()

    # -- entries and state -------------------------------------------------------------

    def _status_entry(self, report: StatusReport, key: str) -> dict[str, Any]:
        src = report.source
        body = [f"Source: {redact_url(src.url)} {src.ref}@sha1:{src.revision}",
                f"Controller: {report.controller or self.instance}"]
        if report.error:
            body.append(f"Error: {' '.join(report.error.split())[:500]}")
        return {
            "files": {STATUS_FILE: report.to_yaml(), MARKDOWN_FILE: report.to_markdown()},
            "subject": report.summary_line(),
            "body": "\n".join(body),
            "state_key": key,
            "source": src.revision,
        }

    def _load_state(self) -> _WriterState:
        try:
            data = json.loads(self._state_path.read_text(encoding="utf-8"))
            return _WriterState(last_key=data.get("last_key"))
        except (OSError, ValueError):
            return _WriterState()

    def _save_state(self) -> None:
        write_atomic(self._state_path, json.dumps({"last_key": self._state.last_key}).encode())


def _message(subject: str, body: str, trailers: Mapping[str, str]) -> str:
    parts = [subject.strip()]
    if body.strip():
        parts.append(body.strip())
    parts.append("\n".join(f"{k}: {v}" for k, v in trailers.items()))
    return "\n\n".join(parts) + "\n"

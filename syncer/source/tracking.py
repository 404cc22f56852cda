"""GitSource: track one branch or tag of a remote, cheaply, with one local clone.

Polling (:meth:`GitSource.poll`) costs one ``git ls-remote`` round trip while nothing
changes. Only when the remote head differs from the last fetched one does it run
``git fetch origin +refs/heads/<b>:refs/remotes/origin/<b>`` — the tracked ref only, no
tags, into the single bare clone at ``<workdir>/repo.git`` that lives as long as the work
dir does (it is created with ``git init`` once and never re-cloned; each fetch negotiates
with what the clone already has, so only new objects travel). The remote head last fetched
and the last head handed out are persisted in ``<workdir>/state.json``, so a restarted
controller does not fetch again either.

The clone keeps the full history of the tracked ref by default: later fetches stay
incremental and ancestry questions can be answered. ``depth`` makes it shallow (as Flux
does). Neither matters for the write-back: notes and the status branch are written by
:mod:`syncer.writeback.status.writer` in a scratch repository of their own, and a note only names
the source commit, it does not need its objects.

A new head is verified (signatures, when configured) before it is handed out. A rejected
head is remembered with its reason and re-checked locally while it stays the head (no
fetch); the revision last confirmed good (:meth:`GitSource.mark_good`) stays current and
its files stay on disk.

Files of a commit are exported with ``git archive`` (only the fleet sub-path) into
``<workdir>/checkouts/<sha>/``: written to a temporary directory and renamed into place,
so a directory named after a SHA is always complete and never changes. Old exports are
removed, except the last good one, the last handed out, and ``keep_checkouts`` more.
``.gitattributes`` ``export-ignore`` is honoured, so files can be kept out of the fleet.
"""

from __future__ import annotations

import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from syncer.source.auth import base_env, git_env
from syncer.source.config import SourceConfig
from syncer.source.errors import Reason, SourceError, redact_url
from syncer.source.git import GitRunner, init_bare
from syncer.source.locking import WorkdirLock
from syncer.source.signatures import SignatureVerifier
from syncer.source.state import RevisionInfo, load_state, save_state


@dataclass(frozen=True)
class Revision:
    """One commit of the source, exported to disk for loading and rendering."""

    sha: str
    ref: str
    path: Path  # the fleet directory inside the export of this commit
    message: str
    author: str
    committed_at: datetime
    verified_by: str | None = None

    @property
    def name(self) -> str:
        """Flux-style revision name, e.g. ``main@sha1:3f2a9c1…``."""
        return f"{self.ref}@sha1:{self.sha}"

    @property
    def subject(self) -> str:
        return self.message.strip().splitlines()[0] if self.message.strip() else ""


@dataclass(frozen=True)
class RemoteHead:
    """What ``ls-remote`` says the tracked ref is."""

    name: str  # full remote ref name, e.g. refs/heads/main
    target: str  # the object the ref points at (a tag object for annotated tags)
    commit: str  # the commit it resolves to

    @property
    def is_tag(self) -> bool:
        return self.name.startswith("refs/tags/")


class GitSource:
    """The tracked branch or tag of one remote repository (see the module docstring)."""

    def __init__(self, config: SourceConfig):
        config.check()
        self.config = config
        self.workdir = config.workdir.resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._git_dir = self.workdir / "repo.git"
        self._checkouts = self.workdir / "checkouts"
        self._state_path = self.workdir / "state.json"
        self._lock = WorkdirLock(self.workdir)
        self._verifier = (
            SignatureVerifier(config.verify, self.workdir / "gnupg") if config.verify else None
        )
        with self._lock:
            init_bare(self._git_dir)
            remote = config.remote
            # Credentials only reach the git processes that talk to the remote.
            self._git = GitRunner(self._git_dir, base_env(), config.url, config.timeout)
            self._remote = GitRunner(
                self._git_dir, lambda: git_env(remote), config.url, config.timeout
            )
            self._git.run("config", "remote.origin.url", config.url)
            self._state = load_state(self._state_path)
            if (self._state.url, self._state.ref) != (config.url, config.ref):
                # Another remote or ref: what was fetched or seen no longer says anything.
                self._state.url, self._state.ref = config.url, config.ref
                self._state.fetched = None
                self._state.seen = None
                self._state.rejected = None
                save_state(self._state_path, self._state)

    # -- what is known -----------------------------------------------------------------

    @property
    def git_dir(self) -> Path:
        """The one local clone (bare)."""
        return self._git_dir

    @property
    def last_seen(self) -> str | None:
        """SHA of the last head :meth:`poll` handed out."""
        return self._state.seen.sha if self._state.seen else None

    @property
    def last_fetched(self) -> str | None:
        """The remote ref's object as of the last fetch."""
        return self._state.fetched

    @property
    def rejected(self) -> tuple[str, str] | None:
        """(sha, reason) of the current remote head when it failed verification."""
        rej = self._state.rejected
        return (rej["sha"], rej["reason"]) if rej else None

    @property
    def last_good(self) -> Revision | None:
        """The revision last confirmed applied with :meth:`mark_good`."""
        return self._revision(self._state.good) if self._state.good else None

    def mark_good(self, revision: Revision) -> None:
        """Record ``revision`` as applied: it stays current until a newer one is good."""
        with self._lock:
            self._state.good = _info_of(revision)
            save_state(self._state_path, self._state)

    # -- polling -----------------------------------------------------------------------

    def remote_head(self) -> RemoteHead:
        """Ask the remote for the tracked ref: one ``git ls-remote`` round trip."""
        ref = self.config.ref
        candidates = [ref] if ref.startswith("refs/") else [f"refs/heads/{ref}", f"refs/tags/{ref}"]
        patterns = [p for c in candidates for p in (c, c + "^{}")]
        out = self._remote.run("ls-remote", "origin", *patterns)
        refs: dict[str, str] = {}
        for line in out.splitlines():
            sha, _, name = line.partition("\t")
            refs[name.strip()] = sha.strip()
        for name in candidates:
            if name in refs:
                target = refs[name]
                return RemoteHead(name, target, refs.get(name + "^{}", target))
        raise SourceError(
            f"ref {ref!r} not found in {redact_url(self.config.url)}", Reason.NOT_FOUND
        )

    def poll(self) -> Revision | None:
        """The new head as a verified, exported Revision; None when it has not moved.

        Raises :class:`SourceError` when the remote cannot be read or the head is
        rejected; nothing already on disk or in the state changes then, so the last good
        revision stays current.
        """
        with self._lock:
            head = self.remote_head()
            state = self._state
            if head.target == state.fetched and head.commit == self.last_seen:
                return None
            if head.target != state.fetched or not self._git.has_object(head.commit):
                head = self._fetch_tracked(head)
            try:
                verified_by = self._verify(head)
                info = self._read_info(head.commit, verified_by)
                revision = self._revision(info, export=True)
            except SourceError as err:
                state.rejected = {"sha": head.commit, "reason": err.message}
                save_state(self._state_path, state)
                raise
            state.seen = info
            state.rejected = None
            save_state(self._state_path, state)
            self._prune_checkouts()
            return revision

    def _fetch_tracked(self, head: RemoteHead) -> RemoteHead:
        local = _local_name(head.name)
        args = ["fetch", "--no-tags", "--no-write-fetch-head", "--quiet"]
        if self.config.depth is not None:
            args.append(f"--depth={self.config.depth}")
        self._remote.run(*args, "origin", f"+{head.name}:{local}")
        target = self._git.rev_parse(local)
        commit = self._git.rev_parse(f"{local}^{{commit}}")
        if target is None or commit is None:
            raise SourceError(f"fetching {head.name} did not produce a commit", Reason.GIT)
        # The remote may have moved again since ls-remote: what we fetched is the truth.
        self._state.fetched = target
        save_state(self._state_path, self._state)
        return RemoteHead(head.name, target, commit)

    def _verify(self, head: RemoteHead) -> str | None:
        if self._verifier is None or self.config.verify is None:
            return None
        mode = self.config.verify.mode
        signers: list[str] = []
        if mode in ("tag", "tag-and-head"):
            if not head.is_tag:
                raise SourceError(
                    f"verify mode {mode!r} needs a tag, but {head.name} is not one",
                    Reason.CONFIG, sha=head.commit,
                )
            name = head.name.removeprefix("refs/tags/")
            result = self._verifier.verify_tag(self._git, head.target, name)
            if not result.ok:
                raise SourceError(result.reason or "tag rejected", Reason.VERIFICATION,
                                  sha=head.commit)
            signers.append(f"tag {result.signer}")
        if mode in ("head", "tag-and-head"):
            result = self._verifier.verify_commit(self._git, head.commit)
            if not result.ok:
                raise SourceError(result.reason or "commit rejected", Reason.VERIFICATION,
                                  sha=head.commit)
            signers.append(result.signer or "")
        return "; ".join(signers)

    # -- other refs and commits --------------------------------------------------------

    def fetch_ref(self, refspec: str) -> str:
        """Fetch one ref of the remote (e.g. ``refs/pull/7/head``); return its commit."""
        source = refspec.removeprefix("+").split(":", 1)[0]
        if not source.startswith("refs/"):
            source = f"refs/heads/{source}"
        status, _, _ = self._git.run_status("check-ref-format", source)
        if status != 0 or source.startswith("-"):
            raise SourceError(f"invalid ref {refspec!r}", Reason.CONFIG)
        local = "refs/syncer/fetched/" + source.removeprefix("refs/")
        with self._lock:
            self._remote.run("fetch", "--no-tags", "--no-write-fetch-head", "--quiet",
                             "origin", f"+{source}:{local}")
            commit = self._git.rev_parse(f"{local}^{{commit}}")
        if commit is None:
            raise SourceError(f"{source} does not point at a commit", Reason.NOT_FOUND)
        return commit

    def checkout(self, sha: str) -> Path:
        """Export commit ``sha`` (already fetched); return its fleet directory."""
        with self._lock:
            full = self._resolve(sha)
            path = self._export(full)
            self._prune_checkouts(full)
            return path

    def revision(self, sha: str) -> Revision:
        """A Revision (exported) for any commit in the clone, e.g. a PR head."""
        with self._lock:
            full = self._resolve(sha)
            seen = self._state.seen
            verified_by = seen.verified_by if seen and seen.sha == full else None
            info = self._read_info(full, verified_by)
            revision = self._revision(info, export=True)
            self._prune_checkouts(full)
            return revision

    # -- internals ---------------------------------------------------------------------

    def _resolve(self, sha: str) -> str:
        if not sha or sha.startswith("-"):
            raise SourceError(f"invalid commit {sha!r}", Reason.CONFIG)
        full = self._git.rev_parse(f"{sha}^{{commit}}")
        if full is None:
            raise SourceError(f"commit {sha[:12]} is not in the local clone; fetch it first",
                              Reason.NOT_FOUND, sha=sha)
        return full

    def _read_info(self, sha: str, verified_by: str | None) -> RevisionInfo:
        out = self._git.run("log", "-1", "--no-show-signature",
                               "--format=%an <%ae>%x1f%cI%x1f%B", sha)
        author, committed, message = ([*out.split("\x1f", 2), "", ""])[:3]
        return RevisionInfo(
            sha=sha,
            ref=self.config.ref,
            message=message.rstrip("\n"),
            author=author,
            committed_at=datetime.fromisoformat(committed.strip()),
            verified_by=verified_by,
        )

    def _revision(self, info: RevisionInfo, export: bool = False) -> Revision:
        path = self._export(info.sha) if export else self._fleet_dir(info.sha)
        return Revision(
            sha=info.sha, ref=info.ref, path=path, message=info.message, author=info.author,
            committed_at=info.committed_at, verified_by=info.verified_by,
        )

    def _fleet_dir(self, sha: str) -> Path:
        sub = self.config.fleet_path
        return self._checkouts / sha / sub if sub else self._checkouts / sha

    def _export(self, sha: str) -> Path:
        """Write the fleet files of ``sha`` to ``checkouts/<sha>`` (atomically, once)."""
        target = self._checkouts / sha
        sub = self.config.fleet_path
        if sub:
            status, kind, _ = self._git.run_status("cat-file", "-t", f"{sha}:{sub}")
            if status != 0 or kind.strip() != "tree":
                raise SourceError(
                    f"path {sub!r} does not exist in commit {sha[:7]}", Reason.PATH, sha=sha
                )
        if target.is_dir():
            if self._fleet_dir(sha).is_dir():
                target.touch()  # most recently used
                return self._fleet_dir(sha)
            shutil.rmtree(target)  # exported for another fleet path
        self._checkouts.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=self._checkouts, prefix=".tmp-"))
        try:
            archive = tmp / ".archive.tar"
            args = ["archive", "--format=tar", f"--output={archive}", sha]
            self._git.run(*args, *(["--", sub] if sub else []))
            with tarfile.open(archive) as tar:
                tar.extractall(tmp, filter="data")
            archive.unlink()
            tmp.rename(target)
        except (OSError, tarfile.TarError) as err:
            raise SourceError(f"cannot export commit {sha[:7]}: {err}", Reason.GIT,
                              sha=sha) from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return self._fleet_dir(sha)

    def _prune_checkouts(self, *also_keep: str) -> None:
        if not self._checkouts.is_dir():
            return
        keep = {*also_keep}
        if self._state.seen:
            keep.add(self._state.seen.sha)
        if self._state.good:
            keep.add(self._state.good.sha)
        others: list[Path] = []
        for entry in self._checkouts.iterdir():
            if entry.name.startswith(".tmp-"):
                shutil.rmtree(entry, ignore_errors=True)  # left by a crash (we hold the lock)
            elif entry.name not in keep:
                others.append(entry)
        others.sort(key=lambda p: p.stat().st_mtime, reverse=True)
        for stale in others[self.config.keep_checkouts:]:
            shutil.rmtree(stale, ignore_errors=True)


def _local_name(remote_ref: str) -> str:
    """Where the tracked remote ref is kept in the clone."""
    if remote_ref.startswith("refs/heads/"):
        return "refs/remotes/origin/" + remote_ref.removeprefix("refs/heads/")
    if remote_ref.startswith("refs/tags/"):
        return remote_ref
    return "refs/syncer/tracked/" + remote_ref.removeprefix("refs/")


def _info_of(revision: Revision) -> RevisionInfo:
    return RevisionInfo(
        sha=revision.sha, ref=revision.ref, message=revision.message, author=revision.author,
        committed_at=revision.committed_at, verified_by=revision.verified_by,
    )

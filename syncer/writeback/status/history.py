"""``syncer history``: the audit trail read from the notes on the source branch.

For each commit of the branch (newest first) the note under ``refs/notes/syncer``
(:mod:`syncer.writeback.status.notes`) says when syncer applied it, which instance, the outcome and
— once written — when all hosts reached it. Commits without a note were never applied
(superseded by a newer commit before a poll saw them); they are listed with ``--all``.

The repository is a local path (a clone or a bare repository; ``refs/notes/syncer`` must
have been fetched, e.g. ``git fetch origin refs/notes/syncer:refs/notes/syncer``) or a URL,
which is read with the same authentication as the source (:mod:`syncer.source.auth`) into
a temporary bare repository: only the branch and the notes ref are fetched.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import git

from syncer.names import NOTES_REF
from syncer.source.auth import base_env, git_env
from syncer.source.config import RemoteConfig, url_scheme
from syncer.source.errors import Reason, SourceError, classify
from syncer.source.git import GitRunner, init_bare
from syncer.writeback.status.model import format_time, parse_time
from syncer.writeback.status.notes import parse_note

DASH = "—"


@dataclass(frozen=True)
class HistoryRow:
    sha: str
    author: str
    committed_at: datetime
    applied_at: datetime | None
    outcome: str
    controller: str
    all_hosts_reached_at: datetime | None

    def to_json(self) -> dict[str, str | None]:
        """The row for ``syncer history -o json|yaml`` (times in RFC 3339, UTC)."""
        def stamp(value: datetime | None) -> str | None:
            return value.isoformat() if value is not None else None

        return {"commit": self.sha, "author": self.author,
                "committedAt": stamp(self.committed_at), "appliedAt": stamp(self.applied_at),
                "outcome": self.outcome, "controller": self.controller,
                "allHostsReachedAt": stamp(self.all_hosts_reached_at)}

    @property
    def until_all_hosts(self) -> str:
        """How long from apply until every host ran it; "in progress"; or a dash."""
        if self.applied_at is None or self.outcome != "Applied":
            return DASH
        if self.all_hosts_reached_at is None:
            return "in progress"
        return format_duration(self.all_hosts_reached_at - self.applied_at)


def format_duration(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def read_history(
    repo: str,
    branch: str = "main",
    limit: int = 20,
    *,
    notes_ref: str = NOTES_REF,
    remote: RemoteConfig | None = None,
    all_commits: bool = False,
) -> list[HistoryRow]:
    """Rows for the newest ``limit`` commits of ``branch`` (only applied ones by default)."""
    with _repository(repo, branch, notes_ref, remote) as (runner, ref):
        scan = limit if all_commits else max(limit * 20, 1000)
        out = runner.run(
            "log",
            f"-n{scan}",
            f"--notes={notes_ref}",
            "--format=%H%x1f%an%x1f%cI%x1f%N%x1e",
            ref,
        )
    rows: list[HistoryRow] = []
    for record in out.split("\x1e"):
        record = record.strip("\n")
        if not record:
            continue
        sha, author, committed, note_text = ([*record.split("\x1f", 3), "", "", ""])[:4]
        note = parse_note(note_text) if note_text.strip() else {}
        if not note and not all_commits:
            continue
        rows.append(
            HistoryRow(
                sha=sha,
                author=author,
                committed_at=datetime.fromisoformat(committed),
                applied_at=parse_time(note.get("appliedAt")),
                outcome=str(note.get("outcome", DASH if not note else "noted")),
                controller=str(note.get("controller", "")),
                all_hosts_reached_at=parse_time(note.get("allHostsReachedAt")),
            )
        )
        if len(rows) >= limit:
            break
    return rows


def format_table(rows: list[HistoryRow]) -> str:
    """A plain-text table, one row per commit."""
    header = ("COMMIT", "AUTHOR", "COMMITTED", "APPLIED", "OUTCOME", "ALL HOSTS")
    table = [header] + [
        (
            row.sha[:7],
            row.author,
            _when(row.committed_at),
            _when(row.applied_at) if row.applied_at else DASH,
            row.outcome,
            row.until_all_hosts,
        )
        for row in rows
    ]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)).rstrip() for r in table]
    return "\n".join(lines)


def _when(value: datetime) -> str:
    return format_time(value).replace("T", " ")


@contextmanager
def _repository(
    repo: str, branch: str, notes_ref: str, remote: RemoteConfig | None
) -> Iterator[tuple[GitRunner, str]]:
    """A runner on a repository holding ``branch`` and the notes, and the branch ref."""
    path = Path(repo)
    if "://" not in repo and not _is_scp(repo):
        try:
            git_dir = Path(git.Repo(str(path)).git_dir)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            raise SourceError(f"{repo} is not a Git repository", Reason.CONFIG) from None
        runner = GitRunner(git_dir, base_env())
        for candidate in (f"refs/heads/{branch}", f"refs/remotes/origin/{branch}", branch):
            if runner.rev_parse(f"{candidate}^{{commit}}"):
                yield runner, candidate
                return
        raise SourceError(f"branch {branch!r} not found in {repo}", Reason.NOT_FOUND)
    config = remote or RemoteConfig(repo)
    url_scheme(config.url)
    with tempfile.TemporaryDirectory(prefix="syncer-history-") as tmp:
        git_dir = Path(tmp) / "repo.git"
        init_bare(git_dir)
        runner = GitRunner(git_dir, git_env(config), config.url, config.timeout)
        runner.run(
            "fetch", "--no-tags", "--quiet", config.url, f"+refs/heads/{branch}:refs/heads/{branch}"
        )
        status, _, err = runner.run_status(
            "fetch", "--no-tags", "--quiet", config.url, f"+{notes_ref}:{notes_ref}"
        )
        if status != 0 and "couldn't find remote ref" not in err:
            raise classify(err, config.url, runner.env.secrets)
        yield runner, f"refs/heads/{branch}"


def _is_scp(repo: str) -> bool:
    try:
        return url_scheme(repo) == "ssh"
    except SourceError:
        return False

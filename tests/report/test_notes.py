"""Notes under refs/notes/syncer on applied source commits: written, merged, never forced."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from syncer.writeback.status.model import (
    HostStatus,
    ObjectStatus,
    Outcome,
    SourceStatus,
    StatusReport,
)
from syncer.writeback.status.notes import ApplyNote, parse_note
from syncer.writeback.status.writer import RetryPolicy, StatusWriter
from syncer_lab.gitrepos import WorkRepo, run

NOTES = "refs/notes/syncer"
FAST = RetryPolicy(attempts=4, backoff=0.01, max_backoff=0.05)
T0 = datetime(2026, 5, 4, 10, 0, 0, tzinfo=UTC)


def git(bare: Path, *args: str) -> str:
    return run("git", "--git-dir", str(bare), *args)


def remote_note(bare: Path, sha: str) -> dict[str, object]:
    return parse_note(git(bare, "notes", f"--ref={NOTES}", "show", sha))


def applied(sha: str, minutes: int = 0, reached: bool = False) -> StatusReport:
    version = "1.4.0" if reached else "1.3.0"
    return StatusReport(
        source=SourceStatus("file:///fleet.git", "main", sha, sha),
        time=T0 + timedelta(minutes=minutes), outcome=Outcome.APPLIED,
        objects=(ObjectStatus("RuntimeClass", "", "windows-2022", "created"),),
        hosts=(HostStatus("10.0.0.1", "win-1", version, "1.4.0", "Ready"),),
    )


@pytest.fixture
def remote(author: WorkRepo, bare_remote: Path) -> Path:
    git(bare_remote, "config", "receive.denyNonFastForwards", "true")
    return bare_remote


def writer(remote: Path, workdir: Path, instance: str = "syncer-0",
           cls: type[StatusWriter] = StatusWriter, **kw: object) -> StatusWriter:
    return cls(f"file://{remote}", workdir, retry=FAST, instance=instance,
               **kw)  # type: ignore[arg-type]


def test_note_on_the_applied_commit_and_a_later_update(remote: Path, author: WorkRepo,
                                                       tmp_path: Path) -> None:
    sha = author.head()
    w = writer(remote, tmp_path / "wb")
    result = w.write_note(sha, ApplyNote.from_report(applied(sha)))
    assert (result.pushed, result.pending) == (1, 0)
    note = remote_note(remote, sha)
    assert note["commit"] == sha and note["outcome"] == "Applied"
    assert note["appliedAt"] == "2026-05-04T10:00:00Z"
    assert note["controller"] == "syncer-0"
    assert note["objects"] == [{"kind": "RuntimeClass", "namespace": "", "name": "windows-2022",
                                "result": "created", "error": ""}]
    assert note["hosts"] == [{"address": "10.0.0.1", "node": "win-1", "version": "1.3.0",
                              "phase": "Ready", "error": ""}]
    assert "allHostsReachedAt" not in note

    w.write_note(sha, ApplyNote(sha, all_hosts_reached_at=T0 + timedelta(minutes=4)))
    note = remote_note(remote, sha)
    assert note["allHostsReachedAt"] == "2026-05-04T10:04:00Z"
    assert note["outcome"] == "Applied" and len(note["hosts"]) == 1  # type: ignore[arg-type]
    assert w.read_note(sha) == note
    assert ApplyNote.from_yaml(git(remote, "notes", f"--ref={NOTES}", "show", sha)).outcome \
        is Outcome.APPLIED


def test_rejected_commits_get_a_note_too(remote: Path, author: WorkRepo, tmp_path: Path) -> None:
    bad = author.commit("Unsigned", {"fleet/x.yaml": "x: 1\n"})
    author.push()
    writer(remote, tmp_path / "wb").write_note(
        bad, ApplyNote(bad, Outcome.REJECTED, T0, reason=f"commit {bad[:7]} is not signed"))
    note = remote_note(remote, bad)
    assert note["outcome"] == "Rejected" and note["reason"] == f"commit {bad[:7]} is not signed"
    assert note["controller"] == "syncer-0"


class RacingWriter(StatusWriter):
    def __init__(self, *args: object, other: Callable[[], None], races: int = 1,
                 **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.other, self.races, self.attempts = other, races, 0

    def _push(self, commit: str, remote_ref: str) -> tuple[bool, str]:
        self.attempts += 1
        if self.races > 0:
            self.races -= 1
            self.other()
        return super()._push(commit, remote_ref)


def test_notes_are_merged_with_a_concurrent_human_writer(remote: Path, author: WorkRepo,
                                                         tmp_path: Path) -> None:
    first = author.head()
    second = author.commit("Second", {"fleet/x.yaml": "x: 2\n"})
    author.push()
    human = WorkRepo(tmp_path / "human", f"file://{remote}", name="Bob", email="b@example.com")
    human.git("fetch", "-q", "origin", "main")

    def human_notes() -> None:  # the first note ever, while our push is on its way
        human.git("notes", f"--ref={NOTES}", "add", "-f", "-m", "rolled back by hand", first)
        human.git("push", "-q", "origin", NOTES)

    w = RacingWriter(f"file://{remote}", tmp_path / "wb", retry=FAST, other=human_notes)
    result = w.write_note(second, ApplyNote.from_report(applied(second)))
    assert (result.pushed, result.pending, result.error) == (1, 0, None)
    assert w.attempts == 2  # rejected once, rebuilt on the human's notes commit
    assert git(remote, "notes", f"--ref={NOTES}", "show", first) == "rolled back by hand\n"
    assert remote_note(remote, second)["outcome"] == "Applied"
    human_commit = human.git("rev-parse", NOTES).strip()
    git(remote, "merge-base", "--is-ancestor", human_commit, NOTES)


def test_a_note_changed_by_someone_else_is_read_again_before_the_next_update(
        remote: Path, author: WorkRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rollout updates its note several times in a row: the writer merges into the note
    it built last without parsing it back (a 4,000-object note took 0.4 s to read), but
    what someone else changed on the remote meanwhile is read and kept."""
    import syncer.writeback.status.writer as writer_module

    parsed: list[str] = []

    def counting_parse(text: str) -> dict[str, object]:
        parsed.append(text)
        return parse_note(text)

    monkeypatch.setattr(writer_module, "parse_note", counting_parse)
    sha = author.head()
    w = writer(remote, tmp_path / "wb")
    w.write_note(sha, ApplyNote.from_report(applied(sha)))
    w.write_note(sha, ApplyNote(sha, all_hosts_reached_at=T0 + timedelta(minutes=4)))
    assert parsed == []  # our own last note, merged into as built
    note = remote_note(remote, sha)
    assert note["outcome"] == "Applied" and note["allHostsReachedAt"] == "2026-05-04T10:04:00Z"

    human = WorkRepo(tmp_path / "human", f"file://{remote}", name="Bob", email="b@example.com")
    human.git("fetch", "-q", "origin", f"{NOTES}:{NOTES}")
    text = human.git("notes", f"--ref={NOTES}", "show", sha)
    human.git("notes", f"--ref={NOTES}", "add", "-f", "-m", text + "ticket: OPS-1", sha)
    human.git("push", "-q", "origin", NOTES)

    w.write_note(sha, ApplyNote(sha, all_hosts_reached_at=T0 + timedelta(minutes=2)))
    assert len(parsed) == 1  # the human's version, read
    note = remote_note(remote, sha)
    assert note["ticket"] == "OPS-1"
    assert note["allHostsReachedAt"] == "2026-05-04T10:02:00Z"  # the earliest
    assert note["outcome"] == "Applied" and len(note["hosts"]) == 1  # type: ignore[arg-type]


def test_two_instances_updating_the_same_note_both_count(remote: Path, author: WorkRepo,
                                                         tmp_path: Path) -> None:
    sha = author.head()
    other = writer(remote, tmp_path / "other", instance="syncer-1")
    ours = writer(remote, tmp_path / "ours", cls=RacingWriter, other=lambda: other.write_note(
        sha, ApplyNote(sha, all_hosts_reached_at=T0 + timedelta(minutes=9))))
    ours.write_note(sha, ApplyNote.from_report(applied(sha, minutes=1)))
    note = remote_note(remote, sha)
    assert note["allHostsReachedAt"] == "2026-05-04T10:09:00Z"  # the other's update
    assert note["appliedAt"] == "2026-05-04T10:01:00Z"  # ours
    assert note["controller"] == "syncer-0"


def test_notes_queued_while_the_remote_is_down(remote: Path, author: WorkRepo,
                                               tmp_path: Path) -> None:
    sha = author.head()
    away = remote.with_name("away.git")
    remote.rename(away)
    w = writer(remote, tmp_path / "wb")
    assert w.write_note(sha, ApplyNote.from_report(applied(sha))).pending == 1
    assert w.write_note(sha, ApplyNote(sha, all_hosts_reached_at=T0)).pending == 2
    away.rename(remote)
    restarted = writer(remote, tmp_path / "wb")
    assert restarted.flush().pushed == 2
    note = remote_note(remote, sha)
    assert note["outcome"] == "Applied" and note["allHostsReachedAt"] == "2026-05-04T10:00:00Z"
    assert len(git(remote, "log", "--format=%H", NOTES).split()) == 2


def test_a_push_that_keeps_losing_races_stays_queued(remote: Path, author: WorkRepo,
                                                     tmp_path: Path) -> None:
    sha = author.head()
    counter = iter(range(100))
    other = writer(remote, tmp_path / "other", instance="syncer-1")

    def busy() -> None:
        other.write_note(sha, {"busy": next(counter)})

    w = writer(remote, tmp_path / "wb", cls=RacingWriter, other=busy, races=FAST.attempts)
    result = w.write_note(sha, ApplyNote.from_report(applied(sha)))
    assert result.pending == 1 and result.error is not None
    assert "rejected 4 times" in result.error
    result = w.flush(immediately=True)
    assert (result.pushed, result.pending) == (1, 0)
    note = remote_note(remote, sha)
    assert note["outcome"] == "Applied" and note["busy"] == 3


def test_fanned_out_notes_trees_are_respected(remote: Path, author: WorkRepo,
                                              tmp_path: Path) -> None:
    # 300 commits with notes, in one fast-import stream; like git notes, fast-import fans
    # the notes tree out (ab/cdef…) beyond ~256 notes.
    stream = []
    for i in range(1, 301):
        message = f"commit {i:03d}"
        stream += [f"commit refs/heads/many\nmark :{i}\n"
                   f"committer A <a@example.com> {1700000000 + i} +0000\n"
                   f"data {len(message)}\n{message}\n"]
    stream.append("commit refs/notes/syncer\ncommitter A <a@example.com> 1700000999 +0000\n"
                  "data 5\nnotes\n")
    stream += [f"N inline :{i}\ndata 4\nold\n" for i in range(1, 301)]
    run("git", "--git-dir", str(remote), "fast-import", "--quiet",
        input="".join(stream).encode())
    shas = git(remote, "rev-list", "--reverse", "many").split()
    assert "/" in git(remote, "ls-tree", "-r", "--name-only", NOTES).splitlines()[0]

    w = writer(remote, tmp_path / "wb")
    w.write_note(shas[7], {"outcome": "Applied"})  # an existing note, updated in place
    w.write_note(author.head(), ApplyNote.from_report(applied(author.head())))  # a new one
    assert remote_note(remote, shas[7])["outcome"] == "Applied"
    assert remote_note(remote, author.head())["outcome"] == "Applied"
    paths = git(remote, "ls-tree", "-r", "--name-only", NOTES).splitlines()
    assert len(paths) == 301 and all("/" in p for p in paths)

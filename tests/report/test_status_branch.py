"""The status branch: one commit per state change, pushed without force, never lost."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from plugins.git_fixtures import HTTPS_TOKEN

from syncer.source.config import RemoteConfig
from syncer.writeback.status.model import (
    HostStatus,
    ObjectStatus,
    Outcome,
    SourceStatus,
    StatusReport,
)
from syncer.writeback.status.writer import Identity, RetryPolicy, StatusWriter
from syncer_lab.gitrepos import WorkRepo, run
from syncer_lab.gitserver import HttpsGitServer

BRANCH = "syncer/status"
FAST = RetryPolicy(attempts=5, backoff=0.01, max_backoff=0.05)
T0 = datetime(2026, 5, 4, 10, 0, 0, tzinfo=UTC)


def git(bare: Path, *args: str) -> str:
    return run("git", "--git-dir", str(bare), *args)


def subjects(bare: Path, ref: str = BRANCH) -> list[str]:
    """Commit subjects on ``ref`` of the remote, oldest first."""
    return git(bare, "log", "--reverse", "--format=%s", ref).splitlines()


def report(sha: str, phase: str = "Upgrading", version: str = "1.3.0",
           minutes: int = 0, error: str = "") -> StatusReport:
    return StatusReport(
        source=SourceStatus("file:///fleet.git", "main", sha, sha, "Bump", "Alice"),
        time=T0 + timedelta(minutes=minutes),
        outcome=Outcome.APPLIED,
        objects=(ObjectStatus("ConfigMap", "openshift-windows-machine-config-operator",
                              "windows-instances", "configured"),),
        hosts=(HostStatus("10.0.0.1", "win-1", version, "1.4.0", phase, error),),
    )


@pytest.fixture
def remote(author: WorkRepo, bare_remote: Path) -> Path:
    """The fleet repository; any force push would be refused by the server."""
    git(bare_remote, "config", "receive.denyNonFastForwards", "true")
    return bare_remote


def writer(remote: Path | str, workdir: Path, **kw: object) -> StatusWriter:
    url = remote if isinstance(remote, str) else f"file://{remote}"
    kw.setdefault("instance", "syncer-test")
    return StatusWriter(url, workdir, retry=FAST, **kw)  # type: ignore[arg-type]


def test_publish_commits_status_files_without_touching_main(
    remote: Path, author: WorkRepo, tmp_path: Path
) -> None:
    main_before = git(remote, "rev-parse", "main")
    rep = report(author.head())
    result = writer(remote, tmp_path / "wb").publish(rep)
    assert (result.committed, result.pushed, result.pending, result.error) == (True, 1, 0, None)
    assert git(remote, "show", f"{BRANCH}:status.yaml") == rep.to_yaml()
    assert git(remote, "show", f"{BRANCH}:STATUS.md") == rep.to_markdown()
    assert git(remote, "ls-tree", "--name-only", BRANCH).split() == ["STATUS.md", "status.yaml"]
    message = git(remote, "log", "-1", "--format=%B", BRANCH)
    assert message.splitlines()[0] == (
        f"Applied {author.head()[:7]}: 1 object, hosts 0/1 at 1.4.0, 1 in progress"
    )
    assert f"Syncer-Source: {author.head()}" in message
    assert f"Syncer-State: {rep.state_key()}" in message
    assert git(remote, "log", "-1", "--format=%an <%ae>|%cn <%ce>", BRANCH).strip() == (
        "syncer <syncer@localhost>|syncer <syncer@localhost>"
    )
    assert git(remote, "rev-parse", "main") == main_before


def test_committer_identity_is_configurable(remote: Path, author: WorkRepo,
                                            tmp_path: Path) -> None:
    w = writer(remote, tmp_path / "wb", identity=Identity("Fleet Bot", "bot@example.com"),
               branch="ops/status")
    w.publish(report(author.head()))
    assert git(remote, "log", "-1", "--format=%cn <%ce>", "ops/status").strip() == (
        "Fleet Bot <bot@example.com>"
    )


def test_no_commit_when_nothing_changed(remote: Path, author: WorkRepo, tmp_path: Path) -> None:
    sha = author.head()
    w = writer(remote, tmp_path / "wb")
    assert w.publish(report(sha)).committed
    for minutes in (1, 2, 3):  # polls that change nothing but the time
        result = w.publish(report(sha, minutes=minutes))
        assert not result.committed and result.pushed == 0
    # ... also not after a restart
    assert not writer(remote, tmp_path / "wb").publish(report(sha, minutes=4)).committed
    assert len(subjects(remote)) == 1

    # Each change of state is one commit: host phase, new error, new revision.
    w.publish(report(sha, phase="Ready", version="1.4.0", minutes=5))
    w.publish(report(sha, phase="Failed", version="1.4.0", error="disk full", minutes=6))
    new = author.commit("Next", {"fleet/x.yaml": "x: 1\n"})
    author.push()
    w.publish(report(new, phase="Failed", version="1.4.0", error="disk full", minutes=7))
    assert len(subjects(remote)) == 4
    assert subjects(remote)[-1].startswith(f"Applied {new[:7]}:")


def test_a_human_commit_on_the_status_branch_is_kept(remote: Path, author: WorkRepo,
                                                     tmp_path: Path) -> None:
    w = writer(remote, tmp_path / "wb")
    w.publish(report(author.head()))
    human = WorkRepo(tmp_path / "human", f"file://{remote}", name="Bob Human",
                     email="bob@example.com")
    human.git("fetch", "-q", "origin", BRANCH)
    human.git("checkout", "-q", "-b", "status", "FETCH_HEAD")
    human_sha = human.commit("Add a note for the team", {"README.md": "Do not edit.\n"})
    human.push(BRANCH)

    result = w.publish(report(author.head(), phase="Ready", version="1.4.0", minutes=1))
    assert result.pushed == 1
    tip = git(remote, "rev-parse", BRANCH).strip()
    git(remote, "merge-base", "--is-ancestor", human_sha, tip)  # raises if not
    assert git(remote, "rev-parse", f"{tip}^").strip() == human_sha
    assert git(remote, "show", f"{BRANCH}:README.md") == "Do not edit.\n"
    assert "phase: Ready" in git(remote, "show", f"{BRANCH}:status.yaml")


class RacingWriter(StatusWriter):
    """Lets another writer push right before each of its first ``races`` pushes."""

    def __init__(self, *args: object, other: Callable[[], None], races: int = 1,
                 **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.other = other
        self.races = races
        self.push_attempts = 0

    def _push(self, commit: str, remote_ref: str) -> tuple[bool, str]:
        self.push_attempts += 1
        if self.races > 0:
            self.races -= 1
            self.other()
        return super()._push(commit, remote_ref)


def test_concurrent_push_by_another_instance_is_rebuilt_on_top(
    remote: Path, author: WorkRepo, tmp_path: Path
) -> None:
    sha = author.head()
    other = writer(remote, tmp_path / "other", instance="syncer-other")
    other.publish(report(sha, phase="Draining"))
    other_states = iter([report(sha, phase="Cordoned", minutes=1),
                         report(sha, phase="Transferring", minutes=2)])

    def other_pushes() -> None:
        assert other.publish(next(other_states)).pushed == 1

    ours = RacingWriter(f"file://{remote}", tmp_path / "ours", retry=FAST,
                        instance="syncer-ours", other=other_pushes, races=2)
    result = ours.publish(report(sha, phase="Ready", version="1.4.0", minutes=3))
    assert (result.pushed, result.pending, result.error) == (1, 0, None)
    assert ours.push_attempts == 3  # rejected twice, rebuilt twice
    log = git(remote, "log", "--reverse", "--format=%H %s", BRANCH).splitlines()
    assert len(log) == 4
    tip = log[-1].split()[0]
    for line in log[:-1]:  # every commit of the other writer is still in the history
        git(remote, "merge-base", "--is-ancestor", line.split()[0], tip)
    assert log[-1].endswith("hosts 1/1 at 1.4.0")
    assert "phase: Ready" in git(remote, "show", f"{BRANCH}:status.yaml")


def test_remote_down_queues_states_and_pushes_them_in_order_later(
    remote: Path, author: WorkRepo, tmp_path: Path
) -> None:
    sha = author.head()
    now = [0.0]
    w = StatusWriter(f"file://{remote}", tmp_path / "wb", retry=FAST, clock=lambda: now[0])
    w.publish(report(sha, phase="Draining"))
    away = remote.with_name("away.git")
    remote.rename(away)
    phases = ["Cordoned", "Transferring", "Verifying"]
    for i, phase in enumerate(phases, start=1):
        now[0] += 10  # past any backoff
        result = w.publish(report(sha, phase=phase, minutes=i))
        assert result.committed and result.pushed == 0 and result.pending == i
        assert result.error is not None and "unreachable" in result.error
    assert len(w.pending) == 3

    away.rename(remote)
    # Backing off after the failures: a flush within the wait does not even try ...
    assert (w.flush().pushed, len(w.pending)) == (0, 3)
    assert len(subjects(remote)) == 1
    # ... the next one after it (or an immediate one) pushes the whole queue, in order.
    result = w.flush(immediately=True)
    assert (result.pushed, result.pending, result.error) == (3, 0, None)
    got = [s.split(": ")[0] for s in subjects(remote)]
    assert len(got) == 4
    states = [git(remote, "show", f"{BRANCH}~{n}:status.yaml") for n in (2, 1, 0)]
    assert [f"phase: {p}" in s for p, s in zip(phases, states, strict=True)] == [True] * 3
    assert w.pending == []


def test_a_queued_state_is_pushed_after_a_restart(remote: Path, author: WorkRepo,
                                                  tmp_path: Path) -> None:
    sha = author.head()
    away = remote.with_name("away.git")
    remote.rename(away)
    first = writer(remote, tmp_path / "wb")
    assert first.publish(report(sha, phase="Draining")).pending == 1
    del first  # the controller dies

    away.rename(remote)
    restarted = writer(remote, tmp_path / "wb")
    assert len(restarted.pending) == 1
    # Same state again after the restart: not a new commit, but the queue goes out.
    result = restarted.publish(report(sha, phase="Draining", minutes=5))
    assert (result.committed, result.pushed, result.pending) == (False, 1, 0)
    assert len(subjects(remote)) == 1
    assert "phase: Draining" in git(remote, "show", f"{BRANCH}:status.yaml")


def test_an_entry_pushed_just_before_a_crash_is_not_pushed_twice(
    remote: Path, author: WorkRepo, tmp_path: Path
) -> None:
    sha = author.head()
    away = remote.with_name("away.git")
    remote.rename(away)
    w = writer(remote, tmp_path / "wb")
    w.publish(report(sha, phase="Draining"))
    saved = tmp_path / "saved-journal"
    shutil.copytree(tmp_path / "wb" / "journal", saved)
    away.rename(remote)
    assert w.flush(immediately=True).pushed == 1
    # As if the process died after the push and before removing the journal entry:
    shutil.rmtree(tmp_path / "wb" / "journal")
    shutil.copytree(saved, tmp_path / "wb" / "journal")
    restarted = writer(remote, tmp_path / "wb")
    result = restarted.flush()
    assert (result.pushed, result.pending) == (0, 0)
    assert len(subjects(remote)) == 1


def test_status_branch_in_another_repository_over_https(
    https_git_server: HttpsGitServer, author: WorkRepo, tmp_path: Path
) -> None:
    status_repo = https_git_server.root / f"{tmp_path.name}-status.git"
    git(https_git_server.root, "init", "-q", "--bare", str(status_repo))
    token = tmp_path / "token"
    token.write_text(HTTPS_TOKEN)
    config = RemoteConfig(https_git_server.url(status_repo), token_file=token,
                          ca_file=https_git_server.ca_file)
    w = StatusWriter(config, tmp_path / "wb", retry=FAST)
    result = w.publish(report(author.head()))
    assert (result.pushed, result.error) == (1, None)
    assert "status.yaml" in git(status_repo, "ls-tree", "--name-only", BRANCH)
    assert {r.service for r in https_git_server.take_requests()} >= {"git-receive-pack"}
    read = w.read_status()
    assert read is not None and read.source.revision == author.head()

    bad = tmp_path / "bad-token"
    bad.write_text("nope")
    denied = StatusWriter(RemoteConfig(config.url, token_file=bad, ca_file=config.ca_file),
                          tmp_path / "wb2", retry=FAST)
    result = denied.publish(report(author.head(), phase="Ready"))
    assert result.pending == 1 and result.error is not None
    assert "authentication failed" in result.error and "nope" not in result.error

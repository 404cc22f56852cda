"""GitSource polling: cheap when nothing moved, incremental fetches, one clone, restarts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from plugins.git_fixtures import HTTPS_TOKEN

from syncer.source import GitSource, Reason, SourceConfig, SourceError
from syncer_lab.gitrepos import WorkRepo
from syncer_lab.gitserver import HttpsGitServer


def _source(url: str, workdir: Path, **kw: object) -> GitSource:
    return GitSource(SourceConfig(url, workdir=workdir, **kw))  # type: ignore[arg-type]


def test_poll_returns_the_head_once_then_nothing(author: WorkRepo, bare_remote: Path,
                                                 tmp_path: Path) -> None:
    src = _source(f"file://{bare_remote}", tmp_path / "work", path="fleet")
    rev = src.poll()
    assert rev is not None
    assert rev.sha == author.head()
    assert rev.ref == "main"
    assert rev.message == "Initial fleet"
    assert rev.author == "Alice Admin <alice@example.com>"
    assert rev.verified_by is None
    assert rev.path.name == "fleet"
    assert (rev.path / "fleet.yaml").read_text() == "kind: Fleet\nversion: 1.0.0\n"
    assert not (rev.path.parent / "README.md").exists()  # only the fleet sub-path exported
    assert src.poll() is None
    assert src.last_seen == rev.sha

    new = author.commit("Bump to 1.1.0", {"fleet/fleet.yaml": "kind: Fleet\nversion: 1.1.0\n"})
    author.push()
    rev2 = src.poll()
    assert rev2 is not None and rev2.sha == new
    assert (rev2.path / "fleet.yaml").read_text().endswith("1.1.0\n")
    assert rev2.name == f"main@sha1:{new}"
    assert src.poll() is None


def test_unchanged_poll_only_lists_refs_and_fetches_are_incremental(
    https_remote: tuple[str, WorkRepo], https_git_server: HttpsGitServer, tmp_path: Path
) -> None:
    url, author = https_remote
    token = tmp_path / "token"
    token.write_text(HTTPS_TOKEN + "\n")
    src = _source(url, tmp_path / "work", token_file=token, ca_file=https_git_server.ca_file)
    first = src.poll()
    assert first is not None
    commands = [r.command for r in https_git_server.take_requests() if r.command]
    # our ls-remote, then git fetch (which lists the one ref it fetches, then fetches)
    assert commands == ["ls-refs", "ls-refs", "fetch"]

    # Nothing moved: one ls-refs, no fetch — three times.
    for _ in range(3):
        assert src.poll() is None
    commands = [r.command for r in https_git_server.take_requests() if r.command]
    assert commands == ["ls-refs"] * 3

    # Moved: ls-refs, then a fetch that negotiates with the commit the clone already has.
    author.commit("Bump", {"fleet/fleet.yaml": "kind: Fleet\nversion: 1.1.0\n"})
    author.push()
    assert src.poll() is not None
    requests = [r for r in https_git_server.take_requests() if r.command]
    assert [r.command for r in requests] == ["ls-refs", "ls-refs", "fetch"]
    assert first.sha in requests[-1].haves


def test_one_clone_is_kept_and_never_recloned(author: WorkRepo, bare_remote: Path,
                                             tmp_path: Path) -> None:
    src = _source(f"file://{bare_remote}", tmp_path / "work")
    assert src.poll() is not None
    marker = src.git_dir / "syncer-test-marker"
    marker.write_text("still here")
    inode = os.stat(src.git_dir).st_ino
    for i in range(3):
        author.commit(f"change {i}", {"fleet/n.yaml": f"n: {i}\n"})
        author.push()
        assert src.poll() is not None
    assert marker.read_text() == "still here"
    assert os.stat(src.git_dir).st_ino == inode
    assert [p.name for p in (tmp_path / "work").iterdir() if p.name.endswith(".git")] == [
        "repo.git"
    ]


def test_restart_does_not_fetch_again(https_remote: tuple[str, WorkRepo],
                                      https_git_server: HttpsGitServer, tmp_path: Path) -> None:
    url, _ = https_remote
    token = tmp_path / "token"
    token.write_text(HTTPS_TOKEN)
    config = SourceConfig(url, workdir=tmp_path / "work", token_file=token,
                          ca_file=https_git_server.ca_file)
    rev = GitSource(config).poll()
    assert rev is not None
    https_git_server.take_requests()

    restarted = GitSource(config)  # a new process would do exactly this
    assert restarted.last_seen == rev.sha
    assert restarted.poll() is None
    assert [r.command for r in https_git_server.take_requests() if r.command] == ["ls-refs"]


def test_track_tags_lightweight_annotated_and_full_refs(author: WorkRepo, bare_remote: Path,
                                                        tmp_path: Path) -> None:
    tagged = author.head()
    author.tag("v1")
    author.tag("v2", message="release 2")
    author.commit("later", {"fleet/x.yaml": "x: 1\n"})
    author.push("main", "--tags")
    for i, ref in enumerate(["v1", "v2", "refs/tags/v2"]):
        rev = _source(f"file://{bare_remote}", tmp_path / f"w{i}", ref=ref).poll()
        assert rev is not None and rev.sha == tagged, ref
        assert rev.ref == ref
    # A moved tag is followed (the ref is fetched with +).
    author.tag("v1", force=True)
    author.push("main", "--tags", "--force")
    src = _source(f"file://{bare_remote}", tmp_path / "w0", ref="v1")
    rev = src.poll()
    assert rev is not None and rev.sha == author.head()


def test_missing_ref_and_missing_path_are_clear_errors(author: WorkRepo, bare_remote: Path,
                                                       tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="ref 'nope' not found") as err:
        _source(f"file://{bare_remote}", tmp_path / "a", ref="nope").poll()
    assert err.value.reason is Reason.NOT_FOUND

    src = _source(f"file://{bare_remote}", tmp_path / "b", path="fleet")
    good = src.poll()
    assert good is not None
    src.mark_good(good)
    author.remove("fleet")
    bad = author.commit("Move the fleet away")
    author.push()
    with pytest.raises(SourceError, match=f"path 'fleet' does not exist in commit {bad[:7]}"):
        src.poll()
    assert src.rejected is not None and src.rejected[0] == bad
    last_good = src.last_good
    assert last_good is not None and last_good.sha == good.sha
    assert (last_good.path / "fleet.yaml").is_file()


def test_checkout_by_sha_and_old_exports_are_cleaned(author: WorkRepo, bare_remote: Path,
                                                     tmp_path: Path) -> None:
    src = _source(f"file://{bare_remote}", tmp_path / "work", keep_checkouts=1)
    first = src.poll()
    assert first is not None
    src.mark_good(first)
    shas = []
    for i in range(4):
        shas.append(author.commit(f"c{i}", {"fleet/v.yaml": f"v: {i}\n"}))
        author.push()
        assert src.poll() is not None
    exported = {p.name for p in (tmp_path / "work" / "checkouts").iterdir()}
    # the last good, the last seen, and keep_checkouts=1 more
    assert exported == {first.sha, shas[-1], shas[-2]}
    path = src.checkout(shas[0])  # an old commit: exported again, exactly as committed
    assert (path / "fleet" / "v.yaml").read_text() == "v: 0\n"
    assert path == tmp_path / "work" / "checkouts" / shas[0]
    with pytest.raises(SourceError, match="not in the local clone"):
        src.checkout("0" * 40)


def test_fetch_ref_for_pull_request_previews(author: WorkRepo, bare_remote: Path,
                                             tmp_path: Path) -> None:
    src = _source(f"file://{bare_remote}", tmp_path / "work")
    assert src.poll() is not None
    pr = author.commit("PR: bump", {"fleet/fleet.yaml": "kind: Fleet\nversion: 2.0.0\n"})
    author.git("push", "-q", "origin", "HEAD:refs/pull/7/head")
    author.git("reset", "-q", "--hard", "HEAD~1")
    assert src.fetch_ref("refs/pull/7/head") == pr
    rev = src.revision(pr)
    assert (rev.path / "fleet" / "fleet.yaml").read_text().endswith("2.0.0\n")
    assert src.poll() is None  # the tracked branch did not move
    with pytest.raises(SourceError, match="invalid ref"):
        src.fetch_ref("refs/pull/../x")


def test_shallow_clone_with_depth(author: WorkRepo, bare_remote: Path, tmp_path: Path) -> None:
    for i in range(5):
        author.commit(f"c{i}", {"fleet/v.yaml": f"v: {i}\n"})
    author.push()
    src = _source(f"file://{bare_remote}", tmp_path / "work", depth=1)
    rev = src.poll()
    assert rev is not None and rev.sha == author.head()
    assert (src.git_dir / "shallow").is_file()
    author.commit("c5", {"fleet/v.yaml": "v: 5\n"})
    author.push()
    rev = src.poll()
    assert rev is not None and (rev.path / "fleet" / "v.yaml").read_text() == "v: 5\n"

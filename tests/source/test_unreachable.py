"""A remote that cannot be reached: a clear error, and the last revision stays."""

from __future__ import annotations

from pathlib import Path

import pytest
from plugins.git_fixtures import HTTPS_TOKEN

from syncer.source import GitSource, Reason, SourceConfig, SourceError
from syncer_lab.gitrepos import WorkRepo
from syncer_lab.gitserver import HttpsGitServer


def test_unreachable_file_remote_keeps_the_last_state(author: WorkRepo, bare_remote: Path,
                                                      tmp_path: Path) -> None:
    src = GitSource(SourceConfig(f"file://{bare_remote}", workdir=tmp_path / "work",
                                 path="fleet"))
    rev = src.poll()
    assert rev is not None
    src.mark_good(rev)
    state_before = (tmp_path / "work" / "state.json").read_text()

    moved = bare_remote.with_name("gone.git")
    bare_remote.rename(moved)
    for _ in range(2):
        with pytest.raises(SourceError, match="is unreachable") as err:
            src.poll()
        assert err.value.reason is Reason.UNREACHABLE
        assert "\n" not in str(err.value)
    assert (tmp_path / "work" / "state.json").read_text() == state_before
    good = src.last_good
    assert good is not None and good.sha == rev.sha
    assert (good.path / "fleet.yaml").is_file()
    assert src.last_seen == rev.sha

    # Back again: the change made meanwhile arrives, nothing was lost.
    moved.rename(bare_remote)
    new = author.commit("While it was down", {"fleet/fleet.yaml": "version: 2\n"})
    author.push()
    rev2 = src.poll()
    assert rev2 is not None and rev2.sha == new


def test_https_server_down_is_unreachable(https_remote: tuple[str, WorkRepo],
                                          https_git_server: HttpsGitServer,
                                          tmp_path: Path) -> None:
    url, _ = https_remote
    token = tmp_path / "token"
    token.write_text(HTTPS_TOKEN)
    src = GitSource(SourceConfig(url, workdir=tmp_path / "work", token_file=token,
                                 ca_file=https_git_server.ca_file, timeout=10))
    rev = src.poll()
    assert rev is not None
    https_git_server.stop()
    try:
        with pytest.raises(SourceError, match="unreachable") as err:
            src.poll()
        assert err.value.reason is Reason.UNREACHABLE
        assert HTTPS_TOKEN not in str(err.value)
    finally:
        https_git_server.start()
    assert src.poll() is None
    assert src.last_seen == rev.sha


def test_unresolvable_host_is_unreachable(tmp_path: Path) -> None:
    src = GitSource(SourceConfig("https://git.invalid/fleet.git", workdir=tmp_path, timeout=10))
    with pytest.raises(SourceError, match="unreachable") as err:
        src.poll()
    assert err.value.reason is Reason.UNREACHABLE

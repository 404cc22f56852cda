"""An arbitrary UID without a passwd entry (OpenShift's restricted-v2) can still use
ssh:// Git remotes: real git and OpenSSH, run as such a UID against the test sshd."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncer.controller import runtimeuser
from syncer_lab.gitrepos import WorkRepo
from syncer_lab.gitserver import SshGitServer

UID = GID = 1000650000  # from an OpenShift namespace's range; no passwd entry anywhere

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch UID")


@pytest.fixture
def home() -> Iterator[Path]:
    """A directory the UID owns (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="syncer-uid-"))
    os.chown(path, UID, GID)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _as_uid() -> None:
    os.setgroups([])
    os.setgid(GID)
    os.setuid(UID)


def _ls_remote(url: str, home: Path, server: SshGitServer, extra: dict[str, str]
               ) -> subprocess.CompletedProcess[str]:
    key, known = home / "id", home / "known_hosts"
    for src, dst in ((server.client_key.private, key), (server.known_hosts, known)):
        shutil.copyfile(src, dst)
        os.chown(dst, UID, GID)
        os.chmod(dst, 0o600)
    ssh = (f"ssh -i {key} -o IdentitiesOnly=yes -o BatchMode=yes "
           f"-o UserKnownHostsFile={known} -o StrictHostKeyChecking=yes")
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "GIT_SSH_COMMAND": ssh, **extra}
    return subprocess.run(["git", "ls-remote", url, "refs/heads/main"], env=env,
                          preexec_fn=_as_uid, capture_output=True, text=True, timeout=60)


def test_ssh_needs_an_entry_and_gets_one_through_nss_wrapper(
    ssh_remote: tuple[str, WorkRepo], ssh_git_server: SshGitServer, home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, author = ssh_remote
    # What OpenShift's UID meets without help: OpenSSH refuses to start.
    bare = _ls_remote(url, home, ssh_git_server, {})
    assert bare.returncode != 0
    assert f"No user exists for uid {UID}" in bare.stderr

    # What `syncer run` does at start when its UID has no entry.
    assert runtimeuser.find_library(), "libnss-wrapper is missing (make setup installs it)"
    saved = dict(os.environ)
    monkeypatch.setattr(os, "getuid", lambda: UID)
    monkeypatch.setattr(os, "getgid", lambda: GID)
    try:
        os.environ["HOME"] = str(home)
        note = runtimeuser.provide(home / ".nss")
        wrapper = {k: os.environ[k] for k in ("LD_PRELOAD", "NSS_WRAPPER_PASSWD",
                                              "NSS_WRAPPER_GROUP")}
    finally:  # LD_PRELOAD must not reach the processes other tests start
        os.environ.clear()
        os.environ.update(saved)
    assert note is not None and f"uid {UID} has no passwd entry" in note
    passwd = Path(wrapper["NSS_WRAPPER_PASSWD"]).read_text()
    assert f"syncer:x:{UID}:{GID}:syncer controller:{home}:" in passwd
    assert passwd.startswith("root:x:0:0:")  # the image's own entries are kept

    done = _ls_remote(url, home, ssh_git_server, wrapper)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [author.head(), "refs/heads/main"]


def test_a_uid_with_an_entry_changes_nothing(tmp_path: Path) -> None:
    before = dict(os.environ)
    assert runtimeuser.provide(tmp_path / ".nss") is None  # root has an entry
    assert dict(os.environ) == before
    assert not (tmp_path / ".nss").exists()

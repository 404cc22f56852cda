"""pytest fixtures for Git: remotes over file://, ssh:// (sshd) and https:// (http-backend).

Registered in ``tests/conftest.py`` (``pytest_plugins``). The servers are started once per
session; each test makes its own repositories under ``server.root`` and reads the
server's request/session log from where it started (``take_requests`` / ``sessions``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from syncer_lab.gitrepos import GpgKey, SshKey, WorkRepo, make_bare
from syncer_lab.gitserver import HttpsGitServer, SshGitServer

HTTPS_TOKEN = "s3cr3t-test-token-7f1e"


@pytest.fixture(scope="session")
def ssh_git_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshGitServer]:
    with SshGitServer(tmp_path_factory.mktemp("sshgit")) as server:
        yield server


@pytest.fixture(scope="session")
def https_git_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpsGitServer]:
    with HttpsGitServer(tmp_path_factory.mktemp("httpsgit"), HTTPS_TOKEN) as server:
        yield server


@pytest.fixture
def bare_remote(tmp_path: Path) -> Path:
    """An empty bare repository (``file://`` remote)."""
    return make_bare(tmp_path / "remote.git")


@pytest.fixture
def author(tmp_path: Path, bare_remote: Path) -> WorkRepo:
    """A person with a clone of ``bare_remote``; one fleet commit already pushed to main."""
    repo = WorkRepo(tmp_path / "author", f"file://{bare_remote}")
    repo.commit("Initial fleet", {"fleet/fleet.yaml": "kind: Fleet\nversion: 1.0.0\n",
                                  "README.md": "fleet repo\n"})
    repo.push("main")
    return repo


@pytest.fixture(scope="session")
def ssh_signing_key(tmp_path_factory: pytest.TempPathFactory) -> SshKey:
    return SshKey.generate(tmp_path_factory.mktemp("sshsign"), "alice", "alice@example.com")


@pytest.fixture(scope="session")
def untrusted_ssh_key(tmp_path_factory: pytest.TempPathFactory) -> SshKey:
    return SshKey.generate(tmp_path_factory.mktemp("sshsign2"), "mallory",
                           "mallory@example.com")


@pytest.fixture(scope="session")
def gpg_signing_key() -> Iterator[GpgKey]:
    key = GpgKey.generate("Alice Admin <alice@example.com>")
    yield key
    key.close()


@pytest.fixture(scope="session")
def untrusted_gpg_key() -> Iterator[GpgKey]:
    key = GpgKey.generate("Mallory <mallory@example.com>")
    yield key
    key.close()


@pytest.fixture
def https_remote(https_git_server: HttpsGitServer, tmp_path: Path) -> tuple[str, WorkRepo]:
    """A repository served over HTTPS (token required) and its author (pushing directly).

    Returns (https URL, author). The server's request log is cleared.
    """
    bare, repo = served_repo(https_git_server.root, tmp_path, "https-author")
    https_git_server.take_requests()
    return https_git_server.url(bare), repo


@pytest.fixture
def ssh_remote(ssh_git_server: SshGitServer, tmp_path: Path) -> tuple[str, WorkRepo]:
    """A repository served over ssh:// by sshd, and its author (pushing directly)."""
    bare, repo = served_repo(ssh_git_server.root, tmp_path, "ssh-author")
    return ssh_git_server.url(bare), repo


def served_repo(root: Path, tmp_path: Path, author: str) -> tuple[Path, WorkRepo]:
    """A bare repository under a server's ``root``, named after the test, with one fleet
    commit on main pushed by ``author`` (a clone in ``tmp_path``, over ``file://``)."""
    bare = make_bare(root / f"{tmp_path.name}.git")
    repo = WorkRepo(tmp_path / author, f"file://{bare}")
    repo.commit("Initial fleet", {"fleet/fleet.yaml": "kind: Fleet\nversion: 1.0.0\n"})
    repo.push("main")
    return bare, repo

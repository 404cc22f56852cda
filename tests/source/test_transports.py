"""ssh:// against a real sshd and https:// against git http-backend: auth, host keys, CA."""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import pytest
from plugins.git_fixtures import HTTPS_TOKEN, served_repo

from syncer.source import GitSource, Reason, RemoteConfig, SourceConfig, SourceError
from syncer_lab.gitrepos import SshKey, WorkRepo
from syncer_lab.gitserver import HttpsGitServer, SshGitServer

# -- ssh:// ------------------------------------------------------------------------------


def test_ssh_poll_with_key_and_known_hosts(ssh_remote: tuple[str, WorkRepo],
                                           ssh_git_server: SshGitServer, tmp_path: Path) -> None:
    url, author = ssh_remote
    src = GitSource(SourceConfig(url, workdir=tmp_path / "work", path="fleet",
                                 ssh_key_file=ssh_git_server.client_key.private,
                                 known_hosts_file=ssh_git_server.known_hosts))
    before = len(ssh_git_server.sessions())
    rev = src.poll()
    assert rev is not None and rev.sha == author.head()
    assert (rev.path / "fleet.yaml").is_file()
    assert len(ssh_git_server.sessions()) == before + 2  # ls-remote + fetch
    assert src.poll() is None
    assert len(ssh_git_server.sessions()) == before + 3  # ls-remote only
    # (the server is shared by the session: other tests' pushes came before)
    assert all(s.startswith("git-upload-pack ") for s in ssh_git_server.sessions()[before:])


def test_ssh_wrong_known_hosts_is_refused(ssh_remote: tuple[str, WorkRepo],
                                          ssh_git_server: SshGitServer, tmp_path: Path) -> None:
    url, _ = ssh_remote
    wrong = ssh_git_server.wrong_known_hosts(tmp_path / "known_hosts")
    src = GitSource(SourceConfig(url, workdir=tmp_path / "work",
                                 ssh_key_file=ssh_git_server.client_key.private,
                                 known_hosts_file=wrong))
    before = len(ssh_git_server.sessions())
    with pytest.raises(SourceError, match="host key verification failed") as err:
        src.poll()
    assert err.value.reason is Reason.HOST_KEY
    assert len(ssh_git_server.sessions()) == before  # no git command ran on the server


def test_ssh_unknown_host_is_refused_not_accepted(ssh_remote: tuple[str, WorkRepo],
                                                  ssh_git_server: SshGitServer,
                                                  tmp_path: Path) -> None:
    url, _ = ssh_remote
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    src = GitSource(SourceConfig(url, workdir=tmp_path / "work",
                                 ssh_key_file=ssh_git_server.client_key.private,
                                 known_hosts_file=empty))
    with pytest.raises(SourceError) as err:
        src.poll()
    assert err.value.reason is Reason.HOST_KEY
    assert empty.read_text() == ""  # nothing was learned (no trust on first use)


def test_ssh_without_known_hosts_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="ssh:// needs known_hosts_file") as err:
        GitSource(SourceConfig("ssh://git@example.com/fleet.git", workdir=tmp_path))
    assert err.value.reason is Reason.CONFIG


def test_ssh_unauthorized_key_is_an_auth_error(ssh_remote: tuple[str, WorkRepo],
                                               ssh_git_server: SshGitServer,
                                               tmp_path: Path) -> None:
    url, _ = ssh_remote
    stranger = SshKey.generate(tmp_path / "keys", "stranger")
    src = GitSource(SourceConfig(url, workdir=tmp_path / "work", ssh_key_file=stranger.private,
                                 known_hosts_file=ssh_git_server.known_hosts))
    with pytest.raises(SourceError, match="authentication failed") as err:
        src.poll()
    assert err.value.reason is Reason.AUTH


# -- https:// ----------------------------------------------------------------------------


def _https(url: str, server: HttpsGitServer, workdir: Path, **kw: object) -> GitSource:
    return GitSource(SourceConfig(url, workdir=workdir, ca_file=server.ca_file,
                                  **kw))  # type: ignore[arg-type]


def test_https_token_from_file_and_from_env(https_remote: tuple[str, WorkRepo],
                                            https_git_server: HttpsGitServer, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    url, author = https_remote
    token = tmp_path / "token"
    token.write_text(HTTPS_TOKEN + "\n")
    rev = _https(url, https_git_server, tmp_path / "a", token_file=token).poll()
    assert rev is not None and rev.sha == author.head()
    monkeypatch.setenv("FLEET_TOKEN", HTTPS_TOKEN)
    rev = _https(url, https_git_server, tmp_path / "b", token_env="FLEET_TOKEN").poll()
    assert rev is not None and rev.sha == author.head()
    auth = {r.authorization for r in https_git_server.take_requests() if r.authorization}
    # Basic with the token as password, as GitHub documents for Git over HTTPS; the
    # user name GitHub App installation tokens need.
    assert auth == {"Basic " + base64.b64encode(f"x-access-token:{HTTPS_TOKEN}".encode())
                    .decode()}


def test_github_refuses_a_bearer_token_for_git(https_remote: tuple[str, WorkRepo],
                                              https_git_server: HttpsGitServer,
                                              tmp_path: Path) -> None:
    """Why the default is basic: the token as a Bearer header is refused by GitHub's Git
    endpoint (the simulated server plays GitHub)."""
    url, _ = https_remote
    token = tmp_path / "token"
    token.write_text(HTTPS_TOKEN)
    with pytest.raises(SourceError) as err:
        _https(url, https_git_server, tmp_path / "a", token_file=token,
               token_scheme="bearer").poll()
    assert err.value.reason is Reason.AUTH
    assert HTTPS_TOKEN not in err.value.message


def test_each_forge_gets_the_user_name_it_documents() -> None:
    assert RemoteConfig("https://github.com/acme/fleet.git").username_for_token == \
        "x-access-token"
    assert RemoteConfig("https://gitlab.example.com/g/fleet.git").username_for_token == \
        "oauth2"
    assert RemoteConfig("https://git.example.com/acme/fleet.git", token_username="bot"
                        ).username_for_token == "bot"


def test_https_wrong_or_missing_token_is_refused_without_leaking_it(
    https_remote: tuple[str, WorkRepo], https_git_server: HttpsGitServer, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, _ = https_remote
    wrong = "wrong-token-0123456789"
    monkeypatch.setenv("FLEET_TOKEN", wrong)
    src = _https(url, https_git_server, tmp_path / "a", token_env="FLEET_TOKEN")
    with pytest.raises(SourceError, match="authentication failed") as err:
        src.poll()
    assert err.value.reason is Reason.AUTH
    assert wrong not in str(err.value) and HTTPS_TOKEN not in str(err.value)
    assert [r.status for r in https_git_server.take_requests()] == [401]

    with pytest.raises(SourceError, match="authentication failed"):
        _https(url, https_git_server, tmp_path / "b").poll()  # no token at all: no prompt

    monkeypatch.delenv("FLEET_TOKEN")
    with pytest.raises(SourceError, match=r"FLEET_TOKEN .* is not set") as err:
        _https(url, https_git_server, tmp_path / "c", token_env="FLEET_TOKEN").poll()
    assert err.value.reason is Reason.CONFIG


def test_https_needs_the_custom_ca(https_remote: tuple[str, WorkRepo],
                                   https_git_server: HttpsGitServer, tmp_path: Path) -> None:
    url, _ = https_remote
    token = tmp_path / "token"
    token.write_text(HTTPS_TOKEN)
    src = GitSource(SourceConfig(url, workdir=tmp_path / "a", token_file=token))
    with pytest.raises(SourceError, match="TLS certificate verification failed") as err:
        src.poll()
    assert err.value.reason is Reason.TLS


def test_token_is_never_in_process_arguments_logs_nor_on_disk(
    https_remote: tuple[str, WorkRepo], https_git_server: HttpsGitServer, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    url, author = https_remote
    caplog.set_level(logging.DEBUG)  # GitPython logs every command line at DEBUG
    monkeypatch.setenv("FLEET_TOKEN", HTTPS_TOKEN)
    https_git_server.probe_processes = True
    try:
        src = _https(url, https_git_server, tmp_path / "work", token_env="FLEET_TOKEN")
        assert src.poll() is not None
        author.commit("more", {"fleet/x.yaml": "x: 1\n"})
        author.push()
        assert src.poll() is not None
    finally:
        https_git_server.probe_processes = False
    requests = https_git_server.take_requests()
    assert {r.command for r in requests} >= {"ls-refs", "fetch"}
    # While each request was being answered the git client processes were alive: the
    # token was in a process environment (GIT_CONFIG_VALUE_n), never in a command line.
    assert all(r.token_in_env for r in requests)
    assert not any(r.token_in_args for r in requests)
    assert "git" in caplog.text and HTTPS_TOKEN not in caplog.text
    # ... and nothing in the work dir (clone config, state, exports) holds it.
    for path in (tmp_path / "work").rglob("*"):
        if path.is_file():
            assert HTTPS_TOKEN.encode() not in path.read_bytes(), path


def test_a_rotated_token_file_is_picked_up_without_a_restart(
    https_remote: tuple[str, WorkRepo], https_git_server: HttpsGitServer, tmp_path: Path
) -> None:
    url, _ = https_remote
    token = tmp_path / "token"
    token.write_text("expired-token\n")
    src = _https(url, https_git_server, tmp_path / "work", token_file=token)
    with pytest.raises(SourceError, match="authentication failed"):
        src.poll()
    token.write_text(HTTPS_TOKEN + "\n")  # the Secret was updated
    assert src.poll() is not None


@pytest.mark.parametrize("forge", ["gitlab", "gitea"])
def test_gitlab_and_gitea_accept_the_default(forge: str, https_git_server: HttpsGitServer,
                                             tmp_path: Path) -> None:
    """GitLab wants a non-blank user name with the token (oauth2 for OAuth tokens, which
    is what a gitlab host gets by default); Gitea takes any. Basic works on both."""
    server = HttpsGitServer(tmp_path / forge, HTTPS_TOKEN, forge=forge)
    server.ca = https_git_server.ca
    with server:
        bare, author = served_repo(server.root, tmp_path, "author")
        token = tmp_path / "token"
        token.write_text(HTTPS_TOKEN)
        rev = _https(server.url(bare), server, tmp_path / "w", token_file=token).poll()
        assert rev is not None and rev.sha == author.head()
        with pytest.raises(SourceError) as err:
            _https(server.url(bare), server, tmp_path / "b", token_file=token,
                   token_scheme="bearer").poll()
        assert err.value.reason is Reason.AUTH

"""Configuration checks and the git environment: credentials only in the environment."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from syncer.source.auth import git_env, ssh_command
from syncer.source.config import RemoteConfig, SourceConfig
from syncer.source.errors import Reason, SourceError, classify, redact_url, scrub


def _config_pairs(env: dict[str, str]) -> dict[str, str]:
    count = int(env["GIT_CONFIG_COUNT"])
    return {env[f"GIT_CONFIG_KEY_{i}"]: env[f"GIT_CONFIG_VALUE_{i}"] for i in range(count)}


def test_https_token_goes_into_git_config_environment_scoped_to_the_origin(
    tmp_path: Path,
) -> None:
    token = tmp_path / "token"
    token.write_text("tok-123\n")
    env = git_env(RemoteConfig("https://git.example.com:8443/org/fleet.git", token_file=token,
                               token_scheme="bearer"))
    pairs = _config_pairs(dict(env.env))
    assert pairs["http.https://git.example.com:8443/.extraHeader"] == (
        "Authorization: Bearer tok-123"
    )
    assert pairs["credential.helper"] == ""
    assert env.env["GIT_TERMINAL_PROMPT"] == "0"
    assert env.env["GIT_TRACE_REDACT"] == "1"
    assert "tok-123" in env.secrets

    basic = git_env(RemoteConfig("https://h/x.git", token_file=token, token_scheme="basic",
                                 token_username="oauth2"))
    header = _config_pairs(dict(basic.env))["http.https://h/.extraHeader"]
    assert header == "Authorization: Basic " + base64.b64encode(b"oauth2:tok-123").decode()


def test_ssh_command_is_strict(tmp_path: Path) -> None:
    key = tmp_path / "id"
    key.write_text("k")
    known = tmp_path / "known hosts"  # a space: quoted for the shell git runs it with
    known.write_text("")
    command = ssh_command(RemoteConfig("ssh://git@h/x.git", ssh_key_file=key,
                                       known_hosts_file=known))
    assert "-o StrictHostKeyChecking=yes" in command
    assert f"'UserKnownHostsFile={known}'" in command
    assert "-o GlobalKnownHostsFile=/dev/null" in command
    assert f"-i {key} -o IdentitiesOnly=yes" in command
    assert "BatchMode=yes" in command
    assert "accept-new" not in command and "StrictHostKeyChecking=no" not in command


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (RemoteConfig("ssh://git@h/x.git"), "ssh:// needs known_hosts_file"),
        (RemoteConfig("git@github.com:org/fleet.git"), "ssh:// needs known_hosts_file"),
        (RemoteConfig("https://user:pw@h/x.git"), "do not put a password in the URL"),
        (RemoteConfig("https://h/x.git", token_env="A", token_file=Path("/x")),
         "set token_file or token_env, not both"),
        (RemoteConfig("file:///x", token_env="A"), "need an https:// URL"),
        (RemoteConfig("https://h/x.git", ca_file=Path("/nope.pem")), "does not exist"),
    ],
)
def test_remote_config_mistakes_are_reported(config: RemoteConfig, message: str) -> None:
    with pytest.raises(SourceError, match=message) as err:
        config.check()
    assert err.value.reason is Reason.CONFIG
    assert "pw" not in str(err.value)


def test_source_config_rejects_paths_outside_the_repo() -> None:
    with pytest.raises(SourceError, match="must be relative"):
        SourceConfig("file:///x", path="../etc").check()
    assert SourceConfig("file:///x", path="/fleet/").fleet_path == "fleet"


def test_errors_are_scrubbed_of_credentials() -> None:
    stderr = (
        "fatal: unable to access 'https://bob:hunter2@h/x.git/': Could not resolve host: h\n"
        "Authorization: Bearer abc.def\n"
    )
    err = classify(stderr, "https://bob:hunter2@h/x.git", secrets=["abc.def"])
    assert "hunter2" not in str(err) and "abc.def" not in str(err) and "bob" not in str(err)
    assert err.reason is Reason.UNREACHABLE
    assert scrub("token s3cret here", ["s3cret"]) == "token *** here"
    assert redact_url("https://u:p@h/x") == "https://h/x"

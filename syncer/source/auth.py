"""The environment every git process against a remote runs with.

Authentication never goes through command-line arguments (visible to every user in
``ps``) nor through files git might keep (``.git/config``, credential stores):

* **SSH**: ``GIT_SSH_COMMAND`` runs ``ssh -F /dev/null`` (no user ssh_config surprises)
  with ``BatchMode=yes`` (never prompt), ``StrictHostKeyChecking=yes`` against exactly the
  configured known_hosts file (the global one is switched off), and the configured key
  with ``IdentitiesOnly=yes``. The command line names the key *file*, not its content.
* **HTTPS token**: read from its file or environment variable when the environment is
  built, and handed to git as ``http.<origin>/.extraHeader`` through
  ``GIT_CONFIG_COUNT``/``GIT_CONFIG_KEY_n``/``GIT_CONFIG_VALUE_n``: configuration that
  lives only in the environment of the git process, scoped to the remote's origin so a
  redirect elsewhere does not carry it. ``GIT_TRACE_REDACT=1`` keeps it out of traces.
* **Custom CA**: ``GIT_SSL_CAINFO``.

Prompts and credential helpers are switched off (``GIT_TERMINAL_PROMPT=0``, empty askpass,
``credential.helper=``), so a missing or wrong credential fails fast with an error instead
of hanging a controller. :class:`GitEnv` also carries the secrets it embeds so error
messages can be scrubbed of them (:func:`syncer.source.errors.scrub`).
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from syncer.source.config import RemoteConfig
from syncer.source.errors import Reason, SourceError


@dataclass(frozen=True)
class GitEnv:
    """Environment variables for git, plus the secrets they contain (for scrubbing)."""

    env: Mapping[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()

    def with_config(self, pairs: Mapping[str, str]) -> GitEnv:
        """A copy that also sets the git configuration ``pairs`` (via ``GIT_CONFIG_*``)."""
        env = dict(self.env)
        count = int(env.get("GIT_CONFIG_COUNT", "0"))
        for key, value in pairs.items():
            env[f"GIT_CONFIG_KEY_{count}"] = key
            env[f"GIT_CONFIG_VALUE_{count}"] = value
            count += 1
        env["GIT_CONFIG_COUNT"] = str(count)
        return GitEnv(env, self.secrets)

    def with_vars(self, extra: Mapping[str, str]) -> GitEnv:
        return GitEnv({**self.env, **extra}, self.secrets)


def base_env() -> GitEnv:
    """No prompts, no credential helpers, redacted traces: for every git process."""
    env = {
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "",
        "SSH_ASKPASS": "",
        "GIT_TRACE_REDACT": "1",
        "GIT_CONFIG_COUNT": "0",
    }
    return GitEnv(env).with_config({"credential.helper": "", "core.askPass": ""})


def ssh_command(remote: RemoteConfig) -> str:
    """The ``GIT_SSH_COMMAND`` for ``remote``: strict host keys, the configured key only."""
    if remote.known_hosts_file is None:
        raise SourceError(
            "ssh:// needs known_hosts_file (strict host key checking)", Reason.CONFIG
        )
    args = [
        "ssh", "-F", "/dev/null",
        "-o", "BatchMode=yes",
        "-o", "StrictHostKeyChecking=yes",
        "-o", f"UserKnownHostsFile={remote.known_hosts_file.resolve()}",
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "UpdateHostKeys=no",
        "-o", f"ConnectTimeout={max(1, int(remote.timeout))}",
    ]
    if remote.ssh_key_file is not None:
        args += ["-i", str(remote.ssh_key_file.resolve()), "-o", "IdentitiesOnly=yes",
                 "-o", "IdentityAgent=none"]
    return " ".join(shlex.quote(a) for a in args)


def read_token(remote: RemoteConfig) -> str | None:
    """The token from its file or environment variable (whitespace stripped), or None."""
    if remote.token_file is not None:
        try:
            token = remote.token_file.read_text(encoding="utf-8").strip()
        except OSError as err:
            raise SourceError(
                f"cannot read token file {remote.token_file}: {err.strerror}", Reason.CONFIG
            ) from None
        if not token:
            raise SourceError(f"token file {remote.token_file} is empty", Reason.CONFIG)
        return token
    if remote.token_env is not None:
        token = os.environ.get(remote.token_env, "").strip()
        if not token:
            raise SourceError(
                f"environment variable {remote.token_env} (the token) is not set", Reason.CONFIG
            )
        return token
    return None


def auth_header(remote: RemoteConfig, token: str) -> str:
    if remote.token_scheme == "basic":
        import base64

        raw = f"{remote.username_for_token}:{token}".encode()
        return "Authorization: Basic " + base64.b64encode(raw).decode("ascii")
    return f"Authorization: Bearer {token}"


def origin_of(url: str) -> str:
    """``scheme://host[:port]/`` of an http(s) URL: the scope of the auth header."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}/"


def git_env(remote: RemoteConfig) -> GitEnv:
    """The full environment for git processes talking to ``remote``."""
    remote.check()
    env = base_env()
    scheme = remote.scheme
    if scheme == "ssh":
        env = env.with_vars({"GIT_SSH_COMMAND": ssh_command(remote), "GIT_SSH_VARIANT": "ssh"})
    elif scheme in ("http", "https"):
        if remote.ca_file is not None:
            env = env.with_vars({"GIT_SSL_CAINFO": str(remote.ca_file.resolve())})
        token = read_token(remote)
        if token is not None:
            header = auth_header(remote, token)
            env = env.with_config({f"http.{origin_of(remote.url)}.extraHeader": header})
            secret = header.split(" ", 2)[2]
            env = GitEnv(env.env, (token, secret))
    return env

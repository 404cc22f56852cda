"""Configuration of a Git remote, the tracked source, and signature verification.

Plain frozen dataclasses. :class:`RemoteConfig` is what every Git operation against a
remote needs (URL and credentials); the source (:class:`SourceConfig`) and the status
writer both build one, so authentication is configured, checked and documented once.

Credentials are referenced, never held: a token lives in a file or an environment
variable and is read at the moment a git process is started (so a rotated Secret mounted
as a file is picked up without a restart), and never stored in these objects, so a
config can be logged or put into an exception safely.

:meth:`RemoteConfig.check` reports every configuration mistake at once as one
:class:`SourceError` (reason ``ConfigError``): an ``ssh://`` URL without a known_hosts
file is refused because there is no "accept any host key" mode.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from syncer.source.errors import Reason, SourceError, redact_url

Scheme = Literal["file", "ssh", "https", "http"]
VerifyMode = Literal["head", "tag", "tag-and-head"]

_SCP_LIKE = re.compile(r"^[\w.-]+@[\w.-]+:(?!//)")


def url_scheme(url: str) -> Scheme:
    """The transport of ``url``; a plain path counts as ``file``, ``user@host:path`` as ssh."""
    if _SCP_LIKE.match(url):
        return "ssh"
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("", "file"):
        return "file"
    if scheme in ("ssh", "git+ssh", "ssh+git"):
        return "ssh"
    if scheme in ("https", "http"):
        return scheme  # type: ignore[return-value]
    raise SourceError(
        f"unsupported repository URL {redact_url(url)}: use file://, ssh:// or https://",
        Reason.CONFIG,
    )


@dataclass(frozen=True)
class RemoteConfig:
    """Where a repository is and how to authenticate to it."""

    url: str
    ssh_key_file: Path | None = None
    known_hosts_file: Path | None = None
    token_file: Path | None = None
    token_env: str | None = None
    # "basic" (the default) sends the token as the password of a user name, as GitHub,
    # GitLab and Gitea document for Git over HTTPS; "bearer" sends ``Authorization:
    # Bearer <token>``, which GitHub's Git endpoint refuses. The user name is
    # ``token_username``, or by host: ``oauth2`` on GitLab (required for OAuth tokens,
    # accepted for access tokens), ``x-access-token`` elsewhere (required for GitHub App
    # installation tokens; GitHub and Gitea accept any name with a personal token).
    token_scheme: Literal["basic", "bearer"] = "basic"
    token_username: str = ""
    ca_file: Path | None = None
    timeout: float = 60.0

    @property
    def scheme(self) -> Scheme:
        return url_scheme(self.url)

    @property
    def username_for_token(self) -> str:
        """The user name sent with the token under the basic scheme (see above)."""
        if self.token_username:
            return self.token_username
        host = (urlsplit(self.url).hostname or "").lower()
        return "oauth2" if "gitlab" in host else "x-access-token"

    def check(self) -> None:
        """Raise one :class:`SourceError` naming every configuration problem."""
        problems: list[str] = []
        scheme = self.scheme
        if urlsplit(self.url).password:
            problems.append("do not put a password in the URL; use token_file or token_env")
        if scheme == "ssh":
            if self.known_hosts_file is None:
                problems.append(
                    "ssh:// needs known_hosts_file (strict host key checking; "
                    "there is no accept-any-key mode)"
                )
            elif not self.known_hosts_file.is_file():
                problems.append(f"known_hosts file {self.known_hosts_file} does not exist")
            if self.ssh_key_file is not None and not self.ssh_key_file.is_file():
                problems.append(f"SSH key file {self.ssh_key_file} does not exist")
        elif self.ssh_key_file is not None or self.known_hosts_file is not None:
            problems.append(f"ssh_key_file/known_hosts_file need an ssh:// URL, not {scheme}://")
        if scheme in ("http", "https"):
            if self.token_file is not None and self.token_env is not None:
                problems.append("set token_file or token_env, not both")
            if self.token_file is not None and not self.token_file.is_file():
                problems.append(f"token file {self.token_file} does not exist")
            if self.ca_file is not None and not self.ca_file.is_file():
                problems.append(f"CA file {self.ca_file} does not exist")
        elif self.token_file or self.token_env or self.ca_file:
            problems.append(f"token and CA settings need an https:// URL, not {scheme}://")
        if self.timeout <= 0:
            problems.append("timeout must be positive")
        if problems:
            raise SourceError(
                f"invalid source configuration for {redact_url(self.url)}: "
                + "; ".join(problems),
                Reason.CONFIG,
            )


@dataclass(frozen=True)
class VerifyConfig:
    """Which commits may be applied: signed by a key in one of the trust stores.

    ``allowed_signers_file`` is an OpenSSH allowed-signers file (as for
    ``gpg.ssh.allowedSignersFile``); ``gpg_keyring`` is either a file of exported public
    keys (armored or binary) or a GnuPG home directory. A signature of a kind whose trust
    store is not configured counts as untrusted.
    """

    mode: VerifyMode = "head"
    allowed_signers_file: Path | None = None
    gpg_keyring: Path | None = None

    def check(self) -> None:
        problems: list[str] = []
        if self.mode not in ("head", "tag", "tag-and-head"):
            problems.append(f"unknown verify mode {self.mode!r} (head, tag, tag-and-head)")
        if self.allowed_signers_file is None and self.gpg_keyring is None:
            problems.append("verification needs allowed_signers_file or gpg_keyring")
        if self.allowed_signers_file is not None and not self.allowed_signers_file.is_file():
            problems.append(f"allowed signers file {self.allowed_signers_file} does not exist")
        if self.gpg_keyring is not None and not self.gpg_keyring.exists():
            problems.append(f"GPG keyring {self.gpg_keyring} does not exist")
        if problems:
            raise SourceError("invalid verification configuration: " + "; ".join(problems),
                              Reason.CONFIG)


@dataclass(frozen=True)
class SourceConfig:
    """The tracked source: a branch or tag of a remote, a fleet sub-path, a work dir."""

    url: str
    ref: str = "main"
    path: str = ""
    workdir: Path = field(default_factory=lambda: Path(".syncer/source"))
    ssh_key_file: Path | None = None
    known_hosts_file: Path | None = None
    token_file: Path | None = None
    token_env: str | None = None
    token_scheme: Literal["basic", "bearer"] = "basic"
    token_username: str = ""  # "" = by host (RemoteConfig.username_for_token)
    ca_file: Path | None = None
    verify: VerifyConfig | None = None
    # None: full history of the tracked ref (incremental fetches, ancestry available);
    # N: keep only the last N commits (Flux-style shallow), still fetched incrementally.
    depth: int | None = None
    timeout: float = 60.0
    # Exports of old commits to keep besides the current and the last good one.
    keep_checkouts: int = 2

    @property
    def remote(self) -> RemoteConfig:
        return RemoteConfig(
            url=self.url,
            ssh_key_file=self.ssh_key_file,
            known_hosts_file=self.known_hosts_file,
            token_file=self.token_file,
            token_env=self.token_env,
            token_scheme=self.token_scheme,
            token_username=self.token_username,
            ca_file=self.ca_file,
            timeout=self.timeout,
        )

    @property
    def fleet_path(self) -> str:
        """The sub-path normalised: no leading/trailing slashes, "" for the root."""
        return self.path.strip().strip("/")

    def check(self) -> None:
        self.remote.check()
        problems: list[str] = []
        if not self.ref or self.ref.startswith("-") or " " in self.ref:
            problems.append(f"invalid ref {self.ref!r}")
        parts = Path(self.fleet_path).parts
        if ".." in parts or Path(self.path).is_absolute():
            problems.append(f"path {self.path!r} must be relative inside the repository")
        if self.depth is not None and self.depth < 1:
            problems.append("depth must be at least 1")
        if self.keep_checkouts < 0:
            problems.append("keep_checkouts must not be negative")
        if problems:
            raise SourceError("invalid source configuration: " + "; ".join(problems),
                              Reason.CONFIG)
        if self.verify is not None:
            self.verify.check()

"""Configuration of a forge client: provider, API URL, repository, token, TLS, retries.

The token never lives in the configuration itself: the configuration names *where* it is
(a file, as mounted from a Kubernetes Secret, or an environment variable) and the client
reads it when it sends a request, so a rotated Secret is picked up without a restart.
The value is wrapped in :class:`Secret`, whose ``repr``/``str`` never show it, and every
error message is scrubbed of it (see :mod:`.errors`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from syncer import __version__

from .errors import ForgeConfigError

Provider = Literal["github", "gitlab", "gitea"]
PROVIDERS: tuple[Provider, ...] = ("github", "gitlab", "gitea")

DEFAULT_API_URLS: dict[str, str] = {
    "github": "https://api.github.com",
    "gitlab": "https://gitlab.com/api/v4",
}

USER_AGENT = f"syncer/{__version__}"


class Secret:
    """A string that does not show itself in ``repr``, ``str`` or f-strings."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class TokenSource:
    """Where the API token comes from: a file path or an environment variable name.

    A file wins over the variable when both are set. Surrounding whitespace (the trailing
    newline of ``echo token > file``) is stripped.
    """

    file: str | None = None
    env: str | None = None

    def __post_init__(self) -> None:
        if not self.file and not self.env:
            raise ForgeConfigError("a forge token needs a file path or an environment variable")

    def read(self) -> Secret:
        if self.file:
            try:
                value = Path(self.file).read_text(encoding="utf-8").strip()
            except OSError as e:
                raise ForgeConfigError(
                    f"cannot read the forge token file {self.file}: {e.strerror}"
                ) from None
            if not value:
                raise ForgeConfigError(f"the forge token file {self.file} is empty")
            return Secret(value)
        assert self.env is not None
        value = os.environ.get(self.env, "").strip()
        if not value:
            raise ForgeConfigError(f"the environment variable {self.env} (forge token) is not set")
        return Secret(value)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try before a :class:`ForgeError`.

    ``attempts`` counts every try (so 1 = no retry). Server errors and connection failures
    wait ``backoff_base * 2**n`` seconds (capped at ``backoff_max``) with jitter: half the
    wait is fixed and half random, so clients spread out but always back off. When the
    forge says how long to wait (``Retry-After``, GitHub's ``x-ratelimit-reset``, GitLab's
    ``RateLimit-Reset``) that wait is honoured exactly, but only up to ``max_wait``: a
    longer one ends the attempt at once with a rate-limited :class:`ForgeError` carrying
    ``retry_after``, because blocking a reconcile for an hour helps nobody.
    """

    attempts: int = 4
    backoff_base: float = 0.5
    backoff_max: float = 8.0
    max_wait: float = 60.0
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ForgeConfigError("retry attempts must be at least 1")
        if self.backoff_base < 0 or self.backoff_max < 0 or self.max_wait < 0:
            raise ForgeConfigError("retry waits must not be negative")


@dataclass(frozen=True)
class ForgeConfig:
    """Everything needed to talk to one repository on one forge.

    ``repository`` is ``owner/name`` for GitHub and Gitea; for GitLab the project path
    (``group/subgroup/project``) or its numeric id. ``api_url`` defaults to the public
    service for GitHub and GitLab; Gitea is always self-hosted, so it is required there
    (``https://gitea.example.com/api/v1``). ``ca_bundle`` is a PEM file for forges behind
    a private CA. ``page_size`` overrides the forge's documented maximum page size.
    ``gitlab_auth`` picks GitLab's ``PRIVATE-TOKEN`` header (personal, project and group
    access tokens) or ``Authorization: Bearer`` (OAuth tokens).
    """

    provider: Provider
    repository: str
    token: TokenSource
    api_url: str | None = None
    ca_bundle: str | None = None
    timeout: float = 10.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    page_size: int | None = None
    user_agent: str = USER_AGENT
    gitlab_auth: Literal["private-token", "bearer"] = "private-token"

    def __post_init__(self) -> None:
        if self.provider not in PROVIDERS:
            raise ForgeConfigError(
                f"unknown forge provider {self.provider!r} (expected one of {', '.join(PROVIDERS)})"
            )
        if not self.repository or self.repository.strip("/") != self.repository:
            raise ForgeConfigError(f"invalid forge repository {self.repository!r}")
        if self.provider in ("github", "gitea") and self.repository.count("/") != 1:
            raise ForgeConfigError(
                f"{self.provider} repository must be owner/name, got {self.repository!r}"
            )
        if self.provider == "gitea" and not self.api_url:
            raise ForgeConfigError(
                "gitea needs api_url (for example https://gitea.example.com/api/v1)"
            )
        parts = urlsplit(self.resolved_api_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ForgeConfigError(f"invalid forge API URL {self.resolved_api_url!r}")
        if parts.query or parts.fragment:
            raise ForgeConfigError("the forge API URL must not carry a query or fragment")
        if self.timeout <= 0:
            raise ForgeConfigError("forge timeout must be positive")
        if self.page_size is not None and self.page_size < 1:
            raise ForgeConfigError("page_size must be positive")

    @property
    def resolved_api_url(self) -> str:
        return (self.api_url or DEFAULT_API_URLS.get(self.provider, "")).rstrip("/")

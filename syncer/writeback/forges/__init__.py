"""Forge clients: pull-request comments and commit statuses on GitHub, GitLab and Gitea.

Usage::

    forge = make_forge(ForgeConfig("github", "acme/fleet", TokenSource(env="GITHUB_TOKEN")))
    for pr in forge.open_pull_requests("main"):
        forge.set_commit_status(pr.head_sha, "pending", "syncer/preview", "evaluating…")
        forge.upsert_comment(pr, "preview", body)

One module per forge (:mod:`.github`, :mod:`.gitlab`, :mod:`.gitea`) holds only what
differs: paths, field names, state names, authentication and rate-limit headers. The
comment upsert and status dedup are shared (:mod:`.base`, which also holds what Gitea
shares with GitHub), as are HTTP, retries and pagination (:mod:`.transport`), bodies and
truncation (:mod:`.bodies`). Every failure is a :class:`ForgeError`; :func:`attempt`
turns one into a reportable :class:`ForgeOutcome`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from . import gitea, github, gitlab
from .base import RestForge
from .bodies import TRUNCATION_NOTE, marker_comment, truncate
from .config import DEFAULT_API_URLS, ForgeConfig, Provider, RetryPolicy, Secret, TokenSource
from .errors import ForgeConfigError, ForgeError
from .model import Comment, CommentResult, CommitState, Forge, PullRequest, StatusResult
from .outcome import ForgeOutcome, attempt
from .transport import Transport

__all__ = [
    "DEFAULT_API_URLS",
    "TRUNCATION_NOTE",
    "Comment",
    "CommentResult",
    "CommitState",
    "Forge",
    "ForgeConfig",
    "ForgeConfigError",
    "ForgeError",
    "ForgeOutcome",
    "Provider",
    "PullRequest",
    "RestForge",
    "RetryPolicy",
    "Secret",
    "StatusResult",
    "TokenSource",
    "attempt",
    "make_forge",
    "marker_comment",
    "truncate",
]


def make_forge(
    config: ForgeConfig,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
    rng: random.Random | None = None,
) -> RestForge:
    """The client for ``config.provider``. ``sleep``/``clock``/``rng`` are for tests."""
    if config.provider == "github":
        transport = Transport(
            config,
            auth_headers=github.auth_headers,
            headers=github.HEADERS,
            classify=github.classify,
            error_message=github.error_message,
            sleep=sleep,
            clock=clock,
            rng=rng,
        )
        return github.GitHubForge(transport, config.repository, config.page_size)
    if config.provider == "gitlab":
        transport = Transport(
            config,
            auth_headers=gitlab.auth_headers_for(config.gitlab_auth),
            headers={"Accept": "application/json"},
            classify=gitlab.classify,
            error_message=gitlab.error_message,
            sleep=sleep,
            clock=clock,
            rng=rng,
        )
        return gitlab.GitLabForge(transport, config.repository, config.page_size)
    if config.provider == "gitea":
        transport = Transport(
            config,
            auth_headers=gitea.auth_headers,
            headers=gitea.HEADERS,
            error_message=gitea.error_message,
            sleep=sleep,
            clock=clock,
            rng=rng,
        )
        return gitea.GiteaForge(transport, config.repository, config.page_size)
    raise ForgeConfigError(f"unknown forge provider {config.provider!r}")

"""The forge-neutral interface: pull requests, comments, commit statuses.

The reconciler sees every forge through :class:`Forge`. GitHub calls them pull requests
and numbers them per repository; GitLab calls them merge requests and numbers them per
project (``iid``); Gitea follows GitHub. :class:`PullRequest` carries what the preview
needs from all three, including the Git ref that fetches the head from the *target*
repository, which also works for pull requests from forks: ``refs/pull/<n>/head`` on
GitHub and Gitea, ``refs/merge-requests/<iid>/head`` on GitLab.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, Protocol, runtime_checkable
from urllib.parse import quote


class CommitState(StrEnum):
    """syncer's commit status states (GitHub's names; each client maps to its forge)."""

    PENDING = "pending"
    SUCCESS = "success"
    FAILURE = "failure"
    ERROR = "error"

    @classmethod
    def parse(cls, value: CommitState | str) -> CommitState:
        try:
            return cls(value)
        except ValueError:
            raise ValueError(
                f"invalid commit state {value!r} (expected pending, success, failure or error)"
            ) from None


@dataclass(frozen=True)
class PullRequest:
    """An open pull (merge) request, as the preview needs it."""

    number: int
    title: str
    head_sha: str
    head_ref: str
    base_ref: str
    author: str
    url: str
    fetch_ref: str
    #: Web URL of the repository tree at ``head_sha``, ending in ``/`` (``None`` if unknown).
    files_url: str | None = None
    #: The head branch lives in another repository (a fork, or one since deleted).
    fork: bool = False

    def file_url(self, path: str, line: int | None = None) -> str | None:
        """Link to ``path`` (repository-relative) at the head commit, at ``line`` if given."""
        if not self.files_url:
            return None
        url = self.files_url + quote(path.lstrip("/"))
        return f"{url}#L{line}" if line else url


@dataclass(frozen=True)
class Comment:
    """A comment (GitLab: note) on a pull request."""

    id: int
    body: str
    author: str = ""
    url: str = ""


@dataclass(frozen=True)
class CommentResult:
    """What :meth:`Forge.upsert_comment` did."""

    action: Literal["created", "updated", "unchanged"]
    comment_id: int
    url: str
    truncated: bool = False


@dataclass(frozen=True)
class StatusResult:
    """What :meth:`Forge.set_commit_status` did (``unchanged``: already in that state)."""

    action: Literal["created", "unchanged"]
    sha: str
    state: CommitState
    context: str


@runtime_checkable
class Forge(Protocol):
    """One repository on one forge."""

    #: ``github``, ``gitlab`` or ``gitea``
    provider: str
    #: Longest comment body the forge accepts, in characters.
    max_comment_chars: int

    def open_pull_requests(self, base_branch: str) -> list[PullRequest]:
        """Open pull requests that target ``base_branch``, oldest first."""
        ...

    def upsert_comment(self, pr: PullRequest, marker: str, body: str) -> CommentResult:
        """Create, edit or leave alone the one comment carrying ``<!-- syncer:marker -->``."""
        ...

    def set_commit_status(
        self,
        sha: str,
        state: CommitState | str,
        context: str,
        description: str,
        target_url: str | None = None,
        *,
        ref: str | None = None,
    ) -> StatusResult:
        """Set the status ``context`` on commit ``sha`` (skipped when already so).

        ``ref`` is used by GitLab only (the branch the status belongs to; without it GitLab
        picks the first branch containing the commit).
        """
        ...

    def close(self) -> None:
        """Release the HTTP connections."""
        ...

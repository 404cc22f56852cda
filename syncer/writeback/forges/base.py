"""What the forge clients share: the comment upsert and the status dedup.

A subclass says how to list, create and edit comments, list pull requests, read the
latest status of a context and post a status; :class:`RestForge` turns that into the
:class:`~.model.Forge` behaviour:

* ``upsert_comment`` puts the marker on the first line, cuts the body to the forge's
  limit, scans *all* pages of comments for the marker, then creates, edits, or does
  nothing when the stored body is already the same (no request at all beyond the scan).
  A create that failed ambiguously (5xx, read timeout) is followed by another scan
  before the next try, so retries never leave two comments.
* ``set_commit_status`` reads the context's latest status first and skips the post when
  state, description and link are unchanged: a reconcile that runs every minute must not
  pile up statuses (GitHub refuses more than 1,000 per commit and context; GitLab refuses
  ``pending`` → ``pending`` with a 400).

:class:`RepoForge` adds what Gitea shares with GitHub, whose API it follows: the
``/repos/{owner}/{repo}`` paths, pull requests as JSON, comments as issue comments and
``POST /statuses/{sha}``.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from .bodies import marker_comment, same_body, truncate, with_marker
from .errors import ForgeError
from .model import Comment, CommentResult, CommitState, PullRequest, StatusResult
from .transport import Transport

log = logging.getLogger(__name__)

#: Longest status description we send (GitHub's documented limit; the others show less).
STATUS_DESCRIPTION_MAX = 140


@dataclass(frozen=True)
class LatestStatus:
    state: CommitState
    description: str
    target_url: str | None


class RestForge(ABC):
    """Base of the GitHub, GitLab and Gitea clients."""

    provider: str = ""
    max_comment_chars: int = 65_536

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.transport.base_url!r})"

    # --- the Forge interface -----------------------------------------------------------

    def open_pull_requests(self, base_branch: str) -> list[PullRequest]:
        with self._parsing("listing pull requests"):
            prs = [pr for pr in self._list_pull_requests(base_branch) if pr.base_ref == base_branch]
        return sorted(prs, key=lambda pr: pr.number)

    def upsert_comment(self, pr: PullRequest, marker: str, body: str) -> CommentResult:
        tag = marker_comment(marker)
        text, truncated = truncate(with_marker(marker, body), self.max_comment_chars)
        with self._parsing(f"the comments of #{pr.number}"):
            return self._upsert(pr, tag, text, truncated)

    def _upsert(self, pr: PullRequest, tag: str, text: str, truncated: bool) -> CommentResult:
        existing = self._find_comment(pr, tag)
        if existing is not None:
            return self._update(pr, existing, text, truncated)
        for attempt in range(1, self.transport.policy.attempts + 1):
            try:
                created = self._create_comment(pr, text)
                return CommentResult("created", created.id, created.url, truncated)
            except ForgeError as e:
                if not e.ambiguous or attempt == self.transport.policy.attempts:
                    raise
                log.info(
                    "%s: creating the comment on #%s may have failed (%s); looking again",
                    self.provider,
                    pr.number,
                    e,
                )
            existing = self._find_comment(pr, tag)
            if existing is not None:
                return self._update(pr, existing, text, truncated, created=True)
            self.transport.wait(self.transport.backoff(attempt))
        raise AssertionError("unreachable")  # pragma: no cover

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
        ours = CommitState.parse(state)
        description = _shorten(description, STATUS_DESCRIPTION_MAX)
        with self._parsing(f"the statuses of {sha}"):
            return self._set_status(sha, ours, context, description, target_url, ref)

    def _set_status(
        self,
        sha: str,
        ours: CommitState,
        context: str,
        description: str,
        target_url: str | None,
        ref: str | None,
    ) -> StatusResult:
        latest = self._latest_status(sha, context, ref)
        if (
            latest is not None
            and self._state_key(latest.state) == self._state_key(ours)
            and latest.description == description
            and (latest.target_url or None) == (target_url or None)
        ):
            return StatusResult("unchanged", sha, ours, context)
        self._post_status(sha, ours, context, description, target_url, ref)
        return StatusResult("created", sha, ours, context)

    def close(self) -> None:
        self.transport.close()

    # --- shared helpers ----------------------------------------------------------------

    @contextmanager
    def _parsing(self, what: str) -> Iterator[None]:
        """Turn a response of an unexpected shape into a :class:`ForgeError`."""
        try:
            yield
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ForgeError(
                self.provider,
                "GET",
                self.transport.base_url,
                None,
                f"unexpected response while reading {what}: {type(e).__name__}: {e}",
            ) from None

    def _find_comment(self, pr: PullRequest, tag: str) -> Comment | None:
        for comment in self._list_comments(pr):
            if tag in comment.body:
                return comment
        return None

    def _update(
        self, pr: PullRequest, existing: Comment, text: str, truncated: bool, created: bool = False
    ) -> CommentResult:
        if same_body(existing.body, text):
            return CommentResult(
                "created" if created else "unchanged", existing.id, existing.url, truncated
            )
        edited = self._edit_comment(pr, existing.id, text)
        return CommentResult(
            "created" if created else "updated", edited.id, edited.url or existing.url, truncated
        )

    # --- per forge ---------------------------------------------------------------------

    def _state_key(self, state: CommitState) -> str:
        """What the forge stores for ``state`` (statuses that store alike are equal)."""
        return state.value

    @abstractmethod
    def _list_pull_requests(self, base_branch: str) -> Iterator[PullRequest]: ...

    @abstractmethod
    def _list_comments(self, pr: PullRequest) -> Iterator[Comment]: ...

    @abstractmethod
    def _create_comment(self, pr: PullRequest, body: str) -> Comment: ...

    @abstractmethod
    def _edit_comment(self, pr: PullRequest, comment_id: int, body: str) -> Comment: ...

    @abstractmethod
    def _latest_status(self, sha: str, context: str, ref: str | None) -> LatestStatus | None: ...

    @abstractmethod
    def _post_status(
        self,
        sha: str,
        state: CommitState,
        context: str,
        description: str,
        target_url: str | None,
        ref: str | None,
    ) -> None: ...


class RepoForge(RestForge):
    """Base of the GitHub and Gitea clients (Gitea's API follows GitHub's).

    The defaults are GitHub's; a subclass overrides what its forge does differently and
    lists pull requests and reads the latest status its own way.
    """

    max_page_size: int = 100
    #: Web path of the repository tree at a commit, between the repository URL and the sha.
    tree_path: str = "blob"

    def __init__(self, transport: Transport, repository: str, page_size: int | None = None):
        super().__init__(transport)
        owner, name = repository.split("/")
        self.repo_path = f"/repos/{quote(owner, safe='')}/{quote(name, safe='')}"
        self.page_size = min(page_size or self.max_page_size, self.max_page_size)

    def _pull_request(self, item: dict[str, Any]) -> PullRequest:
        number = int(item["number"])
        sha = str(item["head"]["sha"])
        base_repo = (item.get("base") or {}).get("repo") or {}
        head_repo = (item.get("head") or {}).get("repo") or {}
        repo_url = base_repo.get("html_url")
        return PullRequest(
            number=number,
            title=str(item.get("title", "")),
            head_sha=sha,
            head_ref=str(item["head"]["ref"]),
            base_ref=str(item["base"]["ref"]),
            author=str((item.get("user") or {}).get("login", "")),
            url=str(item.get("html_url", "")),
            fetch_ref=f"refs/pull/{number}/head",
            files_url=f"{repo_url}/{self.tree_path}/{sha}/" if repo_url else None,
            fork=not head_repo or head_repo.get("full_name") != base_repo.get("full_name"),
        )

    def _comments_query(self) -> dict[str, str | int]:
        """Query parameters of the comment listing."""
        return {"per_page": self.page_size}

    def _list_comments(self, pr: PullRequest) -> Iterator[Comment]:
        path = f"{self.repo_path}/issues/{pr.number}/comments"
        for item in self.transport.paginate(path, self._comments_query()):
            yield issue_comment(item)

    def _create_comment(self, pr: PullRequest, body: str) -> Comment:
        path = f"{self.repo_path}/issues/{pr.number}/comments"
        item = self.transport.json("POST", path, json={"body": body}, idempotent=False)
        return issue_comment(item)

    def _edit_comment(self, pr: PullRequest, comment_id: int, body: str) -> Comment:
        path = f"{self.repo_path}/issues/comments/{comment_id}"
        return issue_comment(self.transport.json("PATCH", path, json={"body": body}))

    def _post_status(
        self,
        sha: str,
        state: CommitState,
        context: str,
        description: str,
        target_url: str | None,
        ref: str | None,
    ) -> None:
        body: dict[str, str] = {
            "state": state.value,
            "context": context,
            "description": description,
        }
        if target_url:
            body["target_url"] = target_url
        self.transport.request(
            "POST", f"{self.repo_path}/statuses/{quote(sha, safe='')}", json=body
        )


def issue_comment(item: Any) -> Comment:
    """A :class:`Comment` from a GitHub or Gitea issue comment."""
    return Comment(
        id=int(item["id"]),
        body=str(item.get("body") or ""),
        author=str((item.get("user") or {}).get("login", "")),
        url=str(item.get("html_url", "")),
    )


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"

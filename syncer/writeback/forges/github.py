"""GitHub (github.com and GitHub Enterprise Server) REST API client.

Endpoints (REST API version ``2022-11-28``):

* ``GET  /repos/{owner}/{repo}/pulls?state=open&base=…&per_page=100`` — open pull requests.
* ``GET  /repos/{owner}/{repo}/issues/{number}/comments?per_page=100`` — PR conversation
  comments (a pull request is an issue for comments).
* ``POST /repos/{owner}/{repo}/issues/{number}/comments`` and
  ``PATCH /repos/{owner}/{repo}/issues/comments/{id}`` — ``{"body": …}``, ≤ 65,536 chars.
* ``GET  /repos/{owner}/{repo}/commits/{sha}/statuses`` — newest first, to skip repeats.
* ``POST /repos/{owner}/{repo}/statuses/{sha}`` — ``state`` error|failure|pending|success,
  ``context``, ``description``, ``target_url``.

Every request carries ``Authorization: Bearer <token>``, ``Accept:
application/vnd.github+json``, ``X-GitHub-Api-Version`` and a ``User-Agent`` (GitHub
refuses requests without one). Rate limits come as 403 or 429: with
``x-ratelimit-remaining: 0`` wait until ``x-ratelimit-reset``; with ``retry-after`` wait
that long; a secondary limit without either means "wait at least a minute".
Token permissions: fine-grained ``Pull requests: write`` + ``Commit statuses: write``
(and ``Metadata: read``), or classic ``repo`` (``public_repo`` for public repositories).
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import requests

from .base import LatestStatus, RepoForge
from .model import CommitState, PullRequest
from .transport import Throttle, default_classifier, retry_after, until_epoch

API_VERSION = "2022-11-28"
MAX_PAGE_SIZE = 100
MAX_COMMENT_CHARS = 65_536


def auth_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION}


def classify(response: requests.Response, now: float) -> Throttle | None:
    if response.status_code in (403, 429):
        wait = retry_after(response.headers, now)
        if wait is not None:
            return Throttle(wait, rate_limited=True)
        if response.headers.get("x-ratelimit-remaining") == "0":
            return Throttle(
                until_epoch(response.headers.get("x-ratelimit-reset"), now), rate_limited=True
            )
        if response.status_code == 429 or "rate limit" in response.text.lower():
            return Throttle(60.0, rate_limited=True)  # documented: wait at least a minute
        return None  # a plain 403: missing permission
    return default_classifier(response, now)


def error_message(response: requests.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text.strip().splitlines()[0][:200] if response.text.strip() else ""
    if not isinstance(data, dict):
        return ""
    message = str(data.get("message", ""))
    details: list[str] = []
    for err in data.get("errors") or []:
        if isinstance(err, dict):
            details.append(
                str(
                    err.get("message")
                    or " ".join(str(err.get(k, "")) for k in ("resource", "field", "code")).strip()
                )
            )
        else:
            details.append(str(err))
    return f"{message}: {'; '.join(details)}" if details else message


class GitHubForge(RepoForge):
    provider = "github"
    max_comment_chars = MAX_COMMENT_CHARS
    max_page_size = MAX_PAGE_SIZE

    def _list_pull_requests(self, base_branch: str) -> Iterator[PullRequest]:
        params: dict[str, str | int] = {
            "state": "open",
            "base": base_branch,
            "sort": "created",
            "direction": "asc",
            "per_page": self.page_size,
        }
        for item in self.transport.paginate(f"{self.repo_path}/pulls", params):
            yield self._pull_request(item)

    def _latest_status(self, sha: str, context: str, ref: str | None) -> LatestStatus | None:
        path = f"{self.repo_path}/commits/{quote(sha, safe='')}/statuses"
        for item in self.transport.paginate(path, {"per_page": self.page_size}):
            if str(item.get("context", "")).lower() == context.lower():  # case-insensitive
                return LatestStatus(
                    CommitState.parse(item["state"]),
                    str(item.get("description") or ""),
                    item.get("target_url"),
                )
        return None

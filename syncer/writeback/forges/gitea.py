"""Gitea (and Forgejo) REST API v1 client.

Endpoints (base ``https://<host>/api/v1``):

* ``GET  /repos/{owner}/{repo}/pulls?state=open&base_branch=…&sort=oldest&limit=50&page=N``
  — ``limit`` is capped by the server's ``[api] MAX_RESPONSE_ITEMS`` (50 by default);
  ``base_branch`` is recent (older servers ignore it), so the client filters as well.
* ``GET  /repos/{owner}/{repo}/issues/{index}/comments`` — all comments of the pull
  request in one response (this endpoint has no paging parameters; a ``Link`` header is
  still followed should a server send one).
* ``POST /repos/{owner}/{repo}/issues/{index}/comments`` and
  ``PATCH /repos/{owner}/{repo}/issues/comments/{id}`` — ``{"body": …}``.
* ``GET  /repos/{owner}/{repo}/commits/{sha}/status`` — combined status, latest per context.
* ``POST /repos/{owner}/{repo}/statuses/{sha}`` — ``state`` pending|success|error|failure|
  warning, ``context``, ``description``, ``target_url``.

Authentication: ``Authorization: token <token>``. Token scopes: ``write:repository``
(statuses) and ``write:issue`` (comments; pull-request comments are issue comments).

Comment size: Gitea documents no limit for comment bodies (the column is unbounded
text), but a reverse proxy in front usually caps request bodies and very long comments
make the pull-request page slow, so syncer keeps Gitea comments to 65,536 characters,
the same as GitHub.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import requests

from .base import LatestStatus, RepoForge, issue_comment
from .model import Comment, CommitState, PullRequest

MAX_PAGE_SIZE = 50
MAX_COMMENT_CHARS = 65_536

FROM_GITEA: dict[str, CommitState] = {
    "pending": CommitState.PENDING,
    "success": CommitState.SUCCESS,
    "failure": CommitState.FAILURE,
    "error": CommitState.ERROR,
    "warning": CommitState.FAILURE,
    "skipped": CommitState.SUCCESS,
}


def auth_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"token {token}"}


HEADERS = {"Accept": "application/json"}


def error_message(response: requests.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text.strip()[:200]
    if isinstance(data, dict):
        message = str(data.get("message") or "")
        errors = data.get("errors")
        if isinstance(errors, list) and errors:
            message += (": " if message else "") + "; ".join(map(str, errors))
        return message
    if isinstance(data, list):  # binding errors: [{"fieldNames": [...], "message": ...}]
        return "; ".join(str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in data)
    return str(data)[:200]


class GiteaForge(RepoForge):
    provider = "gitea"
    max_comment_chars = MAX_COMMENT_CHARS
    max_page_size = MAX_PAGE_SIZE
    tree_path = "src/commit"

    def _list_pull_requests(self, base_branch: str) -> Iterator[PullRequest]:
        params: dict[str, str | int] = {
            "state": "open",
            "base_branch": base_branch,
            "sort": "oldest",
            "limit": self.page_size,
        }
        for item in self.transport.paginate(f"{self.repo_path}/pulls", params):
            yield self._pull_request(item)

    def _comments_query(self) -> dict[str, str | int]:
        return {}  # the endpoint has no paging parameters

    def _edit_comment(self, pr: PullRequest, comment_id: int, body: str) -> Comment:
        path = f"{self.repo_path}/issues/comments/{comment_id}"
        item = self.transport.json("PATCH", path, json={"body": body})
        if item is None:  # 204: Gitea's answer for a comment type without content
            return Comment(id=comment_id, body=body)
        return issue_comment(item)

    def _latest_status(self, sha: str, context: str, ref: str | None) -> LatestStatus | None:
        path = f"{self.repo_path}/commits/{quote(sha, safe='')}/status"
        seen, page = 0, 1
        while True:
            params: dict[str, str | int] = {"limit": self.page_size, "page": page}
            data = self.transport.json("GET", path, params=params) or {}
            statuses = data.get("statuses") or []
            for item in statuses:
                if item.get("context") == context:
                    state = FROM_GITEA.get(
                        str(item.get("status") or item.get("state")), CommitState.ERROR
                    )
                    return LatestStatus(
                        state, str(item.get("description") or ""), item.get("target_url") or None
                    )
            seen += len(statuses)
            if not statuses or seen >= int(data.get("total_count") or 0):
                return None
            page += 1

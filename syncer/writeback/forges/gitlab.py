"""GitLab (gitlab.com and self-managed) REST API v4 client.

Endpoints (``:id`` is the numeric project id or the URL-encoded path, ``group%2Fproject``):

* ``GET  /projects/:id/merge_requests?state=opened&target_branch=…&per_page=100``.
* ``GET  /projects/:id/merge_requests/:iid/notes?sort=asc&order_by=created_at&per_page=100``
  — notes include system notes ("added 1 commit"), which are skipped.
* ``POST /projects/:id/merge_requests/:iid/notes`` and
  ``PUT /projects/:id/merge_requests/:iid/notes/:note_id`` — ``{"body": …}``, ≤ 1,000,000
  characters (GitLab answers 400 ``Note {:note=>["is too long …"]}`` beyond).
* ``GET  /projects/:id/repository/commits/:sha/statuses?name=…`` — latest per name.
* ``POST /projects/:id/statuses/:sha`` — ``state`` pending|running|success|failed|canceled,
  ``name``, ``ref``, ``description``, ``target_url``. syncer's ``failure`` and ``error``
  both become ``failed``. GitLab refuses to repeat ``pending`` or ``running`` (400
  ``Cannot transition status via :enqueue from :pending``), which the status dedup avoids;
  should a race still hit it, the status is read back and an equal one counts as done.

Authentication: ``PRIVATE-TOKEN: <token>`` (personal/project/group access tokens) or
``Authorization: Bearer <token>`` (OAuth). Pagination: ``X-Next-Page`` (and ``Link``).
Rate limits: 429 with ``Retry-After`` and ``RateLimit-Reset``. Token scope: ``api``
(a project access token with the Developer role is enough).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import requests

from .base import LatestStatus, RestForge
from .errors import ForgeError
from .model import Comment, CommitState, PullRequest
from .transport import Throttle, Transport, default_classifier, retry_after, until_epoch

MAX_PAGE_SIZE = 100
MAX_COMMENT_CHARS = 1_000_000

TO_GITLAB: dict[CommitState, str] = {
    CommitState.PENDING: "pending",
    CommitState.SUCCESS: "success",
    CommitState.FAILURE: "failed",
    CommitState.ERROR: "failed",
}
FROM_GITLAB: dict[str, CommitState] = {
    "created": CommitState.PENDING,
    "waiting_for_resource": CommitState.PENDING,
    "preparing": CommitState.PENDING,
    "pending": CommitState.PENDING,
    "running": CommitState.PENDING,
    "manual": CommitState.PENDING,
    "scheduled": CommitState.PENDING,
    "success": CommitState.SUCCESS,
    "failed": CommitState.FAILURE,
    "canceled": CommitState.ERROR,
    "skipped": CommitState.ERROR,
}


def auth_headers_for(mode: str) -> Callable[[str], dict[str, str]]:
    if mode == "bearer":
        return lambda token: {"Authorization": f"Bearer {token}"}
    return lambda token: {"PRIVATE-TOKEN": token}


def classify(response: requests.Response, now: float) -> Throttle | None:
    if response.status_code == 429:
        wait = retry_after(response.headers, now)
        if wait is None:
            wait = until_epoch(response.headers.get("RateLimit-Reset"), now)
        return Throttle(wait, rate_limited=True)
    return default_classifier(response, now)


def error_message(response: requests.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text.strip()[:200]
    if isinstance(data, dict):
        for key in ("message", "error", "error_description"):
            if key in data:
                value = data[key]
                if isinstance(value, dict):
                    return "; ".join(
                        f"{k} {', '.join(map(str, v)) if isinstance(v, list) else v}"
                        for k, v in value.items()
                    )
                return str(value)
    return str(data)[:200]


class GitLabForge(RestForge):
    provider = "gitlab"
    max_comment_chars = MAX_COMMENT_CHARS

    def __init__(self, transport: Transport, project: str, page_size: int | None = None):
        super().__init__(transport)
        self.project_path = f"/projects/{quote(project, safe='')}"
        self.page_size = min(page_size or MAX_PAGE_SIZE, MAX_PAGE_SIZE)

    def _list_pull_requests(self, base_branch: str) -> Iterator[PullRequest]:
        params: dict[str, str | int] = {
            "state": "opened",
            "target_branch": base_branch,
            "order_by": "created_at",
            "sort": "asc",
            "per_page": self.page_size,
        }
        path = f"{self.project_path}/merge_requests"
        for item in self.transport.paginate(path, params, x_next_page=True):
            yield self._merge_request(item)

    def _merge_request(self, item: dict[str, Any]) -> PullRequest:
        iid = int(item["iid"])
        sha = str(item["sha"])
        web_url = str(item.get("web_url", ""))
        project_url = (
            web_url.split("/-/merge_requests/")[0] if "/-/merge_requests/" in web_url else None
        )
        return PullRequest(
            number=iid,
            title=str(item.get("title", "")),
            head_sha=sha,
            head_ref=str(item["source_branch"]),
            base_ref=str(item["target_branch"]),
            author=str((item.get("author") or {}).get("username", "")),
            url=web_url,
            fetch_ref=f"refs/merge-requests/{iid}/head",
            files_url=f"{project_url}/-/blob/{sha}/" if project_url else None,
            fork=item.get("source_project_id") != item.get("target_project_id"),
        )

    def _notes_path(self, pr: PullRequest) -> str:
        return f"{self.project_path}/merge_requests/{pr.number}/notes"

    def _list_comments(self, pr: PullRequest) -> Iterator[Comment]:
        params: dict[str, str | int] = {
            "sort": "asc",
            "order_by": "created_at",
            "per_page": self.page_size,
        }
        for item in self.transport.paginate(self._notes_path(pr), params, x_next_page=True):
            if not item.get("system"):
                yield self._note(pr, item)

    def _create_comment(self, pr: PullRequest, body: str) -> Comment:
        item = self.transport.json(
            "POST", self._notes_path(pr), json={"body": body}, idempotent=False
        )
        return self._note(pr, item)

    def _edit_comment(self, pr: PullRequest, comment_id: int, body: str) -> Comment:
        item = self.transport.json(
            "PUT", f"{self._notes_path(pr)}/{comment_id}", json={"body": body}
        )
        return self._note(pr, item)

    def _note(self, pr: PullRequest, item: Any) -> Comment:
        note_id = int(item["id"])
        return Comment(
            id=note_id,
            body=str(item.get("body") or ""),
            author=str((item.get("author") or {}).get("username", "")),
            url=f"{pr.url}#note_{note_id}" if pr.url else "",
        )

    def _state_key(self, state: CommitState) -> str:
        return TO_GITLAB[state]

    def _latest_status(self, sha: str, context: str, ref: str | None) -> LatestStatus | None:
        path = f"{self.project_path}/repository/commits/{quote(sha, safe='')}/statuses"
        params: dict[str, str | int] = {"name": context, "per_page": self.page_size}
        if ref:
            params["ref"] = ref
        for item in self.transport.paginate(path, params, x_next_page=True):
            if item.get("name") == context:
                state = FROM_GITLAB.get(str(item.get("status")), CommitState.ERROR)
                return LatestStatus(
                    state, str(item.get("description") or ""), item.get("target_url")
                )
        return None

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
            "state": TO_GITLAB[state],
            "name": context,
            "description": description,
        }
        if target_url:
            body["target_url"] = target_url
        if ref:
            body["ref"] = ref
        path = f"{self.project_path}/statuses/{quote(sha, safe='')}"
        try:
            self.transport.request("POST", path, json=body)
        except ForgeError as e:
            if e.status == 400 and "cannot transition status" in e.message.lower():
                latest = self._latest_status(sha, context, ref)
                if latest is not None and self._state_key(latest.state) == self._state_key(state):
                    return
            raise

"""GitHub REST API (2022-11-28) as the simulator serves it.

Implemented: list pull requests, list/create issue comments, edit an issue comment,
list statuses of a ref, create a commit status. Behaviour copied from the documentation
and from real responses:

* no ``User-Agent`` → 403 with a plain-text body; an unsupported ``X-GitHub-Api-Version``
  → 400;
* wrong token → 401 ``Bad credentials``; no token → 404 ``Not Found`` for reads of the
  (private) repository, 401 ``Requires authentication`` for writes;
* comment bodies over 65,536 characters → 422 ``Validation Failed`` with
  ``body is too long (maximum is 65536 characters)``; a missing body → 422;
* statuses: ``state`` must be error|failure|pending|success, ``description`` at most 140
  characters, the commit must exist (422 ``No commit found for SHA``), at most 1,000
  statuses per commit and context;
* pagination with ``per_page`` (≤ 100) and ``page``, ``Link`` header with next/last/first/
  prev; ``x-ratelimit-*`` headers on every answer; rate limits as 403 with
  ``x-ratelimit-remaining: 0`` and ``x-ratelimit-reset`` (primary) or 429 with
  ``retry-after`` (secondary).
"""

from __future__ import annotations

import time
from typing import Any

from .core import ApiError, Dialect, Fault, Reply, Request, Route, SimComment, SimStatus, route

DOCS = "https://docs.github.com/rest"
API_VERSIONS = frozenset({"2022-11-28"})
STATES = ("error", "failure", "pending", "success")
MAX_STATUSES = 1000

OWNER_REPO = r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)"


def _error(status: int, message: str, **extra: Any) -> Reply:
    return Reply(
        status, {"message": message, **extra, "documentation_url": DOCS, "status": str(status)}
    )


def _validation(resource: str, field: str, message: str) -> Reply:
    return _error(
        422,
        "Validation Failed",
        errors=[{"resource": resource, "code": "custom", "field": field, "message": message}],
    )


class GitHubDialect(Dialect):
    name = "github"
    prefix = ""
    default_page_size = 30
    max_page_size = 100
    comment_limit = 65_536

    def routes(self) -> list[Route]:
        return [
            route(
                "GET",
                OWNER_REPO + r"/pulls",
                self.list_pulls,
                params=("state", "base", "head", "sort", "direction", "per_page", "page"),
            ),
            route(
                "GET",
                OWNER_REPO + r"/issues/(?P<number>\d+)/comments",
                self.list_comments,
                params=("since", "per_page", "page"),
            ),
            route(
                "POST",
                OWNER_REPO + r"/issues/(?P<number>\d+)/comments",
                self.create_comment,
                fields=("body",),
            ),
            route(
                "PATCH",
                OWNER_REPO + r"/issues/comments/(?P<id>\d+)",
                self.edit_comment,
                fields=("body",),
            ),
            route(
                "GET",
                OWNER_REPO + r"/commits/(?P<ref>[^/]+)/statuses",
                self.list_statuses,
                params=("per_page", "page"),
            ),
            route(
                "POST",
                OWNER_REPO + r"/statuses/(?P<sha>[^/]+)",
                self.create_status,
                fields=("state", "target_url", "description", "context"),
            ),
        ]

    # --- request checks ----------------------------------------------------------------

    def check(self, req: Request) -> None:
        if not req.headers.get("user-agent"):
            raise ApiError(
                Reply(
                    403,
                    "Request forbidden by administrative rules. Please make "
                    "sure your request has a User-Agent header "
                    "(https://docs.github.com/en/rest/overview/"
                    "resources-in-the-rest-api#user-agent-required). "
                    "Check https://developer.github.com for other possible "
                    "causes.\n",
                ),
                "missing User-Agent",
            )
        version = req.headers.get("x-github-api-version")
        if version is not None and version not in API_VERSIONS:
            raise ApiError(
                _error(400, f"API version '{version}' is not supported."),
                f"unsupported X-GitHub-Api-Version {version}",
            )

    def authenticate(self, req: Request) -> None:
        value = req.headers.get("authorization", "")
        scheme, _, token = value.partition(" ")
        if not value:
            if req.method == "GET":
                raise ApiError(_error(404, "Not Found"))
            raise ApiError(_error(401, "Requires authentication"))
        if scheme.lower() not in ("bearer", "token") or token != self.sim.token:
            raise ApiError(_error(401, "Bad credentials"))

    def not_found(self) -> Reply:
        return _error(404, "Not Found")

    def unknown_field(self, name: str) -> Reply:
        return _error(
            422,
            f'Invalid request.\n\nNo subschema in "anyOf" matched.\n{name} is not a permitted key.',
        )

    def rate_limit(self, retry_after: int, kind: str) -> Fault:
        if kind == "reset":
            return Fault(
                403,
                headers={
                    "x-ratelimit-limit": "5000",
                    "x-ratelimit-remaining": "0",
                    "x-ratelimit-used": "5000",
                    "x-ratelimit-resource": "core",
                    "x-ratelimit-reset": str(int(time.time()) + retry_after),
                },
                body={
                    "message": "API rate limit exceeded for user ID 1. If you reach out to "
                    "GitHub Support for help, please include the request ID.",
                    "documentation_url": DOCS + "/overview/rate-limits-for-the-rest-api",
                },
            )
        return Fault(
            429,
            headers={"retry-after": str(retry_after)},
            body={
                "message": "You have exceeded a secondary rate limit. Please wait "
                "a few minutes before you try again.",
                "documentation_url": DOCS + "/overview/rate-limits-for-the-rest-api",
            },
        )

    def extra_headers(self) -> dict[str, str]:
        used = len(self.sim.requests) + 1
        return {
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": str(max(0, 5000 - used)),
            "x-ratelimit-used": str(used),
            "x-ratelimit-resource": "core",
            "x-ratelimit-reset": str(int(time.time()) + 3600),
            "x-github-api-version-selected": "2022-11-28",
        }

    # --- helpers -----------------------------------------------------------------------

    def _paged(self, req: Request, items: list[Any]) -> Reply:
        chunk, page, _size, pages = self.sim.page(req, items, "per_page")
        return Reply(200, chunk, self.sim.link_headers(req, page, pages))

    def _repo_json(self) -> dict[str, Any]:
        return {"full_name": self.sim.repository, "html_url": self.sim.web_url, "private": True}

    def _fork_json(self, owner: str) -> dict[str, Any]:
        name = self.sim.repository.split("/")[-1]
        return {"full_name": f"{owner}/{name}", "html_url": f"https://github.example/{owner}/"
                f"{name}", "private": False, "fork": True}

    def _comment_json(self, c: SimComment) -> dict[str, Any]:
        base = f"{self.sim.api_url}/repos/{self.sim.repository}"
        return {
            "id": c.id,
            "node_id": f"IC_{c.id}",
            "body": c.body,
            "user": {"login": c.author, "type": "User"},
            "url": f"{base}/issues/comments/{c.id}",
            "html_url": f"{self.sim.web_url}/pull/{c.number}#issuecomment-{c.id}",
            "issue_url": f"{base}/issues/{c.number}",
            "created_at": c.created_at,
            "updated_at": c.updated_at,
            "author_association": "NONE",
        }

    def _check_body(self, data: dict[str, Any]) -> str:
        body = data.get("body")
        if not isinstance(body, str):
            raise ApiError(
                _error(422, 'Invalid request.\n\n"body" wasn\'t supplied.'),
                "comment without a body",
            )
        if len(body) > self.comment_limit:
            raise ApiError(
                _validation(
                    "IssueComment",
                    "body",
                    f"body is too long (maximum is {self.comment_limit} characters)",
                )
            )
        return body

    # --- endpoints ---------------------------------------------------------------------

    def list_pulls(self, req: Request) -> Reply:
        self._repo(req)
        state = req.param("state", "open")
        if state not in ("open", "closed", "all"):
            raise ApiError(
                _validation("PullRequest", "state", "state is not valid"), f"invalid state {state}"
            )
        base = req.param("base")
        prs = sorted(
            self.sim.pull_requests.values(),
            key=lambda p: p.number,
            reverse=req.param("direction", "desc") == "desc",
        )
        items = [
            {
                "id": 5000 + p.number,
                "number": p.number,
                "state": "open" if p.state == "open" else "closed",
                "title": p.title,
                "user": {"login": p.author},
                "html_url": f"{self.sim.web_url}/pull/{p.number}",
                "draft": False,
                "created_at": p.created_at,
                "head": {
                    "ref": p.head_ref,
                    "sha": p.head_sha,
                    "label": f"{p.author}:{p.head_ref}",
                    # A fork's head repo is the author's copy (GitHub's pulls API).
                    "repo": self._fork_json(p.author) if p.fork else self._repo_json(),
                },
                "base": {
                    "ref": p.base,
                    "sha": "0" * 40,
                    "label": f"acme:{p.base}",
                    "repo": self._repo_json(),
                },
            }
            for p in prs
            if (state == "all" or (p.state == "open") == (state == "open"))
            and (base is None or p.base == base)
        ]
        return self._paged(req, items)

    def list_comments(self, req: Request) -> Reply:
        self._repo(req)
        number = int(req.match["number"])
        if number not in self.sim.pull_requests:
            raise ApiError(_error(404, "Not Found"))
        items = [
            self._comment_json(c)
            for c in sorted(self.sim.comments.values(), key=lambda c: c.id)
            if c.number == number and not c.system
        ]
        return self._paged(req, items)

    def create_comment(self, req: Request) -> Reply:
        self._repo(req)
        number = int(req.match["number"])
        body = self._check_body(req.json_object(self.not_found))
        if number not in self.sim.pull_requests:
            raise ApiError(_error(404, "Not Found"))
        c = self.sim.add_comment(number, body, author=self.sim.bot)
        data = self._comment_json(c)
        return Reply(201, data, {"Location": data["url"]})

    def edit_comment(self, req: Request) -> Reply:
        self._repo(req)
        body = self._check_body(req.json_object(self.not_found))
        c = self.sim.comments.get(int(req.match["id"]))
        if c is None or c.system:
            raise ApiError(_error(404, "Not Found"))
        c.body, c.updated_at = body, self.sim.stamp()
        return Reply(200, self._comment_json(c))

    def _status_json(self, s: SimStatus) -> dict[str, Any]:
        return {
            "id": s.id,
            "state": s.state,
            "description": s.description,
            "target_url": s.target_url,
            "context": s.context,
            "created_at": s.created_at,
            "updated_at": s.created_at,
            "creator": {"login": self.sim.bot},
        }

    def list_statuses(self, req: Request) -> Reply:
        self._repo(req)
        ref = req.match["ref"]
        if ref not in self.sim.commits:
            raise ApiError(_error(404, "Not Found"))
        items = [self._status_json(s) for s in reversed(self.sim.statuses) if s.sha == ref]
        return self._paged(req, items)

    def create_status(self, req: Request) -> Reply:
        self._repo(req)
        sha = req.match["sha"]
        data = req.json_object(self.not_found)
        state = data.get("state")
        if state not in STATES:
            raise ApiError(
                _validation("Status", "state", "state is not included in the list"),
                f"invalid status state {state!r}",
            )
        description = data.get("description") or ""
        if len(description) > 140:
            raise ApiError(
                _validation(
                    "Status", "description", "description is too long (maximum is 140 characters)"
                ),
                "status description over 140 characters",
            )
        if sha not in self.sim.commits:
            raise ApiError(_error(422, f"No commit found for SHA: {sha}"))
        context = data.get("context") or "default"
        if (
            sum(
                1
                for s in self.sim.statuses
                if s.sha == sha and s.context.lower() == context.lower()
            )
            >= MAX_STATUSES
        ):
            raise ApiError(
                _validation(
                    "Status",
                    "context",
                    "This SHA and context has reached the maximum number of statuses.",
                )
            )
        s = self.sim.add_status(sha, state, context, description, data.get("target_url"))
        return Reply(201, self._status_json(s))

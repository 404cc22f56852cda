"""Gitea REST API v1 as the simulator serves it.

Implemented: list pull requests, list/create issue comments, edit an issue comment, the
combined status of a commit, create a commit status. Behaviour copied from Gitea's API
routes and real responses:

* ``Authorization: token <t>`` (``Bearer`` is accepted too); wrong token → 401
  ``invalid username, password or token``; no token → 404 for reads of the (private)
  repository, 401 ``token is required`` for writes;
* ``limit`` is capped by ``MAX_RESPONSE_ITEMS`` (50 by default), ``Link`` and
  ``X-Total-Count`` headers; the issue-comments list has **no** paging (all comments in
  one answer), as in Gitea;
* a comment without ``body`` → 422 binding error; states pending|success|error|failure|
  warning (others → 422); unknown commit → 404.

Gitea itself stores comments of any length; the simulator stands for a Gitea behind the
usual reverse proxy and answers 413 for comments over :attr:`comment_limit` (65,536
characters, the limit syncer keeps to), so tests can see truncation work.
"""

from __future__ import annotations

from typing import Any

from .core import ApiError, Dialect, Fault, Reply, Request, Route, SimComment, SimStatus, route

REPO = r"/api/v1/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)"
STATES = ("pending", "success", "error", "failure", "warning", "skipped")
SEVERITY = {"success": 0, "skipped": 0, "pending": 1, "warning": 2, "failure": 3, "error": 4}


class GiteaDialect(Dialect):
    name = "gitea"
    prefix = "/api/v1"
    default_page_size = 30
    max_page_size = 50
    comment_limit = 65_536

    def _error(self, status: int, message: str, errors: list[str] | None = None) -> Reply:
        body: dict[str, Any] = {"message": message, "url": f"{self.sim.url}/api/swagger"}
        if errors is not None:
            body["errors"] = errors
        return Reply(status, body)

    def routes(self) -> list[Route]:
        return [
            route(
                "GET",
                REPO + r"/pulls",
                self.list_pulls,
                params=(
                    "state",
                    "sort",
                    "milestone",
                    "labels",
                    "poster",
                    "base_branch",
                    "page",
                    "limit",
                ),
            ),
            route(
                "GET",
                REPO + r"/issues/(?P<index>\d+)/comments",
                self.list_comments,
                params=("since", "before"),
            ),
            route(
                "POST",
                REPO + r"/issues/(?P<index>\d+)/comments",
                self.create_comment,
                fields=("body",),
            ),
            route(
                "PATCH", REPO + r"/issues/comments/(?P<id>\d+)", self.edit_comment, fields=("body",)
            ),
            route(
                "GET",
                REPO + r"/commits/(?P<ref>[^/]+)/status",
                self.combined_status,
                params=("page", "limit"),
            ),
            route(
                "POST",
                REPO + r"/statuses/(?P<sha>[^/]+)",
                self.create_status,
                fields=("state", "target_url", "description", "context"),
            ),
        ]

    def authenticate(self, req: Request) -> None:
        scheme, _, token = req.headers.get("authorization", "").partition(" ")
        if not token:
            if req.method == "GET":
                raise ApiError(self.not_found())
            raise ApiError(self._error(401, "token is required"))
        if scheme.lower() not in ("token", "bearer") or token != self.sim.token:
            raise ApiError(self._error(401, "invalid username, password or token"))

    def not_found(self) -> Reply:
        return self._error(404, "The target couldn't be found.", errors=[])

    def unknown_field(self, name: str) -> Reply:
        return self._error(422, f"unknown field {name}")

    def rate_limit(self, retry_after: int, kind: str) -> Fault:
        return Fault(
            429, headers={"Retry-After": str(retry_after)}, body={"message": "Too Many Requests"}
        )

    # --- helpers -----------------------------------------------------------------------

    def _comment_json(self, c: SimComment) -> dict[str, Any]:
        return {
            "id": c.id,
            "body": c.body,
            "user": {"login": c.author, "username": c.author},
            "html_url": f"{self.sim.web_url}/pulls/{c.number}#issuecomment-{c.id}",
            "pull_request_url": f"{self.sim.web_url}/pulls/{c.number}",
            "issue_url": "",
            "created_at": c.created_at,
            "updated_at": c.updated_at,
            "original_author": "",
            "assets": [],
        }

    def _body(self, req: Request) -> str:
        body = req.json_object(lambda: self._error(422, "invalid JSON")).get("body")
        if not isinstance(body, str) or not body:
            raise ApiError(
                Reply(
                    422,
                    [
                        {
                            "fieldNames": ["Body"],
                            "classification": "RequiredError",
                            "message": "Required",
                        }
                    ],
                ),
                "comment without a body",
            )
        if len(body) > self.comment_limit:
            raise ApiError(Reply(413, "413 Request Entity Too Large\n"))
        return body

    # --- endpoints ---------------------------------------------------------------------

    def list_pulls(self, req: Request) -> Reply:
        self._repo(req)
        state = req.param("state", "open")
        if state not in ("open", "closed", "all"):
            raise ApiError(self._error(422, f"invalid state {state}"), f"invalid state {state}")
        base = req.param("base_branch")
        repo = {"full_name": self.sim.repository, "html_url": self.sim.web_url, "private": True}
        items = [
            {
                "id": 7000 + p.number,
                "number": p.number,
                "title": p.title,
                "state": "open" if p.state == "open" else "closed",
                "user": {"login": p.author},
                "html_url": f"{self.sim.web_url}/pulls/{p.number}",
                "created_at": p.created_at,
                "head": {"ref": p.head_ref, "sha": p.head_sha, "label": p.head_ref,
                         "repo": ({"full_name": f"{p.author}/{self.sim.repository.split('/')[-1]}",
                                   "fork": True} if p.fork else repo)},
                "base": {"ref": p.base, "sha": "0" * 40, "label": p.base, "repo": repo},
                "merged": False,
                "mergeable": True,
            }
            for p in sorted(self.sim.pull_requests.values(), key=lambda p: p.number)
            if (state == "all" or (state == "open") == (p.state == "open"))
            and (base is None or p.base == base)
        ]
        chunk, page, _size, pages = self.sim.page(req, items, "limit")
        headers = {"X-Total-Count": str(len(items)), **self.sim.link_headers(req, page, pages)}
        return Reply(200, chunk, headers)

    def list_comments(self, req: Request) -> Reply:
        self._repo(req)
        index = int(req.match["index"])
        if index not in self.sim.pull_requests:
            raise ApiError(self.not_found())
        items = [
            self._comment_json(c)
            for c in sorted(self.sim.comments.values(), key=lambda c: c.id)
            if c.number == index and not c.system
        ]
        return Reply(200, items, {"X-Total-Count": str(len(items))})

    def create_comment(self, req: Request) -> Reply:
        self._repo(req)
        index = int(req.match["index"])
        body = self._body(req)
        if index not in self.sim.pull_requests:
            raise ApiError(self.not_found())
        c = self.sim.add_comment(index, body, author=self.sim.bot)
        return Reply(201, self._comment_json(c))

    def edit_comment(self, req: Request) -> Reply:
        self._repo(req)
        body = self._body(req)
        c = self.sim.comments.get(int(req.match["id"]))
        if c is None:
            raise ApiError(self.not_found())
        c.body, c.updated_at = body, self.sim.stamp()
        return Reply(200, self._comment_json(c))

    def _status_json(self, s: SimStatus) -> dict[str, Any]:
        return {
            "id": s.id,
            "status": s.state,
            "target_url": s.target_url or "",
            "description": s.description,
            "context": s.context,
            "url": f"{self.sim.api_url}/repos/{self.sim.repository}/statuses/{s.sha}",
            "creator": {"login": self.sim.bot},
            "created_at": s.created_at,
            "updated_at": s.created_at,
        }

    def combined_status(self, req: Request) -> Reply:
        self._repo(req)
        sha = req.match["ref"]
        if sha not in self.sim.commits:
            raise ApiError(self.not_found())
        latest: dict[str, SimStatus] = {}
        for s in self.sim.statuses:
            if s.sha == sha:
                latest[s.context] = s
        ordered = sorted(latest.values(), key=lambda s: s.id)
        chunk, _page, _size, _pages = self.sim.page(req, ordered, "limit")
        worst = max((s.state for s in ordered), key=lambda st: SEVERITY[st], default="")
        return Reply(
            200,
            {
                "state": worst,
                "sha": sha,
                "total_count": len(ordered),
                "statuses": [self._status_json(s) for s in chunk],
                "commit_url": "",
                "url": "",
                "repository": {"full_name": self.sim.repository},
            },
        )

    def create_status(self, req: Request) -> Reply:
        self._repo(req)
        sha = req.match["sha"]
        data = req.json_object(lambda: self._error(422, "invalid JSON"))
        state = data.get("state")
        if state not in STATES:
            raise ApiError(
                self._error(422, f"invalid commit status state {state!r}"),
                f"invalid status state {state!r}",
            )
        if sha not in self.sim.commits:
            raise ApiError(self.not_found())
        s = self.sim.add_status(
            sha,
            state,
            data.get("context") or "default",
            data.get("description") or "",
            data.get("target_url") or None,
        )
        return Reply(201, self._status_json(s))

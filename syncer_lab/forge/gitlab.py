"""GitLab REST API v4 as the simulator serves it.

Implemented: list merge requests, list/create/update merge-request notes, list a commit's
statuses, post a commit status. Behaviour copied from the documentation and from real
responses:

* ``:id`` is the numeric project id or the URL-encoded path (``acme%2Ffleet``); an
  unencoded path does not match any route (as on GitLab, where it is a 404);
* ``PRIVATE-TOKEN`` or ``Authorization: Bearer``; wrong token → 401 ``401 Unauthorized``;
  no token → 404 ``404 Project Not Found`` (private project) for reads, 401 for writes;
* note bodies over 1,000,000 characters → 400
  ``Note {:note=>["is too long (maximum is 1000000 characters)"]}``; missing → 400
  ``body is missing``;
* statuses: state pending|running|success|failed|canceled (else 400 ``state does not have
  a valid value``); ``pending`` on a pending status or ``running`` on a running one →
  400 ``Cannot transition status via …``; unknown commit → 404 ``404 Commit Not Found``;
* notes list newest first unless ``sort=asc``; system notes are part of the list;
* pagination with ``per_page`` (≤ 100) and ``page``; ``X-Page``, ``X-Per-Page``,
  ``X-Next-Page``, ``X-Prev-Page``, ``X-Total``, ``X-Total-Pages`` and ``Link``; rate
  limits as 429 ``Retry later`` with ``Retry-After`` and ``RateLimit-*`` headers.
"""

from __future__ import annotations

import time
from email.utils import formatdate
from typing import Any
from urllib.parse import unquote

from .core import ApiError, Dialect, Fault, Reply, Request, Route, SimComment, SimStatus, route

PROJECT = r"/api/v4/projects/(?P<id>[^/]+)"
STATES = ("pending", "running", "success", "failed", "canceled", "skipped")
ACTIVE = ("pending", "running")


def _message(status: int, message: str) -> Reply:
    return Reply(status, {"message": message})


class GitLabDialect(Dialect):
    name = "gitlab"
    prefix = "/api/v4"
    default_page_size = 20
    max_page_size = 100
    comment_limit = 1_000_000

    def routes(self) -> list[Route]:
        mr = PROJECT + r"/merge_requests/(?P<iid>\d+)"
        return [
            route(
                "GET",
                PROJECT + r"/merge_requests",
                self.list_mrs,
                params=(
                    "state",
                    "target_branch",
                    "source_branch",
                    "order_by",
                    "sort",
                    "per_page",
                    "page",
                ),
            ),
            route(
                "GET",
                mr + r"/notes",
                self.list_notes,
                params=("sort", "order_by", "per_page", "page"),
            ),
            route("POST", mr + r"/notes", self.create_note, fields=("body", "internal")),
            route("PUT", mr + r"/notes/(?P<note>\d+)", self.update_note, fields=("body",)),
            route(
                "GET",
                PROJECT + r"/repository/commits/(?P<sha>[^/]+)/statuses",
                self.list_statuses,
                params=(
                    "ref",
                    "stage",
                    "name",
                    "pipeline_id",
                    "all",
                    "order_by",
                    "sort",
                    "per_page",
                    "page",
                ),
            ),
            route(
                "POST",
                PROJECT + r"/statuses/(?P<sha>[^/]+)",
                self.create_status,
                fields=(
                    "state",
                    "ref",
                    "name",
                    "context",
                    "target_url",
                    "description",
                    "coverage",
                    "pipeline_id",
                ),
            ),
        ]

    def authenticate(self, req: Request) -> None:
        token = req.headers.get("private-token")
        if token is None:
            scheme, _, value = req.headers.get("authorization", "").partition(" ")
            token = value if scheme.lower() == "bearer" else None
        if token is None:
            if req.method == "GET":
                raise ApiError(_message(404, "404 Project Not Found"))
            raise ApiError(_message(401, "401 Unauthorized"))
        if token != self.sim.token:
            raise ApiError(_message(401, "401 Unauthorized"))

    def not_found(self) -> Reply:
        return Reply(404, {"error": "404 Not Found"})

    def unknown_field(self, name: str) -> Reply:
        return Reply(400, {"error": f"{name} does not have a valid value"})

    def rate_limit(self, retry_after: int, kind: str) -> Fault:
        reset = int(time.time()) + retry_after
        return Fault(
            429,
            body="Retry later\n",
            headers={
                "Retry-After": str(retry_after),
                "RateLimit-Name": "throttle_authenticated_api",
                "RateLimit-Limit": "2000",
                "RateLimit-Observed": "2001",
                "RateLimit-Remaining": "0",
                "RateLimit-Reset": str(reset),
                "RateLimit-ResetTime": formatdate(reset, usegmt=True),
            },
        )

    # --- helpers -----------------------------------------------------------------------

    def _project(self, req: Request) -> None:
        ident = req.match["id"]
        if ident == str(self.sim.project_id):
            return
        if "/" not in ident and unquote(ident).lower() == self.sim.repository.lower():
            return
        raise ApiError(_message(404, "404 Project Not Found"))

    def _paged(self, req: Request, items: list[Any]) -> Reply:
        chunk, page, size, pages = self.sim.page(req, items, "per_page")
        headers = {
            "X-Page": str(page),
            "X-Per-Page": str(size),
            "X-Next-Page": str(page + 1) if page < pages else "",
            "X-Prev-Page": str(page - 1) if page > 1 else "",
            "X-Total": str(len(items)),
            "X-Total-Pages": str(pages),
            **self.sim.link_headers(req, page, pages),
        }
        return Reply(200, chunk, headers)

    def _mr(self, req: Request) -> int:
        self._project(req)
        iid = int(req.match["iid"])
        if iid not in self.sim.pull_requests:
            raise ApiError(_message(404, "404 Not found"))
        return iid

    def _note_json(self, c: SimComment) -> dict[str, Any]:
        return {
            "id": c.id,
            "type": None,
            "body": c.body,
            "attachment": None,
            "author": {"username": c.author, "name": c.author},
            "created_at": c.created_at,
            "updated_at": c.updated_at,
            "system": c.system,
            "noteable_id": 9000 + c.number,
            "noteable_type": "MergeRequest",
            "noteable_iid": c.number,
            "resolvable": False,
            "internal": False,
        }

    def _body(self, req: Request) -> str:
        body = req.json_object(lambda: Reply(400, {"error": "body is invalid"})).get("body")
        if not isinstance(body, str) or not body:
            raise ApiError(Reply(400, {"error": "body is missing"}), "note without a body")
        if len(body) > self.comment_limit:
            raise ApiError(
                _message(
                    400,
                    '400 Bad request - Note {:note=>["is too long '
                    f'(maximum is {self.comment_limit} characters)"]}}',
                )
            )
        return body

    # --- endpoints ---------------------------------------------------------------------

    def list_mrs(self, req: Request) -> Reply:
        self._project(req)
        state = req.param("state", "all")
        if state not in ("opened", "closed", "locked", "merged", "all"):
            raise ApiError(
                Reply(400, {"error": "state does not have a valid value"}), f"invalid state {state}"
            )
        target = req.param("target_branch")
        desc = req.param("sort", "desc") == "desc"
        items = [
            {
                "id": 9000 + p.number,
                "iid": p.number,
                "project_id": self.sim.project_id,
                "title": p.title,
                "state": "opened" if p.state == "open" else p.state,
                "target_branch": p.base,
                "source_branch": p.head_ref,
                "sha": p.head_sha,
                "author": {"username": p.author, "name": p.author},
                # A fork's merge request comes from the fork's project (GitLab's MR API).
                "source_project_id": self.sim.project_id + 1000 if p.fork else self.sim.project_id,
                "target_project_id": self.sim.project_id,
                "web_url": f"{self.sim.web_url}/-/merge_requests/{p.number}",
                "draft": False,
                "created_at": p.created_at,
            }
            for p in sorted(self.sim.pull_requests.values(), key=lambda p: p.number, reverse=desc)
            if (state == "all" or (state == "opened") == (p.state == "open"))
            and (target is None or p.base == target)
        ]
        return self._paged(req, items)

    def list_notes(self, req: Request) -> Reply:
        iid = self._mr(req)
        notes = sorted(
            (c for c in self.sim.comments.values() if c.number == iid),
            key=lambda c: c.id,
            reverse=req.param("sort", "desc") == "desc",
        )
        return self._paged(req, [self._note_json(c) for c in notes])

    def create_note(self, req: Request) -> Reply:
        iid = self._mr(req)
        body = self._body(req)
        c = self.sim.add_comment(iid, body, author=self.sim.bot)
        return Reply(201, self._note_json(c))

    def update_note(self, req: Request) -> Reply:
        iid = self._mr(req)
        body = self._body(req)
        c = self.sim.comments.get(int(req.match["note"]))
        if c is None or c.number != iid:
            raise ApiError(_message(404, "404 Note Not Found"))
        c.body, c.updated_at = body, self.sim.stamp()
        return Reply(200, self._note_json(c))

    def _status_json(self, s: SimStatus) -> dict[str, Any]:
        return {
            "id": s.id,
            "sha": s.sha,
            "ref": s.ref,
            "status": s.state,
            "name": s.context,
            "target_url": s.target_url,
            "description": s.description,
            "created_at": s.created_at,
            "allow_failure": False,
            "author": {"username": self.sim.bot},
        }

    def list_statuses(self, req: Request) -> Reply:
        self._project(req)
        sha = req.match["sha"]
        if sha not in self.sim.commits:
            raise ApiError(_message(404, "404 Commit Not Found"))
        name, ref = req.param("name"), req.param("ref")
        newest: list[SimStatus] = []
        seen: set[tuple[str, str | None]] = set()
        for s in reversed(self.sim.statuses):
            if s.sha != sha or (name and s.context != name) or (ref and s.ref != ref):
                continue
            if req.param("all") != "true":
                if (s.context, s.ref) in seen:
                    continue
                seen.add((s.context, s.ref))
            newest.append(s)
        return self._paged(req, [self._status_json(s) for s in newest])

    def create_status(self, req: Request) -> Reply:
        self._project(req)
        sha = req.match["sha"]
        data = req.json_object(lambda: Reply(400, {"error": "body is invalid"}))
        state = data.get("state")
        if state not in STATES:
            raise ApiError(
                Reply(400, {"error": "state does not have a valid value"}),
                f"invalid status state {state!r}",
            )
        if sha not in self.sim.commits:
            raise ApiError(_message(404, "404 Commit Not Found"))
        name = data.get("name") or data.get("context") or "default"
        ref = data.get("ref") or next(
            (p.head_ref for p in self.sim.pull_requests.values() if p.head_sha == sha), None
        )
        if ref is None:
            raise ApiError(_message(404, "404 References for commit Not Found"))
        current = next(
            (
                s
                for s in reversed(self.sim.statuses)
                if s.sha == sha and s.context == name and s.ref == ref and s.state in ACTIVE
            ),
            None,
        )
        if current is not None and state == current.state:
            event = "enqueue" if state == "pending" else "run"
            raise ApiError(
                _message(
                    400,
                    f"Cannot transition status via :{event} from "
                    f":{current.state} (Reason(s): Status cannot "
                    f'transition via "{event}")',
                )
            )
        if current is not None:  # an active status moves on; a finished one is a new job
            current.state = state
            current.description = data.get("description") or ""
            current.target_url = data.get("target_url")
            return Reply(201, self._status_json(current))
        s = self.sim.add_status(
            sha, state, name, data.get("description") or "", data.get("target_url"), ref
        )
        return Reply(201, self._status_json(s))

"""Webhook receiver logic: authenticate a forge's delivery, decide whether to reconcile.

``POST /hooks/github``, ``/hooks/gitlab`` and ``/hooks/gitea`` land in :func:`receive`,
which is pure (headers, raw body, secret, tracked branch -> :class:`WebhookResult`) so it
is tested without a server. The order of checks matters: the request is authenticated
*before* its JSON is parsed or its event type is trusted.

Authentication, per forge (all comparisons constant-time with :func:`hmac.compare_digest`):

- GitHub: ``X-Hub-Signature-256: sha256=<hex>``, HMAC-SHA256 of the raw body with the
  webhook secret. The legacy SHA-1 ``X-Hub-Signature`` is not accepted.
- GitLab: ``X-Gitlab-Token`` equals the secret (GitLab does not sign bodies).
- Gitea/Forgejo: ``X-Gitea-Signature: <hex>`` (HMAC-SHA256 of the body), or the
  ``X-Hub-Signature-256`` header that newer releases also send.

Answers: 401 when the credential header is missing, 403 when it is wrong or no webhook
secret is configured (webhooks are off until one is), 400 for an unknown event or a body
that is not JSON, 413 for a body over the size limit, 415 for a form-encoded GitHub
delivery (choose ``application/json`` when adding the hook). Authenticated events that
need a reconcile — a push to the tracked branch, a pull/merge request against it — get 202
and trigger one. Authenticated deliveries that need nothing (``ping``, a push to another
branch or a tag, a PR against another branch) get 200 with the reason: answering those
with an error would show every feature-branch push as a failed delivery in the forge, and
a forge that sees failures keeps retrying them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

PUSH = "push"
PULL_REQUEST = "pull_request"


@dataclass(frozen=True)
class HookEvent:
    """What an accepted delivery asks for."""

    provider: str
    kind: str  # PUSH or PULL_REQUEST
    ref: str | None = None  # pushed ref, or the PR's base branch
    sha: str | None = None  # pushed head, or the PR's head commit
    pull_request: int | None = None
    delivery: str | None = None  # the forge's delivery id, for logs


@dataclass(frozen=True)
class WebhookResult:
    status: int
    reason: str
    event: HookEvent | None = None  # set when a reconcile should run

    @property
    def outcome(self) -> str:
        """The answer's ``status`` field: accepted (reconcile), ok or rejected."""
        return "accepted" if self.event else ("ok" if self.status < 300 else "rejected")


def _reject(status: int, reason: str) -> WebhookResult:
    return WebhookResult(status, reason)


def _hmac_hex(secret: bytes, body: bytes) -> str:
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def _check_hmac(signature: str, secret: bytes, body: bytes) -> bool:
    return hmac.compare_digest(signature.strip().lower().encode(), _hmac_hex(secret, body).encode())


def authenticate(provider: str, headers: Mapping[str, str], body: bytes, secret: bytes) -> (
    WebhookResult | None
):
    """None when the delivery is authentic, else the rejection."""
    if provider == "gitlab":
        token = headers.get("x-gitlab-token")
        if token is None:
            return _reject(401, "missing X-Gitlab-Token header")
        if not hmac.compare_digest(token.encode(), secret):
            return _reject(403, "X-Gitlab-Token does not match the webhook secret")
        return None
    hub = headers.get("x-hub-signature-256")
    gitea = headers.get("x-gitea-signature") if provider == "gitea" else None
    if hub is None and gitea is None:
        wanted = "X-Gitea-Signature" if provider == "gitea" else "X-Hub-Signature-256"
        return _reject(401, f"missing {wanted} header")
    if gitea is not None and not _check_hmac(gitea, secret, body):
        return _reject(403, "X-Gitea-Signature does not match the body")
    if hub is not None:
        algo, _, digest = hub.partition("=")
        if algo.strip().lower() != "sha256" or not _check_hmac(digest, secret, body):
            return _reject(403, "X-Hub-Signature-256 does not match the body")
    return None


def receive(
    provider: str,
    headers: Mapping[str, str],
    body: bytes,
    secret: bytes | None,
    branch: str,
    max_body: int = 1024 * 1024,
) -> WebhookResult:
    """Authenticate and classify one delivery. ``headers`` keys are lower-case."""
    if provider not in PROVIDERS:
        return _reject(404, f"unknown webhook provider {provider!r} (use {', '.join(PROVIDERS)})")
    if len(body) > max_body:
        return _reject(413, f"body larger than {max_body} bytes")
    if not secret:
        return _reject(403, "webhooks are disabled: no webhook secret is configured")
    rejected = authenticate(provider, headers, body, secret)
    if rejected is not None:
        return rejected
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/x-www-form-urlencoded":
        return _reject(415, "send the payload as application/json")
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return _reject(400, "body is not JSON")
    if not isinstance(payload, dict):
        return _reject(400, "body is not a JSON object")
    return _classify(provider, headers, payload, branch)


def _branch_ref(branch: str) -> str:
    return branch if branch.startswith("refs/") else f"refs/heads/{branch}"


def _push(provider: str, payload: dict[str, Any], branch: str, delivery: str | None) -> (
    WebhookResult
):
    ref = payload.get("ref")
    if not isinstance(ref, str):
        return _reject(400, "push event without a ref")
    if ref != _branch_ref(branch):
        return WebhookResult(200, f"ignored: push to {ref}, tracking {_branch_ref(branch)}")
    sha = payload.get("after")
    event = HookEvent(provider, PUSH, ref, sha if isinstance(sha, str) else None, None, delivery)
    return WebhookResult(202, f"reconcile requested: push to {ref}", event)


def _pull(
    provider: str, base: Any, number: Any, sha: Any, branch: str, delivery: str | None
) -> WebhookResult:
    if not isinstance(base, str):
        return _reject(400, "pull request event without a base branch")
    if _branch_ref(base) != _branch_ref(branch):
        return WebhookResult(200, f"ignored: pull request against {base}, tracking {branch}")
    event = HookEvent(
        provider,
        PULL_REQUEST,
        _branch_ref(base),
        sha if isinstance(sha, str) else None,
        number if isinstance(number, int) else None,
        delivery,
    )
    return WebhookResult(202, f"reconcile requested: pull request #{number}", event)


def _dig(payload: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(payload, dict):
            return None
        payload = payload.get(key)
    return payload


def _pull_request_fields(payload: dict[str, Any]) -> tuple[Any, Any, Any]:
    """(base branch, number, head commit) of a GitHub or Gitea ``pull_request`` event."""
    pr = payload.get("pull_request")
    return _dig(pr, "base", "ref"), payload.get("number"), _dig(pr, "head", "sha")


def _merge_request_fields(payload: dict[str, Any]) -> tuple[Any, Any, Any]:
    """(target branch, iid, last commit) of a GitLab ``Merge Request Hook``."""
    attrs = payload.get("object_attributes")
    return _dig(attrs, "target_branch"), _dig(attrs, "iid"), _dig(attrs, "last_commit", "id")


@dataclass(frozen=True)
class _Forge:
    """How one forge names its events and where a pull request's fields are."""

    event_headers: tuple[str, ...]  # Gitea's, then Forgejo's
    delivery_headers: tuple[str, ...]
    push: str
    pull: str
    pull_fields: Callable[[dict[str, Any]], tuple[Any, Any, Any]]
    missing: str  # the event header, as a missing one is reported
    hint: str  # which events to subscribe to, for an unsupported one
    ping: str | None = None


_FORGES = {
    "github": _Forge(("x-github-event",), ("x-github-delivery",), "push", "pull_request",
                     _pull_request_fields, "X-GitHub-Event",
                     "subscribe to push and pull_request", ping="ping"),
    "gitlab": _Forge(("x-gitlab-event",), ("x-gitlab-event-uuid",), "Push Hook",
                     "Merge Request Hook", _merge_request_fields, "X-Gitlab-Event",
                     "enable Push and Merge request events"),
    "gitea": _Forge(("x-gitea-event", "x-forgejo-event"),
                    ("x-gitea-delivery", "x-forgejo-delivery"), "push", "pull_request",
                    _pull_request_fields, "X-Gitea-Event",
                    "choose push and pull request events"),
}
PROVIDERS = tuple(_FORGES)


def _header(headers: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    """The first of ``names`` that is set and not empty (``headers.get`` of a lone name)."""
    value: str | None = None
    for name in names:
        value = value or headers.get(name)
    return value


def _classify(
    provider: str, headers: Mapping[str, str], payload: dict[str, Any], branch: str
) -> WebhookResult:
    """What an authentic delivery of ``provider`` asks for."""
    forge = _FORGES[provider]
    event = _header(headers, forge.event_headers)
    delivery = _header(headers, forge.delivery_headers)
    if event is None:
        return _reject(400, f"missing {forge.missing} header")
    if event == forge.ping:
        return WebhookResult(200, "pong")
    if event == forge.push:
        return _push(provider, payload, branch, delivery)
    if event == forge.pull:
        base, number, sha = forge.pull_fields(payload)
        return _pull(provider, base, number, sha, branch, delivery)
    return _reject(400, f"unsupported event {event!r} ({forge.hint})")

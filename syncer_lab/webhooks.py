"""Webhook deliveries as GitHub, GitLab and Gitea send them, for the demo and tests.

A forge sends ``push`` and pull/merge request events to ``syncer run``'s
``/hooks/<provider>``. :func:`push_event` and :func:`pull_request_event` build a
:class:`Delivery`, the body and headers exactly as that forge does it (event header,
delivery id, and its way of authenticating: GitHub's ``X-Hub-Signature-256`` HMAC,
GitLab's ``X-Gitlab-Token``, Gitea's ``X-Gitea-Signature`` HMAC), with only the payload
fields a receiver reads plus the identifying ones; :func:`deliver` POSTs it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from typing import Any

import requests

PROVIDERS = ("github", "gitlab", "gitea")
ZERO_SHA = "0" * 40


@dataclass(frozen=True)
class Delivery:
    provider: str
    body: bytes
    headers: dict[str, str]


def _sign(provider: str, event: str, payload: dict[str, Any], secret: bytes) -> Delivery:
    body = json.dumps(payload, sort_keys=True).encode()
    delivery = str(uuid.uuid4())
    headers = {"Content-Type": "application/json"}
    if provider == "gitlab":
        headers.update({"X-Gitlab-Event": event, "X-Gitlab-Token": secret.decode(),
                        "X-Gitlab-Event-UUID": delivery})
    else:
        digest = hmac.new(secret, body, hashlib.sha256).hexdigest()
        if provider == "github":
            headers.update({"X-GitHub-Event": event, "X-GitHub-Delivery": delivery,
                            "X-Hub-Signature-256": f"sha256={digest}"})
        else:
            headers.update({"X-Gitea-Event": event, "X-Gitea-Delivery": delivery,
                            "X-Gitea-Signature": digest})
    return Delivery(provider, body, headers)


def push_event(provider: str, secret: bytes, *, repository: str, branch: str, before: str,
               after: str) -> Delivery:
    """A push of ``branch`` from ``before`` to ``after``."""
    ref = f"refs/heads/{branch}"
    if provider == "gitlab":
        payload: dict[str, Any] = {
            "object_kind": "push", "ref": ref, "before": before, "after": after,
            "checkout_sha": after, "project": {"path_with_namespace": repository},
        }
        return _sign(provider, "Push Hook", payload, secret)
    payload = {"ref": ref, "before": before, "after": after,
               "repository": {"full_name": repository}}
    return _sign(provider, "push", payload, secret)


def pull_request_event(provider: str, secret: bytes, *, repository: str, number: int,
                       base: str, head_ref: str, head_sha: str, title: str,
                       action: str = "opened") -> Delivery:
    """A pull request (GitLab: merge request) ``number`` from ``head_ref`` into ``base``."""
    if provider == "gitlab":
        payload: dict[str, Any] = {
            "object_kind": "merge_request",
            "project": {"path_with_namespace": repository},
            "object_attributes": {
                "iid": number, "title": title, "target_branch": base,
                "source_branch": head_ref, "last_commit": {"id": head_sha},
                "action": "open" if action == "opened" else action, "state": "opened",
            },
        }
        return _sign(provider, "Merge Request Hook", payload, secret)
    payload = {
        "action": action, "number": number,
        "repository": {"full_name": repository},
        "pull_request": {"number": number, "title": title, "state": "open",
                         "base": {"ref": base}, "head": {"ref": head_ref, "sha": head_sha}},
    }
    return _sign(provider, "pull_request", payload, secret)


def deliver(base_url: str, delivery: Delivery, timeout: float = 10.0) -> requests.Response:
    """POST the delivery to ``<base_url>/hooks/<provider>``."""
    return requests.post(f"{base_url.rstrip('/')}/hooks/{delivery.provider}",
                         data=delivery.body, headers=delivery.headers, timeout=timeout)

"""Webhook receiver: authentication per forge, which events reconcile, size limit.

The first part drives :func:`receive` directly; the second sends real HTTP requests to the
server of `syncer run` (waitress), as a forge would.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from syncer.controller.metrics import Metrics
from syncer.controller.server import App, HTTPServer
from syncer.controller.webhooks import HookEvent, receive

SECRET = b"s3cret-webhook-token"
PUSH_MAIN = {"ref": "refs/heads/main", "after": "a" * 40, "before": "b" * 40}
PUSH_OTHER = {"ref": "refs/heads/feature", "after": "c" * 40}


def body_of(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def github(event: str, body: bytes, secret: bytes = SECRET) -> dict[str, str]:
    sig = hmac.new(secret, body, hashlib.sha256).hexdigest()
    return {"x-github-event": event, "x-hub-signature-256": f"sha256={sig}",
            "x-github-delivery": "d-1", "content-type": "application/json"}


def gitlab(event: str, token: bytes = SECRET) -> dict[str, str]:
    return {"x-gitlab-event": event, "x-gitlab-token": token.decode(),
            "content-type": "application/json"}


def gitea(event: str, body: bytes, secret: bytes = SECRET, hub: bool = False) -> dict[str, str]:
    sig = hmac.new(secret, body, hashlib.sha256).hexdigest()
    headers = {"x-gitea-event": event, "content-type": "application/json"}
    if hub:
        headers["x-hub-signature-256"] = f"sha256={sig}"
    else:
        headers["x-gitea-signature"] = sig
    return headers


# --- GitHub --------------------------------------------------------------------------


def test_github_push_to_tracked_branch_triggers() -> None:
    body = body_of(PUSH_MAIN)
    result = receive("github", github("push", body), body, SECRET, "main")
    assert result.status == 202
    assert result.event == HookEvent("github", "push", "refs/heads/main", "a" * 40, None, "d-1")


def test_github_pull_request_against_tracked_branch_triggers() -> None:
    payload = {"action": "synchronize", "number": 7,
               "pull_request": {"base": {"ref": "main"}, "head": {"sha": "d" * 40}}}
    body = body_of(payload)
    result = receive("github", github("pull_request", body), body, SECRET, "main")
    assert result.status == 202 and result.event is not None
    assert (result.event.kind, result.event.pull_request, result.event.sha) == (
        "pull_request", 7, "d" * 40)


def test_github_ping_answers_without_reconcile() -> None:
    body = body_of({"zen": "Keep it logically awesome."})
    result = receive("github", github("ping", body), body, SECRET, "main")
    assert (result.status, result.reason, result.event) == (200, "pong", None)


def test_github_push_to_other_branch_is_ignored_not_failed() -> None:
    body = body_of(PUSH_OTHER)
    result = receive("github", github("push", body), body, SECRET, "main")
    assert result.status == 200 and result.event is None
    assert "ignored" in result.reason


def test_github_invalid_signature() -> None:
    body = body_of(PUSH_MAIN)
    headers = github("push", body, secret=b"wrong secret")
    result = receive("github", headers, body, SECRET, "main")
    assert result.status == 403 and result.event is None
    # a valid signature of another body does not authenticate this one
    headers = github("push", body_of(PUSH_OTHER))
    assert receive("github", headers, body, SECRET, "main").status == 403


def test_github_missing_signature_and_sha1_only() -> None:
    body = body_of(PUSH_MAIN)
    headers = github("push", body)
    del headers["x-hub-signature-256"]
    assert receive("github", headers, body, SECRET, "main").status == 401
    headers["x-hub-signature"] = "sha1=" + hmac.new(SECRET, body, hashlib.sha1).hexdigest()
    assert receive("github", headers, body, SECRET, "main").status == 401


def test_github_wrong_event() -> None:
    body = body_of({"action": "created"})
    result = receive("github", github("issues", body), body, SECRET, "main")
    assert result.status == 400 and "unsupported event 'issues'" in result.reason


def test_github_form_encoded_refused() -> None:
    body = b"payload=%7B%7D"
    headers = github("push", body)
    headers["content-type"] = "application/x-www-form-urlencoded"
    assert receive("github", headers, body, SECRET, "main").status == 415


# --- GitLab --------------------------------------------------------------------------


def test_gitlab_push_and_merge_request() -> None:
    body = body_of({"object_kind": "push", **PUSH_MAIN})
    result = receive("gitlab", gitlab("Push Hook"), body, SECRET, "main")
    assert result.status == 202 and result.event is not None and result.event.sha == "a" * 40
    body = body_of({"object_kind": "merge_request",
                    "object_attributes": {"iid": 3, "target_branch": "main",
                                          "last_commit": {"id": "e" * 40}}})
    result = receive("gitlab", gitlab("Merge Request Hook"), body, SECRET, "main")
    assert result.status == 202 and result.event is not None
    assert result.event.pull_request == 3


def test_gitlab_token_checks() -> None:
    body = body_of(PUSH_MAIN)
    assert receive("gitlab", gitlab("Push Hook", b"nope"), body, SECRET, "main").status == 403
    headers = gitlab("Push Hook")
    del headers["x-gitlab-token"]
    assert receive("gitlab", headers, body, SECRET, "main").status == 401


def test_gitlab_wrong_event() -> None:
    body = body_of({"object_kind": "issue"})
    result = receive("gitlab", gitlab("Issue Hook"), body, SECRET, "main")
    assert result.status == 400


# --- Gitea ---------------------------------------------------------------------------


@pytest.mark.parametrize("hub", [False, True])
def test_gitea_push_with_either_signature_header(hub: bool) -> None:
    body = body_of(PUSH_MAIN)
    result = receive("gitea", gitea("push", body, hub=hub), body, SECRET, "main")
    assert result.status == 202


def test_gitea_invalid_and_missing_signature() -> None:
    body = body_of(PUSH_MAIN)
    assert receive("gitea", gitea("push", body, b"bad"), body, SECRET, "main").status == 403
    headers = gitea("push", body)
    del headers["x-gitea-signature"]
    assert receive("gitea", headers, body, SECRET, "main").status == 401


def test_gitea_pull_request_and_wrong_event() -> None:
    payload = {"number": 9, "pull_request": {"base": {"ref": "main"}, "head": {"sha": "f" * 40}}}
    body = body_of(payload)
    result = receive("gitea", gitea("pull_request", body), body, SECRET, "main")
    assert result.status == 202 and result.event is not None
    assert result.event.pull_request == 9
    body = body_of({"ref": "v1"})
    assert receive("gitea", gitea("create", body), body, SECRET, "main").status == 400


# --- common --------------------------------------------------------------------------


def test_oversize_body() -> None:
    body = body_of({**PUSH_MAIN, "pad": "x" * 5000})
    result = receive("github", github("push", body), body, SECRET, "main", max_body=4096)
    assert result.status == 413


def test_no_secret_configured_refuses_everything() -> None:
    body = body_of(PUSH_MAIN)
    for secret in (None, b""):
        result = receive("github", github("push", body, b""), body, secret, "main")
        assert result.status == 403 and "disabled" in result.reason


def test_unknown_provider_and_non_json() -> None:
    body = body_of(PUSH_MAIN)
    assert receive("bitbucket", {}, body, SECRET, "main").status == 404
    junk = b"not json"
    assert receive("github", github("push", junk), junk, SECRET, "main").status == 400


# --- over HTTP -----------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[tuple[str, list[HookEvent], Metrics]]:
    seen: list[HookEvent] = []
    metrics = Metrics()

    def on_webhook(event: HookEvent) -> str:
        seen.append(event)
        return "queued"

    app = App(metrics=metrics, healthy=lambda: (True, "leader"),
              ready=lambda: (False, "shutting down"), on_webhook=on_webhook,
              webhook_secret=lambda: SECRET, branch="main", max_body=8192)
    srv = HTTPServer(app, "127.0.0.1", 0, max_body=8192)
    srv.start()
    try:
        yield f"http://127.0.0.1:{srv.port}", seen, metrics
    finally:
        srv.stop()


def test_http_push_reaches_the_loop(server: tuple[str, list[HookEvent], Metrics]) -> None:
    url, seen, _ = server
    body = body_of(PUSH_MAIN)
    response = requests.post(f"{url}/hooks/github", data=body, headers=github("push", body),
                             timeout=5)
    assert response.status_code == 202
    assert response.json() == {"status": "accepted",
                               "reason": "reconcile requested: push to refs/heads/main"}
    assert [e.sha for e in seen] == ["a" * 40]
    bad = requests.post(f"{url}/hooks/github", data=body,
                        headers=github("push", body, b"forged"), timeout=5)
    assert bad.status_code == 403 and bad.json()["status"] == "rejected"
    assert len(seen) == 1
    text = requests.get(f"{url}/metrics", timeout=5).text
    assert 'syncer_webhooks_total{code="202",provider="github"} 1.0' in text
    assert 'syncer_webhooks_total{code="403",provider="github"} 1.0' in text


def test_http_oversize_refused_before_reading(
    server: tuple[str, list[HookEvent], Metrics]
) -> None:
    url, seen, _ = server
    body = b"{" + b" " * 20000 + b"}"
    response = requests.post(f"{url}/hooks/github", data=body, headers=github("push", body),
                             timeout=5)
    assert response.status_code == 413 and not seen


def test_http_methods_and_probes(server: tuple[str, list[HookEvent], Metrics]) -> None:
    url, _, _ = server
    assert requests.get(f"{url}/hooks/github", timeout=5).status_code == 405
    assert requests.post(f"{url}/metrics", timeout=5).status_code == 405
    health = requests.get(f"{url}/healthz", timeout=5)
    assert (health.status_code, health.text) == (200, "ok: leader\n")
    ready = requests.get(f"{url}/readyz", timeout=5)
    assert (ready.status_code, ready.text) == (503, "not ok: shutting down\n")
    assert requests.get(f"{url}/nope", timeout=5).status_code == 404


# --- two ports, bounded bodies, one secret, no replays -------------------------------------
@pytest.fixture
def split() -> Iterator[tuple[str, str, list[HookEvent]]]:
    """The controller's layout: webhooks on one server, probes and metrics on another."""
    seen: list[HookEvent] = []
    metrics = Metrics()

    def app(hooks: bool, secret: bytes) -> App:
        def on_webhook(event: HookEvent) -> str:
            seen.append(event)
            return "queued"
        return App(metrics=metrics, healthy=lambda: (True, "leader"), ready=lambda: (True, ""),
                   on_webhook=on_webhook, webhook_secret=lambda: secret, branch="main",
                   max_body=8192, hooks=hooks, probes=not hooks)

    # The secret as a Secret created --from-file reads it: with the file's newline.
    hooks = HTTPServer(app(True, SECRET + b"\n"), "127.0.0.1", 0, max_body=8192,
                       connection_limit=4)
    probes = HTTPServer(app(False, SECRET), "127.0.0.1", 0, max_body=1024, threads=2)
    hooks.start()
    probes.start()
    try:
        yield f"http://127.0.0.1:{hooks.port}", f"http://127.0.0.1:{probes.port}", seen
    finally:
        hooks.stop()
        probes.stop()


def test_idle_connections_to_the_webhook_port_do_not_starve_the_probes(
        split: tuple[str, str, list[HookEvent]]) -> None:
    import socket

    hooks, probes, _ = split
    port = int(hooks.rsplit(":", 1)[1])
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(20)]
    try:
        for sock in held:
            sock.sendall(b"POST /hooks/github HTTP/1.1\r\nHost: x\r\n")  # never finished
        health = requests.get(f"{probes}/healthz", timeout=3)
        assert (health.status_code, health.text) == (200, "ok: leader\n")
        assert "syncer_webhooks_total" in requests.get(f"{probes}/metrics", timeout=3).text
    finally:
        for sock in held:
            sock.close()


def test_each_port_serves_only_its_own_paths(split: tuple[str, str, list[HookEvent]]) -> None:
    hooks, probes, _ = split
    assert requests.get(f"{hooks}/healthz", timeout=5).status_code == 404
    assert requests.get(f"{hooks}/metrics", timeout=5).status_code == 404
    body = body_of(PUSH_MAIN)
    assert requests.post(f"{probes}/hooks/github", data=body, headers=github("push", body),
                         timeout=5).status_code == 404


def test_an_oversized_body_is_refused_before_it_is_sent(
        split: tuple[str, str, list[HookEvent]]) -> None:
    """Only the headers go out; the answer comes without the server waiting for 10 MB."""
    import socket

    hooks, _, seen = split
    port = int(hooks.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"POST /hooks/github HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                     b"\r\nContent-Length: 10485760\r\n\r\n")
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413"), answer
    chunked = requests.post(f"{hooks}/hooks/github", timeout=5,
                            data=iter([b"{" + b" " * 4096] * 4 + [b"}"]),
                            headers={"Content-Type": "application/json"})
    assert chunked.status_code == 413
    assert seen == []


def test_a_secret_file_ending_in_a_newline_works_and_replays_are_ignored(
        split: tuple[str, str, list[HookEvent]]) -> None:
    hooks, _, seen = split
    body = body_of(PUSH_MAIN)
    first = requests.post(f"{hooks}/hooks/github", data=body, headers=github("push", body),
                          timeout=5)
    assert first.status_code == 202, first.text
    again = requests.post(f"{hooks}/hooks/github", data=body, headers=github("push", body),
                          timeout=5)
    assert (again.status_code, again.json()["reason"]) == (
        200, "delivery d-1 was already handled")
    assert len(seen) == 1

"""The forge clients against the strict simulator, once per forge (GitHub, GitLab, Gitea)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from syncer.writeback.forges import (
    ForgeError,
    PullRequest,
    RestForge,
    RetryPolicy,
    TokenSource,
    attempt,
    marker_comment,
)
from syncer_lab.forge import ForgeSimulator

from .conftest import TOKEN_ENV, MakeClient

PR_LIST = {"github": r"/pulls$", "gitlab": r"/merge_requests$", "gitea": r"/pulls$"}
COMMENTS = {"github": r"/comments$", "gitlab": r"/notes$", "gitea": r"/comments$"}
EDIT = {"github": "PATCH", "gitlab": "PUT", "gitea": "PATCH"}
FETCH_REF = {
    "github": "refs/pull/{}/head",
    "gitlab": "refs/merge-requests/{}/head",
    "gitea": "refs/pull/{}/head",
}
NATIVE_FAILURE = {"github": "failure", "gitlab": "failed", "gitea": "failure"}
TAG = marker_comment("preview")


def sha(n: int) -> str:
    return f"{n:040x}"


def writes(sim: ForgeSimulator) -> list[str]:
    return [r.method for r in sim.requests if r.method != "GET"]


def open_pr(client: RestForge, sim: ForgeSimulator, number: int = 7) -> PullRequest:
    sim.add_pull_request(number, sha(number), base="main")
    (pr,) = [p for p in client.open_pull_requests("main") if p.number == number]
    sim.clear_requests()
    return pr


# --- listing ---------------------------------------------------------------------------


def test_lists_open_pull_requests_for_the_base_branch_across_pages(
    sim: ForgeSimulator, client: RestForge
) -> None:
    for n in range(1, 7):
        sim.add_pull_request(n, sha(n), base="dev" if n == 3 else "main", head_ref=f"feat-{n}")
    sim.add_pull_request(9, sha(9), base="main", state="closed")

    prs = client.open_pull_requests("main")

    assert [p.number for p in prs] == [1, 2, 4, 5, 6]
    first = prs[0]
    assert (first.head_sha, first.head_ref, first.base_ref, first.author) == (
        sha(1),
        "feat-1",
        "main",
        "alice",
    )
    assert first.fetch_ref == FETCH_REF[sim.flavour].format(1)
    assert first.url.startswith(sim.web_url)
    assert first.file_url("fleet/hosts.yaml", 3) is not None
    assert sha(1) in (first.file_url("hosts.yaml", 3) or "")
    lists = sim.calls("GET", PR_LIST[sim.flavour])
    assert len(lists) == 3  # 5 open PRs on main, 2 per page
    assert [r.param("page") for r in lists] == [None, "2", "3"]
    assert all(r.status == 200 for r in lists)


def test_authenticates_exactly_as_documented(sim: ForgeSimulator, client: RestForge) -> None:
    client.open_pull_requests("main")
    (req,) = sim.requests
    assert (req.header("user-agent") or "").startswith("syncer/")
    if sim.flavour == "github":
        assert req.header("authorization") == f"Bearer {sim.token}"
        assert req.header("accept") == "application/vnd.github+json"
        assert req.header("x-github-api-version") == "2022-11-28"
        assert req.param("per_page") == "100" and req.param("base") == "main"
    elif sim.flavour == "gitlab":
        assert req.header("private-token") == sim.token
        assert req.header("authorization") is None
        assert req.path == "/api/v4/projects/acme%2Ffleet/merge_requests"
        assert req.param("state") == "opened" and req.param("target_branch") == "main"
        assert req.param("per_page") == "100"
    else:
        assert req.header("authorization") == f"token {sim.token}"
        assert req.param("limit") == "50" and req.param("base_branch") == "main"


def test_gitlab_bearer_and_numeric_project_id(sim: ForgeSimulator, make_client: MakeClient) -> None:
    if sim.flavour != "gitlab":
        pytest.skip("GitLab only")
    sim.add_pull_request(1, sha(1))
    client = make_client(gitlab_auth="bearer", repository=str(sim.project_id))
    assert [p.number for p in client.open_pull_requests("main")] == [1]
    (req,) = sim.requests
    assert req.path == f"/api/v4/projects/{sim.project_id}/merge_requests"
    assert req.header("authorization") == f"Bearer {sim.token}"
    assert req.header("private-token") is None


# --- comments --------------------------------------------------------------------------


def test_comment_is_created_once_then_edited_in_place(
    sim: ForgeSimulator, client: RestForge
) -> None:
    pr = open_pr(client, sim)
    for i in range(5):
        sim.add_comment(pr.number, f"looks good {i}")

    first = client.upsert_comment(pr, "preview", "plan v1")
    second = client.upsert_comment(pr, "preview", "plan v2")

    assert first.action == "created" and second.action == "updated"
    assert second.comment_id == first.comment_id
    ours = [c for c in sim.comments_on(pr.number) if TAG in c.body]
    assert len(ours) == 1
    assert ours[0].body == f"{TAG}\nplan v2\n"
    assert ours[0].author == sim.bot
    assert writes(sim) == ["POST", EDIT[sim.flavour]]
    (post,) = sim.calls("POST")
    assert post.json == {"body": f"{TAG}\nplan v1\n"}
    assert post.header("content-type") == "application/json"
    (edit,) = sim.calls(EDIT[sim.flavour])
    assert edit.path.endswith(f"/{first.comment_id}")


def test_finds_the_marker_on_a_later_page(sim: ForgeSimulator, client: RestForge) -> None:
    pr = open_pr(client, sim)
    for i in range(4):
        sim.add_comment(pr.number, f"review {i}")
    old = sim.add_comment(pr.number, f"{TAG}\nold plan", author=sim.bot)
    sim.add_comment(pr.number, "another remark")
    if sim.flavour == "gitlab":
        sim.add_comment(pr.number, "added 1 commit", author="alice", system=True)

    result = client.upsert_comment(pr, "preview", "new plan")

    assert (result.action, result.comment_id) == ("updated", old.id)
    assert sim.comments[old.id].body == f"{TAG}\nnew plan\n"
    assert writes(sim) == [EDIT[sim.flavour]]
    listed = sim.calls("GET", COMMENTS[sim.flavour])
    if sim.flavour == "gitea":
        assert len(listed) == 1  # Gitea's issue-comment list is not paged
    else:
        assert len(listed) == 3  # the marker is on page 3 of 2-item pages
        assert listed[0].param("per_page") == "100"
    if sim.flavour == "gitlab":
        assert listed[0].param("sort") == "asc"


def test_identical_body_sends_no_write(sim: ForgeSimulator, client: RestForge) -> None:
    pr = open_pr(client, sim)
    client.upsert_comment(pr, "preview", "same plan")
    sim.clear_requests()

    result = client.upsert_comment(pr, "preview", "same plan\n\n")

    assert result.action == "unchanged"
    assert writes(sim) == []


def test_markers_keep_comments_apart(sim: ForgeSimulator, client: RestForge) -> None:
    pr = open_pr(client, sim)
    a = client.upsert_comment(pr, "preview", "plan")
    b = client.upsert_comment(pr, "drift", "drift report")
    assert a.comment_id != b.comment_id
    assert len(sim.comments_on(pr.number)) == 2


def test_ambiguous_failure_of_a_create_does_not_duplicate_the_comment(
    sim: ForgeSimulator, client: RestForge, sleeps: list[float]
) -> None:
    pr = open_pr(client, sim)
    sim.fail("POST", COMMENTS[sim.flavour], status=502, after_apply=True)

    result = client.upsert_comment(pr, "preview", "plan")

    assert result.action == "created"
    assert len(sim.comments_on(pr.number)) == 1
    assert writes(sim) == ["POST"]  # looked again instead of posting twice


def test_comment_on_an_unknown_pull_request_is_a_404_without_retry(
    sim: ForgeSimulator, client: RestForge, sleeps: list[float]
) -> None:
    pr = PullRequest(999, "x", sha(1), "b", "main", "a", "", "refs/pull/999/head")
    with pytest.raises(ForgeError) as info:
        client.upsert_comment(pr, "preview", "plan")
    assert info.value.status == 404
    assert len(sim.requests) == 1 and sleeps == []
    assert f"{sim.flavour}: GET " in str(info.value)
    assert "/999/" in str(info.value)


# --- truncation ------------------------------------------------------------------------


def test_long_bodies_are_truncated_to_what_the_forge_accepts(
    sim: ForgeSimulator, client: RestForge
) -> None:
    pr = open_pr(client, sim)
    limit = client.max_comment_chars
    line = "+ data: " + "x" * 90
    body = "## plan\n\n<details><summary>diff</summary>\n\n```diff\n" + "\n".join(
        [line] * (limit // len(line) + 50)
    )
    # The forge itself refuses the untruncated body:
    raw = requests.post(
        sim.api_url + _comments_path(sim, pr.number),
        json={"body": f"{TAG}\n{body}"},
        headers=_auth(sim),
        timeout=30,
    )
    assert raw.status_code == {"github": 422, "gitlab": 400, "gitea": 413}[sim.flavour]
    if sim.flavour == "github":
        assert raw.json()["message"] == "Validation Failed"
        assert "body is too long (maximum is 65536 characters)" in raw.text
    elif sim.flavour == "gitlab":
        assert "is too long (maximum is 1000000 characters)" in raw.text
    sim.clear_requests()

    result = client.upsert_comment(pr, "preview", body)

    assert result.truncated
    (stored,) = sim.comments_on(pr.number)
    assert len(stored.body) <= limit
    lines = stored.body.rstrip("\n").split("\n")
    assert lines[0] == TAG
    assert lines[-1].startswith("> … truncated: ")
    assert lines[-1].endswith(" more lines; see the status branch for the full plan")
    assert lines[-5:-2] == ["```", "", "</details>"]
    # and the same long body again is recognised as unchanged
    sim.clear_requests()
    assert client.upsert_comment(pr, "preview", body).action == "unchanged"


def _comments_path(sim: ForgeSimulator, number: int) -> str:
    if sim.flavour == "gitlab":
        return f"/projects/acme%2Ffleet/merge_requests/{number}/notes"
    return f"/repos/acme/fleet/issues/{number}/comments"


def _auth(sim: ForgeSimulator) -> dict[str, str]:
    return {
        "github": {"Authorization": f"Bearer {sim.token}", "User-Agent": "test"},
        "gitlab": {"PRIVATE-TOKEN": sim.token},
        "gitea": {"Authorization": f"token {sim.token}"},
    }[sim.flavour]


# --- commit statuses -------------------------------------------------------------------


def test_status_goes_pending_then_failure_then_success(
    sim: ForgeSimulator, client: RestForge
) -> None:
    pr = open_pr(client, sim)
    ctx = "syncer/preview"
    client.set_commit_status(pr.head_sha, "pending", ctx, "evaluating", ref=pr.head_ref)
    again = client.set_commit_status(pr.head_sha, "pending", ctx, "evaluating", ref=pr.head_ref)
    client.set_commit_status(
        pr.head_sha, "failure", ctx, "invalid: 1 error", "https://ci.example/x", ref=pr.head_ref
    )
    client.set_commit_status(pr.head_sha, "success", ctx, "valid", ref=pr.head_ref)

    assert again.action == "unchanged"
    posts = sim.calls("POST")
    assert len(posts) == 3
    assert [p.json.get("state") for p in posts] == [
        "pending",
        NATIVE_FAILURE[sim.flavour],
        "success",
    ]
    name_field = "name" if sim.flavour == "gitlab" else "context"
    assert all(p.json[name_field] == ctx for p in posts)
    assert posts[1].json["target_url"] == "https://ci.example/x"
    if sim.flavour == "gitlab":
        assert all(p.json["ref"] == pr.head_ref for p in posts)
    latest = sim.statuses_of(pr.head_sha, ctx)[-1]
    assert (latest.state, latest.description) == ("success", "valid")


def test_status_description_is_cut_to_140_characters(
    sim: ForgeSimulator, client: RestForge
) -> None:
    pr = open_pr(client, sim)
    client.set_commit_status(pr.head_sha, "failure", "syncer/preview", "x" * 300)
    (post,) = sim.calls("POST")
    assert len(post.json["description"]) == 140
    assert post.json["description"].endswith("…")


def test_gitlab_refusing_a_repeated_pending_counts_as_done(
    sim: ForgeSimulator, client: RestForge
) -> None:
    if sim.flavour != "gitlab":
        pytest.skip("GitLab only")
    pr = open_pr(client, sim)
    client.set_commit_status(
        pr.head_sha, "pending", "syncer/preview", "evaluating a", ref=pr.head_ref
    )
    client.set_commit_status(
        pr.head_sha, "pending", "syncer/preview", "evaluating b", ref=pr.head_ref
    )
    refused = [r for r in sim.calls("POST") if r.status == 400]
    assert len(refused) == 1
    assert len(sim.statuses_of(pr.head_sha)) == 1


def test_invalid_state_is_refused_before_any_request(
    sim: ForgeSimulator, client: RestForge
) -> None:
    with pytest.raises(ValueError, match="invalid commit state"):
        client.set_commit_status(sha(1), "passed", "ctx", "d")
    assert sim.requests == []


# --- retries, rate limits, errors ------------------------------------------------------


def test_server_errors_are_retried_with_backoff(
    sim: ForgeSimulator, client: RestForge, sleeps: list[float]
) -> None:
    sim.add_pull_request(1, sha(1))
    sim.fail("GET", PR_LIST[sim.flavour], status=500, times=2)

    assert [p.number for p in client.open_pull_requests("main")] == [1]

    assert [r.status for r in sim.requests] == [500, 500, 200]
    assert len(sleeps) == 2
    assert 0.005 <= sleeps[0] <= 0.01 and 0.01 <= sleeps[1] <= 0.02  # 0.01 * 2**n, jittered


def test_gives_up_after_the_configured_attempts(sim: ForgeSimulator, client: RestForge) -> None:
    sim.fail("GET", PR_LIST[sim.flavour], status=503, times=10)
    with pytest.raises(ForgeError) as info:
        client.open_pull_requests("main")
    err = info.value
    assert (err.status, err.attempts, err.forge) == (503, 3, sim.flavour)
    assert len(sim.requests) == 3
    assert str(err).startswith(f"{sim.flavour}: GET /")
    assert "HTTP 503" in str(err) and "[3 attempts]" in str(err)


@pytest.mark.parametrize("kind", ["retry-after", "reset"])
def test_rate_limits_are_waited_out(
    sim: ForgeSimulator, client: RestForge, sleeps: list[float], kind: str
) -> None:
    if kind == "reset" and sim.flavour != "github":
        pytest.skip("x-ratelimit-reset is GitHub's")
    sim.add_pull_request(1, sha(1))
    sim.rate_limit("GET", PR_LIST[sim.flavour], retry_after=3, kind=kind)

    assert [p.number for p in client.open_pull_requests("main")] == [1]

    assert [r.status for r in sim.requests] == [403 if kind == "reset" else 429, 200]
    assert len(sleeps) == 1
    assert sleeps[0] == pytest.approx(3.0, abs=1.0)


def test_a_rate_limit_longer_than_max_wait_fails_at_once(
    sim: ForgeSimulator, make_client: MakeClient, sleeps: list[float]
) -> None:
    client = make_client(retry=RetryPolicy(attempts=5, backoff_base=0.01, max_wait=2.0))
    pr = open_pr(client, sim)
    sim.rate_limit("POST", retry_after=120)

    outcome = attempt("comment", lambda: client.upsert_comment(pr, "preview", "plan"))

    assert not outcome.ok
    assert outcome.retry_after == 120
    assert "rate limited; retry after 120s" in (outcome.error or "")
    assert sleeps == []
    assert len(sim.calls("POST")) == 1


def test_wrong_token_is_not_retried_and_not_revealed(
    sim: ForgeSimulator,
    make_client: MakeClient,
    monkeypatch: pytest.MonkeyPatch,
    sleeps: list[float],
) -> None:
    secret = "wrong-token-7c1e9d3f"
    monkeypatch.setenv("WRONG_TOKEN", secret)
    client = make_client(token=TokenSource(env="WRONG_TOKEN"))

    with pytest.raises(ForgeError) as info:
        client.open_pull_requests("main")

    err = info.value
    assert err.status == 401 and err.attempts == 1 and sleeps == []
    assert len(sim.requests) == 1
    text = f"{err} {err!r} {err.args} {client!r}"
    assert secret not in text
    expected = {
        "github": "Bad credentials",
        "gitlab": "401 Unauthorized",
        "gitea": "invalid username, password or token",
    }[sim.flavour]
    assert expected in str(err)


def test_token_from_a_file(sim: ForgeSimulator, make_client: MakeClient, tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(sim.token + "\n")
    client = make_client(token=TokenSource(file=str(path)))
    sim.add_pull_request(1, sha(1))
    assert len(client.open_pull_requests("main")) == 1
    assert sim.token in str(sim.requests[0].headers)


def test_missing_token_is_an_outcome_not_a_crash(
    sim: ForgeSimulator, make_client: MakeClient
) -> None:
    client = make_client(token=TokenSource(env="SYNCER_NO_SUCH_VARIABLE"))
    outcome = attempt("list", lambda: client.open_pull_requests("main"))
    assert not outcome.ok
    assert "SYNCER_NO_SUCH_VARIABLE" in (outcome.error or "")
    assert sim.requests == []


def test_slow_responses_time_out_and_are_retried(
    sim: ForgeSimulator, make_client: MakeClient
) -> None:
    client = make_client(timeout=0.2)
    sim.add_pull_request(1, sha(1))
    sim.slow("GET", PR_LIST[sim.flavour], delay=0.6)
    started = time.monotonic()
    assert [p.number for p in client.open_pull_requests("main")] == [1]
    assert time.monotonic() - started < 0.6
    deadline = time.monotonic() + 2  # the slow answer is logged once the server gives it
    while len(sim.calls("GET", PR_LIST[sim.flavour])) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(sim.calls("GET", PR_LIST[sim.flavour])) == 2


def test_connection_refused_is_a_forge_error(make_client: MakeClient, sleeps: list[float]) -> None:
    with ForgeSimulator("github") as dead:
        url = dead.api_url
    client = make_client(api_url=url)
    with pytest.raises(ForgeError) as info:
        client.open_pull_requests("main")
    assert info.value.status is None and info.value.attempts == 3
    assert "no response" in str(info.value)
    assert len(sleeps) == 2


def test_token_env_name_is_in_the_config_repr_but_never_the_value(
    sim: ForgeSimulator, client: RestForge
) -> None:
    config_text = repr(TokenSource(env=TOKEN_ENV)) + repr(TokenSource(env=TOKEN_ENV).read())
    assert sim.token not in config_text
    assert TOKEN_ENV in config_text

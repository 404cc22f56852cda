"""The forge simulator rejects what the real forges reject, and flags client bugs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from syncer_lab.forge import ForgeSimulator


def auth(flavour: str, token: str) -> dict[str, str]:
    if flavour == "github":
        return {
            "Authorization": f"Bearer {token}",
            "User-Agent": "t",
            "X-GitHub-Api-Version": "2022-11-28",
        }
    if flavour == "gitlab":
        return {"PRIVATE-TOKEN": token}
    return {"Authorization": f"token {token}"}


STATUS_PATH = {
    "github": "/repos/acme/fleet/statuses/{}",
    "gitlab": "/projects/acme%2Ffleet/statuses/{}",
    "gitea": "/repos/acme/fleet/statuses/{}",
}
SHA = "a" * 40


@pytest.fixture
def raw(flavour: str) -> Iterator[ForgeSimulator]:
    with ForgeSimulator(flavour) as s:  # type: ignore[arg-type]
        s.add_pull_request(1, SHA)
        yield s


def call(
    sim: ForgeSimulator,
    method: str,
    path: str,
    token: str | None = None,
    *,
    json: object = None,
    headers: dict[str, str] | None = None,
) -> requests.Response:
    all_headers = {**auth(sim.flavour, token or sim.token), **(headers or {})}
    return requests.request(method, sim.api_url + path, headers=all_headers, json=json, timeout=5)


def test_unimplemented_endpoints_are_404_and_flagged(raw: ForgeSimulator) -> None:
    r = call(raw, "GET", "/repos/acme/fleet/branches")
    assert r.status_code == 404
    assert raw.problems and raw.problems[0].problem == "no such endpoint in the simulator"
    with pytest.raises(AssertionError, match="bad requests"):
        raw.assert_clean()


def test_wrong_method_is_405_and_flagged(raw: ForgeSimulator) -> None:
    path = STATUS_PATH[raw.flavour].format(SHA)
    r = call(raw, "DELETE", path)
    assert r.status_code == 405
    assert "not allowed" in (raw.problems[0].problem or "")


def test_wrong_and_missing_tokens_get_the_forges_answers(raw: ForgeSimulator) -> None:
    path = STATUS_PATH[raw.flavour].format(SHA)
    wrong = call(raw, "POST", path, token="nope-nope", json={"state": "pending"})
    assert wrong.status_code == 401
    assert (
        wrong.json()["message"]
        == {
            "github": "Bad credentials",
            "gitlab": "401 Unauthorized",
            "gitea": "invalid username, password or token",
        }[raw.flavour]
    )
    missing = requests.post(
        raw.api_url + path, json={"state": "pending"}, headers={"User-Agent": "t"}, timeout=5
    )
    assert missing.status_code == 401
    assert raw.problems == []  # a bad token is the user's problem, not a client bug


def test_unknown_fields_and_invalid_states_are_rejected_and_flagged(
    raw: ForgeSimulator,
) -> None:
    path = STATUS_PATH[raw.flavour].format(SHA)
    extra = call(raw, "POST", path, json={"state": "pending", "colour": "red"})
    assert extra.status_code in (400, 422)
    bad = call(raw, "POST", path, json={"state": "passed"})
    assert bad.status_code in (400, 422)
    assert [r.problem for r in raw.problems] == [
        "unknown body field(s) colour",
        "invalid status state 'passed'",
    ]
    assert raw.statuses_of(SHA) == []


def test_unknown_commits_are_refused(raw: ForgeSimulator) -> None:
    r = call(raw, "POST", STATUS_PATH[raw.flavour].format("b" * 40), json={"state": "pending"})
    assert r.status_code in (404, 422)


def test_github_requires_a_user_agent_and_a_known_api_version(flavour: str) -> None:
    if flavour != "github":
        pytest.skip("GitHub only")
    with ForgeSimulator("github") as sim:
        r = requests.get(
            sim.api_url + "/repos/acme/fleet/pulls",
            headers={"Authorization": f"Bearer {sim.token}", "User-Agent": ""},
            timeout=5,
        )
        assert r.status_code == 403 and "User-Agent" in r.text
        r = call(
            sim, "GET", "/repos/acme/fleet/pulls", headers={"X-GitHub-Api-Version": "1999-01-01"}
        )
        assert r.status_code == 400
        r = call(
            sim,
            "POST",
            STATUS_PATH["github"].format(SHA),
            json={"state": "pending", "description": "d" * 141},
        )
        assert r.status_code == 422 and "maximum is 140" in r.text
        assert r.headers["x-ratelimit-limit"] == "5000"
        assert [p.problem for p in sim.problems] == [
            "missing User-Agent",
            "unsupported X-GitHub-Api-Version 1999-01-01",
            "status description over 140 characters",
        ]


def test_gitlab_needs_the_project_path_url_encoded(flavour: str) -> None:
    if flavour != "gitlab":
        pytest.skip("GitLab only")
    with ForgeSimulator("gitlab") as sim:
        r = call(sim, "GET", "/projects/acme/fleet/merge_requests")
        assert r.status_code == 404
        assert sim.problems
        ok = call(sim, "GET", "/projects/acme%2Ffleet/merge_requests?state=opened")
        assert ok.status_code == 200 and ok.headers["X-Total"] == "0"


def test_pagination_headers(raw: ForgeSimulator) -> None:
    raw.max_page_size = 1
    raw.add_pull_request(2, "b" * 40)
    path = {
        "github": "/repos/acme/fleet/pulls?per_page=100",
        "gitlab": "/projects/acme%2Ffleet/merge_requests?per_page=100",
        "gitea": "/repos/acme/fleet/pulls?limit=50",
    }[raw.flavour]
    r = call(raw, "GET", path)
    assert len(r.json()) == 1
    assert r.links["next"]["url"].startswith(raw.url) and "page=2" in r.links["next"]["url"]
    if raw.flavour == "gitlab":
        assert r.headers["X-Next-Page"] == "2" and r.headers["X-Total-Pages"] == "2"
    if raw.flavour == "gitea":
        assert r.headers["X-Total-Count"] == "2"

"""Pull-request previews on each forge: a real Git remote holding the PR refs, the real
control plane, and the strict forge simulator (which records every request)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncer.cluster.client import KubeClient
from syncer.cluster.inventory import InventoryStore
from syncer.reconcile import ReconcileOptions, reconcile_once
from syncer.source import GitSource, SourceConfig
from syncer.writeback.forges import CommitState, RestForge
from syncer.writeback.previews.post import PREVIEW_CONTEXT
from syncer.writeback.previews.rounds import PreviewCache, PreviewRound, preview_pull_requests
from syncer.writeback.step import WriteBack, WriteBackSettings, forge_settings
from syncer_lab.forge import ForgeSimulator, RecordedRequest
from syncer_lab.gitrepos import WorkRepo, make_bare
from syncer_lab.kube import ControlPlane

from .writeback_helpers import (
    PR_REFS,
    FleetRepo,
    byoh,
    git,
    notes_commits,
    set_node_version,
    subjects,
    sync,
    windows_node,
)

NATIVE = {  # the forge's own name of a state
    "github": {"pending": "pending", "success": "success", "failure": "failure"},
    "gitlab": {"pending": "pending", "success": "success", "failure": "failed"},
    "gitea": {"pending": "pending", "success": "success", "failure": "failure"},
}
BROKEN_HOSTS = byoh(["10.1.0.1"]) + "    - address: 10.1.0.2\n      username: bad=user\n"


@pytest.fixture
def kc(control_plane: ControlPlane) -> KubeClient:
    return KubeClient(control_plane.api_client())


@pytest.fixture
def repo(tmp_path: Path, namespace: str) -> FleetRepo:
    bare = make_bare(tmp_path / "fleet.git")
    fleet = FleetRepo(bare, WorkRepo(tmp_path / "author", f"file://{bare}"), namespace,
                      hosts=["10.1.0.1"])
    fleet.push_main("Fleet 1.0.0")
    return fleet


@pytest.fixture
def source(repo: FleetRepo, tmp_path: Path, kc: KubeClient, namespace: str
           ) -> Iterator[GitSource]:
    """The tracked source, applied once; the one BYOH host runs 1.0.0."""
    src = GitSource(SourceConfig(url=f"file://{repo.bare}", path="fleet",
                                 workdir=tmp_path / "src"))
    result = reconcile_once(src, kc, ReconcileOptions(inventory_namespace=namespace))
    assert result.ok, result.errors
    with windows_node(kc, f"win-a-{namespace}"[:63], namespace, "10.1.0.1", "1.0.0"):
        yield src


def previews(source: GitSource, forge: RestForge, kc: KubeClient, namespace: str,
             cache: PreviewCache) -> PreviewRound:
    return preview_pull_requests(
        source, forge, kc, inventory=InventoryStore(kc, namespace), cache=cache,
        node_selector=f"syncer-test={namespace}",
    )


def writes(sim: ForgeSimulator) -> list[RecordedRequest]:
    return [r for r in sim.requests if r.method != "GET"]


def status_posts(sim: ForgeSimulator, sha: str) -> list[str]:
    """The states syncer posted for ``sha``, as sent (the forge's own names)."""
    return [str(r.json["state"]) for r in sim.requests
            if r.method == "POST" and r.path.endswith(f"/statuses/{sha}") and r.status < 300]


def comment_writes(sim: ForgeSimulator) -> list[str]:
    return [r.method for r in writes(sim) if "/comments" in r.path or "/notes" in r.path]


def test_broken_pull_request_then_fixed_edits_the_same_comment(
    sim: ForgeSimulator, client: RestForge, repo: FleetRepo, source: GitSource,
    kc: KubeClient, namespace: str, tmp_path: Path,
) -> None:
    native = NATIVE[sim.flavour]
    node = f"win-a-{namespace}"[:63]
    ref = PR_REFS[sim.flavour].format(5)
    cache = PreviewCache.load(tmp_path / "previews.json")
    broken = repo.push_pull_request(ref, "Add a host", {"fleet/hosts/lab.yaml": BROKEN_HOSTS})
    sim.add_pull_request(5, broken, base="main", head_ref="add-host")
    sim.add_pull_request(6, broken, base="release")  # not against the tracked branch

    first = previews(source, client, kc, namespace, cache)
    (pr,) = first.previews
    assert (pr.number, pr.action, pr.state, pr.comment) == (
        5, "published", CommitState.FAILURE, "created")
    assert status_posts(sim, broken) == [native["pending"], native["failure"]]
    assert sim.statuses_of(broken, PREVIEW_CONTEXT)[-1].description.startswith(
        "invalid: 1 error (hosts/lab.yaml:10: ")
    (comment,) = sim.comments_on(5)
    assert "`hosts/lab.yaml:10`" in comment.body
    assert f"/{broken}/fleet/hosts/lab.yaml#L10" in comment.body  # linked at the head
    assert "username" in comment.body
    assert sim.comments_on(6) == []
    assert comment_writes(sim) == ["POST"]
    edit = "PUT" if sim.flavour == "gitlab" else "PATCH"

    # The next reconcile, nothing changed: no render, no request beyond the listing.
    sim.clear_requests()
    cache = PreviewCache.load(tmp_path / "previews.json")  # as a new process would
    again = previews(source, client, kc, namespace, cache)
    assert [(p.number, p.action) for p in again.previews] == [(5, "unchanged")]
    assert writes(sim) == []

    # The fix: version 1.1.0, a second host, value 2, one object added, one removed.
    files = repo.files(version="1.1.0", value="2", extra=False,
                       hosts=["10.1.0.1", "10.1.0.2"])
    files["fleet/new.yaml"] = repo.configmap("new", "n")
    fixed = repo.push_pull_request(ref, "Add a host, fixed", files, remove=("fleet/extra.yaml",))
    sim.push(5, fixed)
    third = previews(source, client, kc, namespace, cache)
    (pr,) = third.previews
    assert (pr.action, pr.state, pr.comment) == ("published", CommitState.SUCCESS, "updated")
    (edited,) = sim.comments_on(5)
    assert edited.id == comment.id
    assert comment_writes(sim) == [edit]  # the one comment, edited in place
    assert status_posts(sim, fixed) == [native["pending"], native["success"]]
    body = edited.body
    assert "hosts/lab.yaml:10" not in body
    assert "**1 to create, 3 to update, 1 to prune**, 0 unchanged" in body
    assert f"create <code>ConfigMap {namespace}/new</code>" in body
    assert f"update <code>ConfigMap {namespace}/app</code>" in body
    assert f"prune <code>ConfigMap {namespace}/extra</code>" in body
    assert '~ /data/value: (live value) -> "2"' in body  # never what the cluster holds
    assert "### Hosts to upgrade (2)" in body
    assert f"- `10.1.0.1`/`{node}`: 1.0.0 → 1.1.0" in body
    assert "- `10.1.0.2`: _not configured_ → 1.1.0" in body
    assert sim.statuses_of(fixed, PREVIEW_CONTEXT)[-1].description == (
        "valid: 1 to create, 3 to update, 1 to prune, 2 hosts to upgrade")

    # The cluster changes under the PR (a host reached 1.1.0): the plan changes, so the
    # same comment is edited again — without a new pending status, the head is the same.
    set_node_version(kc, node, "1.1.0")
    sim.clear_requests()
    fourth = previews(source, client, kc, namespace, cache)
    assert [(p.action, p.comment) for p in fourth.previews] == [("published", "updated")]
    assert [r.method for r in writes(sim)] == [edit, "POST"]  # comment, status
    (edited,) = sim.comments_on(5)
    assert edited.id == comment.id and "### Hosts to upgrade (1)" in edited.body
    assert sim.statuses_of(fixed, PREVIEW_CONTEXT)[-1].state == native["success"]


def test_forge_down_or_rate_limited_is_reported_and_retried(
    sim: ForgeSimulator, client: RestForge, repo: FleetRepo, source: GitSource,
    kc: KubeClient, namespace: str, tmp_path: Path, sleeps: list[float],
) -> None:
    ref = PR_REFS[sim.flavour].format(7)
    head = repo.push_pull_request(ref, "Value 2", repo.files(value="2"))
    sim.add_pull_request(7, head)
    cache = PreviewCache.load(tmp_path / "previews.json")

    sim.fail(status=503, times=100)  # the whole forge is down
    down = previews(source, client, kc, namespace, cache)
    assert down.previews == () and down.error is not None and "503" in down.error
    sim.faults.clear()

    sim.rate_limit(retry_after=3600, times=100)  # far beyond what a reconcile may wait
    limited = previews(source, client, kc, namespace, cache)
    assert limited.error is not None and "rate" in limited.error.lower()
    assert all(wait < 3600 for wait in sleeps)  # gave up instead of blocking an hour
    sim.faults.clear()

    # Listing works, but creating the comment keeps failing: reported per PR, not cached.
    sim.fail("POST", r"/(comments|notes)$", status=502, times=100)
    failing = previews(source, client, kc, namespace, cache)
    (pr,) = failing.previews
    assert pr.action == "failed" and any("502" in e for e in pr.errors), pr
    assert sim.comments_on(7) == []
    sim.faults.clear()

    recovered = previews(source, client, kc, namespace, cache)
    assert [(p.action, p.state) for p in recovered.previews] == [
        ("published", CommitState.SUCCESS)]
    assert len(sim.comments_on(7)) == 1


def test_sync_once_with_a_forge_that_rate_limits_still_succeeds(
    sim: ForgeSimulator, repo: FleetRepo, control_plane: ControlPlane, namespace: str,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FORGE_TOKEN", sim.token)
    head = repo.push_pull_request(PR_REFS[sim.flavour].format(3), "Value 2",
                                  repo.files(value="2"))
    sim.add_pull_request(3, head)
    forge = ("--forge", sim.flavour, "--forge-url", sim.api_url, "--forge-repo",
             sim.repository, "--forge-token-env", "FORGE_TOKEN")
    url, work = f"file://{repo.bare}", tmp_path / "work"

    sim.rate_limit(retry_after=3600, times=100)
    limited = sync(control_plane, namespace, url, work, *forge, "-o", "json")
    assert limited.exit_code == 0, limited.output
    doc = json.loads(limited.stdout)
    assert doc["ok"] and doc["writeBack"]["status"]["committed"]
    assert doc["writeBack"]["previews"]["pullRequests"] == []
    assert "rate" in doc["writeBack"]["previews"]["error"].lower()
    assert sim.token not in limited.output
    sim.faults.clear()

    done = sync(control_plane, namespace, url, work, *forge)
    assert done.exit_code == 0, done.output
    assert f"preview #3 ({head[:7]}): success, comment created" in done.output
    (comment,) = sim.comments_on(3)
    assert "**0 to create, 1 to update, 0 to prune**" in comment.body


def test_the_fleets_status_policy_is_followed(
    sim: ForgeSimulator, repo: FleetRepo, control_plane: ControlPlane, namespace: str,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``spec.status``: another branch, no notes, no pull-request comments."""
    monkeypatch.setenv("FORGE_TOKEN", sim.token)
    files = repo.files(value="2")
    files["fleet/fleet.yaml"] += (
        "  status:\n    branch: fleet/status\n    notes: false\n    pullRequests: false\n")
    sha = repo.commit("Quiet write-back", files)
    repo.author.push("main")
    head = repo.push_pull_request(PR_REFS[sim.flavour].format(3), "Value 3",
                                  repo.files(value="3"))
    sim.add_pull_request(3, head)
    done = sync(control_plane, namespace, f"file://{repo.bare}", tmp_path / "work",
                "--forge", sim.flavour, "--forge-url", sim.api_url,
                "--forge-repo", sim.repository, "--forge-token-env", "FORGE_TOKEN")
    assert done.exit_code == 0, done.output
    assert f'status: committed "Applied {sha[:7]}: 4 objects"\n' in done.output  # no note
    assert subjects(repo.bare, "fleet/status") == [f"Applied {sha[:7]}: 4 objects"]
    assert "syncer/status" not in git(repo.bare, "for-each-ref", "--format=%(refname)")
    assert notes_commits(repo.bare) == 0
    assert sim.requests == []  # not even a listing

    # A rejected revision has no valid Fleet: the last valid one's policy still holds.
    broken = repo.commit("Break it", {"fleet/app.yaml": "kind: [\n"})
    repo.author.push("main")
    rejected = sync(control_plane, namespace, f"file://{repo.bare}", tmp_path / "work")
    assert rejected.exit_code == 1
    assert subjects(repo.bare, "fleet/status")[-1].startswith(f"Rejected {broken[:7]}: ")
    assert notes_commits(repo.bare) == 0


def test_a_status_only_write_back_leaves_pull_requests_alone(
    sim: ForgeSimulator, repo: FleetRepo, source: GitSource, kc: KubeClient, namespace: str,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """During a rollout each host moving on is written back with the status only: the
    forge is not asked anything (previews do not change as hosts move)."""
    monkeypatch.setenv("FORGE_TOKEN", sim.token)
    head = repo.push_pull_request(PR_REFS[sim.flavour].format(5), "Value 5",
                                  repo.files(value="5"))
    sim.add_pull_request(5, head)
    writeback = WriteBack(WriteBackSettings(
        workdir=tmp_path / "wb", instance="syncer-test", inventory_namespace=namespace,
        node_selector=f"syncer-test={namespace}",
        forge=forge_settings(sim.flavour, f"file://{repo.bare}", api_url=sim.api_url,
                             repository=sim.repository, token_env="FORGE_TOKEN"),
    ), source)
    try:
        result = reconcile_once(source, kc, ReconcileOptions(inventory_namespace=namespace))
        status_only = writeback.after(result, kc, previews=False)
        assert status_only.status is not None and status_only.status.committed
        assert status_only.previews is None and sim.requests == []
        full = writeback.after(result, kc)
        assert full.previews is not None and comment_writes(sim) == ["POST"]
    finally:
        writeback.close()


def test_a_pull_request_from_a_fork_gets_no_preview_unless_enabled(
    sim: ForgeSimulator, client: RestForge, repo: FleetRepo, source: GitSource,
    kc: KubeClient, namespace: str, tmp_path: Path,
) -> None:
    """Whoever forks a public repository reads the preview of their pull request; a fork
    is previewed only when the operator says so (--previews-from-forks)."""
    ref = PR_REFS[sim.flavour].format(8)
    head = repo.push_pull_request(ref, "From a fork", repo.files(value="2"))
    sim.add_pull_request(8, head, fork=True)
    cache = PreviewCache.load(tmp_path / "previews.json")
    off = previews(source, client, kc, namespace, cache)
    assert [p.action for p in off.previews] == [
        "skipped (from a fork; see --previews-from-forks)"]
    assert writes(sim) == [] and sim.comments_on(8) == []
    on = preview_pull_requests(source, client, kc, inventory=InventoryStore(kc, namespace),
                               cache=cache, node_selector=f"syncer-test={namespace}",
                               forks=True)
    assert [p.action for p in on.previews] == ["published"]
    assert len(sim.comments_on(8)) == 1

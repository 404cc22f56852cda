"""The write-back after a reconcile: status branch commits, notes, history — real Git
remotes (``file://`` and the HTTPS server) and the real control plane."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from plugins.git_fixtures import HTTPS_TOKEN

from syncer.cli.main import cli
from syncer.cluster.client import KubeClient, Resource
from syncer.nodes.stage import NodeStageResult
from syncer.nodes.status import HostStatus as NodeRow
from syncer.nodes.status import Phase
from syncer.reconcile import ReconcileOptions, reconcile_once
from syncer.source import GitSource, SourceConfig, VerifyConfig
from syncer.writeback.status.model import StatusReport
from syncer.writeback.status.record import report_reconcile
from syncer.writeback.status.writer import RetryPolicy, StatusWriter
from syncer_lab.gitrepos import SshKey, WorkRepo, make_bare, write_allowed_signers
from syncer_lab.gitserver import HttpsGitServer
from syncer_lab.kube import ControlPlane

from .writeback_helpers import BRANCH, FleetRepo, git, note, notes_commits, subjects, sync

CM = Resource("", "v1", "ConfigMap", "configmaps", True)
T0 = datetime(2026, 5, 4, 10, 0, 0, tzinfo=UTC)


@pytest.fixture
def kc(control_plane: ControlPlane) -> KubeClient:
    return KubeClient(control_plane.api_client())


@pytest.fixture
def repo(tmp_path: Path, namespace: str) -> FleetRepo:
    bare = make_bare(tmp_path / "fleet.git")
    git(bare, "config", "receive.denyNonFastForwards", "true")  # no force push gets through
    return FleetRepo(bare, WorkRepo(tmp_path / "author", f"file://{bare}"), namespace)


def _value(kc: KubeClient, namespace: str) -> str:
    live = kc.get(CM, namespace, "app")
    assert live is not None
    return str(live["data"]["value"])


def test_one_commit_per_state_notes_and_a_rejected_revision(
    repo: FleetRepo, control_plane: ControlPlane, namespace: str, kc: KubeClient,
    tmp_path: Path,
) -> None:
    url, work = f"file://{repo.bare}", tmp_path / "work"
    first = repo.push_main("Initial fleet")

    done = sync(control_plane, namespace, url, work)
    assert done.exit_code == 0, done.output
    assert f'status: committed "Applied {first[:7]}: 3 objects" + note' in done.output
    again = sync(control_plane, namespace, url, work)
    assert again.exit_code == 0, again.output
    assert "status: unchanged" in again.output
    assert subjects(repo.bare) == [f"Applied {first[:7]}: 3 objects"]
    assert notes_commits(repo.bare) == 1  # and no notes commit for the no-change poll

    status = StatusReport.from_yaml(git(repo.bare, "show", f"{BRANCH}:status.yaml"))
    assert status.source.revision == status.source.applied_revision == first
    assert {(o.name, o.result) for o in status.objects} == {
        ("app", "created"), ("extra", "created"), ("syncer-fleet", "created")}
    first_note = note(repo.bare, first)
    assert "outcome: Applied" in first_note and "result: created" in first_note

    # A new revision: a new commit naming it; its note has the per-object outcomes.
    second = repo.push_main("Value 2", value="2", extra=False, remove=("fleet/extra.yaml",))
    assert sync(control_plane, namespace, url, work).exit_code == 0
    assert subjects(repo.bare)[-1] == f"Applied {second[:7]}: 3 objects"
    message = git(repo.bare, "log", "-1", "--format=%B", BRANCH)
    assert f"main@sha1:{second}" in message and f"Syncer-Source: {second}" in message
    status = StatusReport.from_yaml(git(repo.bare, "show", f"{BRANCH}:status.yaml"))
    assert {(o.name, o.result) for o in status.objects} == {
        ("app", "configured"), ("extra", "pruned"), ("syncer-fleet", "unchanged")}
    assert "| ConfigMap | " + namespace + " | app | configured |" in git(
        repo.bare, "show", f"{BRANCH}:STATUS.md")
    second_note = note(repo.bare, second)
    assert "name: extra" in second_note and "result: pruned" in second_note

    # An invalid revision is rejected: note and status carry file:line, the cluster stays.
    broken = repo.commit("Break it", {"fleet/app.yaml": repo.configmap("app", "3")
                                      + "  oops: [\n"})
    repo.author.push("main")
    rejected = sync(control_plane, namespace, url, work)
    assert rejected.exit_code == 1
    assert f'status: committed "Rejected {broken[:7]}: app.yaml:' in rejected.output
    assert _value(kc, namespace) == "2"
    status = StatusReport.from_yaml(git(repo.bare, "show", f"{BRANCH}:status.yaml"))
    assert status.outcome == "Rejected"
    assert status.source.revision == broken and status.source.applied_revision == second
    assert status.error.startswith("app.yaml:9: YAML syntax error")
    assert status.source.message == "Break it"
    broken_note = note(repo.bare, broken)
    assert "outcome: Rejected" in broken_note and "app.yaml:9: YAML syntax error" in broken_note

    assert sync(control_plane, namespace, url, work).exit_code == 1
    assert len(subjects(repo.bare)) == 3  # the same rejection again is no new state

    history = CliRunner().invoke(cli, ["history", "--repo", str(repo.bare)])
    assert history.exit_code == 0, history.output
    lines = history.output.splitlines()
    assert lines[0].split() == ["COMMIT", "AUTHOR", "COMMITTED", "APPLIED", "OUTCOME", "ALL",
                                "HOSTS"]
    assert [(ln.split()[0], ln.split()[7]) for ln in lines[1:]] == [
        (broken[:7], "Rejected"), (second[:7], "Applied"), (first[:7], "Applied")]


def test_unsigned_commit_gets_a_rejected_note(
    repo: FleetRepo, control_plane: ControlPlane, namespace: str, kc: KubeClient,
    tmp_path: Path, ssh_signing_key: SshKey,
) -> None:
    signers = write_allowed_signers(tmp_path / "allowed", [ssh_signing_key])
    signed = repo.author.commit("Signed", repo.files(), sign=ssh_signing_key)
    repo.author.push("main")
    unsigned = repo.push_main("Unsigned", value="2")
    source = GitSource(SourceConfig(
        url=f"file://{repo.bare}", path="fleet", workdir=tmp_path / "src",
        verify=VerifyConfig(mode="head", allowed_signers_file=signers),
    ))
    writer = StatusWriter(f"file://{repo.bare}", tmp_path / "wb", instance="syncer-a")
    result = reconcile_once(source, kc, ReconcileOptions(inventory_namespace=namespace))
    assert result.stage == "source"
    outcome = report_reconcile(result, None, writer, source=source)
    assert outcome.committed and outcome.noted and outcome.ok, outcome
    assert subjects(repo.bare) == [f"Rejected {unsigned[:7]}: commit {unsigned[:7]}"
                                   " is not signed"]
    text = note(repo.bare, unsigned)
    assert "outcome: Rejected" in text and "not signed" in text and "controller: syncer-a" in text
    status = StatusReport.from_yaml(git(repo.bare, "show", f"{BRANCH}:status.yaml"))
    assert status.source.message == "Unsigned" and status.source.author.startswith("Alice")
    assert signed != unsigned and kc.get(CM, namespace, "app") is None  # nothing applied


def test_others_commits_on_the_status_branch_are_kept(
    repo: FleetRepo, control_plane: ControlPlane, namespace: str, tmp_path: Path,
) -> None:
    url, work = f"file://{repo.bare}", tmp_path / "work"
    repo.push_main("Initial fleet")
    assert sync(control_plane, namespace, url, work).exit_code == 0
    # Someone else pushes to the status branch between two reconciles.
    human = WorkRepo(tmp_path / "human", url, name="Bob Builder", email="bob@example.com")
    human.git("fetch", "-q", "origin", BRANCH)
    human.git("checkout", "-q", "-b", "status", "FETCH_HEAD")
    theirs = human.commit("Explain the branch", {"README.md": "Written by syncer.\n"})
    human.push(BRANCH)

    second = repo.push_main("Value 2", value="2")
    assert sync(control_plane, namespace, url, work).exit_code == 0
    assert subjects(repo.bare)[-1].startswith(f"Applied {second[:7]}")
    git(repo.bare, "merge-base", "--is-ancestor", theirs, BRANCH)  # raises if not
    assert git(repo.bare, "show", f"{BRANCH}:README.md") == "Written by syncer.\n"


def test_status_remote_down_for_a_while(
    control_plane: ControlPlane, namespace: str, tmp_path: Path,
    https_git_server: HttpsGitServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Source and status in two repositories on two HTTPS servers (token, private CA), as
    on a forge. While the status server is down the state changes are queued, the
    reconcile still succeeds, and nothing is lost once it is back."""
    bare = make_bare(https_git_server.root / f"{tmp_path.name}.git")
    repo = FleetRepo(bare, WorkRepo(tmp_path / "author", f"file://{bare}"), namespace)
    status_server = HttpsGitServer(tmp_path / "status-server", HTTPS_TOKEN)
    status_server.ca = https_git_server.ca  # one private CA signs both servers
    status_server.start()
    status_bare = make_bare(status_server.root / "status.git")
    monkeypatch.setenv("GIT_TOKEN", HTTPS_TOKEN)
    args = ("--status-repo", status_server.url(status_bare), "--token-env", "GIT_TOKEN",
            "--ca-file", str(https_git_server.ca_file), "-o", "json")
    url, work = https_git_server.url(bare), tmp_path / "work"
    try:
        first = repo.push_main("Initial fleet")
        status_server.stop()
        down = sync(control_plane, namespace, url, work, *args)
        assert down.exit_code == 0, down.output
        doc = json.loads(down.stdout)
        assert doc["ok"] and doc["writeBack"]["status"]["committed"]
        assert doc["writeBack"]["status"]["pending"] == 2  # the status commit and the note
        assert "unreachable" in doc["writeBack"]["status"]["error"]
        assert HTTPS_TOKEN not in down.output
        second = repo.push_main("Value 2", value="2")
        again = json.loads(sync(control_plane, namespace, url, work, *args).stdout)
        assert again["ok"] and again["writeBack"]["status"]["pending"] == 4

        status_server.start()  # back, on the same port
        back = json.loads(sync(control_plane, namespace, url, work, *args).stdout)
        assert back["writeBack"]["status"] == {**back["writeBack"]["status"],
                                               "committed": False, "pushed": 4, "pending": 0,
                                               "error": None}
    finally:
        status_server.stop()
    assert subjects(status_bare) == [f"Applied {first[:7]}: 3 objects",
                                     f"Applied {second[:7]}: 3 objects"]
    assert "outcome: Applied" in note(status_bare, first)
    assert "outcome: Applied" in note(status_bare, second)
    assert "refs/heads/syncer/status" not in git(bare, "for-each-ref")


def test_history_shows_how_long_until_all_hosts_reached_a_revision(
    repo: FleetRepo, control_plane: ControlPlane, namespace: str, kc: KubeClient,
    tmp_path: Path,
) -> None:
    """The node stage reports hosts rolling out over several reconciles; the note gets
    ``allHostsReachedAt`` when the last one is up to date, and ``syncer history`` shows
    the time from the apply."""
    source = GitSource(SourceConfig(url=f"file://{repo.bare}", path="fleet",
                                    workdir=tmp_path / "src"))
    writer = StatusWriter(f"file://{repo.bare}", tmp_path / "wb", instance="syncer-7d9f",
                          retry=RetryPolicy(backoff=0.01))
    options = ReconcileOptions(inventory_namespace=namespace)

    def rows(*phases: NodeRow) -> NodeStageResult:
        return NodeStageResult(rows=[
            replace(row, address=f"10.0.0.{i}", node=f"win-{i}",
                    current="1.1.0" if row.done else "1.0.0")
            for i, row in enumerate(phases, start=1)
        ])

    def host(phase: Phase, **fields: str) -> NodeRow:
        return NodeRow("", None, None, "1.1.0", phase, **fields)

    upgrading = host(Phase.RUNNING, step="drain", action="upgrade")
    waiting = host(Phase.WAITING, action="upgrade")
    done = host(Phase.UP_TO_DATE)
    failed = host(Phase.FAILED, step="transfer")

    def reconcile(nodes: NodeStageResult, at: timedelta) -> str:
        result = reconcile_once(source, kc, options)
        assert result.ok, result.errors
        outcome = report_reconcile(result, nodes, writer, source=source,
                                   clock=lambda: T0 + at)
        assert outcome.ok, outcome
        return outcome.summary

    sha = repo.push_main("Fleet 1.1.0", version="1.1.0")
    assert reconcile(rows(upgrading, waiting), timedelta(0)) == (
        f"Applied {sha[:7]}: 3 objects, hosts 0/2 at 1.1.0, 1 in progress")
    assert reconcile(rows(done, upgrading), timedelta(minutes=2)) == (
        f"Applied {sha[:7]}: 3 objects, hosts 1/2 at 1.1.0, 1 in progress")
    assert reconcile(rows(done, done), timedelta(minutes=4, seconds=12)) == (
        f"Applied {sha[:7]}: 3 objects, hosts 2/2 at 1.1.0")
    reconcile(rows(done, done), timedelta(minutes=9))  # nothing new
    assert len(subjects(repo.bare)) == 3

    text = note(repo.bare, sha)
    assert "appliedAt: '2026-05-04T10:00:00Z'" in text
    assert "allHostsReachedAt: '2026-05-04T10:04:12Z'" in text
    assert "controller: syncer-7d9f" in text and "address: 10.0.0.2" in text

    later = repo.push_main("Fleet 1.1.0, value 2", version="1.1.0", value="2")
    reconcile(rows(done, failed), timedelta(hours=1))
    history = CliRunner().invoke(cli, ["history", "--repo", str(repo.bare)])
    assert history.exit_code == 0, history.output
    lines = history.output.splitlines()
    assert lines[1].split()[:1] + lines[1].split()[7:] == [later[:7], "Applied", "in", "progress"]
    assert lines[2].split()[:1] + lines[2].split()[5:] == [
        sha[:7], "2026-05-04", "10:00:00Z", "Applied", "4m12s"]


def test_the_tracked_branch_is_never_the_status_branch(
    repo: FleetRepo, control_plane: ControlPlane, namespace: str, tmp_path: Path,
) -> None:
    """Status commits on the branch syncer follows would each be a new revision to
    reconcile, whose status commit is the next: refused from the flag at start, and from
    the Fleet's spec.status.branch at the revision that sets it, without a commit."""
    url, work = f"file://{repo.bare}", tmp_path / "work"
    repo.push_main("Initial fleet")
    flag = sync(control_plane, namespace, url, work, "--status-branch", "refs/heads/main")
    assert flag.exit_code == 1
    assert "status branch 'refs/heads/main' is the branch syncer follows" in flag.output

    files = repo.files()
    files["fleet/fleet.yaml"] += "  status:\n    branch: main\n"
    head = repo.commit("Status on main", files)
    repo.author.push("main")
    done = sync(control_plane, namespace, url, work)
    assert "status branch 'main' is the branch syncer follows" in done.output, done.output
    assert git(repo.bare, "rev-parse", "main").strip() == head  # nothing pushed onto main
    again = sync(control_plane, namespace, url, work)
    assert git(repo.bare, "rev-parse", "main").strip() == head, again.output

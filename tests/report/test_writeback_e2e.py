"""End to end, as a user runs it: ``syncer sync --once`` against a fleet repository served
over HTTPS (token, private CA) as a forge serves it, with the forge's API simulated, through
a pull request's life — broken, fixed, merged — then ``syncer history``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from plugins.git_fixtures import HTTPS_TOKEN

from syncer.cli.main import cli
from syncer.cluster.client import KubeClient
from syncer.writeback.previews.post import PREVIEW_CONTEXT
from syncer_lab.forge import ForgeSimulator
from syncer_lab.gitrepos import WorkRepo, make_bare
from syncer_lab.gitserver import HttpsGitServer
from syncer_lab.kube import ControlPlane

from .writeback_helpers import (
    BRANCH,
    PR_REFS,
    FleetRepo,
    byoh,
    git,
    note,
    subjects,
    sync,
    windows_node,
)


def test_pull_request_life_and_audit_trail(
    sim: ForgeSimulator, control_plane: ControlPlane, namespace: str, tmp_path: Path,
    https_git_server: HttpsGitServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    bare = make_bare(https_git_server.root / f"{tmp_path.name}.git")
    repo = FleetRepo(bare, WorkRepo(tmp_path / "author", f"file://{bare}"), namespace,
                     hosts=["10.2.0.1"])
    kc = KubeClient(control_plane.api_client())
    monkeypatch.setenv("GIT_TOKEN", HTTPS_TOKEN)
    token_file = tmp_path / "forge-token"
    token_file.write_text(sim.token + "\n")
    args = ("--token-env", "GIT_TOKEN", "--ca-file", str(https_git_server.ca_file),
            "--forge", sim.flavour, "--forge-url", sim.api_url, "--forge-repo", sim.repository,
            "--forge-token-file", str(token_file))
    url, work = https_git_server.url(bare), tmp_path / "work"

    def run() -> str:
        result = sync(control_plane, namespace, url, work, *args)
        assert result.exit_code == 0, result.output
        assert sim.token not in result.output and HTTPS_TOKEN not in result.output
        return result.output

    first = repo.push_main("Fleet 1.0.0")
    out = run()
    assert f'status: committed "Applied {first[:7]}: 4 objects" + note' in out
    with windows_node(kc, f"win-e2e-{namespace}"[:63], namespace, "10.2.0.1", "1.0.0"):
        pull_request_life(sim, repo, run, url, https_git_server, first)


def pull_request_life(sim: ForgeSimulator, repo: FleetRepo, run: Callable[[], str], url: str,
                      https_git_server: HttpsGitServer, first: str) -> None:
    bare = repo.bare
    # A pull request that breaks validation.
    ref = PR_REFS[sim.flavour].format(12)
    broken = repo.push_pull_request(ref, "Bump to 1.1.0", {
        "fleet/hosts/lab.yaml": byoh(["10.2.0.1", "10.2.0.1"])})
    sim.add_pull_request(12, broken, head_ref="bump")
    out = run()
    assert "status: unchanged" in out
    assert f"preview #12 ({broken[:7]}): failure, comment created" in out
    (comment,) = sim.comments_on(12)
    assert "`hosts/lab.yaml:9`" in comment.body and "10.2.0.1" in comment.body

    # The fix, pushed to the same pull request: the same comment, now a plan.
    fixed = repo.push_pull_request(ref, "Bump to 1.1.0", repo.files(version="1.1.0"))
    sim.push(12, fixed)
    out = run()
    assert f"preview #12 ({fixed[:7]}): success, comment updated" in out
    (edited,) = sim.comments_on(12)
    assert edited.id == comment.id and "hosts/lab.yaml:9" not in edited.body
    assert "1.0.0 → 1.1.0" in edited.body
    assert sim.statuses_of(fixed, PREVIEW_CONTEXT)[-1].state == "success"
    sim.clear_requests()
    assert f"preview #12 ({fixed[:7]}): success, unchanged" in run()
    assert [r.method for r in sim.requests if r.method != "GET"] == []  # nothing new sent

    # Merged: main moves to the PR's commit, which is applied and noted.
    repo.author.git("push", "-q", "origin", f"{fixed}:refs/heads/main")
    sim.pull_requests[12].state = "merged" if sim.flavour == "gitlab" else "closed"
    out = run()
    assert f'status: committed "Applied {fixed[:7]}: 4 objects" + note' in out
    assert subjects(bare) == [f"Applied {first[:7]}: 4 objects",
                              f"Applied {fixed[:7]}: 4 objects"]
    assert "outcome: Applied" in note(bare, fixed)
    assert "Bump to 1.1.0" in git(bare, "show", f"{BRANCH}:STATUS.md")

    history = CliRunner().invoke(cli, [
        "history", "--repo", url, "--token-env", "GIT_TOKEN",
        "--ca-file", str(https_git_server.ca_file)])
    assert history.exit_code == 0, history.output
    rows = [line.split() for line in history.output.splitlines()]
    assert [(r[0], r[7]) for r in rows[1:]] == [(fixed[:7], "Applied"), (first[:7], "Applied")]
    assert HTTPS_TOKEN not in history.output

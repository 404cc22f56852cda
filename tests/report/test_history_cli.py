"""`syncer history`: the audit trail from the notes, for a local repository or a URL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from plugins.git_fixtures import HTTPS_TOKEN

from syncer.cli.main import cli
from syncer.writeback.status.model import Outcome
from syncer.writeback.status.notes import ApplyNote
from syncer.writeback.status.writer import RetryPolicy, StatusWriter
from syncer_lab.gitrepos import WorkRepo
from syncer_lab.gitserver import HttpsGitServer

T0 = datetime(2026, 5, 4, 10, 0, 0, tzinfo=UTC)


def audited_repo(bare: Path, author: WorkRepo, workdir: Path) -> list[str]:
    """Four commits: applied+complete, never applied, rejected, applied+in progress."""
    shas = [author.head()]
    author.write({"fleet/a.yaml": "a: 1\n"})
    author.git("add", "-A")
    author.git("commit", "-q", "-m", "Superseded",
               env={"GIT_AUTHOR_NAME": "Bob Builder", "GIT_AUTHOR_EMAIL": "bob@example.com"})
    shas.append(author.head())
    shas.append(author.commit("Unsigned", {"fleet/a.yaml": "a: 2\n"}))
    shas.append(author.commit("Bump to 1.5.0", {"fleet/a.yaml": "a: 3\n"}))
    author.push()
    w = StatusWriter(f"file://{bare}", workdir, retry=RetryPolicy(backoff=0.01),
                     instance="syncer-0")
    w.write_note(shas[0], ApplyNote(shas[0], Outcome.APPLIED, T0))
    w.write_note(shas[0], ApplyNote(shas[0], all_hosts_reached_at=T0 + timedelta(seconds=252)))
    w.write_note(shas[2], ApplyNote(shas[2], Outcome.REJECTED, T0 + timedelta(hours=1),
                                    reason="not signed"))
    w.write_note(shas[3], ApplyNote(shas[3], Outcome.APPLIED, T0 + timedelta(hours=2)))
    return shas


def test_history_of_a_local_repository(author: WorkRepo, bare_remote: Path,
                                       tmp_path: Path) -> None:
    shas = audited_repo(bare_remote, author, tmp_path / "wb")
    result = CliRunner().invoke(cli, ["history", "--repo", str(bare_remote)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["COMMIT", "AUTHOR", "COMMITTED", "APPLIED", "OUTCOME", "ALL",
                                "HOSTS"]
    assert len(lines) == 4  # header + the three commits syncer handled, newest first
    assert lines[1].startswith(shas[3][:7]) and "2026-05-04 12:00:00Z" in lines[1]
    assert lines[1].split()[-3:] == ["Applied", "in", "progress"]
    assert lines[2].startswith(shas[2][:7]) and lines[2].split()[-2:] == ["Rejected", "—"]
    assert lines[3].startswith(shas[0][:7]) and "Alice Admin" in lines[3]
    assert lines[3].split()[-2:] == ["Applied", "4m12s"]

    all_rows = CliRunner().invoke(cli, ["history", "--repo", str(bare_remote), "--all",
                                        "--limit", "2"])
    assert all_rows.exit_code == 0
    assert [ln.split()[0] for ln in all_rows.output.splitlines()[1:]] == [
        shas[3][:7], shas[2][:7]
    ]
    with_bob = CliRunner().invoke(cli, ["history", "--repo", str(bare_remote), "--all"])
    bob_line = next(ln for ln in with_bob.output.splitlines() if ln.startswith(shas[1][:7]))
    assert "Bob Builder" in bob_line and bob_line.split()[-2:] == ["—", "—"]

    # The same rows for scripts: -o json / -o yaml.
    as_json = CliRunner().invoke(cli, ["history", "--repo", str(bare_remote), "-o", "json"])
    commits = json.loads(as_json.stdout)["commits"]
    assert [c["commit"] for c in commits] == [shas[3], shas[2], shas[0]]
    assert commits[2]["outcome"] == "Applied" and commits[2]["author"] == "Alice Admin"
    assert commits[0]["allHostsReachedAt"] is None
    as_yaml = CliRunner().invoke(cli, ["history", "--repo", str(bare_remote), "-o", "yaml"])
    assert yaml.safe_load(as_yaml.stdout) == {"commits": commits}


def test_history_from_a_url_fetches_branch_and_notes(author: WorkRepo, bare_remote: Path,
                                                     tmp_path: Path) -> None:
    shas = audited_repo(bare_remote, author, tmp_path / "wb")
    result = CliRunner().invoke(cli, ["history", "--repo", f"file://{bare_remote}",
                                      "--limit", "1"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1].startswith(shas[3][:7])

    # A clone made the usual way has no notes: say so, exit 0.
    clone = WorkRepo(tmp_path / "clone", f"file://{bare_remote}")
    clone.git("fetch", "-q", "origin", "main")
    result = CliRunner().invoke(cli, ["history", "--repo", str(clone.path)])
    assert result.exit_code == 0
    assert "no commit on main has a syncer note" in result.output


def test_history_over_https_with_token(https_remote: tuple[str, WorkRepo],
                                       https_git_server: HttpsGitServer, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    url, author = https_remote
    bare = Path(author.remote.removeprefix("file://"))
    shas = audited_repo(bare, author, tmp_path / "wb")
    monkeypatch.setenv("FLEET_TOKEN", HTTPS_TOKEN)
    result = CliRunner().invoke(cli, ["history", "--repo", url, "--token-env", "FLEET_TOKEN",
                                      "--ca-file", str(https_git_server.ca_file)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1].startswith(shas[3][:7])


def test_history_errors_are_one_line(tmp_path: Path, bare_remote: Path,
                                     author: WorkRepo) -> None:
    result = CliRunner().invoke(cli, ["history", "--repo", str(tmp_path / "nothing")])
    assert result.exit_code == 1
    assert result.output.strip() == f"syncer: {tmp_path / 'nothing'} is not a Git repository"
    result = CliRunner().invoke(cli, ["history", "--repo", str(bare_remote), "--branch", "x"])
    assert result.exit_code == 1 and "branch 'x' not found" in result.output
    result = CliRunner().invoke(cli, ["history", "--repo", f"file://{tmp_path}/gone.git"])
    assert result.exit_code == 1 and "unreachable" in result.output
    assert "Traceback" not in result.output

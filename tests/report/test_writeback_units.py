"""The pure parts of the write-back: outcome mapping, carrying results forward, rollout
counts, and what the forge settings derive from the repository URL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from syncer.cluster.apply import ApplyResult, ObjectResult, Outcome
from syncer.cluster.objects import ObjectRef
from syncer.nodes.stage import NodeStageResult
from syncer.nodes.status import HostStatus as NodeRow
from syncer.nodes.status import Phase
from syncer.reconcile import ReconcileResult, Stage
from syncer.writeback.forges import ForgeConfigError
from syncer.writeback.status.build import (
    RevisionFacts,
    build_note,
    build_status,
    carry_forward,
    outcome_of,
    rollout_of,
)
from syncer.writeback.status.model import ObjectStatus
from syncer.writeback.status.model import Outcome as Verdict
from syncer.writeback.step import forge_api_url, forge_repository, forge_settings

SHA = "3f2a9c1" + "0" * 33
T = datetime(2026, 5, 4, 10, tzinfo=UTC)
FACTS = RevisionFacts("https://git.example.com/org/fleet.git", "main", SHA, SHA)


def applied(*results: tuple[str, Outcome]) -> ReconcileResult:
    return ReconcileResult(
        revision=SHA, stage=Stage.DONE,
        applied=ApplyResult([ObjectResult(ObjectRef("", "ConfigMap", "ns", name), outcome)
                             for name, outcome in results]),
    )


@pytest.mark.parametrize(("stage", "errors", "at_source", "expected"), [
    ("source", ["remote unreachable"], False, Verdict.FAILED),
    ("source", ["commit is not signed"], True, Verdict.REJECTED),
    ("validate", ["a.yaml:3: bad"], False, Verdict.REJECTED),
    ("guard", ["would delete 5 of 5 objects"], False, Verdict.REJECTED),
    ("plan", ["403 forbidden"], False, Verdict.FAILED),
    ("apply", [], False, Verdict.FAILED),
    ("done", [], False, Verdict.APPLIED),
])
def test_outcome_of_each_stage(stage: str, errors: list[str], at_source: bool,
                               expected: Verdict) -> None:
    result = ReconcileResult(revision=SHA, stage=Stage(stage), errors=errors)
    assert outcome_of(result, at_source) is expected


def test_a_resync_reports_the_same_state_as_the_apply() -> None:
    first = build_status(applied(("a", Outcome.CREATED), ("b", Outcome.CONFIGURED),
                                 ("old", Outcome.PRUNED)), None, FACTS, time=T)
    resync = build_status(applied(("a", Outcome.UNCHANGED), ("b", Outcome.UNCHANGED)),
                          None, FACTS, time=T, previous=first)
    assert resync.state_key() == first.state_key()
    drift = build_status(applied(("a", Outcome.CONFIGURED), ("b", Outcome.UNCHANGED)),
                         None, FACTS, time=T, previous=first)
    assert drift.state_key() != first.state_key()  # a drift correction is news


def test_carry_forward_only_keeps_first_results_and_prunes() -> None:
    before = [ObjectStatus("ConfigMap", "ns", "a", "created"),
              ObjectStatus("ConfigMap", "ns", "b", "failed", "422"),
              ObjectStatus("ConfigMap", "ns", "gone", "pruned")]
    now = [ObjectStatus("ConfigMap", "ns", "a", "unchanged"),
           ObjectStatus("ConfigMap", "ns", "b", "unchanged")]
    assert sorted((o.name, o.result) for o in carry_forward(before, now)) == [
        ("a", "created"), ("b", "unchanged"), ("gone", "pruned")]


def test_rollout_counts_and_all_hosts_reached() -> None:
    rows = [NodeRow("10.0.0.1", "w1", "1.1.0", "1.1.0", Phase.UP_TO_DATE),
            NodeRow("10.0.0.2", "w2", "1.0.0", "1.1.0", Phase.RUNNING, step="drain"),
            NodeRow("10.0.0.3", "w3", "1.0.0", "1.1.0", Phase.FAILED, "checksum",
                    step="transfer"),
            NodeRow("10.0.0.4", "w4", "1.0.0", "1.1.0", Phase.WAITING, action="upgrade"),
            NodeRow("node/w5", "w5", None, "", Phase.REMOVED)]
    rollout = rollout_of(rows)
    assert (rollout.desired_version, rollout.total, rollout.updated, rollout.in_progress,
            rollout.failed) == ("1.1.0", 4, 1, 1, 1)
    report = build_status(applied(("a", Outcome.CREATED)), NodeStageResult(rows=rows), FACTS,
                          time=T)
    assert report.summary_line() == (
        "Applied 3f2a9c1: 1 object, hosts 1/4 at 1.1.0, 1 in progress, 1 failed")
    assert build_note(report, NodeStageResult(rows=rows)).all_hosts_reached_at is None
    done = NodeStageResult(rows=[NodeRow("10.0.0.1", "w1", "1.1.0", "1.1.0", Phase.UP_TO_DATE),
                                 NodeRow("node/w5", "w5", None, "", Phase.REMOVED)])
    report = build_status(applied(("a", Outcome.CREATED)), done, FACTS, time=T)
    assert build_note(report, done).all_hosts_reached_at == T
    blocked = NodeStageResult(blocked="no ConfigMap syncer-fleet")
    report = build_status(applied(("a", Outcome.CREATED)), blocked, FACTS, time=T)
    assert report.error == "nodes: no ConfigMap syncer-fleet"
    assert build_note(report, blocked).all_hosts_reached_at is None


def test_a_rejected_note_has_the_problems_and_no_objects() -> None:
    result = ReconcileResult(revision=SHA, stage=Stage.VALIDATE,
                             errors=["hosts.yaml:7: username: must not contain '='",
                                     "fleet.yaml:3: version: required"])
    report = build_status(result, None, FACTS, time=T, controller="syncer-0")
    note = build_note(report, None).to_dict()
    assert note["outcome"] == "Rejected" and "objects" not in note and "hosts" not in note
    assert note["reason"].splitlines() == result.errors
    assert note["controller"] == "syncer-0"
    assert report.summary_line() == (
        "Rejected 3f2a9c1: hosts.yaml:7: username: must not contain '='")


@pytest.mark.parametrize(("url", "repository"), [
    ("https://github.com/acme/fleet.git", "acme/fleet"),
    ("git@github.com:acme/fleet.git", "acme/fleet"),
    ("ssh://git@gitlab.example.com:2222/group/sub/fleet.git", "group/sub/fleet"),
    ("https://gitea.example.com/acme/fleet/", "acme/fleet"),
    ("file:///srv/git/fleet.git", None),
    ("/srv/git/fleet.git", None),
])
def test_forge_repository_from_the_git_url(url: str, repository: str | None) -> None:
    assert forge_repository(url) == repository


def test_forge_api_url_for_self_hosted_forges() -> None:
    assert forge_api_url("github", "https://github.com/acme/fleet.git") is None
    assert forge_api_url("github", "https://ghe.example.com/acme/fleet.git") == (
        "https://ghe.example.com/api/v3")
    assert forge_api_url("gitlab", "git@gitlab.example.com:g/fleet.git") == (
        "https://gitlab.example.com/api/v4")
    assert forge_api_url("gitea", "https://git.example.com/acme/fleet.git") == (
        "https://git.example.com/api/v1")
    config = forge_settings("gitea", "https://git.example.com/acme/fleet.git",
                            token_env="TOKEN")
    assert (config.repository, config.resolved_api_url) == (
        "acme/fleet", "https://git.example.com/api/v1")
    with pytest.raises(ForgeConfigError, match="--forge-repo"):
        forge_settings("github", "file:///srv/fleet.git", token_env="TOKEN")
    with pytest.raises(ForgeConfigError, match="token"):
        forge_settings("github", "https://github.com/acme/fleet.git")

"""A pull request's preview end to end on each forge: broken, then fixed.

The plan engine will feed real data; here the preview dataclasses are filled by hand.
"""

from __future__ import annotations

from datetime import UTC, datetime

from syncer.problems import Problem
from syncer.writeback.forges import CommitState, RestForge
from syncer.writeback.previews.comment import Action, HostUpgrade, ObjectChange, Preview
from syncer.writeback.previews.post import PREVIEW_CONTEXT, announce, publish_preview
from syncer_lab.forge import ForgeSimulator

from .conftest import MakeClient

BROKEN = "b" * 40
FIXED = "f" * 40
WHEN = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
NATIVE = {
    "github": {"failure": "failure", "success": "success", "pending": "pending"},
    "gitlab": {"failure": "failed", "success": "success", "pending": "pending"},
    "gitea": {"failure": "failure", "success": "success", "pending": "pending"},
}


def test_a_broken_pull_request_fails_and_its_fix_updates_the_same_comment(
    sim: ForgeSimulator, client: RestForge
) -> None:
    native = NATIVE[sim.flavour]
    sim.add_pull_request(5, BROKEN, base="main", head_ref="add-hosts")
    sim.add_pull_request(6, "c" * 40, base="release")  # not against the tracked branch
    (pr,) = client.open_pull_requests("main")

    assert announce(client, pr).ok
    assert sim.statuses_of(BROKEN, PREVIEW_CONTEXT)[-1].state == native["pending"]

    broken = Preview(
        BROKEN,
        WHEN,
        fleet_path="fleet",
        problems=[Problem("hosts.yaml", 12, "address: not an IP address")],
    )
    report = publish_preview(client, pr, broken)

    assert report.ok and report.state is CommitState.FAILURE
    status = sim.statuses_of(BROKEN, PREVIEW_CONTEXT)[-1]
    assert status.state == native["failure"]
    assert status.description == "invalid: 1 error (hosts.yaml:12: address: not an IP address)"
    (comment,) = sim.comments_on(5)
    assert "`hosts.yaml:12`" in comment.body
    assert f"/{BROKEN}/fleet/hosts.yaml#L12" in comment.body  # a link to the file at the head
    assert "address: not an IP address" in comment.body
    first_id = comment.id

    sim.push(5, FIXED)
    (pr,) = client.open_pull_requests("main")
    assert pr.head_sha == FIXED
    announce(client, pr)
    fixed = Preview(
        FIXED,
        WHEN,
        fleet_path="fleet",
        objects=[
            ObjectChange(
                Action.UPDATE,
                "ConfigMap",
                "windows-instances",
                "openshift-windows-machine-config-operator",
                "v1",
                "+  10.0.0.6: username=Administrator",
            )
        ],
        hosts=[HostUpgrade("10.0.0.6", "1.1.0", "1.0.0", "win-b")],
    )
    report = publish_preview(client, pr, fixed)

    assert report.ok and report.state is CommitState.SUCCESS
    (comment,) = sim.comments_on(5)
    assert comment.id == first_id
    assert "hosts.yaml:12" not in comment.body
    assert "`10.0.0.6`/`win-b`: 1.0.0 → 1.1.0" in comment.body
    assert sim.statuses_of(FIXED, PREVIEW_CONTEXT)[-1].state == native["success"]
    assert sim.statuses_of(FIXED, PREVIEW_CONTEXT)[-1].description == (
        "valid: 0 to create, 1 to update, 0 to prune, 1 host to upgrade"
    )
    assert sim.statuses_of(BROKEN, PREVIEW_CONTEXT)[-1].state == native["failure"]

    # Reconciling again with nothing new changes nothing on the forge.
    sim.clear_requests()
    publish_preview(client, pr, fixed)
    assert [r.method for r in sim.requests if r.method != "GET"] == []


def test_a_forge_outage_is_reported_not_raised(
    sim: ForgeSimulator, make_client: MakeClient
) -> None:
    client = make_client()
    sim.add_pull_request(5, BROKEN)
    (pr,) = client.open_pull_requests("main")
    sim.fail(status=503, times=100)

    report = publish_preview(client, pr, Preview(BROKEN, WHEN))

    assert not report.ok
    assert [o.ok for o in report.outcomes] == [False, False]
    assert "HTTP 503" in str(report)
    assert sim.comments_on(5) == []

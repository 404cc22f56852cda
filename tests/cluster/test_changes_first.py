"""A new revision's changed objects are applied before the whole fleet is planned
(``syncer run`` keeps the record of its last clean apply), against the real test control
plane: what is sent first, and the guarantees that stay (prune guard, safe order, a
stale record, a failed first apply, dry runs)."""

from __future__ import annotations

from typing import Any

import pytest
from clusterhelpers import FleetDir, Recorder

from syncer.cluster.apply import Outcome
from syncer.cluster.changesfirst import MAX_OBJECTS, LastApplied
from syncer.cluster.client import ApiError, KubeClient, Resource
from syncer.cluster.inventory import InventoryStore
from syncer.cluster.plan import Action
from syncer.reconcile import ReconcileResult

CM = Resource("", "v1", "ConfigMap", "configmaps", True)
RC = Resource("node.k8s.io", "v1", "RuntimeClass", "runtimeclasses", False)


def _write(fleet: FleetDir, value: str = "1", tier: str = "a") -> None:
    fleet.write("app.yaml", fleet.configmap("app", {"value": value}))
    fleet.write("extra.yaml", fleet.configmap("extra", {"x": "1"}))
    fleet.write("runtime.yaml", (
        "apiVersion: node.k8s.io/v1\nkind: RuntimeClass\n"
        f"metadata:\n  name: {fleet.name}-rc\n  labels:\n    tier: {tier}\n"
        "handler: runhcs-wcow-process\n"
    ))


def _value(kc: KubeClient, fleet: FleetDir, name: str = "app") -> str | None:
    live = kc.get(CM, fleet.namespace, name)
    return None if live is None else str(live["data"]["value"])


def _first_list(recorder: Recorder) -> int:
    """Index of the first LIST of ConfigMaps, the whole plan's read of the fleet."""
    return next(i for i, (m, p) in enumerate(recorder.calls)
                if m == "GET" and p.endswith("/configmaps"))


def _patch_of(recorder: Recorder, path: str) -> list[int]:
    return [i for i, (m, p) in enumerate(recorder.calls) if m == "PATCH" and p == path]


@pytest.fixture
def record() -> LastApplied:
    return LastApplied()


@pytest.fixture
def run(sync: Any, record: LastApplied) -> Any:
    """``sync`` as ``syncer run`` does it: with the record of the last clean apply."""

    def go(fleet: FleetDir, **overrides: Any) -> ReconcileResult:
        result: ReconcileResult = sync(fleet.root, last_applied=record, **overrides)
        return result

    return go


def test_the_changed_object_is_sent_before_the_fleet_is_listed(
    fleet: FleetDir, run: Any, kc: KubeClient, recorder: Recorder, record: LastApplied,
) -> None:
    _write(fleet)
    first = run(fleet)
    assert first.ok and record.revision == first.revision
    _write(fleet, value="2")
    result = run(fleet)
    assert result.ok, result.errors
    path = f"/api/v1/namespaces/{fleet.namespace}/configmaps/app"
    [patch] = _patch_of(recorder, path)  # sent once, not again by the whole plan
    assert patch < _first_list(recorder)
    assert recorder.writes(except_path="syncer-inventory") == [("PATCH", path)]
    assert _value(kc, fleet) == "2"
    # Reported as the change it was, not as the unchanged object the whole plan found.
    assert result.applied.count(Outcome.CONFIGURED) == 1
    assert result.applied.count(Outcome.UNCHANGED) == 3
    [update] = [e for e in result.plan.entries if e.action is Action.UPDATE]
    assert update.ref.name == "app" and update.reason == "differs from Git"
    assert update.patch == [{"op": "replace", "path": "/data/value", "value": "2"}]
    assert record.revision == result.revision

    # A resync of the same revision: nothing changed since, nothing sent, no GET each.
    again = run(fleet)
    assert again.ok and recorder.writes() == []
    assert len([c for c in recorder.calls if c[0] == "GET"]) <= 4, recorder.calls


def test_without_the_record_the_fleet_is_listed_first(
    fleet: FleetDir, sync: Any, recorder: Recorder
) -> None:
    """The ``syncer sync --once`` way (no record): the whole plan, then the apply."""
    _write(fleet)
    assert sync(fleet.root).ok
    _write(fleet, value="2")
    assert sync(fleet.root).ok
    [patch] = _patch_of(recorder, f"/api/v1/namespaces/{fleet.namespace}/configmaps/app")
    assert patch > _first_list(recorder)


def test_nothing_is_sent_first_from_a_revision_the_prune_guard_refuses(
    fleet: FleetDir, run: Any, kc: KubeClient, recorder: Recorder,
) -> None:
    fleet.prune = "    maxDeletions: 1\n"
    fleet.write("fleet.yaml", fleet.fleet_yaml())
    _write(fleet)
    assert run(fleet).ok
    _write(fleet, value="2")
    fleet.remove("extra.yaml")
    fleet.remove("runtime.yaml")  # two deletions, one allowed
    refused = run(fleet)
    assert not refused.ok and refused.stage == "guard"
    assert recorder.writes(except_path="syncer-inventory") == []
    assert _value(kc, fleet) == "1"


def test_a_changed_object_waits_for_a_new_object_of_an_earlier_stage(
    fleet: FleetDir, run: Any, kc: KubeClient, recorder: Recorder,
) -> None:
    """A new ConfigMap (stage 3) and a changed RuntimeClass (stage 4) in one revision:
    the RuntimeClass is not sent before the ConfigMap, which it could need."""
    _write(fleet)
    assert run(fleet).ok
    _write(fleet, tier="b")
    fleet.write("fresh.yaml", fleet.configmap("fresh", {"value": "new"}))
    result = run(fleet)
    assert result.ok, result.errors
    writes = recorder.writes(except_path="syncer-inventory")
    assert writes == [
        ("PATCH", f"/api/v1/namespaces/{fleet.namespace}/configmaps/fresh"),
        ("PATCH", f"/apis/node.k8s.io/v1/runtimeclasses/{fleet.name}-rc"),
    ]
    live = kc.get(RC, "", f"{fleet.name}-rc")
    assert live is not None and live["metadata"]["labels"]["tier"] == "b"


def test_an_object_deleted_live_is_created_again_first(
    fleet: FleetDir, run: Any, kc: KubeClient, recorder: Recorder,
) -> None:
    _write(fleet)
    assert run(fleet).ok
    kc.request("DELETE", CM.path(fleet.namespace, "app"))
    _write(fleet, value="2")
    result = run(fleet)
    assert result.ok, result.errors
    assert _patch_of(recorder, CM.path(fleet.namespace, "app"))[0] < _first_list(recorder)
    assert [(r.ref.name, r.outcome) for r in result.applied.results
            if r.outcome is not Outcome.UNCHANGED] == [("app", Outcome.CREATED)]
    assert _value(kc, fleet) == "2"


def test_a_record_of_another_revision_than_the_inventorys_sends_nothing_first(
    fleet: FleetDir, run: Any, sync: Any, kc: KubeClient, recorder: Recorder,
) -> None:
    """Another leader applied a revision in between: the record no longer describes the
    cluster, and the whole plan does the work."""
    _write(fleet)
    assert run(fleet).ok
    _write(fleet, value="2")
    assert sync(fleet.root).ok  # without the record, as another process would
    _write(fleet, value="3")
    assert run(fleet).ok
    [patch] = _patch_of(recorder, CM.path(fleet.namespace, "app"))
    assert patch > _first_list(recorder)
    assert _value(kc, fleet) == "3"


def test_an_object_the_first_apply_fails_is_sent_again_by_the_whole_plan(
    fleet: FleetDir, run: Any, kc: KubeClient, recorder: Recorder,
) -> None:
    """The API server answers the first apply's PATCH with 500 until the whole plan has
    listed the fleet: the whole plan sends it again, and nothing reports a failure."""
    _write(fleet)
    assert run(fleet).ok
    send = kc._send
    path = CM.path(fleet.namespace, "app")

    def failing(method: str, target: str, *args: Any) -> Any:
        listed = any(m == "GET" and p.endswith("/configmaps")
                     for m, p in recorder.calls)
        if method == "PATCH" and target == path and not listed:
            recorder.calls.append((method, target))
            raise ApiError(500, "Internal Server Error", "injected")
        return send(method, target, *args)

    kc._send = failing  # type: ignore[method-assign]
    _write(fleet, value="2")
    result = run(fleet)
    assert result.ok, result.errors
    patches = _patch_of(recorder, path)
    assert len(patches) == 5 and patches[3] < _first_list(recorder) < patches[4]
    assert result.applied.failed == []
    assert result.applied.count(Outcome.CONFIGURED) == 1
    assert _value(kc, fleet) == "2"


def test_a_dry_run_sends_nothing_first(
    fleet: FleetDir, run: Any, kc: KubeClient, recorder: Recorder,
) -> None:
    _write(fleet)
    assert run(fleet).ok
    _write(fleet, value="2")
    preview = run(fleet, dry_run=True)
    assert preview.ok and preview.applied.dry_run
    [patch] = _patch_of(recorder, CM.path(fleet.namespace, "app"))  # the dry run's own
    assert patch > _first_list(recorder)
    assert _value(kc, fleet) == "1"


def test_a_revision_that_changes_many_objects_is_planned_whole(
    fleet: FleetDir, run: Any, kc: KubeClient, recorder: Recorder,
) -> None:
    """Past MAX_OBJECTS changed objects, one LIST costs less than a GET each."""
    many = MAX_OBJECTS + 1

    def bulk(value: str) -> str:
        return "---\n".join(fleet.configmap(f"bulk-{i}", {"value": value}) for i in range(many))

    _write(fleet)
    fleet.write("bulk.yaml", bulk("1"))
    assert run(fleet).ok
    fleet.write("bulk.yaml", bulk("2"))
    result = run(fleet)
    assert result.ok and result.applied.count(Outcome.CONFIGURED) == many
    patches = _patch_of(recorder, CM.path(fleet.namespace, "bulk-0"))
    assert len(patches) == 1 and patches[0] > _first_list(recorder)
    assert not [c for c in recorder.calls if c == ("GET", CM.path(fleet.namespace, "bulk-0"))]
    assert _value(kc, fleet, f"bulk-{many - 1}") == "2"


def test_a_plan_that_fails_after_the_first_apply_reports_both(
    fleet: FleetDir, run: Any, kc: KubeClient, recorder: Recorder, options: Any,
) -> None:
    """The whole plan's LIST is refused after the changed object was applied: the result
    says what was applied and what stopped the revision, which is not recorded as
    applied."""
    _write(fleet)
    good = run(fleet)
    send = kc._send

    def refusing(method: str, target: str, *args: Any) -> Any:
        if method == "GET" and target.endswith("/configmaps"):
            raise ApiError(403, "Forbidden", "configmaps is forbidden")
        return send(method, target, *args)

    kc._send = refusing  # type: ignore[method-assign]
    _write(fleet, value="2")
    result = run(fleet)
    assert not result.ok and result.stage == "plan"
    assert _value(kc, fleet) == "2"
    assert [(r.ref.name, r.outcome) for r in result.applied.results] == [
        ("app", Outcome.CONFIGURED)]
    assert result.summary() == (
        f"Applied {result.revision}: 1 objects (0 created, 1 updated, 0 unchanged), "
        "0 pruned; then: 403 Forbidden: configmaps is forbidden")
    kc._send = send  # type: ignore[method-assign]
    inventory = InventoryStore(kc, options.inventory_namespace, options.inventory_name).load()
    assert inventory.last_applied_revision == good.revision

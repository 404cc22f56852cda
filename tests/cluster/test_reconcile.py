"""The apply engine against the real test control plane: apply, resync, update, drift,
prune and its guards, validation failures, CRD ordering, per-object failures."""

from __future__ import annotations

import json
from typing import Any

from clusterhelpers import FleetDir, Recorder

from syncer.cluster.apply import Outcome
from syncer.cluster.client import KubeClient, Resource
from syncer.cluster.inventory import InventoryStore
from syncer.cluster.plan import Action, compute_plan
from syncer.fleet import load_fleet, render
from syncer.fleet.admission import DEFAULT_KINDS, PassThroughPolicy
from syncer.reconcile import ReconcileOptions

CM = Resource("", "v1", "ConfigMap", "configmaps", True)
NS = Resource("", "v1", "Namespace", "namespaces", False)
RC = Resource("node.k8s.io", "v1", "RuntimeClass", "runtimeclasses", False)


def _cm(kc: KubeClient, namespace: str, name: str) -> dict[str, Any] | None:
    return kc.get(CM, namespace, name)


def _inventory(kc: KubeClient, options: ReconcileOptions) -> Any:
    return InventoryStore(kc, options.inventory_namespace, options.inventory_name).load()


def _write_app(fleet: FleetDir, value: str = "1") -> None:
    fleet.write("app.yaml", fleet.configmap("app", {"value": value, "mode": "blue"}))
    fleet.write("extra.yaml", fleet.configmap("extra", {"x": "1"}))
    fleet.write("runtime.yaml", (
        "apiVersion: syncer.io/v1alpha1\nkind: WindowsRuntimeClass\n"
        f"metadata:\n  name: {fleet.name}-2022\nspec:\n  windowsServer: \"2022\"\n"
    ))


def test_first_apply_creates_in_order_and_records_inventory(
    fleet: FleetDir, sync: Any, kc: KubeClient, options: ReconcileOptions, recorder: Recorder,
) -> None:
    _write_app(fleet)
    result = sync(fleet.root)
    assert result.ok, result.errors
    assert result.summary().startswith(f"Applied {result.revision}: 4 objects (4 created")
    app = _cm(kc, fleet.namespace, "app")
    assert app is not None and app["data"] == {"value": "1", "mode": "blue"}
    labels = app["metadata"]["labels"]
    assert labels == {"app.kubernetes.io/managed-by": "syncer", "syncer.io/fleet": fleet.name}
    assert kc.get(RC, "", f"{fleet.name}-2022") is not None
    # ConfigMaps are applied before RuntimeClasses (the safe order).
    patches = [p for m, p in recorder.calls if m == "PATCH" and "syncer-inventory" not in p]
    assert [p.split("/")[-2] for p in patches][-1] == "runtimeclasses"
    inventory = _inventory(kc, options)
    assert {r.id for r in inventory.entries} == {
        f"{fleet.namespace}_app__ConfigMap",
        f"{fleet.namespace}_extra__ConfigMap",
        f"{fleet.namespace}_syncer-fleet__ConfigMap",
        f"_{fleet.name}-2022_node.k8s.io_RuntimeClass",
    }
    assert inventory.last_applied_revision == inventory.last_attempted_revision == result.revision
    assert inventory.fleet == fleet.name


def test_no_change_resync_sends_no_write(
    fleet: FleetDir, sync: Any, recorder: Recorder
) -> None:
    _write_app(fleet)
    assert sync(fleet.root).ok
    result = sync(fleet.root)
    assert result.ok
    assert result.applied.count(Outcome.UNCHANGED) == 4
    assert recorder.writes() == []  # not one PATCH/POST/PUT/DELETE, inventory included
    # Live state came from LISTs, not one GET per object.
    gets = [p for m, p in recorder.calls if m == "GET"]
    assert len(gets) <= 4, gets


def test_update_sends_only_the_changed_object(
    fleet: FleetDir, sync: Any, kc: KubeClient, recorder: Recorder, options: ReconcileOptions,
) -> None:
    _write_app(fleet)
    first = sync(fleet.root)
    _write_app(fleet, value="2")
    objects = render(load_fleet(fleet.root))
    plan = compute_plan(objects, load_fleet(fleet.root).fleet, kc, _inventory(kc, options))
    [update] = [e for e in plan.entries if e.action is Action.UPDATE]
    assert update.ref.name == "app"
    assert update.patch == [{"op": "replace", "path": "/data/value", "value": "2"}]
    # The plan lives through the node stage and the write-back: of what it compared it
    # keeps which objects they were, not their content, nor the unchanged ones' diffs.
    for entry in plan.entries:
        assert entry.live is not None and entry.live["metadata"]["uid"]
        assert set(entry.live) == {"apiVersion", "kind", "metadata"}
        assert "managedFields" not in entry.live["metadata"]
        assert (entry.change is None) is (entry.action is Action.UNCHANGED)

    result = sync(fleet.root)
    assert result.ok and result.revision != first.revision
    assert result.applied.count(Outcome.CONFIGURED) == 1
    assert result.applied.count(Outcome.UNCHANGED) == 3
    assert recorder.writes(except_path="syncer-inventory") == [
        ("PATCH", f"/api/v1/namespaces/{fleet.namespace}/configmaps/app")
    ]
    assert _cm(kc, fleet.namespace, "app")["data"]["value"] == "2"  # type: ignore[index]
    assert _inventory(kc, options).last_applied_revision == result.revision


def test_drift_is_detected_and_corrected(
    fleet: FleetDir, sync: Any, kc: KubeClient, options: ReconcileOptions
) -> None:
    _write_app(fleet)
    assert sync(fleet.root).ok
    # Someone edits the live object (an Update by another field manager) and adds a label.
    kc.request(
        "PATCH", CM.path(fleet.namespace, "app"),
        body={"metadata": {"labels": {"team": "x"}}, "data": {"mode": "green", "new": "1"}},
        content_type="application/merge-patch+json", query=[("fieldManager", "kubectl-edit")],
    )
    objects = render(load_fleet(fleet.root))
    plan = compute_plan(objects, load_fleet(fleet.root).fleet, kc, _inventory(kc, options))
    [drift] = [e for e in plan.entries if e.action is Action.UPDATE]
    # Only what Git sets is compared: the extra label and key are someone else's.
    assert drift.patch == [{"op": "replace", "path": "/data/mode", "value": "blue"}]

    result = sync(fleet.root)
    assert result.ok and result.applied.count(Outcome.CONFIGURED) == 1
    live = _cm(kc, fleet.namespace, "app")
    assert live is not None and live["data"]["mode"] == "blue"
    assert live["data"]["new"] == "1" and live["metadata"]["labels"]["team"] == "x"
    assert sync(fleet.root).applied.count(Outcome.UNCHANGED) == 4


def test_field_removed_from_git_is_removed_live(
    fleet: FleetDir, sync: Any, kc: KubeClient
) -> None:
    _write_app(fleet)
    assert sync(fleet.root).ok
    fleet.write("app.yaml", fleet.configmap("app", {"value": "1"}))  # "mode" dropped
    result = sync(fleet.root)
    assert result.ok and result.applied.count(Outcome.CONFIGURED) == 1
    [entry] = [e for e in result.plan.entries if e.action is Action.UPDATE]
    assert entry.patch == [{"op": "remove", "path": "/data/mode"}]
    assert _cm(kc, fleet.namespace, "app")["data"] == {"value": "1"}  # type: ignore[index]


def test_prune_of_a_removed_object(
    fleet: FleetDir, sync: Any, kc: KubeClient, options: ReconcileOptions, recorder: Recorder
) -> None:
    _write_app(fleet)
    assert sync(fleet.root).ok
    fleet.remove("extra.yaml")
    fleet.remove("runtime.yaml")
    result = sync(fleet.root)
    assert result.ok, result.errors
    assert result.applied.count(Outcome.PRUNED) == 2
    assert result.summary().endswith("2 pruned")
    assert _cm(kc, fleet.namespace, "extra") is None
    assert kc.get(RC, "", f"{fleet.name}-2022") is None
    deletes = [p for m, p in recorder.calls if m == "DELETE"]
    assert len(deletes) == 2
    assert {r.name for r in _inventory(kc, options).entries} == {"app", "syncer-fleet"}


def test_prune_skips_objects_that_lost_syncers_labels(
    fleet: FleetDir, sync: Any, kc: KubeClient, options: ReconcileOptions
) -> None:
    _write_app(fleet)
    assert sync(fleet.root).ok
    # A user takes the object over: it no longer carries the fleet label.
    kc.request("PATCH", CM.path(fleet.namespace, "extra"),
               body={"metadata": {"labels": {"syncer.io/fleet": "someone-else"}}},
               content_type="application/merge-patch+json")
    fleet.remove("extra.yaml")
    result = sync(fleet.root)
    assert result.ok and result.applied.count(Outcome.PRUNED) == 0
    assert _cm(kc, fleet.namespace, "extra") is not None
    skipped = [e for e in result.plan.entries if e.action is Action.PRUNE_SKIPPED]
    assert [e.ref.name for e in skipped] == ["extra"]
    assert "extra" not in {r.name for r in _inventory(kc, options).entries}


def test_opt_out_annotation_is_respected(
    fleet: FleetDir, sync: Any, kc: KubeClient, options: ReconcileOptions
) -> None:
    _write_app(fleet)
    fleet.write("keep.yaml", fleet.configmap("keep", {"a": "1"},
                                             annotations={"syncer.io/prune": "disabled"}))
    assert sync(fleet.root).ok
    fleet.remove("keep.yaml")
    result = sync(fleet.root)
    assert result.ok and result.applied.count(Outcome.PRUNED) == 0
    [entry] = [e for e in result.plan.entries if e.ref.name == "keep"]
    assert entry.action is Action.PRUNE_SKIPPED and "syncer.io/prune" in entry.reason
    assert _cm(kc, fleet.namespace, "keep") is not None
    # No longer syncer's: it leaves the inventory, so it is never pruned later.
    assert "keep" not in {r.name for r in _inventory(kc, options).entries}


def test_prune_guard_refuses_a_mass_delete_until_confirmed(
    fleet: FleetDir, sync: Any, kc: KubeClient, options: ReconcileOptions, recorder: Recorder,
    control_plane: Any,
) -> None:
    _write_app(fleet)
    good = sync(fleet.root)
    assert good.ok
    # Moving the fleet to another namespace would delete every object syncer applied.
    other = control_plane.create_namespace("moved")
    fleet.write("fleet.yaml", fleet.fleet_yaml(namespace=other))
    fleet.write("app.yaml", fleet.configmap("app", {"value": "9"}, namespace=other))
    fleet.write("extra.yaml", fleet.configmap("extra", {"x": "1"}, namespace=other))
    fleet.remove("runtime.yaml")
    refused = sync(fleet.root)
    assert not refused.ok and refused.stage == "guard"
    assert "would delete all 4 objects" in refused.errors[0]
    assert recorder.writes(except_path="syncer-inventory") == []  # nothing applied at all
    assert _cm(kc, other, "app") is None
    assert _cm(kc, fleet.namespace, "app")["data"]["value"] == "1"  # type: ignore[index]
    inventory = _inventory(kc, options)
    assert inventory.last_applied_revision == good.revision
    assert inventory.last_attempted_revision == refused.revision
    assert "would delete all" in inventory.last_error

    # The controller's way: annotate the inventory with the refused revision.
    kc.request(
        "PATCH", CM.path(options.inventory_namespace, options.inventory_name),
        body={"metadata": {"annotations": {"syncer.io/confirm-prune": refused.revision}}},
        content_type="application/merge-patch+json",
    )
    confirmed = sync(fleet.root)
    assert confirmed.ok, confirmed.errors
    assert confirmed.applied.count(Outcome.PRUNED) == 4
    assert _cm(kc, other, "app")["data"]["value"] == "9"  # type: ignore[index]
    assert _cm(kc, fleet.namespace, "app") is None


def test_max_deletions_and_the_confirm_flag(
    fleet: FleetDir, sync: Any, kc: KubeClient
) -> None:
    fleet.prune = "    maxDeletions: 1\n"
    fleet.write("fleet.yaml", fleet.fleet_yaml())
    _write_app(fleet)
    assert sync(fleet.root).ok
    fleet.remove("extra.yaml")
    fleet.remove("runtime.yaml")
    refused = sync(fleet.root)
    assert not refused.ok and "more than spec.prune.maxDeletions allows (1)" in refused.errors[0]
    assert _cm(kc, fleet.namespace, "extra") is not None
    result = sync(fleet.root, confirm_prune=True)
    assert result.ok and result.applied.count(Outcome.PRUNED) == 2


def test_pruning_disabled_keeps_objects_tracked(
    fleet: FleetDir, sync: Any, kc: KubeClient, options: ReconcileOptions
) -> None:
    fleet.prune = "    enabled: false\n"
    fleet.write("fleet.yaml", fleet.fleet_yaml())
    _write_app(fleet)
    assert sync(fleet.root).ok
    fleet.remove("extra.yaml")
    result = sync(fleet.root)
    assert result.ok and result.applied.count(Outcome.PRUNED) == 0
    assert _cm(kc, fleet.namespace, "extra") is not None
    assert "extra" in {r.name for r in _inventory(kc, options).entries}


def test_invalid_revision_leaves_the_previous_state_untouched(
    fleet: FleetDir, sync: Any, kc: KubeClient, options: ReconcileOptions, recorder: Recorder
) -> None:
    _write_app(fleet)
    good = sync(fleet.root)
    assert good.ok
    # A revision with a valid change and a broken document: nothing of it may be applied.
    _write_app(fleet, value="2")
    fleet.remove("extra.yaml")
    fleet.write("broken.yaml", "apiVersion: syncer.io/v1alpha1\nkind: WindowsRuntimeClass\n"
                               "metadata:\n  name: bad\nspec:\n  windowsServer: \"1995\"\n")
    bad = sync(fleet.root)
    assert not bad.ok and bad.stage == "validate"
    assert any(p.file == "broken.yaml" and p.line > 0 for p in bad.problems)
    assert recorder.writes(except_path="syncer-inventory") == []
    assert _cm(kc, fleet.namespace, "app")["data"]["value"] == "1"  # type: ignore[index]
    assert _cm(kc, fleet.namespace, "extra") is not None
    inventory = _inventory(kc, options)
    assert inventory.last_applied_revision == good.revision
    assert inventory.last_attempted_revision == bad.revision != good.revision
    assert "broken.yaml" in inventory.last_error
    assert len(inventory.entries) == 4


def test_crd_and_its_objects_in_one_revision(
    fleet: FleetDir, sync: Any, kc: KubeClient
) -> None:
    group = f"{fleet.name}.example.com"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group, "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget",
                      "listKind": "WidgetList"},
            "versions": [{"name": "v1", "served": True, "storage": True, "schema": {
                "openAPIV3Schema": {"type": "object", "properties": {"spec": {
                    "type": "object", "properties": {"size": {"type": "integer"}}}}}}}],
        },
    }
    widget = {"apiVersion": f"{group}/v1", "kind": "Widget",
              "metadata": {"name": "w1", "namespace": fleet.namespace}, "spec": {"size": 3}}
    fleet.write("crd.yaml", json.dumps(crd))
    fleet.write("widget.yaml", json.dumps(widget))
    refused = sync(fleet.root)  # CRDs are not in the default pass-through allow-list
    assert not refused.ok and refused.applied is None
    assert "kind CustomResourceDefinition.apiextensions.k8s.io may not pass through" in \
        refused.errors[0]
    allowed = PassThroughPolicy(DEFAULT_KINDS | {
        "CustomResourceDefinition.apiextensions.k8s.io", f"Widget.{group}"})
    result = sync(fleet.root, passthrough=allowed)  # the operator allows them
    assert result.ok, [r.error for r in result.applied.failed] if result.applied else result.errors
    assert result.applied.count(Outcome.CREATED) == 3
    live = kc.get(kc.resource(f"{group}/v1", "Widget"), fleet.namespace, "w1")
    assert live is not None and live["spec"] == {"size": 3}
    assert sync(fleet.root, passthrough=allowed).applied.count(Outcome.UNCHANGED) == 3


def test_a_resync_repairs_an_inventory_entrys_api_version(
    fleet: FleetDir, sync: Any, kc: KubeClient, options: ReconcileOptions
) -> None:
    """A recorded API version the cluster no longer serves (an entry edited by hand, or
    kept from an older version of the kind) would make a later prune miss the object:
    the next resync of the same revision writes the version it applied, though every id
    and revision in the inventory is the same."""
    _write_app(fleet)
    assert sync(fleet.root).ok
    live = kc.get(CM, options.inventory_namespace, options.inventory_name)
    assert live is not None
    entries = live["data"]["entries"]
    rc = f'"_{fleet.name}-2022_node.k8s.io_RuntimeClass", "v": "v1"'
    assert rc in entries
    kc.request("PATCH", CM.path(options.inventory_namespace, options.inventory_name),
               body={"data": {"entries": entries.replace(rc, rc[:-3] + 'v1beta1"')}},
               content_type="application/merge-patch+json")

    def recorded() -> str:
        return next(r.version for r in _inventory(kc, options).entries
                    if r.kind == "RuntimeClass")

    assert recorded() == "v1beta1"
    result = sync(fleet.root)
    assert result.ok and result.applied is not None
    assert result.applied.count(Outcome.UNCHANGED) == 4
    assert recorded() == "v1"


def test_one_bad_object_does_not_stop_the_others(
    fleet: FleetDir, sync: Any, kc: KubeClient, options: ReconcileOptions
) -> None:
    _write_app(fleet)
    good = sync(fleet.root)
    fleet.remove("extra.yaml")
    _write_app(fleet, value="2")
    fleet.remove("extra.yaml")
    # The API server rejects this (422: port out of range); fleet validation does not know.
    fleet.write("svc.yaml", json.dumps({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "bad", "namespace": fleet.namespace},
        "spec": {"ports": [{"port": 99999}]},
    }))
    result = sync(fleet.root)
    assert not result.ok
    [failed] = result.applied.failed
    assert failed.ref.name == "bad" and failed.error.startswith("422")
    assert failed.attempts == 1  # 422 is not retried
    assert result.applied.count(Outcome.CONFIGURED) == 1  # the others went ahead
    assert _cm(kc, fleet.namespace, "app")["data"]["value"] == "2"  # type: ignore[index]
    assert result.summary().startswith("Failed to apply")
    # A revision that did not apply cleanly prunes nothing; "extra" stays tracked.
    assert _cm(kc, fleet.namespace, "extra") is not None
    inventory = _inventory(kc, options)
    assert "extra" in {r.name for r in inventory.entries}
    assert "bad" in {r.name for r in inventory.entries}  # may exist: stays prunable
    assert inventory.last_applied_revision == good.revision  # not applied completely
    assert inventory.last_attempted_revision == result.revision
    assert "bad" in inventory.last_error

    fleet.remove("svc.yaml")
    fixed = sync(fleet.root)
    assert fixed.ok, fixed.errors
    assert _cm(kc, fleet.namespace, "extra") is None
    assert {r.name for r in _inventory(kc, options).entries} == {"app", "syncer-fleet",
                                                                 f"{fleet.name}-2022"}


def test_dry_run_writes_nothing(
    fleet: FleetDir, sync: Any, kc: KubeClient, recorder: Recorder, options: ReconcileOptions
) -> None:
    _write_app(fleet)
    result = sync(fleet.root, dry_run=True)
    assert result.ok, result.errors
    assert result.applied.dry_run and result.applied.count(Outcome.CREATED) == 4
    assert result.summary().startswith("Dry run of")
    assert {m for m, _ in recorder.writes()} == {"PATCH"}  # server-side dry runs only
    assert _cm(kc, fleet.namespace, "app") is None
    assert not _inventory(kc, options).exists


def test_a_preview_plan_reads_nothing_syncer_does_not_own(
    fleet: FleetDir, sync: Any, kc: KubeClient, recorder: Recorder, options: ReconcileOptions,
) -> None:
    """A pull request that names someone else's object (here a ConfigMap holding a
    password, once even with syncer's labels copied onto it) learns nothing about it:
    the preview's plan never fetches it and shows it as new to syncer."""
    _write_app(fleet)
    assert sync(fleet.root).ok
    body = {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "db", "namespace": fleet.namespace},
            "data": {"password": "S3cr3t-Pr0d"}}
    kc.request("POST", f"/api/v1/namespaces/{fleet.namespace}/configmaps", body=body)
    fleet.write("db.yaml", fleet.configmap("db", {"password": "x"}))
    model = load_fleet(fleet.root)
    recorder.clear()
    preview = compute_plan(render(model), model.fleet, kc, _inventory(kc, options),
                           owned_only=True)
    [entry] = [e for e in preview.entries if e.ref.name == "db"]
    assert (entry.action, entry.live, entry.reason) == (
        Action.CREATE, None, "new to syncer: created, or adopted if it exists")
    assert not any(path.split("?")[0].endswith("/configmaps/db") for _, path in recorder.calls)
    operator = compute_plan(render(model), model.fleet, kc, _inventory(kc, options))
    [adopt] = [e for e in operator.entries if e.ref.name == "db"]  # syncer plan: adopts it
    assert adopt.action is Action.UPDATE and adopt.live is not None

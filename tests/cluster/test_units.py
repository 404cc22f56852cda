"""Unit tests of the apply engine's pure parts: ids, order, diff, prune guard, inventory."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from syncer.cluster import ordering
from syncer.cluster.diff import diff, normalise
from syncer.cluster.inventory import Inventory
from syncer.cluster.objects import ObjectRef
from syncer.cluster.prune import Confirmation, Skip, guard, skip_reason
from syncer.fleet.model import PrunePolicy

# --- ObjectRef ---------------------------------------------------------------------------


def test_id_is_fluxs_inventory_form_and_round_trips() -> None:
    ms = {"apiVersion": "machine.openshift.io/v1beta1", "kind": "MachineSet",
          "metadata": {"name": "win-a", "namespace": "openshift-machine-api"}}
    ref = ObjectRef.of(ms)
    assert ref.id == "openshift-machine-api_win-a_machine.openshift.io_MachineSet"
    assert ObjectRef.from_id(ref.id, "v1beta1") == ref
    assert ObjectRef.from_id(ref.id, "v1beta1").api_version == "machine.openshift.io/v1beta1"
    ns = ObjectRef.of({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}})
    assert ns.id == "_x__Namespace"
    assert ObjectRef.from_id(ns.id) == ns
    # RBAC names may contain underscores; the name is what is left in the middle.
    role = ObjectRef("rbac.authorization.k8s.io", "ClusterRole", "", "a_b:c", "v1")
    assert ObjectRef.from_id(role.id) == role


def test_identity_ignores_api_version() -> None:
    a = ObjectRef("node.k8s.io", "RuntimeClass", "", "win", "v1beta1")
    b = ObjectRef("node.k8s.io", "RuntimeClass", "", "win", "v1")
    assert a == b and hash(a) == hash(b)
    with pytest.raises(ValueError):
        ObjectRef.from_id("no-underscores")


# --- ordering ----------------------------------------------------------------------------


def _ref(api_version: str, kind: str, name: str = "x", ns: str = "") -> ObjectRef:
    return ObjectRef.of({"apiVersion": api_version, "kind": kind,
                         "metadata": {"name": name, "namespace": ns}})


def test_stages_follow_the_safe_order() -> None:
    refs = [
        _ref("machine.openshift.io/v1beta1", "MachineSet", ns="openshift-machine-api"),
        _ref("node.k8s.io/v1", "RuntimeClass"),
        _ref("v1", "Secret", ns="a"),
        _ref("v1", "ConfigMap", ns="a"),
        _ref("rbac.authorization.k8s.io/v1", "RoleBinding", ns="a"),
        _ref("v1", "ServiceAccount", ns="a"),
        _ref("v1", "Namespace"),
        _ref("apiextensions.k8s.io/v1", "CustomResourceDefinition", "machines.x.io"),
    ]
    kinds = [[r.kind for r in stage] for stage in ordering.stages(refs, lambda r: r)]
    assert kinds == [
        ["CustomResourceDefinition"],
        ["Namespace"],
        ["ServiceAccount", "RoleBinding"],
        ["ConfigMap", "Secret"],
        ["RuntimeClass"],
        ["MachineSet"],
    ]
    pruned = [[r.kind for r in s] for s in ordering.prune_order(refs, lambda r: r)]
    assert pruned[0] == ["MachineSet"] and pruned[-1] == ["CustomResourceDefinition"]


# --- diff --------------------------------------------------------------------------------

LIVE_META = {
    "uid": "1", "resourceVersion": "7", "creationTimestamp": "2024-01-01T00:00:00Z",
    "generation": 3,
}


def _live(desired: dict[str, Any], fields: dict[str, Any] | None, **extra: Any) -> dict[str, Any]:
    live = {**desired, **extra}
    meta = {**desired["metadata"], **LIVE_META}
    if fields is not None:
        meta["managedFields"] = [
            {"manager": "kube-controller-manager", "operation": "Update", "fieldsV1": {}},
            {"manager": "syncer", "operation": "Apply", "fieldsV1": fields},
        ]
    live["metadata"] = meta
    return live


RC = {
    "apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
    "metadata": {"name": "win", "labels": {"a": "1"}},
    "handler": "runhcs-wcow-process",
    "overhead": {"podFixed": {"cpu": 0.5, "memory": "1024Mi"}},
    "scheduling": {"tolerations": [{"key": "os", "value": "Windows"}]},
}
RC_FIELDS = {
    "f:handler": {}, "f:metadata": {"f:labels": {"f:a": {}}},
    "f:overhead": {"f:podFixed": {"f:cpu": {}, "f:memory": {}}},
    "f:scheduling": {"f:tolerations": {}},
}


def test_server_normalisation_is_not_a_change() -> None:
    live = _live(RC, RC_FIELDS, status={"x": 1})
    live["overhead"] = {"podFixed": {"cpu": "500m", "memory": "1Gi"}}  # canonical quantities
    live["scheduling"] = {"tolerations": [{"key": "os", "value": "Windows",
                                           "operator": "Equal"}],  # defaulted in an item
                          "nodeSelector": {}}
    live["metadata"]["labels"] = {"a": "1", "added-by-someone-else": "y"}
    change = diff({**RC, "metadata": {**RC["metadata"], "annotations": {}}}, live)
    assert change.patch == [] and not change.changed


def test_value_change_and_field_removed_from_git_are_patched() -> None:
    live = _live(RC, RC_FIELDS)
    live["metadata"]["labels"]["someone-elses"] = "x"
    desired = {**RC, "handler": "other", "metadata": {"name": "win", "labels": {"b": "2"}}}
    change = diff(desired, live)  # label a removed from Git, b added
    assert sorted(change.patch, key=lambda op: op["path"]) == [
        {"op": "replace", "path": "/handler", "value": "other"},
        {"op": "remove", "path": "/metadata/labels/a"},
        {"op": "add", "path": "/metadata/labels/b", "value": "2"},
    ]
    # Git drops the whole map: only syncer's own labels show as removed.
    change = diff({**RC, "metadata": {"name": "win"}}, live)
    assert change.before["metadata"]["labels"] == {"a": "1"}
    assert change.patch == [{"op": "remove", "path": "/metadata/labels"}]


def test_quantities_compare_by_value_not_everywhere() -> None:
    live = _live(RC, RC_FIELDS)
    live["overhead"] = {"podFixed": {"cpu": "1", "memory": "1Gi"}}
    change = diff(RC, live)
    assert change.patch == [{"op": "replace", "path": "/overhead/podFixed/cpu", "value": 0.5}]
    # ConfigMap data is opaque: "1Gi" and "1024Mi" are different strings there.
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n"},
          "data": {"size": "1024Mi"}}
    live_cm = _live(cm, {"f:data": {"f:size": {}}})
    live_cm["data"] = {"size": "1Gi"}
    assert diff(cm, live_cm).changed


def test_atomic_list_changed_by_someone_else_is_drift() -> None:
    live = _live(RC, RC_FIELDS)
    live["scheduling"] = {"tolerations": [{"key": "os", "value": "Windows"},
                                          {"key": "extra"}]}
    assert diff(RC, live).changed


def test_associative_list_ignores_other_managers_items_and_finds_removed_items() -> None:
    dep = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "d", "namespace": "n"},
        "spec": {"template": {"spec": {"containers": [
            {"name": "c", "image": "img:1", "ports": [{"containerPort": 80}]},
        ]}}},
    }
    fields = {"f:spec": {"f:template": {"f:spec": {"f:containers": {
        'k:{"name":"c"}': {".": {}, "f:name": {}, "f:image": {}, "f:ports": {
            'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}}},
        'k:{"name":"old"}': {".": {}, "f:name": {}, "f:image": {}},
    }}}}}
    live = _live(dep, fields)
    live["spec"] = {"template": {"spec": {"containers": [
        {"name": "sidecar", "image": "injected"},
        {"name": "c", "image": "img:1", "ports": [{"containerPort": 80, "protocol": "TCP"}]},
        {"name": "old", "image": "gone"},
    ]}}}
    change = diff(dep, live)
    assert change.patch == [{"op": "remove", "path": "/spec/template/spec/containers/1"}]
    live["spec"]["template"]["spec"]["containers"].pop()  # "old" gone: in sync
    assert not diff(dep, live).changed


def test_secret_string_data_compares_as_data() -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "n"},
              "type": "Opaque", "stringData": {"userData": "hello"}}
    live = _live({**secret, "stringData": None}, {"f:stringData": {"f:userData": {}},
                                                  "f:type": {}})
    del live["stringData"]
    live["data"] = {"userData": base64.b64encode(b"hello").decode()}
    assert not diff(secret, live).changed
    live["data"] = {"userData": base64.b64encode(b"changed").decode()}
    assert diff(secret, live).changed


def test_never_applied_by_syncer_means_adopt() -> None:
    live = _live(RC, None)
    change = diff(RC, live)
    assert change.patch == [] and change.adopt and change.changed


def test_normalise_drops_server_fields_and_namespace_of_cluster_objects() -> None:
    obj = normalise({**RC, "status": {"a": 1},
                     "metadata": {**RC["metadata"], "namespace": "x", "uid": "9"}},
                    namespaced=False)
    assert "status" not in obj and "namespace" not in obj["metadata"]
    assert "uid" not in obj["metadata"]


def test_numbers_compare_by_value_and_numeric_strings_as_quantities() -> None:
    obj = {"apiVersion": "x.io/v1", "kind": "T", "metadata": {"name": "t"},
           "spec": {"n": 2, "cpu": 1, "name": "1.0"}}
    live = _live(obj, {"f:spec": {"f:n": {}, "f:cpu": {}, "f:name": {}}})
    live["spec"] = {"n": 2.0, "cpu": "1", "name": "1"}
    # A number written in Git equals the server's string of the same value; two
    # different strings outside resource quantities are different.
    assert diff(obj, live).patch == [{"op": "replace", "path": "/spec/name", "value": "1.0"}]


# --- prune -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("max_deletions", "deletions", "size", "refused"),
    [
        (None, 0, 0, False),
        (None, 9, 10, False),
        (None, 10, 10, True),  # default: never everything
        (None, 1, 1, True),
        (3, 3, 10, False),
        (3, 4, 10, True),
        (0, 1, 10, True),
        ("25%", 2, 10, False),
        ("25%", 3, 10, True),  # 25% of 10 is 2 (rounded down)
        ("100%", 10, 10, False),
    ],
)
def test_prune_guard(max_deletions: int | str | None, deletions: int, size: int,
                     refused: bool) -> None:
    reason = guard(PrunePolicy(max_deletions=max_deletions), deletions, size)
    assert (reason is not None) is refused
    if reason:
        assert "--confirm-prune" in reason


def test_confirmation_names_the_revision() -> None:
    assert Confirmation(flag=True).covers("abc")
    assert Confirmation(annotated_revision="abc").covers("abc")
    assert not Confirmation(annotated_revision="abc").covers("def")
    assert not Confirmation().covers("")


def test_skip_reasons() -> None:
    labels = {"app.kubernetes.io/managed-by": "syncer", "syncer.io/fleet": "f"}
    live: dict[str, Any] = {"metadata": {"labels": labels}}
    assert skip_reason(live, "f", True) is None
    assert skip_reason(live, "other", True) is Skip.GONE
    assert skip_reason(None, "f", True) is Skip.GONE
    assert skip_reason(live, "f", False) is Skip.DISABLED
    live["metadata"]["annotations"] = {"syncer.io/prune": "disabled"}
    assert skip_reason(live, "f", True) is Skip.OPTED_OUT
    assert Skip.DISABLED.keep_in_inventory and not Skip.OPTED_OUT.keep_in_inventory


# --- inventory ---------------------------------------------------------------------------


def test_inventory_round_trips_and_survives_damage() -> None:
    inv = Inventory(
        entries={ObjectRef("", "ConfigMap", "n", "a", "v1"),
                 ObjectRef("machine.openshift.io", "MachineSet", "m", "w", "v1beta1")},
        fleet="f",
    )
    inv.record_applied("abc")
    data = inv.encode()
    assert data["lastAppliedRevision"] == data["lastAttemptedRevision"] == "abc"
    assert data["entries"].count("\n") == 1  # one entry per line
    back = Inventory.decode(data, {"syncer.io/confirm-prune": "abc"})
    assert back.entries == inv.entries and back.fleet == "f"
    assert {r.version for r in back.entries} == {"v1", "v1beta1"}
    assert back.confirm_prune == "abc"
    damaged = Inventory.decode({"entries": '[{"id": "bad"}, {"id": "n_a__ConfigMap"}, 3]'})
    assert damaged.entries == {ObjectRef("", "ConfigMap", "n", "a")}
    assert Inventory.decode({"entries": "not json"}).entries == set()


# --- kubeconfig lookup -------------------------------------------------------------------


def test_kubeconfig_lookup_follows_kubectl(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from syncer.cluster.client import cluster_configured, default_kubeconfig

    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    assert default_kubeconfig() is None and not cluster_configured()
    (home / ".kube").mkdir(parents=True)
    (home / ".kube" / "config").write_text("{}")
    assert default_kubeconfig() == str(home / ".kube" / "config")
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text("{}")
    monkeypatch.setenv("KUBECONFIG", f"{b}:{a}")  # missing files are skipped, like kubectl
    assert default_kubeconfig() == str(a)
    monkeypatch.setenv("KUBECONFIG", str(b))  # set but nothing there: no fallback to ~/.kube
    assert default_kubeconfig() is None
    assert default_kubeconfig("/explicit") == "/explicit"


# --- retries -----------------------------------------------------------------------------


def test_retries_transient_errors_only() -> None:
    from syncer.cluster.apply import ApplyOptions, with_retries
    from syncer.cluster.client import ApiError

    slept: list[float] = []
    options = ApplyOptions(attempts=4, backoff=0.1, sleep=slept.append)

    def failing(errors: list[ApiError]) -> Any:
        def call() -> str:
            if errors:
                raise errors.pop(0)
            return "ok"
        return call

    transient = [ApiError(409, "Conflict"), ApiError(0, "unreachable"),
                 ApiError(429, "Too Many Requests", retry_after=2.0)]
    assert with_retries(failing(transient), options) == ("ok", None, 4)
    assert len(slept) == 3 and 1.6 <= slept[2] <= 2.4  # Retry-After honoured
    result, error, attempts = with_retries(failing([ApiError(422, "Invalid")]), options)
    assert result is None and error is not None and error.status == 422 and attempts == 1
    many = [ApiError(503, "Unavailable") for _ in range(5)]
    result, error, attempts = with_retries(failing(many), options)
    assert error is not None and error.status == 503 and attempts == 4

"""HostPlan decisions and the service layout, without hosts."""

from __future__ import annotations

from syncer.nodes.annotations import NodeRecord
from syncer.nodes.hostplan import Action, plan_host, probe_files
from syncer.nodes.inputs import ComponentVersion, DesiredState, Host, HostKind
from syncer.nodes.probe import HostFacts, ProbeResult
from syncer.nodes.windows.layout import (
    HostIdentity,
    check_labels,
    dependents_closure,
    installed_path,
    service_spec,
)
from syncer.nodes.windows.vocabulary import ServiceInfo, ServiceState, Shell, StartType

SHA = {"kubelet": "a" * 64, "containerd": "b" * 64}
DESIRED = DesiredState("f", "2.0.0", {
    n: ComponentVersion(n, "v1", f"file:///{n}", s) for n, s in SHA.items()
})
HOST = Host("10.0.0.5", "Administrator", HostKind.BYOH, ip="10.0.0.5")
IDENTITY = HostIdentity("10.0.0.5", "win-a", {})


def _facts(files: dict[str, str | None], running: bool = True) -> HostFacts:
    services = {}
    for name in ("containerd", "kubelet"):
        spec = service_spec(name, IDENTITY)
        assert spec is not None
        services[spec.name] = ServiceInfo(
            ServiceState.RUNNING if running else ServiceState.STOPPED, StartType.AUTO,
            spec.binary_path, spec.depends_on, spec.description)
    return HostFacts("10.0.0.5", "WIN-A", "10.0.20348.1", Shell.CMD, 10**10, files,
                     services)  # type: ignore[arg-type]


def _node(version: str, **annotations: str) -> NodeRecord:
    ann = {"windowsmachineconfig.openshift.io/version": version,
           "windowsmachineconfig.openshift.io/desired-version": version, **annotations}
    return NodeRecord("win-a", annotations=ann)


def _installed() -> dict[str, str | None]:
    return {installed_path(n): s for n, s in SHA.items()}


def test_up_to_date_record_and_upgrade() -> None:
    probe = ProbeResult("10.0.0.5", _facts(_installed()))
    comps = ('{"containerd":{"sha256":"' + SHA["containerd"] + '","version":"v1"},'
             '"kubelet":{"sha256":"' + SHA["kubelet"] + '","version":"v1"}}')
    current = _node("2.0.0", **{"syncer.io/components": comps})
    assert plan_host(HOST, DESIRED, probe, current).action is Action.UP_TO_DATE
    assert plan_host(HOST, DESIRED, probe, _node("1.0.0")).action is Action.RECORD
    changed = ProbeResult("10.0.0.5", _facts({**_installed(), installed_path("kubelet"): "c" * 64}))
    plan = plan_host(HOST, DESIRED, changed, current)
    assert plan.action is Action.UPGRADE
    assert [c.name for c in plan.transfers] == ["kubelet"]
    stopped = ProbeResult("10.0.0.5", _facts(_installed(), running=False))
    plan = plan_host(HOST, DESIRED, stopped, current)
    assert plan.action is Action.UPGRADE and plan.transfers == []
    assert plan_host(HOST, DESIRED, probe, None).action is Action.CONFIGURE


def test_failed_host_is_retried_only_for_another_version() -> None:
    probe = ProbeResult("10.0.0.5", _facts({}))
    failed = _node("1.0.0", **{"syncer.io/failed-step": "start",
                               "windowsmachineconfig.openshift.io/desired-version": "2.0.0"})
    plan = plan_host(HOST, DESIRED, probe, failed)
    assert plan.action is Action.BLOCKED and plan.blocked_kind == "failed"
    older = _node("1.0.0", **{"syncer.io/failed-step": "start",
                              "windowsmachineconfig.openshift.io/desired-version": "1.5.0"})
    assert plan_host(HOST, DESIRED, probe, older).action is Action.UPGRADE


def test_unreachable_and_host_key_block() -> None:
    blocked = plan_host(HOST, DESIRED, ProbeResult("10.0.0.5", error="changed", kind="host-key"),
                        None)
    assert (blocked.action, blocked.blocked_kind) == (Action.BLOCKED, "host-key")


def test_labels_and_service_arguments() -> None:
    assert check_labels({"example.com/role": "canary"}) == []
    assert check_labels({"a": "x y"}) and check_labels({"bad key!": "x"})
    spec = service_spec("kubelet", HostIdentity("10.0.0.5", "win-a", {
        "example.com/role": "canary", "node-role.kubernetes.io/infra": ""}))
    assert spec is not None
    assert "--node-labels=example.com/role=canary,node.openshift.io/os_id=Windows" in \
        spec.binary_path
    assert "node-role" not in spec.binary_path  # set through the API, not by the kubelet
    assert "--node-ip=10.0.0.5" in spec.binary_path
    assert dependents_closure({"containerd"}, ["containerd", "kubelet", "hybrid-overlay-node",
                                               "kube-proxy", "windows_exporter"]) == {
        "containerd", "kubelet", "hybrid-overlay-node", "kube-proxy"}
    assert len(probe_files(DESIRED)) == 4

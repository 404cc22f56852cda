"""HostPlan decisions and the service layout, without hosts."""

from __future__ import annotations

from dataclasses import replace

from syncer.desired import Platform
from syncer.nodes.annotations import NodeRecord
from syncer.nodes.clusterinfo import ClusterFacts
from syncer.nodes.hostplan import Action, plan_host, probe_files
from syncer.nodes.inputs import ComponentVersion, DesiredState, Host, HostKind
from syncer.nodes.managedfiles import ManagedFile
from syncer.nodes.probe import HostFacts, ProbeResult
from syncer.nodes.windows.layout import (
    HostIdentity,
    NodeSettings,
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
CLUSTER = ClusterFacts("https://api-int.lab:6443", "172.30.0.0/16", "172.30.0.10", None,
                       Platform.NONE)
SETTINGS = NodeSettings(CLUSTER.api_server)
IDENTITY = HostIdentity("10.0.0.5", "win-a", {})
CA = ManagedFile("C:\\k\\kubelet-ca.crt", b"CA")  # restarts nothing
CONF = ManagedFile("C:\\k\\kubelet.conf", b"conf", ("kubelet",))
MANAGED = {f.path: f for f in (CA, CONF)}


def _facts(files: dict[str, str | None], running: bool = True, **node: object) -> HostFacts:
    services = {}
    for name in ("containerd", "kubelet"):
        spec = service_spec(name, IDENTITY, SETTINGS)
        assert spec is not None
        services[spec.name] = ServiceInfo(
            ServiceState.RUNNING if running else ServiceState.STOPPED, StartType.AUTO,
            spec.binary_path, spec.depends_on, spec.description)
    facts = HostFacts("10.0.0.5", "WIN-A", "10.0.20348.1", Shell.CMD, 10**10, files,
                      services, node_ip="10.0.0.5")  # type: ignore[arg-type]
    return replace(facts, **node)  # type: ignore[arg-type]


def _node(version: str, **annotations: str) -> NodeRecord:
    ann = {"windowsmachineconfig.openshift.io/version": version,
           "windowsmachineconfig.openshift.io/desired-version": version, **annotations}
    return NodeRecord("win-a", annotations=ann)


def _installed() -> dict[str, str | None]:
    return {**{installed_path(n): s for n, s in SHA.items()},
            **{f.path: f.sha256 for f in MANAGED.values()}}


COMPONENTS = ('{"containerd":{"sha256":"' + SHA["containerd"] + '","version":"v1"},'
              '"kubelet":{"sha256":"' + SHA["kubelet"] + '","version":"v1"}}')


def test_up_to_date_record_refresh_and_upgrade() -> None:
    probe = ProbeResult("10.0.0.5", _facts(_installed()))
    current = _node("2.0.0", **{"syncer.io/components": COMPONENTS})
    assert plan_host(HOST, DESIRED, probe, current, cluster=CLUSTER,
                     managed=MANAGED).action is Action.UP_TO_DATE
    assert plan_host(HOST, DESIRED, probe, _node("1.0.0"), cluster=CLUSTER,
                     managed=MANAGED).action is Action.RECORD
    changed = ProbeResult("10.0.0.5", _facts({**_installed(), installed_path("kubelet"): "c" * 64}))
    p = plan_host(HOST, DESIRED, changed, current, cluster=CLUSTER, managed=MANAGED)
    assert p.action is Action.UPGRADE
    assert [c.name for c in p.transfers] == ["kubelet"]
    stopped = ProbeResult("10.0.0.5", _facts(_installed(), running=False))
    p = plan_host(HOST, DESIRED, stopped, current, cluster=CLUSTER, managed=MANAGED)
    assert p.action is Action.UPGRADE and p.transfers == []
    assert plan_host(HOST, DESIRED, probe, None, cluster=CLUSTER,
                     managed=MANAGED).action is Action.CONFIGURE
    # A rotated kubelet client CA: written in place, nothing restarted, no cordon.
    rotated = ProbeResult("10.0.0.5", _facts({**_installed(), CA.path: "d" * 64}))
    p = plan_host(HOST, DESIRED, rotated, current, cluster=CLUSTER, managed=MANAGED)
    assert (p.action, [f.path for f in p.files]) == (Action.REFRESH, [CA.path])
    # A kubelet.conf that differs (one syncer's first version wrote, without resolvConf)
    # is rewritten on an existing host too, and the kubelet restarts for it.
    old_conf = ProbeResult("10.0.0.5", _facts({**_installed(), CONF.path: "e" * 64}))
    p = plan_host(HOST, DESIRED, old_conf, current, cluster=CLUSTER, managed=MANAGED)
    assert (p.action, [f.path for f in p.files]) == (Action.UPGRADE, [CONF.path])


def test_reboot_is_requested_by_the_annotations_presence() -> None:
    """WMCO sets reboot-required with the value "" (pkg/metadata/metadata.go)."""
    probe = ProbeResult("10.0.0.5", _facts(_installed()))
    node = _node("2.0.0", **{"syncer.io/components": COMPONENTS,
                             "windowsmachineconfig.openshift.io/reboot-required": ""})
    p = plan_host(HOST, DESIRED, probe, node, cluster=CLUSTER, managed=MANAGED)
    assert (p.action, p.reboot) == (Action.UPGRADE, True)


def test_adopting_removes_wmcos_daemon_and_prepares_the_host() -> None:
    current = _node("2.0.0", **{"syncer.io/components": COMPONENTS})
    wicd = ProbeResult("10.0.0.5", _facts(_installed(), managed=(
        "containerd", "kubelet", "windows-instance-config-daemon")))
    p = plan_host(HOST, DESIRED, wicd, current, cluster=CLUSTER, managed=MANAGED)
    assert (p.action, p.remove_services) == (Action.UPGRADE,
                                             ("windows-instance-config-daemon",))
    no_feature = ProbeResult("10.0.0.5", _facts({}, containers=False))
    p = plan_host(HOST, DESIRED, no_feature, None, cluster=CLUSTER, managed=MANAGED)
    assert p.enable_containers and p.prepare and "Containers feature" in p.reason


def test_node_names_follow_the_platform() -> None:
    """WMCO's hostname override: the cloud's name on AWS/GCP, the FQDN on vSphere; a
    vSphere or Nutanix Machine is renamed to its Machine's name first."""
    probe = ProbeResult("10.0.0.5", _facts({}, cloud_hostname="ip-10-0-0-5.ec2.internal"))
    aws = replace(CLUSTER, platform=Platform.AWS)
    p = plan_host(HOST, DESIRED, probe, None, cluster=aws, managed=MANAGED)
    assert p.identity is not None and p.identity.node_name == "ip-10-0-0-5.ec2.internal"
    kubelet = service_spec("kubelet", p.identity, NodeSettings("https://x", Platform.AWS))
    assert kubelet is not None
    assert "--hostname-override=ip-10-0-0-5.ec2.internal" in kubelet.binary_path
    assert "--cloud-provider=external" in kubelet.binary_path
    silent = ProbeResult("10.0.0.5", _facts({}))
    assert plan_host(HOST, DESIRED, silent, None, cluster=aws,
                     managed=MANAGED).action is Action.BLOCKED
    machine = Host("10.0.0.5", "Administrator", HostKind.MACHINE, ip="10.0.0.5",
                   machine_name="winworker-x7k2p")
    vsphere = replace(CLUSTER, platform=Platform.VSPHERE)
    p = plan_host(machine, DESIRED, ProbeResult("10.0.0.5", _facts({}, domain="lab.local")),
                  None, cluster=vsphere, managed=MANAGED)
    assert p.rename == "winworker-x7k2p"
    assert p.identity is not None
    assert p.identity.node_name == "winworker-x7k2p.lab.local"


def test_the_pod_network_is_checked_on_every_host() -> None:
    desired = replace(DESIRED, components={
        **DESIRED.components,
        **{n: ComponentVersion(n, "v1", f"file:///{n}", "f" * 64)
           for n in ("hybrid-overlay-node", "kube-proxy", "cni")}})
    probe = ProbeResult("10.0.0.5", _facts(_installed()))
    p = plan_host(HOST, desired, probe, _node("2.0.0"), cluster=CLUSTER, managed=MANAGED)
    assert p.network and "no overlay network" in p.reason
    assert "C:\\k\\cni\\config\\cni.conf" in probe_files(desired)


def test_failed_host_is_retried_only_for_another_version() -> None:
    probe = ProbeResult("10.0.0.5", _facts({}))
    failed = _node("1.0.0", **{"syncer.io/failed-step": "start",
                               "windowsmachineconfig.openshift.io/desired-version": "2.0.0"})
    p = plan_host(HOST, DESIRED, probe, failed, cluster=CLUSTER)
    assert p.action is Action.BLOCKED and p.blocked_kind == "failed"
    older = _node("1.0.0", **{"syncer.io/failed-step": "start",
                              "windowsmachineconfig.openshift.io/desired-version": "1.5.0"})
    assert plan_host(HOST, DESIRED, probe, older, cluster=CLUSTER).action is Action.UPGRADE


def test_unreachable_and_host_key_block() -> None:
    blocked = plan_host(HOST, DESIRED, ProbeResult("10.0.0.5", error="changed", kind="host-key"),
                        None, cluster=CLUSTER)
    assert (blocked.action, blocked.blocked_kind) == (Action.BLOCKED, "host-key")


def test_labels_and_service_arguments() -> None:
    assert check_labels({"example.com/role": "canary"}) == []
    assert check_labels({"a": "x y"}) and check_labels({"bad key!": "x"})
    # "$" matches before a final newline; a label must not end in one either.
    assert check_labels({"example.com/role": "canary\n"})
    assert check_labels({"team\n": "a"})
    spec = service_spec("kubelet", HostIdentity("10.0.0.5", "win-a", {
        "example.com/role": "canary", "node-role.kubernetes.io/infra": ""}), SETTINGS)
    assert spec is not None
    assert "--node-labels=example.com/role=canary,node.openshift.io/os_id=Windows" in \
        spec.binary_path
    assert "node-role" not in spec.binary_path  # set through the API, not by the kubelet
    assert "--node-ip=10.0.0.5" in spec.binary_path
    assert spec.binary_path.startswith(
        "C:\\k\\kube-log-runner.exe -log-file=C:\\var\\log\\kubelet\\kubelet.log "
        "C:\\k\\kubelet.exe ")
    assert dependents_closure({"containerd"}, ["containerd", "kubelet", "hybrid-overlay-node",
                                               "kube-proxy", "windows_exporter"]) == {
        "containerd", "kubelet", "hybrid-overlay-node", "kube-proxy"}
    assert len(probe_files(DESIRED)) == 4

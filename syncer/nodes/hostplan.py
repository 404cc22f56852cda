"""HostPlan: what one host needs, decided from the probe, its Node and the Fleet.

A component must change when the SHA-256 of its installed file (:mod:`syncer.nodes.windows.layout`)
differs from the committed one, or when its service is missing, configured differently
(binary path and arguments, dependencies, description, start type) or not running. A
managed file (:mod:`syncer.nodes.managedfiles`) must be written when its digest differs;
the overlay's files when the host's pod network is not what it should be (no overlay
network, no VIP endpoint, or ``cni.conf``/``kube-proxy.conf`` not matching it). Services
described ``OpenShift managed`` that the Fleet does not run (WMCO's
``windows-instance-config-daemon`` on an adopted node, a component removed from the
Fleet) are removed. A host without the Containers feature, or a vSphere/Nutanix Machine
whose host name is not its Machine's name (WMCO renames them), is prepared first (both
take a reboot). From that and the host's Node:

=================  ===========================================================================
``up-to-date``     nothing differs and the Node records the committed version: no lock, no
                   cordon, no drain, no write of any kind
``record``         the host matches but the Node's record lags (a fleet version bump that
                   changed no component): annotations only, no cordon, no drain
``refresh``        only files that no service needs restarting for differ (a rotated kubelet
                   client CA, a new bootstrap token): written in place, no cordon, no drain
``configure``      no Node yet: a new host, configured and bootstrapped (or one a previous
                   round left before its Node appeared)
``upgrade``        anything that restarts a service differs, a reboot is requested (WMCO's
                   ``reboot-required``, by its presence), or the host was left mid-upgrade
                   (labelled ``upgrading``, orphaned slot, phase in progress): the full flow
``blocked``        nothing is done to this host this round, and why (unreachable, changed host
                   key, invalid labels in Git, no cloud host name, or failed at this very
                   version before and not yet cleared by an operator)
=================  ===========================================================================

A host that failed keeps failing closed: it is retried only when the committed version
changes (or an operator clears its record), so a bad version is not retried forever and
a failed host does not take a new slot every round.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from syncer import names
from syncer.components import CATALOGUE
from syncer.desired import Platform
from syncer.nodes.annotations import NodeRecord
from syncer.nodes.clusterinfo import ClusterFacts
from syncer.nodes.inputs import ComponentVersion, DesiredState, Host, HostKind
from syncer.nodes.managedfiles import ManagedFile, network_files, runs_overlay
from syncer.nodes.probe import HostFacts, ProbeResult
from syncer.nodes.windows.files import Overlay
from syncer.nodes.windows.layout import (
    CNI_CONFIG,
    KUBE_PROXY_CONFIG,
    HostIdentity,
    NodeSettings,
    ServiceSpec,
    check_labels,
    installed_path,
    managed_components,
    service_spec,
    staged_path,
)
from syncer.nodes.windows.vocabulary import ServiceInfo, ServiceState, StartType

IN_PROGRESS_EXCLUDED = names.PHASES_AT_REST


class Action(StrEnum):
    UP_TO_DATE = "up-to-date"
    RECORD = "record"
    REFRESH = "refresh"
    CONFIGURE = "configure"
    UPGRADE = "upgrade"
    BLOCKED = "blocked"


@dataclass(frozen=True)
class ComponentChange:
    name: str
    desired: ComponentVersion
    transfer: bool  # the payload differs: upload and replace (else only its service)

    @property
    def staged(self) -> str:
        return staged_path(self.name, self.desired.sha256)


@dataclass(frozen=True)
class HostPlan:
    host: Host
    action: Action
    reason: str
    desired_version: str
    node: NodeRecord | None = None
    facts: HostFacts | None = None
    identity: HostIdentity | None = None
    settings: NodeSettings | None = None
    changes: tuple[ComponentChange, ...] = ()
    files: tuple[ManagedFile, ...] = ()  # managed files to write
    network: bool = False  # the overlay's files and services need (re)doing
    remove_services: tuple[str, ...] = ()  # managed services the Fleet does not run
    enable_containers: bool = False  # install the Containers feature (then reboot)
    rename: str | None = None  # the host's new name (vSphere/Nutanix Machines; reboot)
    reboot: bool = False
    resume: bool = False
    blocked_kind: str | None = None  # "host-key", "unreachable", "probe", "failed", "invalid"

    @property
    def address(self) -> str:
        return self.host.address

    @property
    def needs_slot(self) -> bool:
        return self.action in (Action.CONFIGURE, Action.UPGRADE)

    @property
    def transfers(self) -> list[ComponentChange]:
        return [c for c in self.changes if c.transfer]

    @property
    def prepare(self) -> bool:
        return self.enable_containers or self.rename is not None


def probe_files(desired: DesiredState, managed: Mapping[str, ManagedFile] | None = None
                ) -> list[str]:
    """The files whose digests the probe reads: installed markers, staged uploads and
    managed files."""
    out: list[str] = []
    for name in managed_components(list(desired.components)):
        c = desired.components[name]
        out.append(installed_path(name))
        out.append(staged_path(name, c.sha256))
    out += sorted(managed or {})
    if runs_overlay(desired.components):
        out += [CNI_CONFIG, KUBE_PROXY_CONFIG]
    return out


def probe_services(desired: DesiredState) -> list[str]:
    return [
        svc
        for name in managed_components(list(desired.components))
        if (svc := CATALOGUE[name].service) is not None
    ]


def service_differs(spec: ServiceSpec, facts: HostFacts) -> str | None:
    """Why the service on the host is not what ``spec`` says (None when it is)."""
    info = facts.services.get(spec.name)
    if info is None:
        return "missing"
    why = config_differs(spec, info)
    if why is None and info.state is not ServiceState.RUNNING:
        why = f"not running ({info.state.name.lower()})"
    return why


def config_differs(spec: ServiceSpec, info: ServiceInfo) -> str | None:
    """Why an existing service is configured other than ``spec`` says, its state aside
    (None when it is not). Recovery actions are not in the inventory; they are set
    whenever syncer creates or reconfigures a service."""
    if info.binary_path != spec.binary_path:
        return "binary path or arguments differ"
    if sorted(d.casefold() for d in info.dependencies) != sorted(
        d.casefold() for d in spec.depends_on
    ):
        return "dependencies differ"
    if info.description != spec.description:
        return "description differs"
    if info.start_type not in (StartType.AUTO, StartType.DELAYED_AUTO):
        return f"start type is {info.start_type}"
    return None


def hostname_override(host: Host, facts: HostFacts, platform: Platform) -> str | None:
    """The name WMCO gives the kubelet with ``--hostname-override``: the cloud's name for
    the instance on AWS and GCP (its metadata service), the FQDN on vSphere."""
    if platform in (Platform.AWS, Platform.GCP):
        return facts.cloud_hostname
    if platform is Platform.VSPHERE:
        name = host_name(host, facts, platform)
        return f"{name}.{facts.domain}" if facts.domain else name
    return None


def host_name(host: Host, facts: HostFacts, platform: Platform) -> str:
    """The host's name once prepared: a vSphere or Nutanix Machine takes its Machine's."""
    if host.kind is HostKind.MACHINE and host.machine_name and platform in (
            Platform.VSPHERE, Platform.NUTANIX):
        return host.machine_name
    return facts.hostname


def plan_host(
    host: Host,
    desired: DesiredState,
    probe: ProbeResult | None,
    node: NodeRecord | None,
    *,
    cluster: ClusterFacts,
    managed: Mapping[str, ManagedFile] | None = None,
    committed: Mapping[str, ComponentVersion] | None = None,
    failed_version: str | None = None,
    failure: str | None = None,
    orphaned: bool = False,
) -> HostPlan:
    """Decide what ``host`` needs (see the module docstring).

    ``desired`` is the host's view (:func:`syncer.nodes.payloads.host_view`), ``committed``
    the components as committed (what the Node records; default: ``desired``'s).
    ``cluster``: this round's cluster facts; ``managed``: this round's managed files.
    ``failure``/``failed_version``: a failure record for the host and the version it was
    failing at (for hosts with a Node: its ``failed-step`` and ``desired-version``).
    ``orphaned``: a previous controller held a rollout slot for this host.
    """

    def blocked(kind: str, reason: str) -> HostPlan:
        return HostPlan(host, Action.BLOCKED, reason, desired.version, node, facts,
                        blocked_kind=kind)

    facts = probe.facts if probe is not None else None
    label_problems = check_labels(host.labels)
    if label_problems:
        return blocked("invalid", "; ".join(label_problems))
    if probe is None or facts is None:
        kind = probe.kind if probe is not None and probe.kind else "unreachable"
        return blocked(kind, probe.error if probe is not None and probe.error else "not probed")

    if node is not None and node.failed:
        failure = f"failed at step {node.failed_step}: {node.last_error or ''}".rstrip(": ")
        failed_version = node.desired_version
    if failure is not None and (failed_version is None or failed_version == desired.version):
        return blocked(
            "failed",
            f"{failure}; fix the host and clear its failure record, or commit another version",
        )

    platform = cluster.platform
    override = hostname_override(host, facts, platform)
    if platform in (Platform.AWS, Platform.GCP) and not override:
        return blocked("probe", f"the {platform} instance metadata service gave no host name")
    name = host_name(host, facts, platform)
    identity = HostIdentity(
        node_ip=facts.node_ip or host.connect_address,
        node_name=node.name if node is not None else (override or name).lower(),
        labels=dict(host.labels),
        hostname_override=override,
    )
    settings = NodeSettings(cluster.api_server, platform, cluster.vxlan_port)
    changes: list[ComponentChange] = []
    reasons: list[str] = []
    for component in managed_components(list(desired.components)):
        want = desired.components[component]
        installed = facts.files.get(installed_path(component))
        transfer = installed != want.sha256
        spec = service_spec(component, identity, settings)
        why = service_differs(spec, facts) if spec is not None else None
        if transfer or why is not None:
            changes.append(ComponentChange(component, want, transfer))
            if transfer:
                reasons.append(f"{component} {'missing' if installed is None else 'differs'}")
            else:
                reasons.append(f"{component} service {why}")

    files = tuple(f for f in (managed or {}).values() if facts.files.get(f.path) != f.sha256)
    reasons += [f"{f.path} {'missing' if facts.files.get(f.path) is None else 'differs'}"
                for f in files]
    network = False
    if runs_overlay(desired.components):
        why_network = network_differs(facts, cluster, identity.node_name)
        if why_network is not None:
            network = True
            reasons.append(why_network)
    wanted_services = {CATALOGUE[c].service for c in desired.components if c in CATALOGUE}
    remove = tuple(sorted(s for s in facts.managed if s not in wanted_services))
    reasons += [f"managed service {s} is not in the Fleet" for s in remove]
    rename = name if name.lower() != facts.hostname.lower() else None
    if rename is not None:
        reasons.append(f"host name {facts.hostname} is not the Machine's ({name})")
    if not facts.containers:
        reasons.append("the Containers feature is not enabled")

    # WMCO requests a reboot with the annotation's presence, whatever its value
    # (pkg/metadata/metadata.go; controllers/node_controller.go); new machine-wide
    # variables (the cluster proxy) reach services only after one.
    reboot = (node is not None and names.ANNOTATION_REBOOT_REQUIRED in node.annotations) or \
        any(f.reboots(facts.files.get(f.path)) for f in files)
    resume = orphaned or (
        node is not None
        and (node.upgrading or (node.phase is not None and node.phase not in IN_PROGRESS_EXCLUDED))
    )

    def make(action: Action, reason: str) -> HostPlan:
        return HostPlan(host, action, reason, desired.version, node=node, facts=facts,
                        identity=identity, settings=settings, changes=tuple(changes),
                        files=files, network=network, remove_services=remove,
                        enable_containers=not facts.containers, rename=rename,
                        reboot=reboot, resume=resume)

    if node is None:
        return make(Action.CONFIGURE, "new host (" + ("; ".join(reasons) or "in place") + ")")
    restarting = bool(changes or network or remove or rename or not facts.containers
                      or any(f.restarts for f in files))
    if restarting or reboot or resume:
        extra = []
        if reboot:
            extra.append("reboot requested")
        if resume:
            extra.append("resuming an interrupted upgrade")
        return make(Action.UPGRADE, "; ".join([*reasons, *extra]))
    lag = record_lag(node, desired.version, committed or desired.components)
    if files:
        return make(Action.REFRESH, "; ".join(reasons + ([lag] if lag else [])))
    if lag:
        return make(Action.RECORD, lag)
    return make(Action.UP_TO_DATE, "up to date")


def network_differs(facts: HostFacts, cluster: ClusterFacts, node_name: str) -> str | None:
    """Why the host's pod network is not as it should be (None when it is)."""
    network = facts.network
    if network is None:
        return "no overlay network"
    if network.vip is None:
        return "no VIP endpoint on the overlay network"
    overlay = Overlay(network.subnet, network.management_ip, network.vip)
    for f in network_files(overlay, cluster, node_name).values():
        if facts.files.get(f.path) != f.sha256:
            return f"{f.path} {'missing' if facts.files.get(f.path) is None else 'differs'}"
    return None


def record_lag(node: NodeRecord, version: str,
               components: Mapping[str, ComponentVersion]) -> str | None:
    """Why the Node's record differs from what is installed (None when it does not)."""
    if node.version != version:
        return f"version annotation {node.version or '(none)'} -> {version}"
    if node.desired_version != version:
        return f"desired-version annotation -> {version}"
    wanted = {n: (c.version, c.sha256, c.path or "") for n, c in components.items()
              if n in CATALOGUE}
    recorded = {n: (c.version, c.sha256, c.path) for n, c in node.components.items()}
    if wanted != recorded:
        return "component record differs"
    return None

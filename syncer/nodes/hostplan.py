"""HostPlan: what one host needs, decided from the probe, its Node and the Fleet.

A component must change when the SHA-256 of its installed file (:mod:`syncer.nodes.windows.layout`)
differs from the committed ``sha256``, or when its service is missing, configured
differently (binary path and arguments, dependencies, description, start type) or not
running. From that and the host's Node:

=================  ===========================================================================
``up-to-date``     nothing differs and the Node records the committed version: no lock, no
                   cordon, no drain, no write of any kind
``record``         the host matches but the Node's record lags (a fleet version bump that
                   changed no component): annotations only, no cordon, no drain
``configure``      no Node yet: a new host, configured and bootstrapped (or one a previous
                   round left before its Node appeared)
``upgrade``        components differ, a reboot is requested (WMCO's ``reboot-required``), or
                   the host was left mid-upgrade (labelled ``upgrading``, orphaned slot,
                   phase in progress): the full per-host flow
``blocked``        nothing is done to this host this round, and why (unreachable, changed host
                   key, invalid labels in Git, or failed at this very version before and not
                   yet cleared by an operator)
=================  ===========================================================================

A host that failed keeps failing closed: it is retried only when the committed version
changes (or an operator clears its record), so a bad version is not retried forever and
a failed host does not take a new slot every round.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from syncer import names
from syncer.components import CATALOGUE
from syncer.nodes.annotations import NodeRecord
from syncer.nodes.inputs import ComponentVersion, DesiredState, Host
from syncer.nodes.probe import HostFacts, ProbeResult
from syncer.nodes.windows.layout import (
    HostIdentity,
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
    changes: tuple[ComponentChange, ...] = ()
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


def probe_files(desired: DesiredState) -> list[str]:
    """The files whose digests the probe reads: installed markers and staged uploads."""
    out: list[str] = []
    for name in managed_components(list(desired.components)):
        c = desired.components[name]
        out.append(installed_path(name))
        out.append(staged_path(name, c.sha256))
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


def plan_host(
    host: Host,
    desired: DesiredState,
    probe: ProbeResult | None,
    node: NodeRecord | None,
    *,
    failed_version: str | None = None,
    failure: str | None = None,
    orphaned: bool = False,
) -> HostPlan:
    """Decide what ``host`` needs (see the module docstring).

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

    identity = HostIdentity(
        node_ip=host.connect_address,
        node_name=node.name if node is not None else facts.hostname.lower(),
        labels=dict(host.labels),
    )
    changes: list[ComponentChange] = []
    reasons: list[str] = []
    for name in managed_components(list(desired.components)):
        want = desired.components[name]
        installed = facts.files.get(installed_path(name))
        transfer = installed != want.sha256
        spec = service_spec(name, identity)
        why = service_differs(spec, facts) if spec is not None else None
        if transfer or why is not None:
            changes.append(ComponentChange(name, want, transfer))
            if transfer:
                reasons.append(f"{name} {'missing' if installed is None else 'differs'}")
            else:
                reasons.append(f"{name} service {why}")

    reboot = node is not None and node.annotations.get(names.ANNOTATION_REBOOT_REQUIRED) == "true"
    resume = orphaned or (
        node is not None
        and (node.upgrading or (node.phase is not None and node.phase not in IN_PROGRESS_EXCLUDED))
    )
    def make(action: Action, reason: str) -> HostPlan:
        return HostPlan(host, action, reason, desired.version, node=node, facts=facts,
                        identity=identity, changes=tuple(changes), reboot=reboot, resume=resume)

    if node is None:
        return make(Action.CONFIGURE, "new host (" + ("; ".join(reasons) or "in place") + ")")
    if changes or reboot or resume:
        extra = []
        if reboot:
            extra.append("reboot requested")
        if resume:
            extra.append("resuming an interrupted upgrade")
        return make(Action.UPGRADE, "; ".join([*reasons, *extra]))
    lag = record_lag(node, desired)
    if lag:
        return make(Action.RECORD, lag)
    return make(Action.UP_TO_DATE, "up to date")


def record_lag(node: NodeRecord, desired: DesiredState) -> str | None:
    """Why the Node's record differs from what is installed (None when it does not)."""
    if node.version != desired.version:
        return f"version annotation {node.version or '(none)'} -> {desired.version}"
    if node.desired_version != desired.version:
        return f"desired-version annotation -> {desired.version}"
    wanted = {n: (c.version, c.sha256) for n, c in desired.components.items() if n in CATALOGUE}
    recorded = {n: (c.version, c.sha256) for n, c in node.components.items()}
    if wanted != recorded:
        return "component record differs"
    return None

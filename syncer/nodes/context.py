"""What one round of the node stage shares between its hosts, and how a host's run ends.

:class:`StageContext` is built once per round by :mod:`syncer.nodes.stage` and handed to
every host's run (:mod:`syncer.nodes.configure`), removal (:mod:`syncer.nodes.deconfigure`)
and rollback (:mod:`syncer.nodes.rollback`): the API client, the desired state as hosts
see it and as committed, the cluster facts and managed files of the round, the SSH key
and host-key pins, the rollout lock, the payloads fetched before any host was touched,
and the bounds of every wait.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from syncer.cluster.client import ApiError, KubeClient
from syncer.desired import ComponentVersion, DesiredState
from syncer.nodes import annotations as node_meta
from syncer.nodes import csr as csr_approval
from syncer.nodes.clusterinfo import ClusterFacts
from syncer.nodes.drain import DrainOptions
from syncer.nodes.hostkeys import HostKeyStore, PinningPolicy
from syncer.nodes.inputs import Host, HostKind
from syncer.nodes.managedfiles import ManagedFile
from syncer.nodes.payloads import Payload, PayloadCache, PayloadError
from syncer.nodes.phases import PhaseWriter
from syncer.nodes.resolving import ReverseResolver, reverse_lookup
from syncer.nodes.services import ServiceFailed, Waits
from syncer.nodes.sharedreads import SharedList
from syncer.nodes.slots import RolloutLock
from syncer.nodes.ssh import HostSession, SshError, SshOptions
from syncer.nodes.status import Phase
from syncer.nodes.windows.keys import PrivateKey
from syncer.nodes.windows.vocabulary import CommandFailed


class StepFailed(Exception):
    """A step failed; the message is what the failure record and status show."""


class Interrupted(Exception):
    """Shutdown was requested at a safe point."""


@dataclass(frozen=True)
class Timeouts:
    """Bounds of the waits in the per-host flow (seconds). Defaults follow WMCO."""

    node_wait: float = 600.0  # a new host's Node to appear (CSRs approved meanwhile)
    ready_wait: float = 600.0  # Ready and the committed kubelet version
    network_wait: float = 600.0  # hybrid-overlay's network and the VIP endpoint
    service_wait: float = 120.0  # one service to reach RUNNING / STOPPED
    process_exit: int = 120  # wait-process-exit timeout, passed to the host
    poll: float = 1.0  # polling interval of the waits above
    slot_renew: float = 60.0  # how often held slots are renewed

    def waits(self, command_timeout: float) -> Waits:
        return Waits(self.service_wait, self.process_exit, command_timeout)


@dataclass
class StageContext:
    """Everything the per-host flow needs for one round, shared by all hosts."""

    api: KubeClient
    namespace: str
    desired: DesiredState  # as hosts see it (payloads.host_view)
    private_key: PrivateKey
    store: HostKeyStore
    lock: RolloutLock
    cache: PayloadCache
    cluster: ClusterFacts
    committed: Mapping[str, ComponentVersion] = field(default_factory=dict)  # as in Git
    managed: Mapping[str, ManagedFile] = field(default_factory=dict)  # the round's files
    payloads: dict[str, Payload] = field(default_factory=dict)  # sha256 -> payload
    # Where syncer's applied payloads came from (rollback's only source of URLs).
    payload_sources: dict[str, dict[str, str]] = field(default_factory=dict)
    ssh: SshOptions = field(default_factory=SshOptions)
    timeouts: Timeouts = field(default_factory=Timeouts)
    drain: DrainOptions | None = None
    reverse: ReverseResolver = reverse_lookup
    shutdown: threading.Event = field(default_factory=threading.Event)
    on_step: Callable[[str, str], None] = lambda address, step: None
    approve_machine_csrs: bool = False
    node_selector: str = node_meta.WINDOWS_NODES

    def __post_init__(self) -> None:
        # What joining hosts poll for, listed once per poll interval for all of them.
        self.windows_nodes: SharedList[node_meta.NodeRecord] = SharedList(
            lambda: node_meta.list_windows_nodes(self.api, self.node_selector),
            self.timeouts.poll)
        self.csrs: SharedList[dict[str, Any]] = SharedList(
            lambda: csr_approval.list_csrs(self.api, pending_only=True), self.timeouts.poll)
        # What hosts whose Node exists poll for: only a serving CSR can still be theirs
        # (a client CSR for an existing Node is never approved), and the client CSRs of
        # every join stay in the cluster until its CSR cleaner removes them.
        self.serving_csrs: SharedList[dict[str, Any]] = SharedList(
            lambda: csr_approval.list_csrs(self.api, csr_approval.SERVING_SIGNER),
            self.timeouts.poll)
        # Each host's step on its Node, written behind the host (closed by the stage).
        self.phases = PhaseWriter(self.api)

    def approves_csrs(self, host: Host) -> bool:
        """Whether syncer approves the host's kubelet CSRs: a BYOH host's (Machines'
        belong to the cluster's machine approver unless ``approve_machine_csrs``)."""
        return host.kind is HostKind.BYOH or self.approve_machine_csrs

    def open_session(self, host: Host, node_name: str | None) -> HostSession:
        policy = PinningPolicy(
            self.store,
            host.address,
            node_name=node_name,
            git_key=host.pinned_host_key,
            policy=self.desired.nodes.host_key_policy,
        )
        options = replace(self.ssh, port=self.desired.nodes.ssh_port)
        return HostSession(
            host.connect_address, host.username, self.private_key.pkey, policy, options,
            cancel=None,
        )

    @property
    def waits(self) -> Waits:
        return self.timeouts.waits(self.ssh.command_timeout)


@dataclass
class HostOutcome:
    """How one host's run ended."""

    address: str
    node_name: str | None
    ok: bool
    phase: Phase  # UP_TO_DATE, FAILED, ROLLED_BACK or INTERRUPTED
    step: str | None = None  # the failing (or interrupted) step
    error: str | None = None
    rolled_back: bool = False
    uploads: int = 0
    commands: int = 0
    started: float = 0.0
    finished: float = 0.0


def describe_error(err: BaseException) -> str:
    """One line for a failure record: what went wrong, without a traceback."""
    if isinstance(err, (StepFailed, SshError, PayloadError, ServiceFailed)):
        return str(err)
    if isinstance(err, CommandFailed):
        return f"{err.entry}: Win32 error {err.code}: {err.message}"
    if isinstance(err, ApiError):
        return f"Kubernetes API: {err}"
    text = str(err)
    return f"{type(err).__name__}: {text}" if text else type(err).__name__

"""The per-host state machine: configure or upgrade one Windows host, step by step.

Steps, in order (each named, each recorded before it runs — Node annotations
``syncer.io/phase`` and ``syncer.io/since`` when the host has a Node, the rollout's progress
and status otherwise — so a restarted controller knows where a host was)::

    lock -> cordon -> drain -> transfer -> stop-services -> replace -> services
         -> bootstrap -> reboot -> start -> verify -> annotate -> uncordon -> release

(``probe`` happened before, in :mod:`syncer.nodes.probe`; the rollout took the slot.)

- **lock**: label the Node ``upgrading=true`` and set ``desired-version`` (a new host has
  no Node yet; its slot in the rollout Lease is what holds its place).
- **cordon**, **drain**: :mod:`syncer.nodes.drain` (Eviction API, PDBs respected,
  DaemonSet pods ignored, emptyDir data deleted, ``rollout.drainTimeout``).
- **transfer**: every payload that differs is uploaded to its content-addressed staging
  path *while the services still run* (:mod:`syncer.nodes.windows.layout`); a staged file the
  probe already found intact is not sent again. The payload bytes were verified against
  the committed SHA-256 before the rollout touched any host (:mod:`syncer.nodes.payloads`)
  and the upload is verified again on the host.
- **stop-services**: the services of changed components and everything that depends on
  them, in reverse dependency order; after each, wait until its process has exited (a
  binary still held by an exiting process cannot be replaced — WMCO learned this).
- **replace**: move staged files into place; expand archives with ``tar -xzf``.
- **services**: create or update each service (binary path and arguments, dependencies,
  ``OpenShift managed (syncer) <component>`` description, restart on failure).
- **bootstrap** (new hosts): delete ``C:\\var\\lib\\cni`` (stale IPAM state), write the
  bootstrap kubeconfig and CAs (:mod:`syncer.nodes.kubeconfig`) and ``kubelet.conf``.
- **reboot** (only when the Node carries WMCO's ``reboot-required=true``): see
  :meth:`syncer.nodes.ssh.HostSession.reboot`.
- **start**: in dependency order, each until RUNNING (the next one needs it running).
- **verify**: services running; for a new host, approve its kubelet's CSRs
  (:mod:`syncer.nodes.csr`, reverse DNS with the host name read over SSH as fallback)
  while waiting (bounded) for the Node with the host's IP; then the Node must be Ready and
  report the committed kubelet version.
- **annotate**: WMCO's ``version``/``desired-version``/``pub-key-hash``/``username``,
  syncer's component record (with payload URLs, for rollbacks), labels.
- **uncordon**, **release**: make the Node schedulable, drop ``upgrading``, give the slot
  back.

**Shutdown** (:attr:`StageContext.shutdown`) is honoured between steps, except between
``stop-services`` and ``start``: a host is never left with its services stopped because
the controller was asked to stop. An interrupted host keeps its slot; the next controller
resumes it before starting any other host.

**Failure** stops at the failing step: the Node stays cordoned (and labelled
``upgrading``), the step and error are recorded (:meth:`RolloutLock.record_failure`), and
the failure counts against ``maxUnavailable`` until fixed. With ``onFailure: rollback``
the previous component set (from the Node's component record; payloads from the cache, or
fetched again from their recorded URLs) is put back with the same steps, and if the host
comes back healthy it is uncordoned — the failure record stays, so the rollout still
halts and says why.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from syncer import names
from syncer.cluster.client import ApiError, KubeClient
from syncer.cluster.objects import now
from syncer.components import CATALOGUE, PayloadKind, start_order
from syncer.nodes import annotations as node_meta
from syncer.nodes import csr as csr_approval
from syncer.nodes import drain as draining
from syncer.nodes.annotations import ComponentRecord, ConfiguredRecord, NodeRecord
from syncer.nodes.hostkeys import HostKeyStore, PinningPolicy
from syncer.nodes.hostplan import (
    Action,
    ComponentChange,
    HostPlan,
    config_differs,
    plan_host,
    probe_files,
    probe_services,
)
from syncer.nodes.inputs import ComponentVersion, DesiredState, Host, HostKind
from syncer.nodes.kubeconfig import BootstrapFiles
from syncer.nodes.payloads import Payload, PayloadCache, PayloadError
from syncer.nodes.probe import HostFacts, inventory, probe_host
from syncer.nodes.resolving import ReverseResolver, reverse_lookup
from syncer.nodes.slots import RolloutLock
from syncer.nodes.ssh import HostSession, SshError, SshOptions
from syncer.nodes.status import Phase
from syncer.nodes.windows import vocabulary
from syncer.nodes.windows.keys import PrivateKey
from syncer.nodes.windows.layout import (
    CERT_DIR,
    KUBELET_CONFIG,
    LOG_ROOT,
    PAYLOADS_DIR,
    STAGING_DIR,
    ServiceSpec,
    dependents_closure,
    installed_path,
    kubelet_config,
    managed_components,
    process_name,
    service_spec,
)
from syncer.nodes.windows.vocabulary import CommandFailed, ServiceState

log = logging.getLogger(__name__)

STEPS = (
    "probe",
    "lock",
    "cordon",
    "drain",
    "transfer",
    "stop-services",
    "replace",
    "services",
    "bootstrap",
    "reboot",
    "start",
    "verify",
    "annotate",
    "uncordon",
    "release",
)
# Between these (inclusive of the first, exclusive of the last) a shutdown request waits.
CRITICAL_FROM, CRITICAL_UNTIL = "stop-services", "verify"


class StepFailed(Exception):
    """A step failed; the message is what the failure record and status show."""


class Interrupted(Exception):
    """Shutdown was requested at a safe point."""


@dataclass(frozen=True)
class Timeouts:
    """Bounds of the waits in the per-host flow (seconds). Defaults follow WMCO."""

    node_wait: float = 600.0  # a new host's Node to appear (CSRs approved meanwhile)
    ready_wait: float = 600.0  # Ready and the committed kubelet version
    service_wait: float = 120.0  # one service to reach RUNNING / STOPPED
    process_exit: int = 120  # wait-process-exit timeout, passed to the host
    poll: float = 1.0  # polling interval of the waits above
    slot_renew: float = 60.0  # how often held slots are renewed


@dataclass
class StageContext:
    """Everything the per-host flow needs for one round, shared by all hosts."""

    api: KubeClient
    namespace: str
    desired: DesiredState
    private_key: PrivateKey
    store: HostKeyStore
    lock: RolloutLock
    cache: PayloadCache
    payloads: dict[str, Payload] = field(default_factory=dict)  # sha256 -> payload
    ssh: SshOptions = field(default_factory=SshOptions)
    timeouts: Timeouts = field(default_factory=Timeouts)
    drain: draining.DrainOptions | None = None
    bootstrap: Callable[[], BootstrapFiles] | None = None
    reverse: ReverseResolver = reverse_lookup
    shutdown: threading.Event = field(default_factory=threading.Event)
    on_step: Callable[[str, str], None] = lambda address, step: None
    approve_machine_csrs: bool = False
    node_selector: str = node_meta.WINDOWS_NODES

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


class HostRun:
    """One host's pass through the steps (see the module docstring)."""

    def __init__(self, ctx: StageContext, plan: HostPlan) -> None:
        assert plan.identity is not None and plan.facts is not None
        self.ctx = ctx
        self.plan = plan
        self.host = plan.host
        self.facts: HostFacts = plan.facts
        self.node_name: str | None = plan.node.name if plan.node else None
        self.new_host = plan.node is None
        self.step = "lock"
        self.critical = False
        self.session: HostSession | None = None
        self.uploads = 0

    # --- driver ---------------------------------------------------------------------------
    def prepare(self) -> None:
        """Before the host has a slot: connect and upload its payloads to their staging
        paths. Nothing the host runs is touched (no cordon, no service), so this may
        overlap other hosts' upgrades; it takes the connect and the uploads out of the
        time the host is unavailable. Any failure here is left for :meth:`run` to meet
        again and record."""
        try:
            session = self.ctx.open_session(self.host, self.node_name)
            session.connect()
            self.session = session
            self._transfer(self.plan.transfers)
        except Exception as err:
            log.info("%s: staging ahead of the slot failed (%s); the upgrade will retry",
                     self.host.address, _message(err))
            self.discard()

    def discard(self) -> None:
        """Close a session :meth:`prepare` left open (the host will not run now)."""
        session, self.session = self.session, None
        if session is not None:
            session.close()

    def run(self) -> HostOutcome:
        started = time.time()
        outcome = HostOutcome(self.host.address, self.node_name, False, Phase.FAILED,
                              started=started)
        try:
            session = self.session or self.ctx.open_session(self.host, self.node_name)
            with session:
                self.session = session
                try:
                    self._flow()
                finally:
                    outcome.commands = session.commands_run
            outcome.ok, outcome.phase = True, Phase.UP_TO_DATE
        except Interrupted:
            outcome.phase, outcome.step = Phase.INTERRUPTED, self.step
            log.info("%s: stopped before step %s (shutdown)", self.host.address, self.step)
        except Exception as err:  # every failure is recorded, whatever its type
            outcome.step = self.step
            outcome.error = _message(err)
            log.warning("%s: failed at step %s: %s", self.host.address, self.step, outcome.error)
            self._record_failure(outcome)
        finally:
            self.session = None
        outcome.node_name = self.node_name
        outcome.uploads = self.uploads
        outcome.finished = time.time()
        return outcome

    def _enter(self, step: str) -> None:
        if not self.critical and self.ctx.shutdown.is_set():
            raise Interrupted(step)
        self.step = step
        if step == CRITICAL_FROM:
            self.critical = True
        elif step == CRITICAL_UNTIL:
            self.critical = False
        self.ctx.on_step(self.host.address, step)
        if self.node_name is not None:
            node_meta.set_phase(self.ctx.api, self.node_name, step)

    def _flow(self) -> None:
        plan, ctx = self.plan, self.ctx
        restart = self._restart_set()
        self._enter("lock")
        if self.node_name is not None:
            node_meta.patch_node_metadata(
                ctx.api,
                self.node_name,
                labels={names.LABEL_UPGRADING: "true"},
                annotations={names.ANNOTATION_DESIRED_VERSION: ctx.desired.version},
            )
            self._enter("cordon")
            draining.cordon(ctx.api, self.node_name)
            self._enter("drain")
            options = ctx.drain or draining.DrainOptions()
            options = replace(options, timeout=ctx.desired.rollout.drain_seconds)
            result = draining.drain(ctx.api, self.node_name, options)
            if not result.ok:
                raise StepFailed(result.message)
        self._enter("transfer")
        self._transfer(plan.transfers)
        self._enter("stop-services")
        self._stop_services(restart)
        self._enter("replace")
        self._replace(plan.transfers)
        self._enter("services")
        self._configure_services(restart)
        if self.new_host:
            self._enter("bootstrap")
            self._bootstrap()
        if plan.reboot:
            self._enter("reboot")
            self._session().reboot()
        self._enter("start")
        self._start_services(restart)
        self._enter("verify")
        self._verify()
        self._enter("annotate")
        self._annotate()
        self._enter("uncordon")
        assert self.node_name is not None
        draining.uncordon(ctx.api, self.node_name)
        self._enter("release")
        node_meta.patch_node_metadata(
            ctx.api,
            self.node_name,
            labels={names.LABEL_UPGRADING: None},
            annotations={
                names.ANNOTATION_PHASE: names.PHASE_CONFIGURED,
                names.ANNOTATION_SINCE: now(),
            },
        )
        ctx.lock.release(self.host.address)

    def _session(self) -> HostSession:
        assert self.session is not None
        return self.session

    def _run(self, command: str, entry: str) -> vocabulary.CommandResult:
        result = self._session().run(command)
        vocabulary.check_done(result, entry)
        return result

    # --- steps ----------------------------------------------------------------------------
    def _restart_set(self) -> list[str]:
        """Components whose services stop and start: the changed ones and their
        dependents, in start order."""
        present = managed_components(list(self.ctx.desired.components))
        changed = {c.name for c in self.plan.changes}
        if self.plan.reboot or self.new_host:
            changed |= {c for c in present if CATALOGUE[c].service}
        closure = dependents_closure(changed, present)
        return [c for c in start_order(sorted(closure)) if CATALOGUE[c].service]

    def _transfer(self, changes: list[ComponentChange]) -> None:
        if not changes:
            return
        session = self._session()
        self._run(vocabulary.make_directory(STAGING_DIR), "make-directory")
        for change in changes:
            sha = change.desired.sha256
            if self.facts.files.get(change.staged) == sha:
                continue  # uploaded by an earlier, interrupted run
            payload = self.ctx.payloads.get(sha)
            if payload is None:
                raise StepFailed(f"payload {change.name}: not fetched before the rollout")
            session.upload(payload.path, change.staged, sha)
            self.facts.files[change.staged] = sha
            self.uploads += 1

    def _stop_services(self, restart: list[str]) -> None:
        session = self._session()
        for name in reversed(restart):
            component = CATALOGUE[name]
            assert component.service is not None
            if self.facts.services.get(component.service) is None:
                continue
            self._stop_one(component.service)
            process = process_name(component)
            if process is not None:
                # Its process must be gone before its binary is replaced (a file held by
                # an exiting process cannot be; WMCO learned this the hard way).
                gone = vocabulary.parse_wait_process_exit(
                    session.run(
                        vocabulary.wait_process_exit(process, self.ctx.timeouts.process_exit),
                        timeout=self.ctx.timeouts.process_exit + self.ctx.ssh.command_timeout,
                    )
                )
                if not gone:
                    raise StepFailed(
                        f"process {process} of service {component.service} still runs "
                        f"{self.ctx.timeouts.process_exit}s after the service stopped"
                    )
            self._wait_state(component.service, ServiceState.STOPPED)

    def _stop_one(self, service: str) -> None:
        deadline = time.monotonic() + self.ctx.timeouts.service_wait
        session = self._session()
        while True:
            result = session.run(vocabulary.sc_stop(service))
            if result.exit_code in (0, vocabulary.ERROR_SERVICE_NOT_ACTIVE):
                break
            if result.exit_code != vocabulary.ERROR_SERVICE_CANNOT_ACCEPT_CTRL:
                raise CommandFailed(f"sc stop {service}", result)
            if time.monotonic() > deadline:
                raise StepFailed(f"service {service} did not accept a stop request")
            time.sleep(self.ctx.timeouts.poll)  # start or stop pending: try again

    def _wait_state(self, service: str, want: ServiceState) -> None:
        deadline = time.monotonic() + self.ctx.timeouts.service_wait
        delay = min(0.02, self.ctx.timeouts.poll)
        while True:
            status = vocabulary.parse_sc_status(self._session().run(vocabulary.sc_query(service)))
            if status.state is want:
                return
            if want is ServiceState.RUNNING and status.state is ServiceState.STOPPED:
                raise StepFailed(
                    f"service {service} stopped after start (exit code {status.win32_exit_code})"
                )
            if time.monotonic() > deadline:
                raise StepFailed(
                    f"service {service} is {status.state.name} after "
                    f"{self.ctx.timeouts.service_wait:.0f}s, expected {want.name}"
                )
            time.sleep(delay)
            delay = min(delay * 2, self.ctx.timeouts.poll)

    def _replace(self, changes: list[ComponentChange]) -> None:
        for change in start_order([c.name for c in changes]):
            c = CATALOGUE[change]
            staged = next(x.staged for x in changes if x.name == change)
            try:
                if c.kind is PayloadKind.ARCHIVE:
                    self._run(vocabulary.make_directory(c.target), "make-directory")
                    self._run(vocabulary.expand_archive(staged, c.target), "expand-archive")
                    self._run(vocabulary.make_directory(PAYLOADS_DIR), "make-directory")
                    self._run(vocabulary.move_file(staged, installed_path(change)), "move-file")
                else:
                    self._run(vocabulary.move_file(staged, c.target), "move-file")
            except CommandFailed as err:
                if err.code in (vocabulary.ERROR_SHARING_VIOLATION, vocabulary.ERROR_ACCESS_DENIED):
                    raise StepFailed(
                        f"cannot replace {c.target}: still in use by a process "
                        f"(Win32 error {err.code}): {err.message}"
                    ) from None
                raise

    def _configure_services(self, restart: list[str]) -> None:
        assert self.plan.identity is not None
        for name in restart:
            spec = service_spec(name, self.plan.identity)
            if spec is None:
                continue
            info = self.facts.services.get(spec.name)
            if info is not None and config_differs(spec, info) is None:
                continue  # exists exactly as wanted: only restarted
            self._ensure_service(spec)

    def _ensure_service(self, spec: ServiceSpec) -> None:
        info = self.facts.services.get(spec.name)
        session = self._session()
        if info is None:
            self._run(vocabulary.make_directory(f"{LOG_ROOT}\\{spec.component}"), "make-directory")
            result = session.run(
                vocabulary.sc_create(spec.name, spec.binary_path, depends_on=spec.depends_on)
            )
            if result.exit_code == vocabulary.ERROR_SERVICE_EXISTS:
                # Created meanwhile (an earlier, interrupted run): configure it.
                self._config(spec)
            else:
                vocabulary.parse_sc_done(result, "sc create")
        else:
            self._config(spec)
        vocabulary.parse_sc_done(
            session.run(vocabulary.sc_description(spec.name, spec.description)), "sc description"
        )
        vocabulary.parse_sc_done(session.run(vocabulary.sc_failure(spec.name)), "sc failure")

    def _config(self, spec: ServiceSpec) -> None:
        result = self._session().run(
            vocabulary.sc_config(
                spec.name,
                binary_path=spec.binary_path,
                start=vocabulary.StartType.AUTO,
                depends_on=spec.depends_on,
            )
        )
        vocabulary.parse_sc_done(result, "sc config")

    def _bootstrap(self) -> None:
        session = self._session()
        self._run(vocabulary.remove_cni_state(), "remove-cni-state")
        if self.ctx.bootstrap is None:
            raise StepFailed("no bootstrap credentials available for a new host")
        files = dict(self.ctx.bootstrap().files())
        files[KUBELET_CONFIG] = kubelet_config()
        self._run(vocabulary.make_directory(CERT_DIR), "make-directory")
        for path, content in files.items():
            session.upload(content, path, _sha256(content))

    def _start_services(self, restart: list[str]) -> None:
        session = self._session()
        for name in restart:
            service = CATALOGUE[name].service
            assert service is not None
            result = session.run(vocabulary.sc_start(service))
            if result.exit_code not in (0, vocabulary.ERROR_SERVICE_ALREADY_RUNNING):
                raise StepFailed(
                    f"service {service} did not start: Win32 error {result.exit_code}: "
                    f"{vocabulary.error_text(result)}"
                )
            self._wait_state(service, ServiceState.RUNNING)

    def _verify(self) -> None:
        ctx = self.ctx
        facts = inventory(
            self._session(),
            probe_files(ctx.desired),
            probe_services(ctx.desired),
            self.facts.shell,
        )
        self.facts = facts
        for name in managed_components(list(ctx.desired.components)):
            c = CATALOGUE[name]
            if facts.files.get(installed_path(name)) != ctx.desired.components[name].sha256:
                raise StepFailed(f"{installed_path(name)} does not have the committed sha256")
            if c.service is None:
                continue
            info = facts.services.get(c.service)
            if info is None or info.state is not ServiceState.RUNNING:
                state = "missing" if info is None else info.state.name
                raise StepFailed(f"service {c.service} is {state} after start")
        node = self._wait_for_node()
        if self.node_name is None:
            ctx.lock.renew(self.host.address, node.name)  # record the new Node on the slot
        self.node_name = node.name
        ctx.store.move_to_node(self.host.address, node.name)
        want = ctx.desired.kubelet_version
        deadline = time.monotonic() + ctx.timeouts.ready_wait
        while True:
            if node.ready and (want is None or node.kubelet_version == want):
                return
            if time.monotonic() > deadline:
                raise StepFailed(
                    f"Node {node.name} is {'Ready' if node.ready else 'not Ready'} with kubelet "
                    f"{node.kubelet_version or '(unknown)'} after "
                    f"{ctx.timeouts.ready_wait:.0f}s; expected Ready with {want}"
                )
            time.sleep(ctx.timeouts.poll)
            fresh = node_meta.read_node(ctx.api, node.name)
            if fresh is None:
                raise StepFailed(f"Node {node.name} disappeared")
            node = fresh

    def _wait_for_node(self) -> NodeRecord:
        """The host's Node: the known one, or (new host) the Node with the host's IP,
        approving its kubelet's CSRs while waiting."""
        ctx = self.ctx
        if self.node_name is not None:
            node = node_meta.read_node(ctx.api, self.node_name)
            if node is None:
                raise StepFailed(f"Node {self.node_name} disappeared")
            return node
        ip = self.host.connect_address
        approve = self.host.kind is HostKind.BYOH or ctx.approve_machine_csrs
        deadline = time.monotonic() + ctx.timeouts.node_wait
        while True:
            if approve:
                csr_approval.approve_byoh_csrs(
                    ctx.api,
                    [self.host.address] if self.host.address == ip else [self.host.address, ip],
                    {self.host.address: self.facts.hostname, ip: self.facts.hostname},
                    reverse=ctx.reverse,
                )
            for node in node_meta.list_windows_nodes(ctx.api, ctx.node_selector):
                if node.has_address(ip) or (
                    self.host.address != ip and node.has_address(self.host.address)
                ):
                    return node
            if time.monotonic() > deadline:
                raise StepFailed(
                    f"no Node with address {ip} appeared within {ctx.timeouts.node_wait:.0f}s "
                    f"(host name {self.facts.hostname})"
                )
            time.sleep(ctx.timeouts.poll)

    def _annotate(self) -> None:
        ctx = self.ctx
        assert self.node_name is not None
        node_meta.mark_configured(ctx.api, self.node_name, _configured_record(ctx, self.host))
        labels: dict[str, str | None] = {names.LABEL_WORKER_ROLE: ""}
        labels.update(dict(self.host.labels))
        annotations: dict[str, str | None] = {names.ANNOTATION_SHELL: str(self.facts.shell)}
        if self.plan.reboot:
            annotations[names.ANNOTATION_REBOOT_REQUIRED] = None
        node_meta.patch_node_metadata(
            ctx.api, self.node_name, labels=labels, annotations=annotations
        )
        # mark_configured cleared the Node's failure record; drop a host-state one too.
        ctx.lock.clear_failure(self.host.address)

    # --- failure ------------------------------------------------------------------------
    def _record_failure(self, outcome: HostOutcome) -> None:
        ctx = self.ctx
        error = outcome.error or "unknown error"
        try:
            if ctx.desired.rollout.on_failure == "rollback" and self.plan.node is not None:
                note = self._rollback()
                if note is not None:
                    outcome.rolled_back = True
                    outcome.phase = Phase.ROLLED_BACK
                    error = f"{error} (rolled back: {note})"
                else:
                    error = f"{error} (not rolled back: no previous component set recorded)"
        except Exception as err:
            error = f"{error} (rollback failed: {_message(err)})"
            log.warning("%s: rollback failed: %s", self.host.address, _message(err))
        outcome.error = error
        try:
            ctx.lock.record_failure(self.host.address, self.node_name, outcome.step or "", error)
            if self.node_name is not None and outcome.rolled_back:
                node_meta.patch_node_metadata(
                    ctx.api, self.node_name,
                    annotations={names.ANNOTATION_PHASE: names.PHASE_ROLLED_BACK},
                )
            # The failure record holds the host's place against maxUnavailable from now
            # on; the slot goes back so a restarted controller does not "resume" it.
            ctx.lock.release(self.host.address)
        except ApiError as err:
            log.warning("%s: cannot record the failure: %s", self.host.address, err)

    def _rollback(self) -> str | None:
        """Put the previous component set back (see the module docstring). Returns a note
        for the failure record, or None when there is nothing to roll back to."""
        ctx, node = self.ctx, self.plan.node
        assert node is not None
        previous = node.components
        if not previous or not node.version:
            return None
        components: dict[str, ComponentVersion] = {}
        for name, rec in previous.items():
            if name not in CATALOGUE:
                continue
            components[name] = ComponentVersion(name, rec.version, rec.url, rec.sha256)
        for name, want in components.items():
            if want.sha256 in ctx.payloads:
                continue
            try:
                ctx.payloads[want.sha256] = ctx.cache.fetch(
                    name, want.version, want.url, want.sha256
                )
            except PayloadError as err:
                raise StepFailed(f"previous payload unavailable: {err}") from None
        desired = replace(ctx.desired, version=node.version, components=components)
        back = StageContext(**{**ctx.__dict__, "desired": desired})
        back.shutdown = threading.Event()  # a rollback is finished even during shutdown
        fresh = node_meta.read_node(ctx.api, node.name) or node
        probe = probe_host(
            self.host.address,
            lambda: back.open_session(self.host, node.name),
            probe_files(desired),
            probe_services(desired),
            self.facts.shell,
        )
        # Plan against the previous set; the failure record must not block this plan.
        clean = replace(
            fresh,
            annotations={
                k: v
                for k, v in fresh.annotations.items()
                if k not in (names.ANNOTATION_FAILED_STEP, names.ANNOTATION_PHASE)
            },
            labels={k: v for k, v in fresh.labels.items() if k != names.LABEL_UPGRADING},
        )
        plan = plan_host(self.host, desired, probe, clean)
        if plan.action is Action.BLOCKED:
            raise StepFailed(f"cannot plan the rollback: {plan.reason}")
        run = _RollbackRun(back, plan)
        run.execute()
        versions = ", ".join(f"{n} {c.version}" for n, c in sorted(components.items()))
        return f"restored version {node.version} ({versions})"


class _RollbackRun(HostRun):
    """The restore half of a rollback: the host is already cordoned and drained."""

    def execute(self) -> None:
        with self.ctx.open_session(self.host, self.node_name) as session:
            self.session = session
            restart = self._restart_set()
            self._enter("transfer")
            self._transfer(self.plan.transfers)
            self._enter("stop-services")
            self._stop_services(restart)
            self._enter("replace")
            self._replace(self.plan.transfers)
            self._enter("services")
            self._configure_services(restart)
            self._enter("start")
            self._start_services(restart)
            self._enter("verify")
            self._verify()
        assert self.node_name is not None
        draining.uncordon(self.ctx.api, self.node_name)
        node_meta.set_upgrading(self.ctx.api, self.node_name, False)


def record_only(ctx: StageContext, plan: HostPlan) -> None:
    """The ``record`` action: the host matches; bring the Node's record up to date
    (no cordon, no drain, nothing sent to the host)."""
    assert plan.node is not None
    node_meta.mark_configured(ctx.api, plan.node.name, _configured_record(ctx, plan.host))


def _configured_record(ctx: StageContext, host: Host) -> ConfiguredRecord:
    """What the Node of ``host`` records once it runs the committed version."""
    return ConfiguredRecord(
        version=ctx.desired.version,
        pub_key_hash=ctx.private_key.pub_key_hash,
        username=host.username,
        address=host.address,
        components=component_records(ctx.desired.components),
        byoh=host.kind is HostKind.BYOH,
    )


def component_records(components: Mapping[str, ComponentVersion]) -> dict[str, ComponentRecord]:
    return {
        name: ComponentRecord(c.version, c.sha256, c.url)
        for name, c in components.items()
        if name in CATALOGUE
    }


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _message(err: BaseException) -> str:
    if isinstance(err, (StepFailed, SshError, PayloadError)):
        return str(err)
    if isinstance(err, CommandFailed):
        return f"{err.entry}: Win32 error {err.code}: {err.message}"
    if isinstance(err, ApiError):
        return f"Kubernetes API: {err}"
    text = str(err)
    return f"{type(err).__name__}: {text}" if text else type(err).__name__

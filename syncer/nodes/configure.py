"""The per-host state machine: configure or upgrade one Windows host, step by step.

Steps, in order (each named and reported to the rollout's progress and status as it
begins; on the host's Node, annotations ``syncer.io/phase`` and ``syncer.io/since``, once
the step has lasted half a second, :mod:`syncer.nodes.phases`)::

    lock -> drain -> prepare -> transfer -> stop-services -> replace -> files -> services
         -> reboot -> start -> join -> network -> verify -> annotate -> release

(``probe`` happened before, in :mod:`syncer.nodes.probe`; the rollout took the slot.)

- **lock**: label the Node ``upgrading=true``, set ``desired-version`` and cordon it, in
  one write (a new host has no Node yet; its slot in the rollout Lease is what holds its
  place).
- **drain**: :mod:`syncer.nodes.drain` (Eviction API, PDBs respected, DaemonSet pods
  ignored, emptyDir data deleted, ``rollout.drainTimeout``).
- **prepare** (when needed): enable the Containers feature (no HNS, no HCS without it)
  and rename a vSphere/Nutanix Machine to its Machine's name, then reboot once (WMCO
  ``ensureHostNameAndContainersFeature``).
- **transfer**: every payload that differs is uploaded to its content-addressed staging
  path *while the services still run* (:mod:`syncer.nodes.windows.layout`); a staged file
  the probe already found intact is not sent again. The payload bytes were verified
  against the committed SHA-256 before the rollout touched any host
  (:mod:`syncer.nodes.payloads`) and the upload is verified again on the host.
- **stop-services**: services described ``OpenShift managed`` that the Fleet does not run
  (WMCO's ``windows-instance-config-daemon`` when adopting its node) are stopped and
  deleted; then the services of changed components and everything that depends on them,
  in reverse dependency order, each until STOPPED, then until their processes have
  exited (the exits overlap; nothing is replaced before they are all gone); when containerd's
  files are replaced, the containerd shims of the pods a drain leaves (DaemonSets) are
  ended too, as WMCO's cleanup does: they hold ``containerd-shim-runhcs-v1.exe``.
- **replace**: move staged files into place; expand archives with ``tar.exe``, leading
  directories stripped so the binary lands at the target.
- **files**: the managed files that differ (:mod:`syncer.nodes.managedfiles`), and the
  directories the services need; a new host's stale CNI state is removed first.
- **services**: create or update each service (:mod:`syncer.nodes.services`).
- **reboot** (only when the Node carries WMCO's ``reboot-required``): see
  :meth:`syncer.nodes.ssh.HostSession.reboot`.
- **start**: in dependency order, each until RUNNING, up to the kubelet; the services that
  need the kubelet's credentials or its Node (hybrid-overlay, kube-proxy,
  cloud-node-manager) wait for **join**.
- **join**: the host's Node, for a new host once it registers (its kubelet's CSRs
  approved meanwhile, :mod:`syncer.nodes.csr`, for BYOH hosts).
- **network** (:mod:`syncer.nodes.overlay`): hybrid-overlay running, its network and the
  VIP endpoint made, ``cni.conf`` and ``kube-proxy.conf`` written from them, kube-proxy
  running with them.
- **verify**: files and services as wanted; the Node Ready with the committed kubelet
  version (``v1.30.4`` also matches a build's ``v1.30.4+abc123``); for hosts whose CSRs
  syncer approves, the kubelet's serving certificate: in its certificate store already
  (a restarted kubelet keeps it and asks for none, while the cluster's CSR cleaner has
  long deleted the CSR it came from), or else its CSR approved.
- **annotate**: WMCO's ``version``/``desired-version``/``pub-key-hash``/``username``
  (encrypted, :mod:`syncer.nodes.usernames`), syncer's component record and labels; the
  same write makes the Node schedulable and drops ``upgrading``.
- **release**: give the slot back.

**Recording a step** on the Node costs an API round trip, and a host's slot is held
through all of them: a step whose own work is a Node write carries its phase in that
write (lock; annotate's, which says ``configured``), release writes only the rollout
Lease, and the other steps' phases are written behind the host, only for steps that last
(:mod:`syncer.nodes.phases`). So an upgrade whose steps are all quick writes its Node
twice. A restarted controller knows a host was mid-upgrade from its ``upgrading`` label
and its rollout slot.

**Shutdown** (:attr:`StageContext.shutdown`) is honoured between steps, except between
``stop-services`` and ``verify``: a host is never left with its services stopped because
the controller was asked to stop. An interrupted host keeps its slot; the next controller
resumes it before starting any other host.

**Failure** stops at the failing step: the Node stays cordoned (and labelled
``upgrading``), the step and error are recorded (:meth:`RolloutLock.record_failure`), and
the failure counts against ``maxUnavailable`` until fixed. With ``onFailure: rollback``
the rollout gives the run a recovery (:mod:`syncer.nodes.rollback`) that puts the
previous component set back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from syncer import names
from syncer.cluster.client import ApiError
from syncer.cluster.objects import now
from syncer.components import CATALOGUE, PayloadKind, start_order
from syncer.desired import ComponentVersion
from syncer.nodes import annotations as node_meta
from syncer.nodes import csr as csr_approval
from syncer.nodes import drain as draining
from syncer.nodes import managedfiles, overlay, usernames
from syncer.nodes.annotations import ComponentRecord, ConfiguredRecord, NodeRecord
from syncer.nodes.context import (
    HostOutcome,
    Interrupted,
    StageContext,
    StepFailed,
    describe_error,
)
from syncer.nodes.hostplan import (
    ComponentChange,
    HostPlan,
    config_differs,
    probe_files,
    probe_services,
)
from syncer.nodes.inputs import Host, HostKind
from syncer.nodes.managedfiles import runs_overlay
from syncer.nodes.probe import HostFacts, ProbeCommands, inventory
from syncer.nodes.services import Services
from syncer.nodes.ssh import HostSession
from syncer.nodes.status import Phase
from syncer.nodes.windows import vocabulary
from syncer.nodes.windows.layout import (
    CERT_DIR,
    CNI_CONFIG_DIR,
    KUBELET_SERVING_CERT,
    PAYLOADS_DIR,
    REGISTRIES_DIR,
    ROOT,
    SHIM_PROCESS,
    STAGING_DIR,
    dependents_closure,
    installed_path,
    log_dir,
    managed_components,
    process_name,
    service_spec,
)
from syncer.nodes.windows.vocabulary import CommandFailed, ServiceState

log = logging.getLogger(__name__)

# Between these (inclusive of the first, exclusive of the last) a shutdown request waits.
CRITICAL_FROM, CRITICAL_UNTIL = "stop-services", "verify"
# Services that need the kubelet's credentials or its Node: started after join.
AFTER_JOIN = ("hybrid-overlay-node", "kube-proxy", "cloud-node-manager")
# What a failed host's run calls to put it back (onFailure: rollback): a note for the
# failure record, or None when there is nothing to go back to.
Recovery = Callable[[StageContext, HostPlan, HostFacts], "str | None"]


class NotStarted(Exception):
    """The host's run ended before its first step: another host had failed."""


class StartGate:
    """Whether the rollout's hosts may still start: closed the moment one fails (or is
    interrupted). A host takes its first step, ``lock`` (the first that touches it),
    holding the gate, and a failure closes it holding the gate too; so no host starts
    after another has failed, however late its thread reached ``lock`` after its slot
    was granted."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        with self._lock:
            self._closed = True

    def enter(self, first_step: Callable[[], dict[str, str | None]]
              ) -> dict[str, str | None]:
        """``first_step()``, unless the gate is closed: :class:`NotStarted`."""
        with self._lock:
            if self._closed:
                raise NotStarted
            return first_step()


class HostRun:
    """One host's pass through the steps (see the module docstring)."""

    def __init__(self, ctx: StageContext, plan: HostPlan, recover: Recovery | None = None,
                 release: Callable[[str], object] | None = None,
                 gate: StartGate | None = None) -> None:
        """``release``: gives the slot back at the end (default :meth:`RolloutLock.release`;
        the rollout hands it to the next host in the same write). ``gate``: the
        rollout's; :meth:`run` raises :class:`NotStarted` when it is closed before the
        first step, and closes it the moment a step fails, before the failure is
        recorded."""
        assert plan.identity is not None and plan.facts is not None
        self.ctx = ctx
        self.recover = recover
        self.release = release or ctx.lock.release
        self.gate = gate
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
                     self.host.address, describe_error(err))
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
        except NotStarted:
            raise
        except Interrupted as stop:
            outcome.phase, outcome.step = Phase.INTERRUPTED, str(stop)  # the step not begun
            log.info("%s: stopped before step %s (shutdown)", self.host.address, stop)
        except Exception as err:  # every failure is recorded, whatever its type
            if self.gate is not None:
                self.gate.close()
            outcome.step = self.step
            outcome.error = describe_error(err)
            log.warning("%s: failed at step %s: %s", self.host.address, self.step, outcome.error)
            self._record_failure(outcome)
        finally:
            self.session = None
            self._settle()
        outcome.node_name = self.node_name
        outcome.uploads = self.uploads
        outcome.finished = time.time()
        return outcome

    def _enter(self, step: str, *, written_by_step: bool = False) -> dict[str, str | None]:
        """Begin ``step``: its phase annotations, written to the Node now — or, with
        ``written_by_step``, returned for the step's own Node write to carry."""
        if not self.critical and self.ctx.shutdown.is_set():
            raise Interrupted(step)
        self.step = step
        if step == CRITICAL_FROM:
            self.critical = True
        elif step == CRITICAL_UNTIL:
            self.critical = False
        self.ctx.on_step(self.host.address, step)
        since = now()
        if self.node_name is not None:
            if written_by_step:  # the step's own write carries it: nothing may overtake it
                self.ctx.phases.settle(self.node_name)
            else:
                self.ctx.phases.post(self.node_name, step, since)
        return {names.ANNOTATION_PHASE: step, names.ANNOTATION_SINCE: since}

    def _flow(self) -> None:
        plan, ctx = self.plan, self.ctx
        restart = self._restart_set()

        def lock() -> dict[str, str | None]:
            return self._enter("lock", written_by_step=True)

        phase = self.gate.enter(lock) if self.gate is not None else lock()
        if self.node_name is not None:
            draining.cordon(ctx.api, self.node_name,
                            {names.ANNOTATION_DESIRED_VERSION: ctx.desired.version, **phase},
                            labels={names.LABEL_UPGRADING: "true"})
            self._enter("drain")
            options = ctx.drain or draining.DrainOptions()
            options = replace(options, timeout=ctx.desired.rollout.drain_seconds)
            result = draining.drain(ctx.api, self.node_name, options)
            if not result.ok:
                raise StepFailed(result.message)
        if plan.prepare:
            self._enter("prepare")
            self._prepare()
        self._apply(restart)
        self._enter("annotate", written_by_step=True)  # its write says "configured"
        self._annotate()
        self._enter("release", written_by_step=True)  # the Node says "configured" already
        self.release(self.host.address)

    def _apply(self, restart: list[str]) -> None:
        """transfer .. verify: what configuring, upgrading and restoring share."""
        plan, ctx = self.plan, self.ctx
        self._enter("transfer")
        self._transfer(plan.transfers)
        self._enter("stop-services")
        self._stop_services(restart)
        self._enter("replace")
        self._replace(plan.transfers)
        self._enter("files")
        self._write_files()
        self._enter("services")
        self._configure_services(restart)
        if plan.reboot:
            self._enter("reboot")
            self._session().reboot()
        self._enter("start")
        self._start([c for c in restart if c not in AFTER_JOIN])
        self._enter("join")
        self._join()
        after_join = [c for c in restart if c in AFTER_JOIN]
        if runs_overlay(ctx.desired.components):
            self._enter("network")
            self._network(restart)  # starts hybrid-overlay-node
            after_join = [c for c in after_join if c != overlay.HYBRID_OVERLAY]
        self._start(after_join)
        self._enter("verify")
        self._verify()

    def restore(self) -> None:
        """The restore half of a rollback: the host is already cordoned and drained."""
        with self.ctx.open_session(self.host, self.node_name) as session:
            self.session = session
            self._apply(self._restart_set())
        assert self.node_name is not None
        self._settle()
        draining.uncordon(self.ctx.api, self.node_name, labels={names.LABEL_UPGRADING: None})

    def _settle(self) -> None:
        """No phase of this host is written after this (:mod:`syncer.nodes.phases`)."""
        if self.node_name is not None:
            self.ctx.phases.settle(self.node_name)

    def _session(self) -> HostSession:
        assert self.session is not None
        return self.session

    def _services(self) -> Services:
        return Services(self._session(), self.ctx.waits)

    def _run(self, command: str, entry: str) -> vocabulary.CommandResult:
        result = self._session().run(command)
        vocabulary.check_done(result, entry)
        return result

    def _inventory(self) -> HostFacts:
        ctx = self.ctx
        commands = ProbeCommands.build(probe_files(ctx.desired, ctx.managed),
                                       probe_services(ctx.desired), ctx.cluster.platform)
        return inventory(self._session(), commands, self.facts.shell)

    def _digests(self, paths: list[str]) -> dict[str, str | None]:
        """The SHA-256 of ``paths`` on the host now (None: no such file)."""
        command = vocabulary.inventory(paths)
        return dict(vocabulary.parse_inventory(self._session().run(command)).files)

    def _files_and_services(self, *extra_files: str) -> HostFacts:
        """The inventory command alone, without node-facts: what ``verify`` checks (files,
        services, the kubelet's serving certificate). The node facts stay as last read;
        ``verify`` checks none of them."""
        ctx = self.ctx
        command = vocabulary.inventory([*probe_files(ctx.desired, ctx.managed), *extra_files],
                                       probe_services(ctx.desired))
        return self.facts.with_inventory(vocabulary.parse_inventory(self._session().run(command)))

    # --- steps ----------------------------------------------------------------------------
    def _restart_set(self) -> list[str]:
        """Components whose services stop and start: the changed ones (by payload,
        service definition or a file they read) and their dependents, in start order."""
        present = managed_components(list(self.ctx.desired.components))
        changed = {c.name for c in self.plan.changes}
        for f in self.plan.files:
            changed |= set(f.restarts) & set(present)
        if self.plan.reboot or self.plan.prepare or self.new_host:
            changed |= {c for c in present if CATALOGUE[c].service}
        closure = dependents_closure(changed, present)
        return [c for c in start_order(sorted(closure)) if CATALOGUE[c].service]

    def _prepare(self) -> None:
        """The Containers feature and the Machine's host name, then one reboot."""
        plan, session = self.plan, self._session()
        if plan.rename is not None:
            try:
                command = vocabulary.rename_computer(plan.rename)
            except ValueError as err:
                raise StepFailed(f"cannot rename the host to its Machine's name: {err} "
                                 "(keep Windows MachineSet names short)") from None
            self._run(command, "rename-computer")
        if plan.enable_containers:
            self._run(vocabulary.enable_containers(), "enable-containers")
        session.reboot()
        facts = self._inventory()
        if not facts.containers:
            raise StepFailed("the Containers feature is not enabled after a reboot")
        if plan.rename is not None and facts.hostname.lower() != plan.rename.lower():
            raise StepFailed(f"the host is still named {facts.hostname} after a reboot, "
                             f"not {plan.rename}")
        self.facts = facts

    def _transfer(self, changes: list[ComponentChange]) -> None:
        missing = [c for c in changes if self.facts.files.get(c.staged) != c.desired.sha256]
        if not missing:
            return  # staged ahead of the slot, or by an earlier, interrupted run
        session = self._session()
        self._run(vocabulary.make_directory(STAGING_DIR), "make-directory")
        for change in missing:
            sha = change.desired.sha256
            payload = self.ctx.payloads.get(sha)
            if payload is None:
                raise StepFailed(f"payload {change.name}: not fetched before the rollout")
            session.upload(payload.path, change.staged, sha)
            self.facts.files[change.staged] = sha
            self.uploads += 1

    def _stop_services(self, restart: list[str]) -> None:
        services = self._services()
        for service in self.plan.remove_services:
            services.stop(service)
            services.delete(service)
        stops: list[str] = []
        exiting: dict[str, str] = {}
        for name in reversed(restart):
            component = CATALOGUE[name]
            assert component.service is not None
            if self.facts.services.get(component.service) is None:
                continue
            stops.append(component.service)
            if (process := process_name(component)) is not None:
                exiting[process] = f"process {process} of service {component.service}"
        # A dependency may stop as soon as its dependents are STOPPED (Windows refuses it
        # only while they run, error 1051); their processes may still be exiting. So the
        # exits are awaited once every service is stopped, together; and all of it is one
        # command, which starts one PowerShell on the host, not four.
        if stops:
            services.stop_all(stops, exiting)
        if any(c.name == "containerd" for c in self.plan.transfers):
            # Pods a drain leaves (DaemonSets, mirror pods) keep their shim running, and
            # the shim holds C:\k\containerd\containerd-shim-runhcs-v1.exe.
            services.end_processes(SHIM_PROCESS)

    def _replace(self, changes: list[ComponentChange]) -> None:
        for name in start_order([c.name for c in changes]):
            c = CATALOGUE[name]
            change = next(x for x in changes if x.name == name)
            try:
                if c.kind is PayloadKind.ARCHIVE:
                    payload = self.ctx.payloads.get(change.desired.sha256)
                    strip = payload.strip if payload is not None else 0
                    self._run(vocabulary.make_directory(c.target), "make-directory")
                    self._run(vocabulary.expand_archive(change.staged, c.target, strip),
                              "expand-archive")
                    self._run(vocabulary.make_directory(PAYLOADS_DIR), "make-directory")
                    self._run(vocabulary.move_file(change.staged, installed_path(name)),
                              "move-file")
                else:
                    self._run(vocabulary.move_file(change.staged, c.target), "move-file")
            except CommandFailed as err:
                if err.code in (vocabulary.ERROR_SHARING_VIOLATION, vocabulary.ERROR_ACCESS_DENIED):
                    raise StepFailed(
                        f"cannot replace {c.target}: still in use by a process "
                        f"(Win32 error {err.code}): {err.message}"
                    ) from None
                raise

    def _write_files(self) -> None:
        session = self._session()
        if self.new_host:
            self._run(vocabulary.remove_cni_state(), "remove-cni-state")
        self._run(vocabulary.make_directory(ROOT, CERT_DIR.rstrip("\\"), CNI_CONFIG_DIR,
                                            REGISTRIES_DIR), "make-directory")
        for f in self.plan.files:
            managedfiles.write(session, f)
            self.facts.files[f.path] = f.sha256

    def _configure_services(self, restart: list[str]) -> None:
        plan = self.plan
        assert plan.identity is not None and plan.settings is not None
        services = self._services()
        specs = {name: spec for name in restart
                 if (spec := service_spec(name, plan.identity, plan.settings)) is not None}
        if specs:
            self._run(vocabulary.make_directory(*map(log_dir, specs)), "make-directory")
        for spec in specs.values():
            info = self.facts.services.get(spec.name)
            if info is not None and config_differs(spec, info) is None:
                continue  # exists exactly as wanted: only restarted
            services.ensure(spec, exists=info is not None)

    def _start(self, names_: list[str]) -> None:
        services = self._services()
        for name in names_:
            service = CATALOGUE[name].service
            assert service is not None
            services.start(service)

    def _join(self) -> None:
        node = self._wait_for_node()
        if self.node_name is None:
            self.ctx.lock.renew(self.host.address, node.name)  # the new Node on the slot
        self.node_name = node.name
        self.ctx.store.move_to_node(self.host.address, node.name)

    def _network(self, restart: list[str]) -> None:
        assert self.node_name is not None
        overlay.ensure(self.ctx, self._session(), self._services(), self.facts,
                       self.node_name, restart=restart, digests=self._digests)

    def _approve_csrs(self, listed: list[dict[str, Any]]) -> list[csr_approval.CsrDecision]:
        """Approve this host's pending kubelet CSRs among ``listed`` (one of the round's
        shared lists, :attr:`StageContext.csrs` or ``serving_csrs``, which an approval
        makes stale)."""
        ctx = self.ctx
        ip = self.host.connect_address
        addresses = [self.host.address] if self.host.address == ip else [self.host.address, ip]
        decisions = csr_approval.approve_byoh_csrs(
            ctx.api, addresses, {a: self.facts.hostname for a in addresses},
            reverse=ctx.reverse, bootstrapper=csr_approval.bootstrapper_user(ctx.namespace),
            listed=listed)
        if any(d.approved for d in decisions):
            ctx.csrs.stale()
            ctx.serving_csrs.stale()
        return decisions

    def _verify(self) -> None:
        ctx = self.ctx
        facts = self._files_and_services(KUBELET_SERVING_CERT)
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
        for f in ctx.managed.values():
            if facts.files.get(f.path) != f.sha256:
                raise StepFailed(f"{f.path} is not what syncer wrote")
        assert self.node_name is not None
        want = ctx.desired.kubelet_version
        deadline = time.monotonic() + ctx.timeouts.ready_wait
        # A kubelet without a serving certificate asks for one; wait for it to be approved.
        approves = ctx.approves_csrs(self.host)
        serving = not approves or facts.files.get(KUBELET_SERVING_CERT) is not None
        while True:
            if approves:
                csrs = ctx.serving_csrs.get()
                approved = self._approve_csrs(csrs)
                serving = (serving or csr_approval.serving_approved(csrs, self.node_name)
                           or any(d.approved and d.kind == "serving"
                                  and d.node_name == self.node_name for d in approved))
            node = node_meta.read_node(ctx.api, self.node_name)
            if node is None:
                raise StepFailed(f"Node {self.node_name} disappeared")
            version_ok = want is None or kubelet_matches(node.kubelet_version, want)
            if node.ready and version_ok and serving:
                return
            if time.monotonic() > deadline:
                what = ("its serving certificate is not approved" if node.ready and version_ok
                        else f"it is {'Ready' if node.ready else 'not Ready'} with kubelet "
                             f"{node.kubelet_version or '(unknown)'}; expected Ready with {want}")
                raise StepFailed(f"Node {node.name} after {ctx.timeouts.ready_wait:.0f}s: {what}")
            time.sleep(ctx.timeouts.poll)

    def _wait_for_node(self) -> NodeRecord:
        """The host's Node: the known one, or (new host) the Node with the host's IP,
        approving its kubelet's CSRs while waiting."""
        ctx = self.ctx
        if self.node_name is not None:
            node = node_meta.read_node(ctx.api, self.node_name)
            if node is None:
                raise StepFailed(f"Node {self.node_name} disappeared")
            return node
        assert self.plan.identity is not None
        ips = {self.host.connect_address, self.host.address, self.plan.identity.node_ip}
        deadline = time.monotonic() + ctx.timeouts.node_wait
        while True:
            if ctx.approves_csrs(self.host):
                self._approve_csrs(ctx.csrs.get())
            for node in ctx.windows_nodes.get():
                if any(node.has_address(ip) for ip in ips):
                    return node
            if time.monotonic() > deadline:
                raise StepFailed(
                    f"no Node with address {self.plan.identity.node_ip} appeared within "
                    f"{ctx.timeouts.node_wait:.0f}s (host name {self.facts.hostname})"
                )
            time.sleep(ctx.timeouts.poll)

    def _annotate(self) -> None:
        ctx = self.ctx
        assert self.node_name is not None
        labels: dict[str, str | None] = {names.LABEL_WORKER_ROLE: ""}
        labels.update(dict(self.host.labels))
        annotations: dict[str, str | None] = {names.ANNOTATION_SHELL: str(self.facts.shell)}
        if self.plan.reboot:
            annotations[names.ANNOTATION_REBOOT_REQUIRED] = None
        node_meta.mark_configured(ctx.api, self.node_name, configured_record(ctx, self.host),
                                  labels=labels, annotations=annotations, uncordon=True)
        # mark_configured cleared the Node's failure record; drop a host-state one too.
        ctx.lock.clear_failure(self.host.address)

    # --- failure ------------------------------------------------------------------------
    def _record_failure(self, outcome: HostOutcome) -> None:
        ctx = self.ctx
        self._settle()
        error = outcome.error or "unknown error"
        try:
            if self.recover is not None and self.plan.node is not None:
                note = self.recover(ctx, self.plan, self.facts)
                if note is not None:
                    outcome.rolled_back = True
                    outcome.phase = Phase.ROLLED_BACK
                    error = f"{error} (rolled back: {note})"
                else:
                    error = f"{error} (not rolled back: no previous component set recorded)"
        except Exception as err:
            error = f"{error} (rollback failed: {describe_error(err)})"
            log.warning("%s: rollback failed: %s", self.host.address, describe_error(err))
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


def kubelet_matches(reported: str, committed: str) -> bool:
    """Whether a Node's kubelet version is the committed one: equal, or the same release
    with build metadata (OpenShift's kubelets report ``v1.30.4+ab12cd3``)."""
    return reported == committed or reported.startswith(committed + "+")


def record_only(ctx: StageContext, plan: HostPlan) -> None:
    """The ``record`` action: the host matches; bring the Node's record up to date
    (no cordon, no drain, nothing sent to the host)."""
    assert plan.node is not None
    node_meta.mark_configured(ctx.api, plan.node.name, configured_record(ctx, plan.host))


def refresh(ctx: StageContext, plan: HostPlan) -> str | None:
    """The ``refresh`` action: write the files that need no service restarted (no cordon,
    no drain), then bring the Node's record up to date. Returns an error, or None."""
    assert plan.node is not None
    try:
        with ctx.open_session(plan.host, plan.node.name) as session:
            for f in plan.files:
                managedfiles.write(session, f)
    except Exception as err:
        return describe_error(err)
    node_meta.mark_configured(ctx.api, plan.node.name, configured_record(ctx, plan.host))
    return None


def configured_record(ctx: StageContext, host: Host) -> ConfiguredRecord:
    """What the Node of ``host`` records once it runs the committed version."""
    return ConfiguredRecord(
        version=ctx.desired.version,
        pub_key_hash=ctx.private_key.pub_key_hash,
        username=usernames.seal(host.username, ctx.private_key.secret),
        address=host.address,
        components=component_records(ctx.committed or ctx.desired.components),
        byoh=host.kind is HostKind.BYOH,
    )


def component_records(components: Mapping[str, ComponentVersion]
                      ) -> dict[str, ComponentRecord]:
    return {
        name: ComponentRecord(c.version, c.sha256, c.url, c.path or "")
        for name, c in components.items()
        if name in CATALOGUE
    }

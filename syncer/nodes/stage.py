"""The node stage: bring every Windows host to the committed version, safely.

:func:`run_node_stage` is one round, called after a successful apply by
:func:`syncer.reconcile.reconcile_once` (``syncer sync --once``) and by the controller:

1. **inputs** from the cluster (:mod:`syncer.nodes.inputs`): desired state, BYOH hosts,
   Machines, Nodes, the private key. The ``windows-user-data`` Secret is brought in line
   with the key (unless the Fleet leaves it to WMCO). If any BYOH address fails to
   resolve, the round stops here: nothing is configured and nothing removed (WMCO's DNS
   rule).
2. **the round's facts**: the cluster's API URL, service network, DNS and hybrid overlay
   (:mod:`syncer.nodes.clusterinfo`), the bootstrap credential and CAs
   (:mod:`syncer.nodes.kubeconfig`), the managed files they make
   (:mod:`syncer.nodes.managedfiles`), and what each component puts on a host (a
   tarball's member is known by its own digest, :func:`syncer.nodes.payloads.host_view`).
   A fact that cannot be had stops the round with the reason, before any host is probed.
3. **probe** every host concurrently (bounded pool; one connection and normally one
   command each, :mod:`syncer.nodes.probe`). The probe makes one connection attempt: an
   unreachable host is reported and tried again next round instead of holding the round
   for WMCO's ten minutes (the configure flow itself keeps WMCO's retries).
4. **approve** the pending kubelet CSRs of BYOH hosts (:mod:`syncer.nodes.csr`), every
   round, as WMCO's CSR controller does all the time: a serving certificate a kubelet asks
   for after its host was configured is approved too. The CSRs are listed while the
   hosts are probed (the probes' host names are a fallback for the approval); one made
   meanwhile waits for the next round.
5. **plan** each host (:mod:`syncer.nodes.hostplan`), on its probe's thread as soon as
   its probe is back, so planning overlaps the other probes. Up-to-date hosts cost
   nothing more. ``rollout.paused``: stop here, report the plans.
6. **payloads**: every payload any plan needs is fetched and verified *before* any host is
   touched (:mod:`syncer.nodes.payloads`); a bad checksum ends the round here.
7. **record** (annotations only) and **refresh** (files no service restarts for) where
   that is all a host needs, then the **rollout** (:mod:`syncer.nodes.rollout`), then
   **removals** (:mod:`syncer.nodes.deconfigure`).
8. **report**: one row per host (address, node, current -> desired version, phase, last
   error, since) in the ConfigMap ``syncer-node-status`` (written only on change), which
   ``syncer status`` reads.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from syncer import names
from syncer.cluster.client import ApiError, KubeClient
from syncer.nodes import csr as csr_approval
from syncer.nodes import kubeconfig
from syncer.nodes.annotations import WINDOWS_NODES, NodeRecord
from syncer.nodes.clusterinfo import (
    ClusterFactsError,
    read_cluster_facts,
    read_cluster_settings,
)
from syncer.nodes.configure import record_only, refresh
from syncer.nodes.context import HostOutcome, StageContext, Timeouts
from syncer.nodes.deconfigure import RemovalOutcome, deconfigure
from syncer.nodes.downloads import FetchPolicy
from syncer.nodes.drain import DrainOptions
from syncer.nodes.hostkeys import RoundHostKeyStore
from syncer.nodes.hostplan import Action, HostPlan, plan_host, probe_files, probe_services
from syncer.nodes.inputs import DesiredState, Host, NodeInputs, read_node_inputs
from syncer.nodes.managedfiles import round_files, runs_overlay
from syncer.nodes.payloads import PayloadCache, PayloadError, fetch_all, host_view
from syncer.nodes.probe import ProbeCommands, ProbeResult, probe_host
from syncer.nodes.progress import ProgressReporter
from syncer.nodes.resolving import Resolver, ReverseResolver, resolve_ipv4, reverse_lookup
from syncer.nodes.rollback import cached_digests, remember_sources
from syncer.nodes.rollout import RolloutResult, run_rollout
from syncer.nodes.slots import RolloutLock
from syncer.nodes.ssh import SSH_ERRORS, HostSession, SshOptions, wait_closed
from syncer.nodes.status import (
    HostStatus,
    Phase,
    StatusReport,
    Tally,
    carry_since,
    read_status,
    write_status,
)
from syncer.nodes.userdata import Action as UserDataAction
from syncer.nodes.userdata import ensure_user_data
from syncer.nodes.windows.keys import PrivateKey, PrivateKeyError, parse_private_key
from syncer.nodes.windows.vocabulary import Shell
from syncer.nodes.wmco import wmco_state
from syncer.problems import Problem

log = logging.getLogger(__name__)

WMCO_ACTIVE = "WMCOActive"  # the blocked round's reason while WMCO manages the nodes


@dataclass(frozen=True)
class NodeStageOptions:
    namespace: str = names.WMCO_NAMESPACE  # the fleet (WMCO) namespace
    machine_namespace: str = names.MACHINE_API_NAMESPACE
    identity: str = "syncer"  # the controller's identity in the rollout Lease
    cache_dir: Path | None = None
    payloads: FetchPolicy = field(default_factory=FetchPolicy)  # where payloads may come from
    ssh: SshOptions = field(default_factory=SshOptions)
    probe_attempts_for: float = 0.0  # how long a probe keeps retrying a connection
    timeouts: Timeouts = field(default_factory=Timeouts)
    drain: DrainOptions | None = None
    resolver: Resolver = resolve_ipv4
    reverse: ReverseResolver = reverse_lookup
    node_selector: str = WINDOWS_NODES
    probe_workers: int = 16
    stale_after: float = 300.0
    approve_machine_csrs: bool = False  # test stand-in for the cluster machine approver
    progress: ProgressReporter | None = field(default=None, compare=False)
    # The SSH key from a file instead of Secret cloud-private-key (``syncer run
    # --ssh-private-key-file``): called every round, so a rotated file takes effect.
    private_key: Callable[[], bytes | None] | None = field(default=None, compare=False)
    # Called with a snapshot of the round (its rows) whenever a host starts or finishes
    # while the rollout runs: the controller turns it into a status commit.
    on_update: Callable[[NodeStageResult], None] | None = field(default=None, compare=False)


@dataclass
class NodeStageResult:
    rows: list[HostStatus] = field(default_factory=list)
    plans: list[HostPlan] = field(default_factory=list)
    rollout: RolloutResult | None = None
    removals: list[RemovalOutcome] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    blocked: str | None = None  # the whole round did nothing, and why
    blocked_reason: str | None = None  # CamelCase kind of ``blocked`` (e.g. WMCOActive)
    halted: str | None = None
    paused: bool = False
    ssh_errors: int = 0
    configured: dict[str, str] = field(default_factory=dict)  # syncer's record, written back

    @property
    def ok(self) -> bool:
        """False when anything needs attention: the round did nothing, the rollout
        halted, a removal failed, or a host is blocked (changed host key, unreachable,
        invalid data, failed earlier)."""
        failed_removal = any(not r.ok for r in self.removals)
        blocked_host = any(p.action is Action.BLOCKED for p in self.plans)
        return (
            self.blocked is None
            and self.halted is None
            and not failed_removal
            and not blocked_host
        )

    def summary(self) -> str:
        if self.blocked:
            return f"nodes: nothing done: {self.blocked}"
        tally = Tally.of(self.rows)
        text = f"nodes: {tally.done}/{tally.total} hosts at the committed version"
        if self.rollout is not None and self.rollout.total:
            text += f"; rollout {self.rollout.done}/{self.rollout.total} done"
        if self.removals:
            text += f"; {sum(r.ok for r in self.removals)} removed"
        if self.halted:
            text += f"; {self.halted}"
        return text

    def to_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "summary": self.summary(),
            "blocked": self.blocked,
            "halted": self.halted,
            "hosts": [r.to_json() for r in self.rows],
        }


def run_node_stage(
    api: KubeClient,
    options: NodeStageOptions | None = None,
    *,
    shutdown: threading.Event | None = None,
    progress: ProgressReporter | None = None,
    on_step: Callable[[str, str], None] | None = None,
) -> NodeStageResult:
    """One round of the node stage (see the module docstring). Every SSH client it
    opened is closed, and its thread joined, when it returns."""
    try:
        return _round(api, options, shutdown, progress, on_step)
    finally:
        wait_closed()


def _round(
    api: KubeClient,
    options: NodeStageOptions | None,
    shutdown: threading.Event | None,
    progress: ProgressReporter | None,
    on_step: Callable[[str, str], None] | None,
) -> NodeStageResult:
    opts = options or NodeStageOptions()
    shutdown = shutdown or threading.Event()
    errors_before = SSH_ERRORS.value
    result = NodeStageResult()
    previous = read_status(api, opts.namespace)
    recorded = {a: r.node for a, r in previous.hosts.items() if r.node}  # older reports
    recorded.update(previous.configured)
    inputs = read_node_inputs(
        api,
        opts.namespace,
        machine_namespace=opts.machine_namespace,
        resolver=opts.resolver,
        node_selector=opts.node_selector,
        configured=recorded,
    )
    result.configured = _still_configured(recorded, inputs)
    if opts.private_key is not None:
        inputs = _with_key_file(inputs, opts.private_key)
    result.problems = list(inputs.problems)
    desired = inputs.desired
    if desired is None:
        result.blocked = f"no ConfigMap {opts.namespace}/{names.FLEET_CONFIGMAP}"
        return result
    wmco = wmco_state(api, opts.namespace)
    if wmco.active:  # WMCO manages the nodes: touch nothing (syncer.nodes.wmco)
        result.blocked = (f"{wmco.reason}: syncer configures no host while WMCO manages "
                          "the Windows nodes (docs/wmco-migration.md)")
        result.blocked_reason = WMCO_ACTIVE
        result.rows = _rows_without_probe(inputs, desired.version, WMCO_ACTIVE,
                                          result.blocked)
        _report(api, opts, result, previous)
        return result
    if inputs.private_key is not None:
        _maintain_user_data(api, opts, desired, inputs.private_key, result)
    if inputs.blocked:
        result.blocked = inputs.blocked
        result.rows = _rows_without_probe(inputs, desired.version, "DNS", inputs.blocked)
        _report(api, opts, result, previous)
        return result
    if not inputs.hosts and not inputs.removed:
        _report(api, opts, result, previous)
        return result
    if inputs.private_key is None:
        result.blocked = "; ".join(str(p) for p in inputs.problems) or "no private key"
        result.rows = _rows_without_probe(inputs, desired.version, None, result.blocked)
        _report(api, opts, result, previous)
        return result

    # --- the round's facts -----------------------------------------------------------------
    cache = PayloadCache(opts.cache_dir, policy=opts.payloads)
    try:
        cluster = read_cluster_facts(api, desired.nodes, overlay=runs_overlay(desired.components))
        cache.policy = cache.policy.denying(cluster.service_network)
        settings = read_cluster_settings(api)
        bootstrap = kubeconfig.bootstrap_files(api, opts.namespace, api_server=cluster.api_server)
        view = host_view(cache, desired)
    except (ClusterFactsError, kubeconfig.BootstrapError, PayloadError) as err:
        result.blocked = str(err)
        result.rows = _rows_without_probe(inputs, desired.version, None, result.blocked)
        _report(api, opts, result, previous)
        return result

    lock = RolloutLock(
        api,
        opts.namespace,
        max_unavailable=desired.rollout.max_unavailable,
        identity=opts.identity,
        stale_after=opts.stale_after,
        node_selector=opts.node_selector,
    )
    ctx = StageContext(
        api=api,
        namespace=opts.namespace,
        desired=view,
        committed=desired.components,
        cluster=cluster,
        managed=round_files(cluster, bootstrap, desired.components, settings),
        private_key=inputs.private_key,
        store=RoundHostKeyStore(api, opts.namespace, inputs.nodes),
        lock=lock,
        cache=cache,
        ssh=opts.ssh,
        timeouts=opts.timeouts,
        drain=opts.drain,
        reverse=opts.reverse,
        shutdown=shutdown,
        on_step=on_step or (lambda address, step: None),
        approve_machine_csrs=opts.approve_machine_csrs,
        node_selector=opts.node_selector,
    )

    # --- probe and plan (each host on its probe's thread), approve ---------------------
    orphans = {h.address for h in lock.orphans()}
    failures = {f.address: f for f in lock.failures(inputs.nodes.values()) if f.address}

    def plan_one(host: Host, probe: ProbeResult | None) -> HostPlan:
        node = inputs.nodes.get(host.node_name) if host.node_name else None
        failure = failures.get(host.address) if node is None else None
        old = previous.hosts.get(host.address)
        return plan_host(
            host,
            view,
            probe,
            node,
            cluster=cluster,
            managed=ctx.managed,
            committed=desired.components,
            failure=f"failed at step {failure.step}: {failure.error}" if failure else None,
            failed_version=old.desired if failure and old else None,
            orphaned=host.address in orphans,
        )

    # A LIST of every CSR of a cluster of hundreds of Nodes takes tens of milliseconds:
    # it runs beside the probes, and only the approval waits for them.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="syncer-csrs") as side:
        csrs = side.submit(csr_approval.list_csrs, api, pending_only=True) \
            if any(ctx.approves_csrs(h) for h in inputs.hosts) else None
        probed = _probe_all(ctx, opts, inputs, previous, shutdown, plan_one)
    if csrs is not None:
        _approve_csrs(ctx, inputs.hosts, {a: p.probe for a, p in probed.items()}, csrs)
    plans = [probed[h.address].plan if h.address in probed else plan_one(h, None)
             for h in inputs.hosts]
    result.plans = plans

    if desired.rollout.paused:
        result.paused = True
        result.rows = [_row(p, Phase.PAUSED if p.needs_slot else Phase.PLANNED) for p in plans]
        _report(api, opts, result, previous)
        return result

    # --- payloads before any host is touched ---------------------------------------------
    wanted = [desired.components[c.name] for p in plans if p.needs_slot for c in p.transfers]
    try:
        ctx.payload_sources = remember_sources(api, opts.namespace, previous.payload_sources,
                                               desired.components, inputs.nodes.values())
    except ApiError as err:
        result.halted = ("rollout halted before touching any host: cannot record where "
                         f"the payloads come from: {err}")
        _report(api, opts, result, previous)
        return result
    try:
        ctx.payloads = fetch_all(ctx.cache, wanted) if wanted else {}
    except PayloadError as err:
        result.halted = f"rollout halted before touching any host: {err}"
        result.rows = [_row(p, Phase.WAITING, action=None) if p.needs_slot
                       else _row(p, Phase.PLANNED) for p in plans]
        _report(api, opts, result, previous)
        return result

    refreshed: dict[str, str] = {}  # address -> why a refresh failed
    for plan in plans:
        if plan.action is Action.RECORD:
            record_only(ctx, plan)
        elif plan.action is Action.REFRESH and (error := refresh(ctx, plan)) is not None:
            log.warning("%s: refresh failed: %s", plan.address, error)
            refreshed[plan.address] = error

    live = _LiveStatus(api, opts, plans, previous)
    step_to_user = ctx.on_step

    def step_to_both(address: str, step: str) -> None:
        step_to_user(address, step)
        live.step(address, step)

    ctx.on_step = step_to_both
    try:
        rollout = run_rollout(ctx, plans, orphans, progress=progress or opts.progress,
                              on_outcome=live.outcome)
    finally:
        ctx.phases.close()
        live.close()
    previous = live.previous
    result.rollout = rollout
    result.halted = rollout.halted

    # --- removals ----------------------------------------------------------------------------
    if not shutdown.is_set():
        for removed in inputs.removed:
            result.removals.append(deconfigure(ctx, removed))

    for removal in result.removals:
        if removal.ok and removal.address:
            result.configured.pop(removal.address, None)
    result.rows = _final_rows(plans, rollout, result.removals, refresh_errors=refreshed)
    result.ssh_errors = SSH_ERRORS.value - errors_before
    cache.prune(cached_digests(cache, ctx.payload_sources)
                | {c.sha256 for c in view.components.values()})
    _report(api, opts, result, previous)
    return result


def _still_configured(recorded: dict[str, str], inputs: NodeInputs) -> dict[str, str]:
    """Syncer's record without the entries whose Node is gone, plus the Nodes it now maps
    hosts to."""
    configured = {a: n for a, n in recorded.items() if n in inputs.nodes}
    for host in inputs.hosts:
        if host.node_name:
            configured[host.address] = host.node_name
    return configured


def _maintain_user_data(api: KubeClient, opts: NodeStageOptions, desired: DesiredState,
                        key: PrivateKey, result: NodeStageResult) -> None:
    """``windows-user-data`` follows the private key every round, hosts or not: Windows
    MachineSets need it before their first Machine, and a key rotation rewrites it. With
    ``nodes.userData: wmco`` WMCO owns it and nothing is written."""
    try:
        outcome = ensure_user_data(api, key, desired.nodes.user_data,
                                   platform=desired.nodes.platform,
                                   namespace=opts.machine_namespace, fleet=desired.fleet or None)
    except (ApiError, ValueError) as err:
        where = f"{opts.machine_namespace}/{names.USER_DATA_SECRET}"
        result.problems.append(Problem(where, 0, f"cannot maintain the Secret: {err}"))
        return
    if outcome.action in (UserDataAction.CREATED, UserDataAction.UPDATED):
        log.info("%s", outcome.message)


def _with_key_file(inputs: NodeInputs, read: Callable[[], bytes | None]) -> NodeInputs:
    """``inputs`` with the key read from the key file instead of ``cloud-private-key``."""
    where = "--ssh-private-key-file"
    problems = [p for p in inputs.problems if names.PRIVATE_KEY_SECRET not in p.file]
    data = read()
    key = None
    if data is None:
        problems.append(Problem(where, 0, "unreadable: hosts cannot be reached over SSH"))
    else:
        try:
            key = parse_private_key(data)
        except PrivateKeyError as err:
            problems.append(Problem(where, 0, str(err)))
    return replace(inputs, private_key=key, problems=problems)


@dataclass(frozen=True)
class _Probed:
    probe: ProbeResult
    plan: HostPlan


def _probe_all(
    ctx: StageContext,
    opts: NodeStageOptions,
    inputs: NodeInputs,
    previous: StatusReport,
    shutdown: threading.Event,
    plan: Callable[[Host, ProbeResult], HostPlan],
) -> dict[str, _Probed]:
    """Probe every host, ``probe_workers`` at a time, and plan each on its probe's
    thread as soon as its probe is back: the planning overlaps the other probes' round
    trips instead of following them all."""
    desired = ctx.desired
    commands = ProbeCommands.build(probe_files(desired, ctx.managed), probe_services(desired),
                                   ctx.cluster.platform)
    probe_ssh = replace(
        opts.ssh,
        port=desired.nodes.ssh_port,
        connect_timeout_total=opts.probe_attempts_for,
        auth_timeout_total=opts.probe_attempts_for,
    )

    def one(host: Host) -> _Probed:
        node = inputs.nodes.get(host.node_name) if host.node_name else None
        shell = _known_shell(node, previous.hosts.get(host.address))

        def open_session() -> HostSession:
            session = ctx.open_session(host, host.node_name)
            session.options = probe_ssh
            return session

        probe = probe_host(host.address, open_session, commands, shell)
        return _Probed(probe, plan(host, probe))

    if not inputs.hosts or shutdown.is_set():
        return {}
    workers = max(1, min(opts.probe_workers, len(inputs.hosts)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="syncer-probe") as pool:
        return dict(zip([h.address for h in inputs.hosts],
                        pool.map(one, inputs.hosts), strict=True))


def _approve_csrs(ctx: StageContext, hosts: list[Host], probes: dict[str, ProbeResult],
                  listed: Future[list[dict[str, Any]]]) -> None:
    """Approve the pending kubelet CSRs of the hosts whose CSRs syncer approves, with the
    host names the probes read as fallback; ``listed``: the cluster's CSRs."""
    addresses: list[str] = []
    hostnames: dict[str, str] = {}
    for host in hosts:
        if not ctx.approves_csrs(host):
            continue
        facts = probes[host.address].facts if host.address in probes else None
        for address in dict.fromkeys([host.address, host.connect_address]):
            addresses.append(address)
            if facts is not None:
                hostnames[address] = facts.hostname
    try:
        for decision in csr_approval.approve_byoh_csrs(
                ctx.api, addresses, hostnames, reverse=ctx.reverse,
                bootstrapper=csr_approval.bootstrapper_user(ctx.namespace),
                listed=listed.result()):
            if decision.approved:
                log.info("approved CSR %s: %s", decision.name, decision.reason)
    except ApiError as err:
        log.warning("cannot approve kubelet CSRs: %s", err)


def _known_shell(node: NodeRecord | None, row: HostStatus | None) -> Shell | None:
    text = node.annotations.get(names.ANNOTATION_SHELL) if node is not None else None
    text = text or (row.shell if row is not None else None)
    try:
        return Shell(text) if text else None
    except ValueError:
        return None


def _row(plan: HostPlan, phase: Phase, *, step: str | None = None,
         action: str | None = "", error: str | None = None) -> HostStatus:
    """The row of a planned host; ``action`` defaults to the plan's."""
    node = plan.node
    if plan.action is Action.BLOCKED and error is None:
        error = plan.reason
    if phase is Phase.PLANNED and plan.action in (Action.BLOCKED, Action.UP_TO_DATE):
        phase = Phase.BLOCKED if plan.action is Action.BLOCKED else Phase.UP_TO_DATE
    return HostStatus(
        address=plan.address,
        node=node.name if node else None,
        current=node.version if node else None,
        desired=plan.desired_version,
        phase=phase,
        last_error=error,
        kind=plan.host.kind.value,
        shell=str(plan.facts.shell) if plan.facts else None,
        step=step,
        action=(plan.action.value if action == "" else action) if phase in _ACTS else None,
        detail=plan.blocked_kind if phase is Phase.BLOCKED else None,
    )


# Phases whose row says which action the host is (or would be) going through.
_ACTS = frozenset({Phase.PLANNED, Phase.WAITING, Phase.PAUSED, Phase.RUNNING})


def _final_rows(
    plans: list[HostPlan],
    rollout: RolloutResult,
    removals: list[RemovalOutcome],
    steps: dict[str, str] | None = None,
    refresh_errors: dict[str, str] | None = None,
) -> list[HostStatus]:
    """One row per host; ``steps`` names the step of each host still running."""
    rows = []
    for plan in plans:
        outcome = rollout.outcomes.get(plan.address)
        step = (steps or {}).get(plan.address)
        refresh_error = (refresh_errors or {}).get(plan.address)
        if outcome is None and step is not None:
            row = _row(plan, Phase.RUNNING, step=step)
        elif refresh_error is not None:
            row = replace(_row(plan, Phase.BLOCKED, error=refresh_error), detail="refresh")
        elif outcome is None:
            if plan.action in (Action.RECORD, Action.REFRESH):
                row = replace(_row(plan, Phase.UP_TO_DATE), current=plan.desired_version)
            else:
                row = _row(plan, Phase.WAITING if plan.needs_slot else Phase.PLANNED)
        elif outcome.ok:
            row = replace(_row(plan, Phase.UP_TO_DATE), node=outcome.node_name,
                          current=plan.desired_version)
        else:
            error = None if outcome.phase is Phase.INTERRUPTED else outcome.error
            row = replace(_row(plan, outcome.phase, step=outcome.step, error=error),
                          node=outcome.node_name)
        rows.append(row)
    for removal in removals:
        rows.append(HostStatus(
            address=removal.address or f"node/{removal.node_name}",
            node=removal.node_name,
            current=None,
            desired="",
            phase=Phase.REMOVED if removal.ok else Phase.REMOVAL_FAILED,
            step=None if removal.ok else removal.step,
            last_error=removal.error,
        ))
    return rows


def _rows_without_probe(inputs: NodeInputs, version: str, why: str | None,
                        error: str) -> list[HostStatus]:
    rows = []
    for host in inputs.hosts:
        node = inputs.nodes.get(host.node_name) if host.node_name else None
        rows.append(HostStatus(
            address=host.address,
            node=node.name if node else None,
            current=node.version if node else None,
            desired=version,
            phase=Phase.BLOCKED,
            detail=why,
            last_error=error,
            kind=host.kind.value,
        ))
    return rows


def _report(
    api: KubeClient, opts: NodeStageOptions, result: NodeStageResult, previous: StatusReport
) -> StatusReport:
    """Write the round's rows to ``syncer-node-status`` (when they changed); return them
    as the report the next write compares with. ``result.rows`` get their ``since`` here:
    kept from ``previous`` where the phase did not change, now where it did."""
    rows = carry_since(result.rows, previous)
    result.rows = rows
    tally = Tally.of(rows)
    rollout = {
        "total": tally.total,
        "done": tally.done,
        "halted": result.halted,
        "blocked": result.blocked,
    }
    configured = dict(result.configured)
    configured.update({r.address: r.node for r in rows
                       if r.node and r.phase is not Phase.REMOVED})
    report = StatusReport({r.address: r for r in rows}, rollout, configured=configured)
    try:
        write_status(api, opts.namespace, report, previous)
    except Exception as err:  # the report must not fail the round
        log.warning("cannot write %s: %s", names.NODE_STATUS_CONFIGMAP, err)
        return previous
    return report


class _LiveStatus:
    """The rows of a rollout while it runs.

    The steps hosts enter are written to ``syncer-node-status`` (only what changed), so
    ``syncer status`` shows a rollout that takes hours as it goes, not only when the round
    ends. When hosts start or finish, ``on_update`` gets a snapshot of the round: a host
    changing phase is a change of state the status branch records.

    A host only records its step here and goes on: one writer thread of its own builds the
    rows and writes them, at most every ``INTERVAL`` seconds with the latest state (steps
    in between are coalesced), and then hands ``on_update`` the newest snapshot if a host
    started or finished since the last one. A host never waits for the API server or a
    push to Git on another host's behalf: with the writes on the hosts' threads under one
    lock, twenty hosts at a time queued behind each other's status writes; and with one
    snapshot per start and per finish, a rollout of 500 hosts made 1,000 status-branch
    commits, one after the other, each with the whole fleet. Now the status branch gets
    one commit per write-back's time at most, each with every host's phase at that moment.
    :meth:`close` writes the last state and hands over the last snapshot."""

    INTERVAL = 0.5  # at most one write per this many seconds

    def __init__(self, api: KubeClient, opts: NodeStageOptions, plans: list[HostPlan],
                 previous: StatusReport) -> None:
        self.api, self.opts, self.plans, self.previous = api, opts, plans, previous
        self.outcomes: dict[str, HostOutcome] = {}
        self.steps: dict[str, str] = {}
        self._total = sum(1 for p in plans if p.needs_slot)
        self._changed = threading.Condition()
        self._dirty = False
        self._closing = False
        self._noticed = False  # a host started or finished since the last snapshot
        self._writer = threading.Thread(target=self._write_loop, name="syncer-status",
                                        daemon=True)
        self._writer.start()

    def close(self) -> None:
        with self._changed:
            self._closing = True
            self._changed.notify()
        self._writer.join()

    def step(self, address: str, step: str) -> None:
        with self._changed:
            started = address not in self.steps
            self.steps[address] = step
            self._mark(notify=started)

    def outcome(self, address: str, outcome: HostOutcome) -> None:
        with self._changed:
            self.outcomes[address] = outcome
            self.steps.pop(address, None)
            self._mark(notify=True)

    def _mark(self, notify: bool) -> None:
        self._noticed = self._noticed or (notify and self.opts.on_update is not None)
        self._dirty = True
        self._changed.notify()

    def _snapshot(self, outcomes: dict[str, HostOutcome], steps: dict[str, str]
                  ) -> NodeStageResult:
        partial = RolloutResult(outcomes=outcomes, total=self._total)
        return NodeStageResult(plans=self.plans, rollout=partial,
                               rows=_final_rows(self.plans, partial, [], steps))

    def _write_loop(self) -> None:
        while True:
            with self._changed:
                while not (self._dirty or self._closing):
                    self._changed.wait()
                if not self._dirty:
                    return
                self._dirty = False
                noticed, self._noticed = self._noticed, False
                state = (dict(self.outcomes), dict(self.steps))
                closing = self._closing
            latest = self._snapshot(*state)
            self.previous = _report(self.api, self.opts, latest, self.previous)
            if noticed:
                self._notify(latest)
            if not closing:  # what arrives meanwhile goes out in one write
                with self._changed:
                    self._changed.wait_for(lambda: self._closing, timeout=self.INTERVAL)

    def _notify(self, snapshot: NodeStageResult) -> None:
        assert self.opts.on_update is not None
        try:
            self.opts.on_update(snapshot)
        except Exception as err:  # reporting must not fail the rollout
            log.warning("reporting the rollout's progress failed: %s", err)

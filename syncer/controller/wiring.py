"""How ``syncer run`` gets its reconcile: :func:`builtin` builds the :data:`Reconciler`.

The loop (``loop.py``) only knows ``Reconciler = Callable[[ReconcileRequest,
threading.Event], ReconcileOutcome]``. :func:`builtin` builds one at start from a
:class:`ReconcilerContext` (configuration, the controller's
:class:`~syncer.cluster.client.KubeClient`, credential files, identity): it runs the
pipeline ``syncer sync --once`` runs
  (:class:`syncer.pipeline.run.Pipeline`: source, reconcile, write-back) with its live
  write-back timing, around one long-lived Git source in the work directory, and maps
  the :class:`~syncer.reconcile.ReconcileResult` to a :class:`ReconcileOutcome` (metrics,
  Events). The node stage runs inside that reconcile after a successful apply, with the
  loop's park token as its shutdown and a
  :class:`~syncer.controller.nodestage.ControllerProgress` that reports host phases,
  rollout counts, SSH errors and the Rollout* Events (see :mod:`.nodestage`); a rollout
  stopped by the park token is reported as ``parked``. Write-back failures are logged and
  counted (``syncer_writeback_pending``, ``syncer_git_errors_total``,
  ``syncer_forge_errors_total``); they never fail the reconcile.

There is no other: the controller never imports code named by its configuration.
:func:`following` wraps it for a WindowsFleet: before each reconcile it reads the object
and the Secrets it names, and rebuilds :func:`builtin` from :func:`with_spec` when either
changed.

Credentials: :class:`GitCredentials` hands the pipeline the generation of the mounted Git
key, token and known_hosts (it rebuilds the source when one changes) and a private
mode-0600 copy of the key (Secret volumes are group-readable when an ``fsGroup`` is set,
and ssh refuses such keys).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from syncer.cluster.changesfirst import LastApplied
from syncer.cluster.client import ApiError, KubeClient
from syncer.controller import credentials as cred
from syncer.controller import events as ev
from syncer.controller.config import ControllerConfig
from syncer.controller.credentials import CredentialFiles
from syncer.controller.fleetobject import FleetObject, FleetSpec, SpecError, parse_spec
from syncer.controller.fleetsecrets import SecretError, materialize
from syncer.controller.loop import (
    FAILED,
    PARKED,
    SUCCESS,
    ReconcileOutcome,
    Reconciler,
    ReconcileRequest,
)
from syncer.fleet.loading import ParseCache
from syncer.nodes.stage import WMCO_ACTIVE
from syncer.pipeline.run import Pipeline, Target
from syncer.reconcile import ReconcileOptions, ReconcileResult, Stage
from syncer.writeback.step import WriteBackOutcome

log = logging.getLogger(__name__)

# Revisions refused for what they are, and the Event that says so.
_REFUSED = {Stage.VALIDATE: ev.VALIDATION_FAILED, Stage.GUARD: ev.PRUNE_REFUSED}
# Other failures, by the reason a WindowsFleet's Ready condition gives (Flux's words).
_FAILED_AT = {Stage.SOURCE: "GitOperationFailed"}
# The revision is applied but some hosts are not at its version yet (waiting for a slot,
# unreachable, failed): not Ready, and the next round carries on.
HOSTS_NOT_READY = "HostsNotReady"


@dataclass(frozen=True)
class ReconcilerContext:
    config: ControllerConfig
    client: KubeClient  # shared with the controller's own requests
    credentials: CredentialFiles
    identity: str


class GitCredentials:
    """The pipeline's rotating Git credentials: the mounted key, token and known_hosts."""

    def __init__(self, files: CredentialFiles) -> None:
        self.files = files

    def generation(self) -> Hashable:
        return tuple(self.files.generation(name)
                     for name in (cred.GIT_SSH_KEY, cred.GIT_TOKEN, cred.GIT_KNOWN_HOSTS))

    def ssh_key_file(self) -> Path | None:
        return self.files.private_copy(cred.GIT_SSH_KEY)


def builtin(ctx: ReconcilerContext) -> Reconciler:
    """The real reconcile: the pipeline (Git source -> validate -> render -> apply ->
    prune -> nodes, then the write-back) with the node stage's controller options."""
    from syncer.controller.nodestage import ControllerProgress, stage_options

    config = ctx.config
    options = ReconcileOptions(inventory_namespace=config.namespace,
                               inventory_name=config.inventory_name,
                               nodes=stage_options(config, ctx.credentials),
                               passthrough=config.passthrough, parse_cache=ParseCache(),
                               last_applied=LastApplied())
    pipeline = Pipeline(
        config.source, config.writeback,
        Target(config.workdir, inventory_namespace=config.namespace,
               inventory_name=config.inventory_name, instance=ctx.identity,
               passthrough=config.passthrough),
        credentials=GitCredentials(ctx.credentials), live=True,
    )

    def reconcile(request: ReconcileRequest, park: threading.Event) -> ReconcileOutcome:
        progress = ControllerProgress(request.progress)
        assert options.nodes is not None
        run_options = replace(options, nodes=replace(options.nodes, progress=progress))
        run = pipeline.reconcile(ctx.client, run_options, shutdown=park,
                                 on_writeback=lambda after: report_writeback(after, request))
        progress.flush()
        return outcome_of(run.result, request, config.source.ref)

    return reconcile


def with_spec(config: ControllerConfig, spec: FleetSpec,
              files: Mapping[str, Path] | None = None) -> ControllerConfig:
    """``config`` with what a WindowsFleet's spec sets, and the files of the Secrets it
    names (setting name -> path, from :func:`~.fleetsecrets.materialize`)."""
    files = files or {}
    source = replace(config.source, repo=spec.url or config.source.repo,
                     ref=spec.branch or config.source.ref,
                     path=config.source.path if spec.path is None else spec.path)
    if spec.secret_ref:  # the Secret's keys replace every Git credential flag
        source = replace(source, git_ssh_key_file=files.get("git_ssh_key_file"),
                         git_known_hosts_file=files.get("git_known_hosts_file"),
                         git_token_file=files.get("git_token_file"), git_token_env=None,
                         git_ca_file=files.get("git_ca_file"))
    if spec.verify_mode:
        source = replace(source, verify=spec.verify_mode,
                         allowed_signers=files.get("allowed_signers"),
                         gpg_keyring=files.get("gpg_keyring"))
    writeback = config.writeback
    if spec.forge is not None:
        writeback = replace(writeback, forge=spec.forge.provider,
                            forge_url=spec.forge.url or writeback.forge_url,
                            forge_repo=spec.forge.repository or writeback.forge_repo,
                            forge_token_file=files.get("forge_token_file",
                                                       writeback.forge_token_file),
                            forge_token_env=None if spec.forge.secret_ref
                            else writeback.forge_token_env)
    interval = spec.interval or config.interval
    return replace(config, source=source, writeback=writeback, interval=interval)


def following(fleet: FleetObject, ctx: ReconcilerContext,
              on_interval: Callable[[float], None]) -> Reconciler:
    """A reconciler that reads the WindowsFleet (and the Secrets it names) before each
    reconcile and, when either changed, rebuilds :func:`builtin` from them (between
    reconciles: never mid-host)."""
    built: list[tuple[Hashable, Reconciler]] = []
    secrets_dir = ctx.config.workdir / ".fleet-secrets"

    def reconcile(request: ReconcileRequest, park: threading.Event) -> ReconcileOutcome:
        try:
            spec = parse_spec(fleet.get())
            found = materialize(ctx.client, fleet.namespace, spec, secrets_dir)
        except SpecError as err:
            return ReconcileOutcome(FAILED, message=f"{fleet.title}: {err}",
                                    reason="InvalidSpec", stalled=True)
        except SecretError as err:
            return ReconcileOutcome(FAILED, message=f"{fleet.title}: {err}",
                                    reason="CredentialsNotFound")
        except ApiError as err:
            if not built or err.not_found:
                return ReconcileOutcome(FAILED, message=f"{fleet.title}: {err}")
            log.warning("reading the WindowsFleet failed; using its last spec",
                        extra={"error": str(err)})
            return built[-1][1](request, park)  # the API server is down: go on with it
        key = (spec, found.versions)
        if not built or built[-1][0] != key:
            config = with_spec(ctx.config, spec, found.files)
            credentials = ctx.credentials
            if found.files:  # this fleet's own Secrets, not the mounted files
                credentials = CredentialFiles.from_config(
                    config, runtime_dir=config.workdir / ".credentials")
            built[:] = [(key, builtin(replace(ctx, config=config, credentials=credentials)))]
            on_interval(config.interval)
        return built[-1][1](request, park)

    return reconcile


def report_writeback(after: WriteBackOutcome, request: ReconcileRequest) -> None:
    """Count what the write-back could not do (it logged the details already)."""
    status = after.status
    if status is not None and status.error:
        request.progress.git_error()
    forge_errors = 0
    if after.previews is not None:
        forge_errors = len(after.previews.errors)
    request.progress.writeback(status.pending if status is not None else 0, forge_errors)


def outcome_of(result: ReconcileResult, request: ReconcileRequest, ref: str) -> ReconcileOutcome:
    """Map a :class:`syncer.reconcile.ReconcileResult` to the loop's outcome, reporting
    the Events and error counters it implies through ``request.progress``."""
    from syncer.controller.nodestage import round_outcome

    progress = request.progress
    objects: dict[str, int] | None = None
    if result.applied is not None:
        objects = dict(Counter(str(r.outcome) for r in result.applied.results))
    hosts: dict[str, int] | None = None
    rollout: tuple[int, int] | None = None
    nodes = round_outcome(result.nodes, progress) if result.nodes is not None else None
    summary = result.summary()
    if nodes is not None and result.nodes is not None:
        hosts, rollout = dict(nodes.hosts), nodes.rollout
        summary += f"; {result.nodes.summary()}"
    if nodes is not None and nodes.interrupted:
        return ReconcileOutcome(PARKED, message=f"{summary}; the rollout parked",
                                objects=objects, hosts=hosts, rollout=rollout, ref=ref)
    # The revision is applied once its objects are: a halted or blocked node round does
    # not undo that (it has its own Event, RolloutHalted, and the hosts gauge).
    applied = result.applied is None or not result.applied.failed
    attempted = result.revision or None
    table = nodes.table if nodes is not None else ()
    if result.stage is Stage.DONE and not result.errors and applied:
        not_ready: str | None = None
        if nodes is not None:
            done, total = nodes.rollout
            if nodes.blocked_reason:
                not_ready = nodes.blocked_reason
            elif nodes.failed:
                not_ready = ev.ROLLOUT_HALTED
            elif done < total:
                not_ready = HOSTS_NOT_READY
            if nodes.failed and nodes.failed not in summary:
                summary = f"{summary}; {nodes.failed}"
        return ReconcileOutcome(SUCCESS, revision=attempted, objects=objects,
                                message=summary, hosts=hosts, rollout=rollout, ref=ref,
                                reason=not_ready, stalled=not_ready == WMCO_ACTIVE,
                                attempted=attempted, table=table)
    message = "; ".join(result.errors) or summary
    short = message[:1000]
    if result.stage is Stage.SOURCE:
        progress.git_error()
    refused = _REFUSED.get(result.stage)
    if refused is not None:
        progress.event(refused, f"revision {result.revision}: {short}", ev.WARNING)
    return ReconcileOutcome(FAILED, message=message, objects=objects, hosts=hosts,
                            rollout=rollout, ref=ref, reported=refused is not None,
                            reason=refused or _FAILED_AT.get(result.stage, ev.RECONCILE_FAILED),
                            stalled=result.stage.rejects_revision, attempted=attempted,
                            table=table)

"""How ``syncer run`` gets its reconcile: a factory that builds a :data:`Reconciler`.

The loop (``loop.py``) only knows ``Reconciler = Callable[[ReconcileRequest,
threading.Event], ReconcileOutcome]``. A *factory* builds one at start from a
:class:`ReconcilerContext` (configuration, the controller's
:class:`~syncer.cluster.client.KubeClient`, credential files, identity):

- :func:`builtin` (the default) wraps :func:`syncer.reconcile.reconcile_once` — the same
  one-shot reconcile as ``syncer sync --once`` — around one long-lived
  :class:`~syncer.source.GitSource` in the work directory, and maps its
  :class:`~syncer.reconcile.ReconcileResult` to a :class:`ReconcileOutcome` (metrics,
  Events). The node stage (issue #8) runs inside that reconcile after a successful
  apply, with the loop's park token as its shutdown and a
  :class:`~syncer.controller.nodestage.ControllerProgress` that reports host phases,
  rollout counts, SSH errors and the Rollout* Events (see :mod:`.nodestage`); a
  rollout stopped by the park token is reported as ``parked``.
  After each reconcile it runs the write-back (:mod:`syncer.writeback.step`, the
  same step as ``syncer sync --once``): a status commit and git note when the state
  changed, and PR previews with ``--forge`` — also after a ``pull_request`` webhook,
  which triggers a reconcile. When an apply changes objects the write-back also runs as
  soon as they are applied (so Git records the apply, and previews go out, without
  waiting for a rollout that may take hours); during a rollout after such an apply, each
  time a host starts or finishes (a status commit per host phase change); and after the
  node stage, with the hosts.
  Write-back failures are logged and counted (``syncer_writeback_pending``,
  ``syncer_git_errors_total``, ``syncer_forge_errors_total``); they never fail the
  reconcile.
- ``--reconciler module:function`` (hidden) names another factory; tests use it to run
  ``syncer run`` against scripted reconciles.

Credentials: the Git source is rebuilt when the Git key or token file changes (git reads
the key file at every run, but the token is put into git's environment when the source
is built), and ``ssh`` gets a private mode-0600 copy of the key (Secret volumes are
group-readable when an ``fsGroup`` is set, and ssh refuses such keys).
"""

from __future__ import annotations

import importlib
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from syncer.cluster.client import KubeClient
from syncer.controller import credentials as cred
from syncer.controller import events as ev
from syncer.controller.config import ControllerConfig
from syncer.controller.credentials import CredentialFiles
from syncer.controller.loop import (
    FAILED,
    PARKED,
    SUCCESS,
    ReconcileOutcome,
    Reconciler,
    ReconcileRequest,
)
from syncer.problems import UserError
from syncer.reconcile import Stage

# Revisions refused for what they are, and the Event that says so.
_REFUSED = {Stage.VALIDATE: ev.VALIDATION_FAILED, Stage.GUARD: ev.PRUNE_REFUSED}


@dataclass(frozen=True)
class ReconcilerContext:
    config: ControllerConfig
    client: KubeClient  # shared with the controller's own requests
    credentials: CredentialFiles
    identity: str


ReconcilerFactory = Callable[[ReconcilerContext], Reconciler]


def load_factory(spec: str | None) -> ReconcilerFactory:
    """The factory named ``module:function``, or :func:`builtin`."""
    if not spec:
        return builtin
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
        factory = getattr(module, attr or "make_reconciler")
    except (ImportError, AttributeError) as err:
        raise UserError(f"--reconciler {spec}: {err}") from None
    if not callable(factory):
        raise UserError(f"--reconciler {spec}: not callable")
    return factory  # type: ignore[no-any-return]


def builtin(ctx: ReconcilerContext) -> Reconciler:
    """The real reconcile: Git source -> validate -> render -> apply -> prune -> nodes."""
    from dataclasses import replace

    from syncer.controller.nodestage import ControllerProgress, stage_options
    from syncer.reconcile import ReconcileOptions, reconcile_once
    from syncer.source import GitSource, SourceConfig, SourceError

    config = ctx.config
    files = ctx.credentials
    client = ctx.client
    options = ReconcileOptions(inventory_namespace=config.namespace,
                               nodes=stage_options(config, files))
    lock = threading.Lock()
    state: dict[str, Any] = {"source": None, "generations": None, "writeback": None}

    def source() -> Any:
        generations = (files.generation(cred.GIT_SSH_KEY), files.generation(cred.GIT_TOKEN),
                       files.generation(cred.GIT_KNOWN_HOSTS))
        if state["source"] is None or generations != state["generations"]:
            source_config = SourceConfig(
                url=config.repo,
                ref=config.ref,
                path="" if config.path in (".", "./") else config.path,
                workdir=config.workdir / "source",
                ssh_key_file=files.private_copy(cred.GIT_SSH_KEY),
                known_hosts_file=config.git_known_hosts_file,
                token_file=config.git_token_file,
            )
            try:
                state["source"] = GitSource(source_config)
            except SourceError as err:
                raise UserError(err.message) from None
            state["generations"] = generations
            if state["writeback"] is not None:
                state["writeback"].close()
            state["writeback"] = writeback_for(config, state["source"], ctx.identity)
        return state["source"]

    def reconcile(request: ReconcileRequest, park: threading.Event) -> ReconcileOutcome:
        progress = ControllerProgress(request.progress)
        written: list[Any] = []
        applied: list[Any] = []

        def write_back(result: Any, previews: bool = True) -> None:
            # Looked up when used: source(), called below, replaces the source and its
            # write-back together when a Git credential changed.
            writeback = state["writeback"]
            if writeback is not None:
                written.append(writeback.after(result, client, previews=previews))
                report_writeback(written[-1], request)

        def on_applied(result: Any) -> None:
            # Objects changed (a new revision, or drift corrected): say so in Git at once,
            # not only after a rollout that may take hours. A resync that changed nothing
            # waits for the hosts, so the status does not flip between with and without.
            applied.append(result)
            if any(str(r.outcome) != "unchanged" for r in result.applied.results):
                write_back(result)

        def on_update(snapshot: Any) -> None:
            # A host started or finished during the rollout: a change of state to record
            # (the status only: pull-request previews do not change as hosts move on).
            if applied:
                write_back(replace(applied[-1], nodes=snapshot), previews=False)

        assert options.nodes is not None
        run_options = replace(options, nodes=replace(options.nodes, progress=progress,
                                                     on_update=on_update))

        with lock:
            result = reconcile_once(source(), client, run_options, shutdown=park,
                                    on_applied=on_applied)
            progress.flush()
            if not written or result.nodes is not None:
                write_back(result)
        return outcome_of(result, request, config.ref)

    source()  # configuration mistakes (no known_hosts for ssh://, ...) fail at start
    return reconcile


def writeback_for(config: ControllerConfig, source: Any, identity: str) -> Any:
    """The write-back of ``syncer run`` (None when nothing is written back)."""
    from dataclasses import replace

    from syncer.names import STATUS_BRANCH
    from syncer.source import SourceError
    from syncer.writeback.forges import ForgeConfigError
    from syncer.writeback.step import WriteBack, WriteBackSettings, forge_settings

    if not config.status_write and config.forge == "none":
        return None
    remote = source.config.remote
    try:
        forge = None
        if config.forge != "none":
            forge = forge_settings(
                config.forge, config.repo, api_url=config.forge_url,
                repository=config.forge_repo,
                token_file=str(config.forge_token_file) if config.forge_token_file else None,
            )
        return WriteBack(WriteBackSettings(
            workdir=config.workdir,
            status=config.status_write,
            status_remote=replace(remote, url=config.status_repo) if config.status_repo else None,
            # The default defers to the Fleet's spec.status.branch.
            status_branch=None if config.status_branch == STATUS_BRANCH else config.status_branch,
            forge=forge,
            instance=identity,
            inventory_namespace=config.namespace,
        ), source)
    except SourceError as err:
        raise UserError(err.message) from None
    except ForgeConfigError as err:
        raise UserError(str(err)) from None


def report_writeback(after: Any, request: ReconcileRequest) -> None:
    """Count what the write-back could not do (it logged the details already)."""
    status = after.status
    if status is not None and status.error:
        request.progress.git_error()
    forge_errors = 0
    if after.previews is not None:
        forge_errors = len(after.previews.errors)
    request.progress.writeback(status.pending if status is not None else 0, forge_errors)


def outcome_of(result: Any, request: ReconcileRequest, ref: str) -> ReconcileOutcome:
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
    if nodes is not None:
        hosts, rollout = dict(nodes.hosts), nodes.rollout
        summary += f"; {result.nodes.summary()}"
    if nodes is not None and nodes.interrupted:
        return ReconcileOutcome(PARKED, message=f"{summary}; the rollout parked",
                                objects=objects, hosts=hosts, rollout=rollout, ref=ref)
    # The revision is applied once its objects are: a halted or blocked node round does
    # not undo that (it has its own Event, RolloutHalted, and the hosts gauge).
    applied = result.applied is None or not result.applied.failed
    if result.stage is Stage.DONE and not result.errors and applied:
        return ReconcileOutcome(SUCCESS, revision=result.revision or None, objects=objects,
                                message=summary, hosts=hosts, rollout=rollout, ref=ref)
    message = "; ".join(result.errors) or summary
    short = message[:1000]
    if result.stage is Stage.SOURCE:
        progress.git_error()
    reason = _REFUSED.get(result.stage)
    if reason is not None:
        progress.event(reason, f"revision {result.revision}: {short}", ev.WARNING)
    return ReconcileOutcome(FAILED, message=message, objects=objects, hosts=hosts,
                            rollout=rollout, ref=ref, reported=reason is not None)

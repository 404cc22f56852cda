"""One full reconcile: source -> validate -> render -> plan -> apply -> prune -> record.

:func:`reconcile_once` is the unit the ``syncer sync --once`` command runs, and the one
the controller (``syncer run``), the node stage (which appends its rollout after a
successful apply) and the status writer build on. It returns a
:class:`ReconcileResult`; it raises only for programming errors, never for a bad
revision or an unreachable remote or cluster.

Guarantees:

- **A revision that fails validation is never applied, not even in part.** Loading and
  validating the whole fleet happens before the first request that changes the cluster;
  a failure records only ``lastAttemptedRevision``/``lastError`` on the inventory
  ConfigMap, and the objects (and ``lastAppliedRevision``) stay as the last good revision
  left them.
- **A revision the prune guard refuses** is treated the same way (nothing applied).
- **An unreachable remote or a rejected commit** (unsigned, when verification is on)
  changes nothing but ``lastError``.
- **A no-change resync writes nothing**: unchanged objects are not sent and the inventory
  ConfigMap is only written when what it records changes.
- **Hosts keep converging when a revision is not applied.** The node stage reads its
  inputs from the cluster, so after a rejected revision or with the remote unreachable it
  still runs against what the last good revision applied (its fleet namespace is where
  the inventory lists the ``syncer-fleet`` ConfigMap): a rollout a killed leader left
  half-way is resumed, and a drifted host repaired, without waiting for Git. After an
  apply that failed in part the desired state is mixed, and the stage waits.

The revision of a local directory (no Git source) is a digest of its YAML files,
``local@sha256:<12 hex>``, so "applied" and "attempted" are meaningful there too.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from syncer.cluster import gcpause
from syncer.cluster.apply import ApplyOptions, ApplyResult, apply_plan
from syncer.cluster.changesfirst import LastApplied, apply_changes_first, fingerprints, fold
from syncer.cluster.client import WORKERS, ApiError, KubeClient
from syncer.cluster.display import apply_summary
from syncer.cluster.inventory import Inventory, InventoryStore
from syncer.cluster.objects import ObjectRef
from syncer.cluster.plan import FleetLike, Plan, SourceOf, compute_plan
from syncer.cluster.prune import Confirmation
from syncer.fleet import Fleet, FleetModel, load_fleet, render
from syncer.fleet.admission import DEFAULT as DEFAULT_PASSTHROUGH
from syncer.fleet.admission import PassThroughPolicy
from syncer.fleet.loading import ParseCache
from syncer.names import FLEET_CONFIGMAP, INVENTORY_CONFIGMAP, SYSTEM_NAMESPACE
from syncer.nodes.stage import NodeStageOptions, NodeStageResult, run_node_stage
from syncer.problems import Problem, UserError
from syncer.source import GitSource, Revision, SourceError


class Stage(StrEnum):
    """Where a reconcile stopped: the step that failed, or DONE."""

    SOURCE = "source"  # fetching or verifying the revision
    VALIDATE = "validate"  # loading and validating the fleet
    PLAN = "plan"  # reading the live state and the inventory
    GUARD = "guard"  # the prune guard refused the revision
    APPLY = "apply"  # some objects failed to apply
    DONE = "done"  # every object applied (and pruned)

    @property
    def rejects_revision(self) -> bool:
        """The revision itself was refused (invalid, or a prune the guard stops): the last
        good revision stays applied, and the same revision will be refused again."""
        return self in (Stage.VALIDATE, Stage.GUARD)


@dataclass(frozen=True)
class ReconcileOptions:
    inventory_namespace: str = SYSTEM_NAMESPACE
    inventory_name: str = INVENTORY_CONFIGMAP
    confirm_prune: bool = False
    dry_run: bool = False
    workers: int = WORKERS
    # The node stage after a successful apply; None skips it. Its fleet
    # namespace is taken from the Fleet.
    nodes: NodeStageOptions | None = None
    passthrough: PassThroughPolicy = DEFAULT_PASSTHROUGH  # what the fleet may pass through
    # A long-running reconciler's parsed files: unchanged files are not parsed again.
    parse_cache: ParseCache | None = None
    # A long-running reconciler's record of its last clean apply: a new revision's
    # changed objects are applied before the whole fleet is planned.
    last_applied: LastApplied | None = None


@dataclass
class ReconcileResult:
    """What one reconcile did. ``ok`` is False when anything failed; ``stage`` says where
    it stopped (:class:`Stage`)."""

    revision: str = ""
    source_revision: Revision | None = None
    stage: Stage = Stage.SOURCE
    plan: Plan | None = None
    applied: ApplyResult | None = None
    problems: list[Problem] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    nodes: NodeStageResult | None = None
    # The validated Fleet; its spec.status policy steers the write-back (syncer.writeback).
    fleet: Fleet | None = None

    @property
    def ok(self) -> bool:
        return (
            not self.errors
            and (self.applied is None or not self.applied.failed)
            and (self.nodes is None or self.nodes.ok)
        )

    def summary(self) -> str:
        if self.applied is not None:  # errors too: what was applied before one stopped it
            text = apply_summary(self.revision or "(unknown revision)", self.applied)
            return f"{text}; then: {self.errors[0]}" if self.errors else text
        where = f" {self.revision}" if self.revision else ""
        return f"Not applied{where}: {self.errors[0] if self.errors else 'no changes'}"

    def to_json(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "ok": self.ok,
            "stage": self.stage.value,
            "summary": self.summary(),
            "errors": self.errors,
            "problems": [str(p) for p in self.problems],
            "objects": [r.to_json() for r in self.applied.results] if self.applied else [],
            **({"nodes": self.nodes.to_json()} if self.nodes is not None else {}),
        }


def local_revision(path: Path) -> str:
    """``local@sha256:<12 hex>`` over the YAML files under ``path`` (names and bytes)."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml")):
        digest.update(str(file.relative_to(path)).encode() + b"\0" + file.read_bytes() + b"\0")
    return f"local@sha256:{digest.hexdigest()[:12]}"


def reconcile_once(
    source: Path | GitSource, client: KubeClient, options: ReconcileOptions | None = None,
    *, shutdown: threading.Event | None = None,
    on_applied: Callable[[ReconcileResult], None] | None = None,
) -> ReconcileResult:
    """Bring the cluster to the revision ``source`` holds now (see the module docs).

    ``shutdown`` is the node stage's park token (the controller's): once set, no new host
    starts and running hosts stop at their next safe point. ``on_applied`` is called with
    the result once the objects are applied, before the node stage starts (the controller
    writes its status then, so Git shows the apply without waiting for a long rollout)."""
    options = options or ReconcileOptions()
    result = ReconcileResult()
    with gcpause.paused():
        model, inventory = _objects_half(source, client, options, result)
    if model is None:  # no revision, or an invalid one: nothing was applied
        return _nodes_on_last_applied(inventory, client, options, shutdown, result)
    if result.stage is Stage.GUARD:  # the prune guard refused it: nothing was applied
        assert result.plan is not None
        return _nodes_on_last_applied(result.plan.inventory, client, options, shutdown, result)
    if result.stage is not Stage.DONE or options.dry_run:
        return result
    if isinstance(source, GitSource) and result.source_revision is not None:
        source.mark_good(result.source_revision)
    if on_applied is not None:
        on_applied(result)
    _run_nodes(client, options, shutdown, result, model.fleet.namespace)
    return result


def _objects_half(source: Path | GitSource, client: KubeClient, options: ReconcileOptions,
                  result: ReconcileResult) -> tuple[FleetModel | None, Inventory | None]:
    """Fetch, validate, render, plan and apply. Returns the fleet, or None and the
    inventory as the failure was recorded on it (None: the cluster could not be read)."""
    store = InventoryStore(client, options.inventory_namespace, options.inventory_name)
    path = _fetch(source, result)
    if path is None:
        return None, _record_failure(store, result, options)
    result.stage = Stage.VALIDATE
    try:
        model = load_fleet(path, options.passthrough, options.parse_cache)
    except UserError as err:
        result.problems = err.problems
        result.errors = [str(p) for p in err.problems if p.is_error] or [str(err)]
        return None, _record_failure(store, result, options)
    result.problems = list(model.warnings)
    result.fleet = model.fleet
    reconcile_objects(render(model), model.fleet, client, options,
                      source_of=source_lookup(model), result=result)
    return model, None


def _run_nodes(client: KubeClient, options: ReconcileOptions,
               shutdown: threading.Event | None, result: ReconcileResult,
               namespace: str) -> None:
    parked = shutdown is not None and shutdown.is_set()
    if options.nodes is not None and not parked and not options.dry_run:
        result.nodes = run_node_stage(client, replace(options.nodes, namespace=namespace),
                                      shutdown=shutdown)


def _nodes_on_last_applied(inventory: Inventory | None, client: KubeClient,
                           options: ReconcileOptions, shutdown: threading.Event | None,
                           result: ReconcileResult) -> ReconcileResult:
    """The node stage on what the last good revision applied (see the module docs), as
    ``inventory`` (just read) records it; None: the cluster could not be read."""
    if options.nodes is None or options.dry_run or inventory is None:
        return result
    namespace = next((ref.namespace for ref in inventory.entries
                      if ref.kind == "ConfigMap" and ref.name == FLEET_CONFIGMAP), None)
    if namespace is not None:
        _run_nodes(client, options, shutdown, result, namespace)
    return result


def reconcile_objects(
    objects: list[dict[str, Any]],
    fleet: FleetLike,
    client: KubeClient,
    options: ReconcileOptions | None = None,
    *,
    revision: str = "",
    source_of: SourceOf | None = None,
    result: ReconcileResult | None = None,
) -> ReconcileResult:
    """The cluster half of a reconcile, for objects already rendered from a valid
    revision: plan against the live state and inventory, guard, apply, prune, record.
    With ``options.last_applied``, the objects that changed since the last clean apply
    are applied before the whole plan (:mod:`syncer.cluster.changesfirst`)."""
    options = options or ReconcileOptions()
    record = None if options.dry_run else options.last_applied
    store = InventoryStore(client, options.inventory_namespace, options.inventory_name)
    if result is None:
        result = ReconcileResult(revision=revision)
    try:
        result.stage = Stage.PLAN
        inventory = store.load()
        prints = fingerprints(objects) if record is not None else []
        early = None if record is None else apply_changes_first(
            objects, prints, record, fleet, client, inventory, source_of=source_of,
            revision=result.revision, workers=options.workers)
        if early is not None:  # what was sent is reported, should the plan below fail
            result.plan, result.applied = early
        plan = compute_plan(
            objects, fleet, client, inventory,
            source_of=source_of,
            revision=result.revision,
            confirm=Confirmation(options.confirm_prune, inventory.confirm_prune),
            workers=options.workers,
        )
        result.plan = plan
        if plan.refusal:
            result.stage = Stage.GUARD
            result.errors = [plan.refusal]
            _record_failure(store, result, options, inventory)
            return result

        result.stage = Stage.APPLY
        applied = apply_plan(plan, client, ApplyOptions(workers=options.workers,
                                                        dry_run=options.dry_run))
        if early is not None:
            fold(early, plan, applied)
        result.applied = applied
        if options.dry_run:
            result.stage = Stage.DONE
            return result
        before = inventory.content()
        inventory.entries = applied.inventory
        inventory.fleet = fleet.name
        if applied.failed:
            first = applied.failed[0]
            inventory.record_attempt(
                result.revision, f"{len(applied.failed)} objects failed; {first.ref}: {first.error}"
            )
        else:
            inventory.record_applied(result.revision)
        if inventory.content() != before or not inventory.exists:
            store.save(inventory)
        if not applied.failed:
            result.stage = Stage.DONE
            if record is not None:
                record.remember(result.revision, prints)
    except ApiError as err:
        result.errors.append(str(err))
    return result


def _fetch(source: Path | GitSource, result: ReconcileResult) -> Path | None:
    if isinstance(source, Path):
        if not source.is_dir():
            result.errors = [f"{source}: no such directory"]
            return None
        result.revision = local_revision(source)
        return source
    try:
        revision = source.poll()
        if revision is None and source.last_seen:
            revision = source.revision(source.last_seen)  # head unchanged: reconcile it again
    except SourceError as err:
        result.revision = err.sha or ""
        result.errors = [err.message]
        return None
    if revision is None:
        result.errors = ["the source has no revision yet"]
        return None
    result.source_revision = revision
    result.revision = revision.sha
    return revision.path


def _record_failure(
    store: InventoryStore, result: ReconcileResult, options: ReconcileOptions,
    inventory: Inventory | None = None,
) -> Inventory | None:
    """Record a revision that was not applied: ``lastAttempted*`` and ``lastError`` only
    (only what changed; nothing in a dry run). Returns the inventory, read unless given;
    None when it could not be read (or, in a dry run, was not)."""
    if options.dry_run:
        return inventory
    try:
        inventory = inventory or store.load()
        before = inventory.content()
        error = "; ".join(result.errors)[:1000]
        if result.revision:
            inventory.record_attempt(result.revision, error)
        else:
            inventory.last_error = error
        if inventory.content() != before:
            store.save(inventory)
    except ApiError as err:  # the cluster is not reachable either: report both
        result.errors.append(f"cannot record the failure in the cluster: {err}")
    return inventory


def source_lookup(model: FleetModel) -> SourceOf:
    """``ref -> (file, line)`` of the document that rendered the object, for plans."""

    def source_of(ref: ObjectRef) -> tuple[str, int] | None:
        try:
            return model.source_of(ref.kind, ref.namespace, ref.name)
        except KeyError:
            return None

    return source_of

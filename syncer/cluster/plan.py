"""The plan: per object create / update / unchanged / prune / prune-skipped.

:func:`compute_plan` reads the live state with as few requests as the API allows: one
LIST per resource type and namespace (or one cluster-wide LIST when the objects spread
over many namespaces) with the selector of syncer's labels for this fleet, instead of one
GET per object. Objects Git wants that the LIST did not return are checked with a
metadata-only LIST of the same scope (names only, cheap), and only those that exist
without syncer's labels (to be adopted) are fetched one by one. Each desired object that
exists is compared by :func:`syncer.cluster.diff.diff` as its page of the LIST is read,
and the plan keeps only which object it is and what differs; only objects whose patch is
not empty are applied, so a resync without changes sends no write at all.

Kinds served only once a CRD of the same revision is applied are resolved from that CRD
(its group, plural and scope), so the plan can show them before the cluster knows them.

The plan also applies the prune guard (:mod:`syncer.cluster.prune`): ``Plan.refusal``
says why the revision must not be applied.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from syncer.cluster import gcpause, ordering
from syncer.cluster.client import WORKERS, ApiError, KubeClient, Resource, UnknownKind
from syncer.cluster.diff import Change, diff, redact_patch
from syncer.cluster.inventory import Inventory
from syncer.cluster.objects import ObjectRef
from syncer.cluster.prune import Confirmation, PolicyLike, Skip, guard, selector, skip_reason

SourceOf = Callable[[ObjectRef], "tuple[str, int] | None"]
T = TypeVar("T")
# Namespaces of one kind beyond which one cluster-wide LIST replaces per-namespace LISTs.
PER_NAMESPACE_LISTS = 3


class FleetLike(Protocol):
    """What the plan needs of ``syncer.fleet.model.Fleet``."""

    @property
    def name(self) -> str: ...

    @property
    def prune(self) -> PolicyLike: ...


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    UNCHANGED = "unchanged"
    PRUNE = "prune"
    PRUNE_SKIPPED = "prune-skipped"

    @property
    def applies(self) -> bool:
        return self in (Action.CREATE, Action.UPDATE)

    @property
    def desired(self) -> bool:
        return self in (Action.CREATE, Action.UPDATE, Action.UNCHANGED)


@dataclass
class PlanEntry:
    ref: ObjectRef
    action: Action
    resource: Resource | None = None
    desired: dict[str, Any] | None = None
    live: dict[str, Any] | None = None  # which live object (identity()); None: none
    change: Change | None = None  # what differs; None when nothing does
    source: tuple[str, int] | None = None
    reason: str = ""  # why: "drift", "adopt", a prune-skip reason
    skip: Skip | None = None
    error: str = ""  # known before applying (unknown kind); the apply fails this object
    awaits_crd: bool = False  # its kind is served only once a CRD of this revision is

    @property
    def patch(self) -> list[dict[str, Any]]:
        return self.change.patch if self.change is not None else []

    @property
    def stage(self) -> int:
        return ordering.stage_of(self.ref)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "action": str(self.action),
            "apiVersion": self.ref.api_version,
            "kind": self.ref.kind,
            "namespace": self.ref.namespace,
            "name": self.ref.name,
            "id": self.ref.id,
        }
        if self.source:
            out["source"] = f"{self.source[0]}:{self.source[1]}"
        if self.action is Action.UPDATE:
            out["patch"] = redact_patch(self.ref.kind, self.patch)
        if self.reason:
            out["reason"] = self.reason
        if self.error:
            out["error"] = self.error
        return out


@dataclass
class Plan:
    fleet: str
    entries: list[PlanEntry]
    inventory: Inventory = field(default_factory=Inventory)
    revision: str = ""
    refusal: str | None = None  # the prune guard's reason to refuse the revision
    offline: bool = False  # computed without a cluster: everything is "create"

    def count(self, action: Action) -> int:
        return sum(1 for e in self.entries if e.action is action)

    @property
    def has_changes(self) -> bool:
        return any(e.action in (Action.CREATE, Action.UPDATE, Action.PRUNE) for e in self.entries)

    def to_json(self) -> dict[str, Any]:
        return {
            "fleet": self.fleet,
            "revision": self.revision,
            "offline": self.offline,
            "refused": self.refusal,
            "summary": {str(a): self.count(a) for a in Action},
            "objects": [e.to_json() for e in self.entries],
        }


def offline_plan(
    objects: Iterable[dict[str, Any]], fleet: str, source_of: SourceOf | None = None,
    revision: str = "",
) -> Plan:
    """Without a cluster: every object would be created."""
    entries = []
    for obj in objects:
        ref = ObjectRef.of(obj)
        entries.append(PlanEntry(ref, Action.CREATE, desired=obj,
                                 source=source_of(ref) if source_of else None))
    return Plan(fleet, _sorted(entries), revision=revision, offline=True)


def compute_plan(
    objects: Iterable[dict[str, Any]],
    fleet: FleetLike,
    client: KubeClient,
    inventory: Inventory,
    *,
    source_of: SourceOf | None = None,
    revision: str = "",
    confirm: Confirmation | None = None,
    workers: int = WORKERS,
    owned_only: bool = False,
) -> Plan:
    """Compare the rendered ``objects`` with the cluster and the ``inventory``.

    ``owned_only`` (pull-request previews) compares only with objects syncer applied
    itself (in the ``inventory``): nothing else in the cluster is read, so a preview
    cannot show a value, or the existence of an object, that Git did not put there."""
    with gcpause.paused():
        return _compute_plan(list(objects), fleet, client, inventory, source_of=source_of,
                             revision=revision, confirm=confirm, workers=workers,
                             owned_only=owned_only)


def _compute_plan(
    objects: list[dict[str, Any]],
    fleet: FleetLike,
    client: KubeClient,
    inventory: Inventory,
    *,
    source_of: SourceOf | None,
    revision: str,
    confirm: Confirmation | None,
    workers: int,
    owned_only: bool,
) -> Plan:
    desired: dict[ObjectRef, dict[str, Any]] = {}
    resources: dict[ObjectRef, Resource] = {}
    errors: dict[ObjectRef, str] = {}
    from_crds = _resources_of_crds(objects)
    unserved: set[Resource] = set()  # resolved from a CRD of this revision, not served yet
    for obj in objects:
        ref, res, error = _scoped(client, obj, from_crds, unserved)
        if ref in desired:
            continue
        desired[ref] = obj
        if res is not None and not error:
            resources[ref] = res
        if error:
            errors[ref] = error
    prunable: dict[ObjectRef, Resource | None] = {}
    for ref in sorted(inventory.entries - desired.keys()):
        prunable[ref] = _resolve(client, ref, {}, unserved)[0]

    def compare(live: dict[str, Any]) -> tuple[ObjectRef, _Seen]:
        ref = ObjectRef.of(live)
        want, res = desired.get(ref), resources.get(ref)
        if owned_only and ref not in inventory.entries:
            want = None  # dropped below: a preview compares only syncer's own objects
        change = diff(want, live, namespaced=res.namespaced) \
            if want is not None and res is not None else None
        return ref, _Seen(identity(live), change if change is not None and change.changed
                          else None)

    # One LIST per resource type and scope, with syncer's labels for this fleet.
    wanted: dict[Resource, set[str]] = {}
    for ref, res in [*resources.items(), *prunable.items()]:
        if res is not None and res not in unserved:
            wanted.setdefault(res, set()).add(ref.namespace)
    live = _list_live(client, wanted, selector(fleet.name), workers, compare)
    if owned_only:  # labels can be set by anyone; the inventory is syncer's own record
        live = {ref: seen for ref, seen in live.items() if ref in inventory.entries}
    else:
        # Desired objects without syncer's labels that exist anyway: adopt (fetch those).
        missing = {ref: resources[ref] for ref in desired
                   if ref not in live and ref in resources}
        live.update(_find_unlabelled(client, missing, unserved, workers, compare))

    entries: list[PlanEntry] = []
    for ref, obj in desired.items():
        res = resources.get(ref)
        seen = live.get(ref)
        entry = PlanEntry(ref, Action.CREATE, resource=res, desired=obj,
                          live=seen.identity if seen is not None else None,
                          source=source_of(ref) if source_of else None, error=errors.get(ref, ""),
                          awaits_crd=res is not None and res in unserved)
        if seen is None and owned_only:
            entry.reason = "new to syncer: created, or adopted if it exists"
        if seen is not None and res is not None:
            _judge(entry, seen.change)
        entries.append(entry)
    policy = fleet.prune
    for ref, res in prunable.items():
        seen = live.get(ref)
        current = seen.identity if seen is not None else None
        skip = Skip.UNKNOWN_KIND if res is None else skip_reason(current, fleet.name,
                                                                  policy.enabled)
        entry = PlanEntry(ref, Action.PRUNE, resource=res, live=current)
        if skip is not None:
            entry.action, entry.skip, entry.reason = Action.PRUNE_SKIPPED, skip, str(skip)
        entries.append(entry)

    plan = Plan(fleet.name, _sorted(entries), inventory=inventory, revision=revision)
    deletions = plan.count(Action.PRUNE)
    refusal = guard(policy, deletions, len(inventory.entries))
    if refusal and not (confirm or Confirmation()).covers(revision):
        plan.refusal = refusal
    return plan


def plan_objects(
    objects: Iterable[dict[str, Any]],
    fleet: FleetLike,
    client: KubeClient,
    inventory: Inventory,
    *,
    source_of: SourceOf | None = None,
    revision: str = "",
    workers: int = WORKERS,
) -> Plan:
    """A plan of only ``objects``, each compared with its live object by one GET: nothing
    is listed, and nothing is pruned (the rest of the fleet is not looked at). For a few
    objects of a large fleet; :func:`compute_plan` plans a whole revision. An object whose
    kind is not served, or that misses its namespace, is left out: the whole revision's
    plan reports it."""
    jobs: list[tuple[ObjectRef, Resource, dict[str, Any]]] = []
    for obj in objects:
        ref, res, error = _scoped(client, obj, {}, set())
        if res is not None and not error:
            jobs.append((ref, res, obj))

    def compare(job: tuple[ObjectRef, Resource, dict[str, Any]]) -> list[PlanEntry]:
        ref, res, obj = job
        live = client.get(res, ref.namespace, ref.name)
        entry = PlanEntry(ref, Action.CREATE, resource=res, desired=obj,
                          source=source_of(ref) if source_of else None)
        if live is not None:
            change = diff(obj, live, namespaced=res.namespaced)
            entry.live = identity(live)
            _judge(entry, change if change.changed else None)
        return [entry]

    with gcpause.paused():
        entries = _run(compare, jobs, workers)
    return Plan(fleet.name, _sorted(entries), inventory=inventory, revision=revision)


def _judge(entry: PlanEntry, change: Change | None) -> None:
    """Set the action of ``entry``, whose object exists live, from how it differs."""
    entry.change = change
    if change is None:
        entry.action = Action.UNCHANGED
    elif change.adopt:
        entry.action, entry.reason = Action.UPDATE, "not yet applied by syncer"
    else:
        entry.action, entry.reason = Action.UPDATE, "differs from Git"


@dataclass(frozen=True)
class _Seen:
    """A live object once compared, as its page of the LIST is read: which object it is
    (:func:`identity`) and, for a desired one, how it differs (None: it does not, or it
    is not desired). The listed objects themselves (20 MiB of decoded JSON for 4,000
    ConfigMaps) are never all held at once: only a page of them."""

    identity: dict[str, Any]
    change: Change | None


def identity(live: dict[str, Any]) -> dict[str, Any]:
    """What a plan keeps of a live object once it is compared: which object it is (the
    uid a prune's delete is conditioned on, its labels and annotations), not its
    content. A plan lives through the apply, the node stage and the write-back; the live
    objects it compared need not, nor the projections of the objects that did not
    change."""
    meta = live.get("metadata") or {}
    kept = ("name", "namespace", "uid", "resourceVersion", "labels", "annotations")
    return {"apiVersion": live.get("apiVersion"), "kind": live.get("kind"),
            "metadata": {k: meta[k] for k in kept if k in meta}}


def _sorted(entries: list[PlanEntry]) -> list[PlanEntry]:
    return sorted(entries, key=lambda e: (e.action.desired is False, e.stage, e.ref))


# --- resolving kinds ------------------------------------------------------------------


def _scoped(
    client: KubeClient,
    obj: dict[str, Any],
    from_crds: dict[tuple[str, str, str], Resource],
    unserved: set[Resource],
) -> tuple[ObjectRef, Resource | None, str]:
    """A desired object's reference in its kind's scope (a cluster-scoped kind's has no
    namespace), its resource (None: not served), and why it cannot be applied ("")."""
    ref = ObjectRef.of(obj)
    res, error = _resolve(client, ref, from_crds, unserved)
    if res is not None and not res.namespaced and ref.namespace:
        ref = ObjectRef(ref.group, ref.kind, "", ref.name, ref.version)
    if res is not None and res.namespaced and not ref.namespace:
        error = f"{ref.kind} {ref.name}: a namespaced kind needs metadata.namespace"
    return ref, res, error


def _resolve(
    client: KubeClient,
    ref: ObjectRef,
    from_crds: dict[tuple[str, str, str], Resource],
    unserved: set[Resource],
) -> tuple[Resource | None, str]:
    try:
        return client.resource(ref.api_version, ref.kind), ""
    except UnknownKind as err:
        res = from_crds.get((ref.group, ref.version, ref.kind))
        if res is not None:
            unserved.add(res)
            return res, ""
        return None, str(err)


def _resources_of_crds(objects: Iterable[dict[str, Any]]) -> dict[tuple[str, str, str], Resource]:
    """Resources that CRDs in this revision will serve, by (group, version, kind)."""
    found: dict[tuple[str, str, str], Resource] = {}
    for obj in objects:
        if obj.get("kind") != "CustomResourceDefinition" or not str(
            obj.get("apiVersion", "")
        ).startswith("apiextensions.k8s.io/"):
            continue
        spec = obj.get("spec") or {}
        names = spec.get("names") or {}
        group, kind, plural = spec.get("group"), names.get("kind"), names.get("plural")
        if not (group and kind and plural):
            continue
        for version in spec.get("versions") or []:
            name = (version or {}).get("name")
            if name and version.get("served", True):
                found[(group, name, kind)] = Resource(
                    group, name, kind, plural, spec.get("scope") != "Cluster"
                )
    return found


# --- reading live state ---------------------------------------------------------------


def _scopes(res: Resource, namespaces: set[str]) -> list[str]:
    """Namespaces to LIST in ("" = cluster-wide)."""
    if not res.namespaced or len(namespaces) > PER_NAMESPACE_LISTS or "" in namespaces:
        return [""]
    return sorted(namespaces)


Compare = Callable[[dict[str, Any]], "tuple[ObjectRef, _Seen]"]


def _list_live(
    client: KubeClient, wanted: dict[Resource, set[str]], labels: str, workers: int,
    compare: Compare,
) -> dict[ObjectRef, _Seen]:
    def list_scope(job: tuple[Resource, str, set[str]]) -> list[tuple[ObjectRef, _Seen]]:
        res, namespace, namespaces = job
        try:
            return [compare(o) for o in client.list(res, namespace, labels)]
        except ApiError as err:
            if err.status == 403 and namespace == "" and res.namespaced:
                # No cluster-wide list permission: fall back to one LIST per namespace.
                return [compare(o) for ns in sorted(namespaces)
                        for o in client.list(res, ns, labels)]
            raise

    jobs = [(res, ns, nss) for res, nss in wanted.items() for ns in _scopes(res, nss)]
    return dict(_run(list_scope, jobs, workers))


def _find_unlabelled(
    client: KubeClient,
    missing: dict[ObjectRef, Resource],
    unserved: set[Resource],
    workers: int,
    compare: Compare,
) -> dict[ObjectRef, _Seen]:
    """Live objects among ``missing`` (desired, not listed with syncer's labels)."""
    scopes: dict[tuple[Resource, str], None] = {}
    for ref, res in missing.items():
        if res not in unserved:
            scopes[(res, ref.namespace if res.namespaced else "")] = None

    def names(job: tuple[Resource, str]) -> list[ObjectRef]:
        res, namespace = job
        try:
            return [ObjectRef.of(o) for o in client.list(res, namespace, metadata_only=True)]
        except ApiError as err:
            if err.status in (403, 404):
                return []
            raise

    exists = list(dict.fromkeys(ref for ref in _run(names, list(scopes), workers)
                                if ref in missing))

    def fetch(ref: ObjectRef) -> list[tuple[ObjectRef, _Seen]]:
        obj = client.get(missing[ref], ref.namespace, ref.name)
        return [compare(obj)] if obj is not None else []

    return dict(_run(fetch, exists, workers))


def _run(fn: Callable[[Any], list[T]], jobs: list[Any], workers: int) -> list[T]:
    if not jobs:
        return []
    if len(jobs) == 1:
        return fn(jobs[0])
    with ThreadPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
        return [obj for chunk in pool.map(fn, jobs) for obj in chunk]

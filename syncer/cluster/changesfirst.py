"""A new revision's changes first: the objects a push changed are applied before the
whole fleet is planned.

A reconcile plans a revision against the live state of the whole fleet (one LIST per
kind and scope, every listed object compared): for 4,000 objects that is most of the
time from a push to its objects applied, when the push changed one ConfigMap. A
long-running reconciler (``syncer run``) keeps a :class:`LastApplied`: the revision its
last clean apply brought the cluster to, and a fingerprint of every object that apply
was given. For the next revision it names the objects whose rendered form changed since,
and :func:`apply_changes_first` applies those first, each compared with its live object
by one GET (:func:`~syncer.cluster.plan.plan_objects`) and sent only if it differs. The
whole revision's plan and apply follow as always: they find those objects unchanged, and
everything else (new objects, drift, pruning, the inventory) is theirs.

The record is a hint, never an authority. The whole plan always follows, so a stale or
wrong record costs at most a few GETs, or leaves an object to the whole plan. What the
first apply must keep are the reconcile's guarantees, so it sends nothing unless all of
these hold:

- the revision is valid: it runs after loading, validation and rendering, like any apply;
- the prune guard cannot refuse the revision: the guard is asked about every inventory
  object the revision no longer holds, an upper bound of the deletions the whole plan
  counts, and the guard refuses more deletions, never fewer;
- the safe order (:mod:`syncer.cluster.ordering`): only objects already in the inventory,
  so they exist, and none of a later stage than the earliest object the revision adds,
  so a changed object is never sent before a new Namespace, CRD or ConfigMap it may need;
- the record names the revision the inventory says was applied last (another leader's
  apply, or a failed one, makes them differ), and the run is not a dry run;
- a handful of objects (:data:`MAX_OBJECTS`): a push that changes many is planned whole,
  where one LIST costs less than many GETs.

An object the first apply fails is left to the whole plan, which sends it again and
reports it; one it applied is reported as applied, with its change (:func:`fold`), not as
the unchanged object the whole plan then finds.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from syncer.cluster import ordering
from syncer.cluster.apply import ApplyOptions, ApplyResult, Outcome, apply_plan
from syncer.cluster.client import ApiError, KubeClient
from syncer.cluster.inventory import Inventory
from syncer.cluster.objects import ObjectRef
from syncer.cluster.plan import Action, FleetLike, Plan, SourceOf, plan_objects
from syncer.cluster.prune import PolicyLike, guard

# More changed objects than this: one LIST per kind (the whole plan) costs less than a
# GET each.
MAX_OBJECTS = 50


def fingerprints(objects: Iterable[dict[str, Any]]) -> list[bytes]:
    """A digest of each rendered object, in order. Equal digests mean equal objects:
    pickle's bytes determine the object. An equal object that pickles differently (its
    keys in another order) only looks changed, which costs one GET. 11 ms for 4,000
    objects on an idle machine (20-30 ms inside a loaded reconcile), a third of what a
    canonical JSON encoding takes."""
    return [hashlib.blake2b(pickle.dumps(obj, protocol=5), digest_size=16).digest()
            for obj in objects]


@dataclass
class LastApplied:
    """What the last clean apply of a long-running reconciler was given: its revision and
    the fingerprints of its objects (a set of digests, a third of a MiB for 4,000
    objects). Empty until the first clean apply. Every object of that apply is in the
    inventory it wrote, and stays there while that revision is the last applied: an
    object leaves the inventory only when a revision no longer holds it."""

    revision: str = ""
    prints: frozenset[bytes] = frozenset()

    def remember(self, revision: str, prints: Iterable[bytes]) -> None:
        self.revision, self.prints = revision, frozenset(prints)

    def describes(self, inventory: Inventory) -> bool:
        """Whether the record is of the revision ``inventory`` says was applied last."""
        return bool(self.revision) and self.revision == inventory.last_applied_revision


def apply_changes_first(
    objects: list[dict[str, Any]],
    prints: list[bytes],
    record: LastApplied,
    fleet: FleetLike,
    client: KubeClient,
    inventory: Inventory,
    *,
    source_of: SourceOf | None = None,
    revision: str = "",
    workers: int,
) -> tuple[Plan, ApplyResult] | None:
    """Apply the objects of a valid revision (``objects``, their ``prints``) that changed
    since ``record`` (see the module docs). Returns their plan and what the apply did,
    or None when nothing was sent."""
    chosen = _choose(objects, prints, record, inventory, fleet.prune)
    if not chosen:
        return None
    try:
        plan = plan_objects(chosen, fleet, client, inventory, source_of=source_of,
                            revision=revision, workers=workers)
    except ApiError:
        return None  # the whole plan reads the same state, and reports what fails
    if not plan.has_changes:
        return None
    plan.entries = [e for e in plan.entries if e.action.applies]
    return plan, apply_plan(plan, client, ApplyOptions(workers=workers))


def _choose(objects: list[dict[str, Any]], prints: list[bytes], record: LastApplied,
            inventory: Inventory, policy: PolicyLike) -> list[dict[str, Any]]:
    """The objects to apply first: empty unless every condition of the module docs
    holds. Only the objects that changed are given references, and all of them only
    when there is something to apply first (the guard's bound needs them)."""
    if not record.describes(inventory):
        return []
    fresh = [obj for obj, digest in zip(objects, prints, strict=True)
             if digest not in record.prints]
    refs = [ObjectRef.of(obj) for obj in fresh]
    held = inventory.entries
    first_new = min((ordering.stage_of(ref) for ref in refs if ref not in held),
                    default=ordering.LAST_STAGE)
    chosen: dict[ObjectRef, dict[str, Any]] = {}
    for ref, obj in zip(refs, fresh, strict=True):
        if ref in held and ordering.stage_of(ref) <= first_new:
            chosen.setdefault(ref, obj)
    if not chosen or len(chosen) > MAX_OBJECTS:
        return []
    desired = {ObjectRef.of(obj) for obj in objects}
    if guard(policy, len(held - desired), len(held)):
        return []
    return list(chosen.values())


def fold(first: tuple[Plan, ApplyResult], plan: Plan, applied: ApplyResult) -> None:
    """Report in the whole revision's ``plan`` and ``applied`` what the first apply sent:
    an object it applied, which the whole plan then found unchanged, keeps the first
    plan's entry (its change) and the first apply's outcome."""
    first_plan, first_applied = first
    done = {r.ref: r for r in first_applied.results
            if r.outcome in (Outcome.CREATED, Outcome.CONFIGURED)}
    entries = {e.ref: e for e in first_plan.entries if e.ref in done}
    plan.entries = [entries[e.ref] if e.ref in entries and e.action is Action.UNCHANGED
                    else e for e in plan.entries]
    applied.results = [done[r.ref] if r.ref in done and r.outcome is Outcome.UNCHANGED
                       else r for r in applied.results]

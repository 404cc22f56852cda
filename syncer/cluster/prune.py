"""What to prune, and the guard against pruning accidents.

Candidates are the inventory minus the desired objects. A candidate is deleted only if

- it is still live *with syncer's labels* (``app.kubernetes.io/managed-by: syncer`` and
  ``syncer.io/fleet: <this fleet>``) — the live state is listed with exactly that
  selector, so an object a user took over by changing the labels is left alone;
- it does not carry the opt-out annotation ``syncer.io/prune: disabled`` (Flux's
  ``kustomize.toolkit.fluxcd.io/prune: disabled``);
- the Fleet does not disable pruning (``spec.prune.enabled: false``).

Opted-out and vanished objects leave the inventory (syncer no longer answers for them);
with pruning disabled they stay in it, so turning pruning on later cleans them up.

The guard (:func:`guard`) answers the top fear of GitOps users — a renamed directory or a
broken revision deleting everything. ``spec.prune.maxDeletions`` bounds the deletions of
one revision by a count or a share of the inventory (``"25%"``); when unset, a revision
may delete anything *but* every object in the inventory. A refused revision is not
applied at all (like a validation failure) until confirmed: ``--confirm-prune`` on the
command line, or for the controller the annotation ``syncer.io/confirm-prune: <sha>`` on
the inventory ConfigMap, naming exactly the revision that was refused (a commit cannot
name its own SHA, and a confirmation in Git would silently carry over to later commits).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from syncer.names import (
    ANNOTATION_PRUNE,
    LABEL_FLEET,
    LABEL_MANAGED_BY,
    MANAGED_BY_VALUE,
    PRUNE_DISABLED,
)


class PolicyLike(Protocol):
    """The Fleet's prune policy (``syncer.fleet.model.PrunePolicy``)."""

    @property
    def enabled(self) -> bool: ...

    def deletion_limit(self, inventory_size: int) -> int | None: ...


class Skip(StrEnum):
    """Why an inventory entry missing from Git is not deleted."""

    OPTED_OUT = f"annotated {ANNOTATION_PRUNE}: {PRUNE_DISABLED}"
    GONE = "no longer in the cluster with syncer's labels"
    DISABLED = "pruning is disabled in the Fleet"
    UNKNOWN_KIND = "the cluster no longer serves this kind"

    @property
    def keep_in_inventory(self) -> bool:
        return self is Skip.DISABLED


def selector(fleet: str) -> str:
    """The label selector of objects this fleet manages."""
    return f"{LABEL_MANAGED_BY}={MANAGED_BY_VALUE},{LABEL_FLEET}={fleet}"


def skip_reason(live: dict[str, Any] | None, fleet: str, enabled: bool) -> Skip | None:
    """None if ``live`` (the listed object, or None when not found) may be deleted."""
    if live is None:
        return Skip.GONE
    meta = live.get("metadata") or {}
    labels = meta.get("labels") or {}
    if labels.get(LABEL_MANAGED_BY) != MANAGED_BY_VALUE or labels.get(LABEL_FLEET) != fleet:
        return Skip.GONE
    if (meta.get("annotations") or {}).get(ANNOTATION_PRUNE) == PRUNE_DISABLED:
        return Skip.OPTED_OUT
    if not enabled:
        return Skip.DISABLED
    return None


def guard(policy: PolicyLike, deletions: int, inventory_size: int) -> str | None:
    """The reason to refuse a revision that deletes ``deletions`` of ``inventory_size``
    inventory objects, or None if the policy allows it."""
    if deletions == 0:
        return None
    limit = policy.deletion_limit(inventory_size)
    if limit is None:
        if deletions >= inventory_size:
            return (
                f"this revision would delete all {inventory_size} objects syncer applied; "
                "confirm with --confirm-prune (or set spec.prune.maxDeletions)"
            )
        return None
    if deletions > limit:
        return (
            f"this revision would delete {deletions} of {inventory_size} objects, more than "
            f"spec.prune.maxDeletions allows ({limit}); confirm with --confirm-prune"
        )
    return None


@dataclass(frozen=True)
class Confirmation:
    """Who confirmed a refused prune: the CLI flag, or the annotation naming a SHA."""

    flag: bool = False
    annotated_revision: str = ""

    def covers(self, revision: str) -> bool:
        return self.flag or (bool(revision) and self.annotated_revision == revision)

"""The safe order to apply objects in, as a list of *stages*.

Within a stage objects do not depend on each other and are applied concurrently; a stage
starts when the one before it has finished. The stages follow what Flux's staged apply
and Helm's install order teach:

0. ``CustomResourceDefinition`` — then wait until each is ``Established`` (and refresh
   the discovered resources), because the API server rejects custom objects of a kind it
   does not serve yet.
1. ``Namespace`` — every namespaced object needs its namespace.
2. RBAC and identities (ServiceAccount, ClusterRole, Role, bindings) — what controllers
   reacting to later objects run as.
3. ``ConfigMap`` / ``Secret`` — configuration that later objects reference (a
   MachineSet's ``windows-user-data``, the ``windows-instances`` list WMCO reads).
4. ``RuntimeClass`` (and other cluster-wide policy kinds such as PriorityClass).
5. Everything else: MachineSets, workloads, custom objects.

Prune runs after the last stage and in reverse (custom objects before their CRD,
namespaces last), so an object is never deleted before the things that use it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from syncer.cluster.objects import ObjectRef

T = TypeVar("T")

CRD_STAGE = 0
_STAGES: dict[tuple[str, str], int] = {
    ("apiextensions.k8s.io", "CustomResourceDefinition"): CRD_STAGE,
    ("", "Namespace"): 1,
    ("", "ServiceAccount"): 2,
    ("rbac.authorization.k8s.io", "ClusterRole"): 2,
    ("rbac.authorization.k8s.io", "Role"): 2,
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): 2,
    ("rbac.authorization.k8s.io", "RoleBinding"): 2,
    ("", "ConfigMap"): 3,
    ("", "Secret"): 3,
    ("node.k8s.io", "RuntimeClass"): 4,
    ("scheduling.k8s.io", "PriorityClass"): 4,
    ("storage.k8s.io", "StorageClass"): 4,
    ("", "ResourceQuota"): 4,
    ("", "LimitRange"): 4,
}
LAST_STAGE = 5


def stage_of(ref: ObjectRef) -> int:
    return _STAGES.get((ref.group, ref.kind), LAST_STAGE)


def stages(items: Iterable[T], ref: Callable[[T], ObjectRef]) -> list[list[T]]:
    """Group ``items`` into the apply stages, in order, leaving out empty stages. Inside a
    stage the order is deterministic (by kind, namespace, name)."""
    buckets: dict[int, list[T]] = {}
    for item in items:
        buckets.setdefault(stage_of(ref(item)), []).append(item)
    return [sorted(buckets[n], key=ref) for n in sorted(buckets)]


def prune_order(items: Iterable[T], ref: Callable[[T], ObjectRef]) -> list[list[T]]:
    """Stages for deletion: the apply stages reversed."""
    return list(reversed(stages(items, ref)))

"""The inventory: what syncer applied, stored in the cluster so it survives restarts.

Pruning needs to know which objects syncer created that Git no longer has; the live
cluster alone cannot say (labels can be copied, objects can be adopted), and a controller
that restarts must not forget. Like Flux's ``.status.inventory``, syncer keeps the list
of object ids (``<namespace>_<name>_<group>_<kind>`` plus the API version used).

Where: a ConfigMap, default ``syncer-inventory`` in the controller's namespace
``syncer-system`` (created if missing), both configurable. Why there and not on a custom
resource or in the fleet namespace:

- no CRD has to be installed before syncer can apply anything (the Fleet is a Git
  document, not a cluster object);
- the fleet's own objects are applied and pruned by syncer; keeping the record of them
  outside what it manages means a prune (even of the fleet namespace) can never delete the
  inventory itself, and the ConfigMap never carries syncer's managed-by labels;
- the controller's service account needs write access to one namespace it owns.

The same ConfigMap records the reconcile outcome Flux users know:
``lastAppliedRevision`` (the last revision applied completely), ``lastAttemptedRevision``
and ``lastError``. A revision that fails validation or is refused changes only the
``lastAttempted*`` keys, so the cluster shows which revision is really in effect.

Encoding (``data``): ``fleet``, ``entries`` (JSON list of ``{"id": ..., "v": ...}`` sorted
by id, one per line for readable ``kubectl get -o yaml``), the revision keys and
timestamps. A ConfigMap holds 1 MiB, about 10,000 entries.

The annotation ``syncer.io/confirm-prune: <sha>`` on this ConfigMap, set by an operator
(``kubectl annotate``), confirms a prune the guard refused for exactly that revision.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from syncer.cluster.client import ApiError, KubeClient, Resource
from syncer.cluster.objects import ObjectRef, now
from syncer.names import ANNOTATION_CONFIRM_PRUNE, INVENTORY_CONFIGMAP, SYSTEM_NAMESPACE

_CONFIGMAPS = Resource("", "v1", "ConfigMap", "configmaps", True)
_NAMESPACES = Resource("", "v1", "Namespace", "namespaces", False)
INVENTORY_MANAGER = "syncer-inventory"


@dataclass
class Inventory:
    """The decoded ConfigMap. ``entries`` are the objects syncer is responsible for."""

    entries: set[ObjectRef] = field(default_factory=set)
    fleet: str = ""
    last_applied_revision: str = ""
    last_applied_time: str = ""
    last_attempted_revision: str = ""
    last_attempted_time: str = ""
    last_error: str = ""
    confirm_prune: str = ""  # the annotation, read only
    exists: bool = False

    def encode(self) -> dict[str, str]:
        rows = sorted((ref.id, ref.version) for ref in self.entries)
        entries = "[" + ",\n".join(json.dumps({"id": i, "v": v}) for i, v in rows) + "]"
        return {
            "fleet": self.fleet,
            "entries": entries,
            "lastAppliedRevision": self.last_applied_revision,
            "lastAppliedTime": self.last_applied_time,
            "lastAttemptedRevision": self.last_attempted_revision,
            "lastAttemptedTime": self.last_attempted_time,
            "lastError": self.last_error,
        }

    def content(self) -> tuple[object, ...]:
        """What :meth:`encode` stores but the timestamps, cheaply comparable: two
        inventories with equal contents need no write between them. Entries count with
        their API version, which :class:`ObjectRef` equality leaves out."""
        entries = frozenset((ref.group, ref.kind, ref.namespace, ref.name, ref.version)
                            for ref in self.entries)
        return (entries, self.fleet, self.last_applied_revision,
                self.last_attempted_revision, self.last_error)

    @classmethod
    def decode(cls, data: dict[str, str], annotations: dict[str, str] | None = None) -> Inventory:
        """Inverse of :meth:`encode`. Unreadable entries are skipped, never fatal: a
        damaged inventory must not stop syncer from applying (it only prunes less)."""
        entries: set[ObjectRef] = set()
        try:
            rows = json.loads(data.get("entries") or "[]")
        except ValueError:
            rows = []
        for row in rows if isinstance(rows, list) else []:
            try:
                entries.add(ObjectRef.from_id(str(row["id"]), str(row.get("v") or "v1")))
            except (KeyError, TypeError, ValueError):
                continue
        return cls(
            entries=entries,
            fleet=data.get("fleet", ""),
            last_applied_revision=data.get("lastAppliedRevision", ""),
            last_applied_time=data.get("lastAppliedTime", ""),
            last_attempted_revision=data.get("lastAttemptedRevision", ""),
            last_attempted_time=data.get("lastAttemptedTime", ""),
            last_error=data.get("lastError", ""),
            confirm_prune=(annotations or {}).get(ANNOTATION_CONFIRM_PRUNE, ""),
            exists=True,
        )

    def record_attempt(self, revision: str, error: str = "") -> None:
        self.last_attempted_revision = revision
        self.last_attempted_time = now()
        self.last_error = error

    def record_applied(self, revision: str) -> None:
        self.record_attempt(revision)
        self.last_applied_revision = revision
        self.last_applied_time = self.last_attempted_time


@dataclass(frozen=True)
class InventoryStore:
    """Reads and writes the inventory ConfigMap."""

    client: KubeClient
    namespace: str = SYSTEM_NAMESPACE
    name: str = INVENTORY_CONFIGMAP

    def load(self) -> Inventory:
        obj = self.client.get(_CONFIGMAPS, self.namespace, self.name)
        if obj is None:
            return Inventory()
        meta = obj.get("metadata") or {}
        return Inventory.decode(obj.get("data") or {}, meta.get("annotations") or {})

    def save(self, inventory: Inventory) -> None:
        """Write with server-side apply (its own field manager, so an operator's
        annotations are left alone); create the namespace first if needed."""
        if not inventory.exists:
            self._ensure_namespace()
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": {
                    "app.kubernetes.io/name": "syncer",
                    "app.kubernetes.io/component": "inventory",
                },
            },
            "data": inventory.encode(),
        }
        self.client.apply(_CONFIGMAPS, body, field_manager=INVENTORY_MANAGER)
        inventory.exists = True

    def _ensure_namespace(self) -> None:
        if self.client.get(_NAMESPACES, "", self.namespace) is not None:
            return
        try:
            self.client.request(
                "POST", _NAMESPACES.path(),
                body={"apiVersion": "v1", "kind": "Namespace",
                      "metadata": {"name": self.namespace}},
            )
        except ApiError as err:
            if err.status != 409:  # created meanwhile
                raise



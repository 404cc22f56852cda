"""Identity of Kubernetes objects: :class:`ObjectRef`.

An object is identified by group, kind, namespace and name. The API *version* travels
with the reference (it is needed to build request paths) but is not part of the
identity: moving a manifest from ``v1beta1`` to ``v1`` changes how syncer talks to the
object, not which object it is, so it must not look like "prune the old one, create a new
one". Equality, hashing and ordering therefore ignore ``version``.

The string form :attr:`ObjectRef.id` is Flux's inventory id
``<namespace>_<name>_<group>_<kind>`` (empty namespace for cluster-scoped objects, empty
group for the core API), so users who know Flux's ``.status.inventory`` can read
syncer's inventory as is.

Objects travel as plain JSON :data:`JSON` dicts everywhere, the controller's own (Lease,
``syncer-control``, Events) included, without the generated model classes: their
constructors and (de)serialisers have changed shape across client releases. Two time
formats go with them: :func:`now` (RFC 3339, seconds; annotations, ConfigMap values) and
:func:`micro_time` (MicroTime with exactly six fractional digits, which
``datetime.isoformat()`` does not guarantee; Lease ``renewTime``, Event ``eventTime``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

JSON = dict[str, Any]


def now() -> str:
    """Now in RFC 3339, UTC, whole seconds."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_time() -> str:
    """Now as a Kubernetes MicroTime: RFC 3339 in UTC with exactly six fractional digits."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, order=True)
class ObjectRef:
    group: str
    kind: str
    namespace: str
    name: str
    version: str = field(default="v1", compare=False)

    @classmethod
    def of(cls, obj: dict[str, Any]) -> ObjectRef:
        """The reference of a rendered or live object (its ``apiVersion``, kind, name)."""
        api_version = str(obj.get("apiVersion", ""))
        group, _, version = api_version.rpartition("/")
        meta = obj.get("metadata") or {}
        return cls(
            group=group,
            kind=str(obj.get("kind", "")),
            namespace=str(meta.get("namespace") or ""),
            name=str(meta.get("name", "")),
            version=version,
        )

    @classmethod
    def from_id(cls, object_id: str, version: str = "v1") -> ObjectRef:
        """Parse a Flux-style id. Namespaces, groups and kinds never contain ``_``;
        names of some kinds (RBAC) may, so the name is what is left in the middle."""
        namespace, sep, rest = object_id.partition("_")
        parts = rest.rsplit("_", 2)
        if not sep or len(parts) != 3 or not parts[0] or not parts[2]:
            raise ValueError(f"not an inventory id: {object_id!r}")
        name, group, kind = parts
        return cls(group=group, kind=kind, namespace=namespace, name=name, version=version)

    @property
    def id(self) -> str:
        return f"{self.namespace}_{self.name}_{self.group}_{self.kind}"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def __str__(self) -> str:
        kind = f"{self.kind}.{self.group}" if self.group else self.kind
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{kind} {where}{self.name}"

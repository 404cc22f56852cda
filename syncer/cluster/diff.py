"""What differs between an object in Git and the live object, without false drift.

A field is *ours* when Git sets it. The live object has many more fields (defaults,
status, other managers' fields, server metadata), so the comparison is made on a
*projection*: the live object cut down to the shape of the desired object. Where a live
value is equal to the desired one after normalising what the API server does to values,
the projection takes the desired spelling, so the final comparison is plain equality and
the RFC 6902 patch (``jsonpatch.make_patch(projection, desired)``) lists exactly the
operations that re-applying would perform. An empty patch means unchanged.

Normalisation (what the API server does that is not a change):

- fields Git does not set are ignored (defaulting, ``status``, ``managedFields``,
  ``resourceVersion``, ``uid``, ``creationTimestamp``, ``generation``, other managers'
  labels and list items);
- ``null`` in Git means "not set"; empty maps and lists equal absent ones (the API server
  drops ``omitempty`` fields);
- numbers equal numbers and numeric strings of the same value, and resource quantities
  compare by value: ``cpu: 1`` = ``"1"``, ``0.5`` = ``"500m"``, ``1024Mi`` = ``"1Gi"``;
- a Secret's ``stringData`` is compared as the ``data`` it becomes;
- list items in Git may be a subset of the live item (defaulted ``protocol: TCP``).

Fields syncer applied before that Git no longer sets are found with the ``managedFields``
entry of manager ``syncer``, operation ``Apply``: its ``fieldsV1`` set is walked together
with the desired object, and every owned path the desired object lacks is put into the
projection with its live value, so the patch shows a ``remove`` and re-applying (which
drops fields the manager no longer applies) clears it. The same ``fieldsV1`` tells how a
list is merged: ``k:{...}`` children mean an associative list keyed by those fields,
``v:`` children a set, no children an atomic list compared as a whole.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import jsonpatch

from syncer.names import FIELD_MANAGER

_MISSING: Any = object()

# Server-managed metadata: never compared, never applied.
SERVER_METADATA = frozenset(
    {
        "managedFields", "resourceVersion", "uid", "creationTimestamp", "generation",
        "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds",
    }
)
# Subtrees whose string values are opaque: never read as quantities.
_OPAQUE = frozenset({"metadata", "data", "stringData", "binaryData"})
# Where two differently spelled strings may still be the same resource quantity.
_QUANTITY_CONTEXT = frozenset(
    {"resources", "limits", "requests", "overhead", "podFixed", "hard", "capacity",
     "allocatable", "storage"}
)

_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$")
_SUFFIX = {
    "": Decimal(1), "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"),
    "k": Decimal(10) ** 3, "M": Decimal(10) ** 6, "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12, "P": Decimal(10) ** 15, "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40, "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
}


REDACTED = "(sensitive value hidden)"


def is_sensitive(kind: str, path: str) -> bool:
    """Whether a JSON pointer of an object of ``kind`` holds a secret value."""
    return kind == "Secret" and (path.startswith("/data") or path.startswith("/stringData"))


def redact_patch(kind: str, patch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``patch`` with the values of Secret data replaced: plans go to CI logs and PRs."""
    return [
        {**op, "value": REDACTED} if "value" in op and is_sensitive(kind, op["path"]) else op
        for op in patch
    ]


@dataclass
class Change:
    """The difference for one object that exists live.

    ``patch`` is RFC 6902, from ``before`` (the live projection) to ``after`` (the
    desired object as compared). ``adopt`` is set when syncer has never applied the
    object (no ``Apply`` entry of its field manager): it must be applied once to own its
    fields even if every value already matches."""

    before: dict[str, Any]
    after: dict[str, Any]
    patch: list[dict[str, Any]] = field(default_factory=list)
    adopt: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.patch) or self.adopt


def normalise(desired: dict[str, Any], *, namespaced: bool = True) -> dict[str, Any]:
    """The desired object as the API server will store it, for comparison: server
    metadata, ``status`` and ``null`` values removed, ``stringData`` folded into
    ``data``, no namespace on cluster-scoped objects."""
    # _drop_nulls shares what has no null with ``desired``: copy the two levels changed here.
    obj: dict[str, Any] = dict(_drop_nulls(desired))
    obj.pop("status", None)
    meta = obj["metadata"] = dict(obj.get("metadata") or {})
    for key in SERVER_METADATA:
        meta.pop(key, None)
    if not namespaced:
        meta.pop("namespace", None)
    if obj.get("kind") == "Secret" and obj.get("apiVersion") == "v1" and "stringData" in obj:
        data = dict(obj.get("data") or {})
        for key, value in (obj.pop("stringData") or {}).items():
            data[key] = base64.b64encode(str(value).encode()).decode()
        obj["data"] = data
    return obj


def owned_fields(live: dict[str, Any], manager: str = FIELD_MANAGER) -> dict[str, Any] | None:
    """The ``fieldsV1`` set of ``manager``'s ``Apply`` operation on the main resource, or
    None if that manager never applied the object."""
    for entry in (live.get("metadata") or {}).get("managedFields") or []:
        if (
            entry.get("manager") == manager
            and entry.get("operation") == "Apply"
            and not entry.get("subresource")
        ):
            fields: dict[str, Any] = dict(entry.get("fieldsV1") or {})
            if live.get("kind") == "Secret":
                fields = _alias_string_data(fields)
            return fields
    return None


def diff(
    desired: dict[str, Any], live: dict[str, Any], *, namespaced: bool = True,
    manager: str = FIELD_MANAGER,
) -> Change:
    """Compare ``desired`` (as rendered from Git) with ``live`` (as listed)."""
    after = normalise(desired, namespaced=namespaced)
    owned = owned_fields(live, manager)
    before = _project(after, live, owned if owned is not None else {}, ())
    if not isinstance(before, dict):  # cannot happen for objects; keep mypy honest
        before = {}
    patch = [] if before == after else jsonpatch.make_patch(before, after).patch
    return Change(before=before, after=after, patch=patch, adopt=owned is None)


# --- projection -----------------------------------------------------------------------


def _project(want: Any, have: Any, owned: dict[str, Any], path: tuple[str, ...]) -> Any:
    """``have`` cut to the shape of ``want`` (plus owned fields ``want`` lacks); values
    equal to ``want`` after normalisation are spelled as in ``want``."""
    if isinstance(want, dict):
        if not isinstance(have, dict):
            return have
        out: dict[str, Any] = {}
        for key, wanted in want.items():
            got = have.get(key, _MISSING)
            if _empty(wanted) and (got is _MISSING or _empty(got)):
                out[key] = wanted
                continue
            projected = _project(wanted, got, owned.get(f"f:{key}") or {}, (*path, key))
            if projected is not _MISSING:
                out[key] = projected
        for owned_key in owned:
            key = owned_key[2:]
            if (
                owned_key.startswith("f:")
                and key not in want
                and key in have
                and not _ignored((*path, key))
            ):
                # Applied before, no longer in Git: re-applying removes it.
                out[key] = _owned_value(have[key], owned[owned_key] or {})
        return out
    if isinstance(want, list):
        if not isinstance(have, list):
            return have
        return _project_list(want, have, owned, path)
    if have is _MISSING:
        return _MISSING
    return want if _scalar_equal(want, have, path) else have


def _project_list(
    want: list[Any], have: list[Any], owned: dict[str, Any], path: tuple[str, ...]
) -> list[Any]:
    keyed = [(json.loads(k[2:]), v or {}) for k, v in owned.items() if k.startswith("k:")]
    values = [json.loads(k[2:]) for k in owned if k.startswith("v:")]
    if keyed and all(isinstance(w, dict) for w in want):
        return _project_associative(want, have, keyed, path)
    if values and not any(isinstance(w, (dict, list)) for w in want):
        kept = [w for w in want if any(_scalar_equal(w, h, path) for h in have)]
        gone = [v for v in values if v in have and not any(_scalar_equal(w, v, path) for w in want)]
        return kept + gone
    # Atomic: equal only as a whole (same length, item by item).
    if len(want) != len(have):
        return have
    projected = [_project(w, h, {}, path) for w, h in zip(want, have, strict=True)]
    return want if projected == want else have


def _project_associative(
    want: list[dict[str, Any]],
    have: list[Any],
    keyed: list[tuple[dict[str, Any], dict[str, Any]]],
    path: tuple[str, ...],
) -> list[Any]:
    key_names = sorted({name for keys, _ in keyed for name in keys})
    used: set[int] = set()
    out: list[Any] = []
    for wanted in want:
        index = _find(have, used, lambda h, w=wanted: _keys_match(w, h, key_names, path))
        if index is None:
            continue  # not live: the patch adds it
        used.add(index)
        item_owned = next(
            (o for keys, o in keyed if _keys_match(wanted, keys, list(keys), path)), {}
        )
        out.append(_project(wanted, have[index], item_owned, path))
    for keys, owned_item in keyed:
        if any(_keys_match(w, keys, list(keys), path) for w in want):
            continue
        index = _find(have, used, lambda h, k=keys: all(h.get(n) == v for n, v in k.items()))
        if index is not None:  # an item syncer applied that Git no longer has
            used.add(index)
            out.append(_owned_value(have[index], owned_item))
    return out


def _owned_value(have: Any, owned: dict[str, Any]) -> Any:
    """The part of a live value that the owned field set covers (a leaf: all of it)."""
    children = {k: v or {} for k, v in owned.items() if k != "."}
    if not children or not isinstance(have, (dict, list)):
        return have
    if isinstance(have, dict):
        return {
            k[2:]: _owned_value(have[k[2:]], sub)
            for k, sub in children.items()
            if k.startswith("f:") and k[2:] in have
        }
    out: list[Any] = []
    for k, sub in children.items():
        if k.startswith("k:"):
            keys = json.loads(k[2:])
            index = _find(have, set(), lambda h, ks=keys: all(h.get(n) == v for n, v in ks.items()))
            if index is not None:
                out.append(_owned_value(have[index], sub))
        elif k.startswith("v:") and json.loads(k[2:]) in have:
            out.append(json.loads(k[2:]))
    return out


def _find(items: list[Any], used: set[int], match: Any) -> int | None:
    for index, item in enumerate(items):
        if index not in used and isinstance(item, dict) and match(item):
            return index
    return None


def _keys_match(
    wanted: dict[str, Any], other: dict[str, Any], names: list[str], path: tuple[str, ...]
) -> bool:
    """Same values for the merge keys ``wanted`` sets (a key it leaves out, such as a
    defaulted ``protocol``, matches anything)."""
    return all(
        name not in wanted or _scalar_equal(wanted[name], other.get(name, _MISSING), path)
        for name in names
    )


# --- values ---------------------------------------------------------------------------


def _scalar_equal(want: Any, have: Any, path: tuple[str, ...]) -> bool:
    if have is _MISSING:
        return False
    if isinstance(want, bool) or isinstance(have, bool):
        return type(want) is type(have) and want == have
    if want == have and type(want) is type(have):
        return True
    if isinstance(want, (int, float)) and isinstance(have, (int, float)):
        return bool(want == have)
    if path[:1] and path[0] in _OPAQUE:
        return False
    if isinstance(want, str) and isinstance(have, str) and not _QUANTITY_CONTEXT.intersection(path):
        return False
    a, b = _quantity(want), _quantity(have)
    return a is not None and a == b


def _quantity(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return Decimal(str(value))
    if not isinstance(value, str):
        return None
    match = _QUANTITY.match(value.strip())
    if not match:
        return None
    number, suffix = match.group(1), match.group(2) or ""
    try:
        if suffix[:1] in ("e", "E"):
            return Decimal(number + suffix)
        return Decimal(number) * _SUFFIX[suffix]
    except (InvalidOperation, KeyError):
        return None


def _empty(value: Any) -> bool:
    return value is None or value == {} or value == []


def _ignored(path: tuple[str, ...]) -> bool:
    return path[:1] == ("status",) or (path[:1] == ("metadata",) and path[1:2] != ()
                                       and path[1] in SERVER_METADATA)


def _drop_nulls(value: Any) -> Any:
    """``value`` without ``null`` members; parts without any are returned as they are
    (not copied: a resync compares thousands of objects, most without a null)."""
    if isinstance(value, dict):
        changed = False
        out: dict[str, Any] = {}
        for k, v in value.items():
            if v is None:
                changed = True
                continue
            kept = _drop_nulls(v) if isinstance(v, dict | list) else v
            changed = changed or kept is not v
            out[k] = kept
        return out if changed else value
    if isinstance(value, list):
        items = [_drop_nulls(v) if isinstance(v, dict | list) else v for v in value]
        return items if any(a is not b for a, b in zip(items, value, strict=True)) else value
    return value


def _alias_string_data(fields: dict[str, Any]) -> dict[str, Any]:
    """A Secret applied with ``stringData`` owns ``f:stringData``; compare it as data."""
    if "f:stringData" not in fields:
        return fields
    merged = dict(fields)
    data = dict(merged.get("f:data") or {})
    data.update(merged.pop("f:stringData") or {})
    merged["f:data"] = data
    return merged

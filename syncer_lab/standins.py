"""Stand-ins for kube-controller-manager controllers that tests cannot do without.

The test control plane runs no kube-controller-manager (see :mod:`syncer_lab.kube`).
Most of what it does is irrelevant to syncer's tests, or is better done explicitly by the
test that needs it (PDB status, pod phases). What is here runs once, on demand:

- :func:`aggregate_cluster_roles`: the clusterrole-aggregation controller. Without it the
  bootstrap ClusterRoles ``admin``, ``edit`` and ``view`` exist but grant nothing, so a
  RoleBinding to ``view`` would silently test nothing.

The CSR signer is in :mod:`syncer_lab.csr_signer` (it must keep running).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubernetes import client


def _plain(api: client.ApiClient, obj: object) -> Any:
    """A client model as its JSON form (plain dicts and lists)."""
    return api.sanitize_for_serialization(obj)  # type: ignore[no-untyped-call]


def _selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Does a label selector (JSON form) match ``labels``?"""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, values = expr["key"], set(expr.get("values") or [])
        present = key in labels
        ok = {
            "In": present and labels.get(key) in values,
            "NotIn": not present or labels.get(key) not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }.get(expr["operator"], False)
        if not ok:
            return False
    return True


def aggregate_cluster_roles(api: client.ApiClient) -> list[str]:
    """Set each aggregated ClusterRole's rules to the union of the roles it selects.

    Aggregated roles may select other aggregated roles (``admin`` takes in ``edit``,
    which takes in ``view``), so the union is computed to a fixed point before anything
    is written. Returns the names of the roles it changed.
    """
    rbac = client.RbacAuthorizationV1Api(api)
    roles: dict[str, dict[str, Any]] = {
        r["metadata"]["name"]: r for r in _plain(api, rbac.list_cluster_role())["items"]
    }
    rules = {name: list(r.get("rules") or []) for name, r in roles.items()}
    aggregated: dict[str, list[dict[str, Any]]] = {
        name: r["aggregationRule"]["clusterRoleSelectors"]
        for name, r in roles.items()
        if (r.get("aggregationRule") or {}).get("clusterRoleSelectors")
    }
    for _ in range(len(aggregated) + 1):
        changed = False
        for name, selectors in aggregated.items():
            union: list[dict[str, Any]] = []
            for other, role in sorted(roles.items()):
                labels = role["metadata"].get("labels") or {}
                if other != name and any(_selects(s, labels) for s in selectors):
                    union += [x for x in rules[other] if x not in union]
            if union != rules[name]:
                rules[name], changed = union, True
        if not changed:
            break
    written = []
    for name in aggregated:
        if rules[name] != list(roles[name].get("rules") or []):
            rbac.patch_cluster_role(name, {"rules": rules[name]})
            written.append(name)
    return written

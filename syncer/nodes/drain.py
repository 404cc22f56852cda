"""Cordon, uncordon and drain a Node with the Eviction API, the way ``kubectl drain`` does.

``drain`` evicts every pod bound to the node except

- pods owned by a DaemonSet (their controller would recreate them on the node anyway;
  ``--ignore-daemonsets``), and
- mirror pods (static pods; the API server cannot delete them).

Pods with ``emptyDir`` volumes are evicted, which deletes that data
(``--delete-emptydir-data``), and pods without a controller are evicted too, as WMCO's
drain does (``--force``): the node is about to be reconfigured, and a pod left on it would
fail anyway.

Each eviction is a ``policy/v1`` Eviction with a ``uid`` precondition. A
``429 Too Many Requests`` means a PodDisruptionBudget does not allow the disruption now:
the pod is retried with exponential backoff until the drain times out, and the result
names the budget(s) that blocked it. Evicted pods are then waited for until they are gone
(or replaced by a pod with another uid), as kubectl does. When the timeout expires the
drain stops and reports what is left; deleting the rest anyway
(``force_delete_after_timeout``) is off by default because it bypasses the budgets.

``clock`` and ``sleep`` are injectable so tests control time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from syncer import names
from syncer.cluster.client import MERGE_PATCH, ApiError, KubeClient
from syncer.nodes.annotations import METADATA, node_path


@dataclass(frozen=True, order=True)
class PodRef:
    namespace: str
    name: str
    uid: str = field(default="", compare=False)

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class DrainOptions:
    timeout: float = 600.0  # seconds for the whole drain (the Fleet's rollout.drainTimeout)
    retry_interval: float = 2.0  # first wait after a 429; doubles per pod up to the cap
    max_retry_interval: float = 30.0
    poll_interval: float = 1.0  # how often evicted pods are checked for deletion
    grace_period_seconds: int | None = None  # None: each pod's own terminationGracePeriod
    force_delete_after_timeout: bool = False


@dataclass
class DrainResult:
    node: str
    evicted: list[PodRef] = field(default_factory=list)  # gone after eviction
    skipped: list[tuple[PodRef, str]] = field(default_factory=list)  # DaemonSet, mirror
    blocked: dict[PodRef, str] = field(default_factory=dict)  # still there: why
    force_deleted: list[PodRef] = field(default_factory=list)
    timed_out: bool = False
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        """True when every pod that had to go is gone."""
        return not self.blocked

    @property
    def message(self) -> str:
        if self.ok:
            extra = f", {len(self.force_deleted)} force-deleted" if self.force_deleted else ""
            return (
                f"drained {self.node}: {len(self.evicted)} evicted, "
                f"{len(self.skipped)} skipped{extra}"
            )
        listed = "; ".join(f"{pod}: {why}" for pod, why in sorted(self.blocked.items()))
        when = f" after {self.elapsed:.0f}s" if self.timed_out else ""
        return f"drain of {self.node} did not finish{when}: {listed}"


def cordon(api: KubeClient, node: str,
           annotations: Mapping[str, str | None] | None = None, *,
           labels: Mapping[str, str | None] | None = None) -> None:
    """Mark the node unschedulable (and set ``annotations`` and ``labels`` in the same
    write)."""
    _set_unschedulable(api, node, True, annotations, labels)


def uncordon(api: KubeClient, node: str,
             annotations: Mapping[str, str | None] | None = None, *,
             labels: Mapping[str, str | None] | None = None) -> None:
    """Mark the node schedulable again (and set ``annotations`` and ``labels`` in the
    same write)."""
    _set_unschedulable(api, node, False, annotations, labels)


def _set_unschedulable(api: KubeClient, node: str, value: bool,
                       annotations: Mapping[str, str | None] | None,
                       labels: Mapping[str, str | None] | None = None) -> None:
    body: dict[str, Any] = {"spec": {"unschedulable": value}}
    meta: dict[str, Any] = {}
    if annotations:
        meta["annotations"] = dict(annotations)
    if labels:
        meta["labels"] = dict(labels)
    if meta:
        body["metadata"] = meta
    api.request("PATCH", node_path(node), body=body, content_type=MERGE_PATCH,
                accept=METADATA)  # no status back


def pods_on_node(api: KubeClient, node: str) -> list[dict[str, Any]]:
    doc = api.request("GET", "/api/v1/pods", query=[("fieldSelector", f"spec.nodeName={node}")])
    pods: list[dict[str, Any]] = list(doc.get("items") or [])
    return pods


def skip_reason(pod: Mapping[str, Any]) -> str | None:
    """Why drain leaves this pod alone, or None if it must be evicted."""
    meta = pod.get("metadata") or {}
    if names.ANNOTATION_MIRROR_POD in (meta.get("annotations") or {}):
        return "mirror pod"
    for owner in meta.get("ownerReferences") or []:
        if owner.get("controller") and owner.get("kind") == "DaemonSet":
            return f"DaemonSet {owner.get('name', '')}"
    return None


def drain(
    api: KubeClient,
    node: str,
    options: DrainOptions | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> DrainResult:
    """Evict every evictable pod from ``node`` (see module docstring). Does not cordon:
    call :func:`cordon` first, or new pods may land on the node while it drains."""
    opts = options or DrainOptions()
    start = clock()
    deadline = start + opts.timeout
    result = DrainResult(node)

    pending: dict[PodRef, float] = {}  # pod -> time of next eviction attempt
    backoff: dict[PodRef, float] = {}
    waiting: set[PodRef] = set()  # eviction accepted, pod not gone yet
    for pod in pods_on_node(api, node):
        meta = pod.get("metadata") or {}
        ref = PodRef(
            str(meta.get("namespace", "")), str(meta.get("name", "")), str(meta.get("uid", ""))
        )
        why = skip_reason(pod)
        if why is not None:
            result.skipped.append((ref, why))
        else:
            pending[ref] = start
            backoff[ref] = opts.retry_interval

    while pending or waiting:
        now = clock()
        for ref in sorted(pending):
            if pending[ref] > now:
                continue
            outcome = _evict(api, ref, opts.grace_period_seconds)
            if outcome is None:  # accepted
                del pending[ref]
                result.blocked.pop(ref, None)
                waiting.add(ref)
            elif outcome == "gone":
                del pending[ref]
                result.blocked.pop(ref, None)
                result.evicted.append(ref)
            else:
                result.blocked[ref] = outcome
                pending[ref] = now + backoff[ref]
                backoff[ref] = min(backoff[ref] * 2, opts.max_retry_interval)
        for ref in sorted(waiting):
            if _gone(api, ref):
                waiting.discard(ref)
                result.evicted.append(ref)
            else:
                result.blocked[ref] = "evicted, still terminating"
        if not pending and not waiting:
            break
        now = clock()
        if now >= deadline:
            result.timed_out = True
            break
        next_try = min(pending.values(), default=deadline)
        if waiting:
            next_try = min(next_try, now + opts.poll_interval)
        sleep(max(0.0, min(next_try, deadline) - now))

    for ref in waiting:
        result.blocked.setdefault(ref, "evicted, still terminating")
    if result.timed_out and opts.force_delete_after_timeout:
        for ref in sorted(set(pending) | waiting):
            _force_delete(api, ref)
            result.blocked.pop(ref, None)
            result.force_deleted.append(ref)
    for ref in [r for r in result.blocked if r in result.evicted]:
        del result.blocked[ref]
    result.evicted.sort()
    result.elapsed = clock() - start
    return result


def _pod_path(ref: PodRef) -> str:
    return f"/api/v1/namespaces/{quote(ref.namespace, safe='')}/pods/{quote(ref.name, safe='')}"


def _evict(api: KubeClient, ref: PodRef, grace: int | None) -> str | None:
    """None = eviction accepted; "gone" = pod already gone; else why it was refused."""
    delete_options: dict[str, Any] = {}
    if ref.uid:
        delete_options["preconditions"] = {"uid": ref.uid}
    if grace is not None:
        delete_options["gracePeriodSeconds"] = grace
    body: dict[str, Any] = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": ref.name, "namespace": ref.namespace},
    }
    if delete_options:
        body["deleteOptions"] = delete_options
    try:
        api.request("POST", _pod_path(ref) + "/eviction", body=body)
    except ApiError as err:
        if err.status == 404:
            return "gone"
        if err.status == 409 and ref.uid:  # uid precondition: a new pod took the name
            return "gone"
        if err.status == 429:
            budgets = _blocking_budgets(api, ref)
            prefix = f"blocked by PodDisruptionBudget {', '.join(budgets)}: " if budgets else ""
            return prefix + err.message
        return f"eviction failed: {err}"
    return None


def _gone(api: KubeClient, ref: PodRef) -> bool:
    try:
        pod = api.request("GET", _pod_path(ref))
    except ApiError as err:
        if err.not_found:
            return True
        raise
    return bool(ref.uid) and str((pod.get("metadata") or {}).get("uid", "")) != ref.uid


def _force_delete(api: KubeClient, ref: PodRef) -> None:
    body: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0}
    if ref.uid:
        body["preconditions"] = {"uid": ref.uid}
    try:
        api.request("DELETE", _pod_path(ref), body=body)
    except ApiError as err:
        if err.status not in (404, 409):
            raise


def _blocking_budgets(api: KubeClient, ref: PodRef) -> list[str]:
    """Names of the PodDisruptionBudgets in the pod's namespace that select it."""
    try:
        pod = api.request("GET", _pod_path(ref))
        doc = api.request(
            "GET",
            f"/apis/policy/v1/namespaces/{quote(ref.namespace, safe='')}/poddisruptionbudgets",
        )
    except ApiError:
        return []
    labels = (pod.get("metadata") or {}).get("labels") or {}
    found = []
    for pdb in doc.get("items") or []:
        selector = (pdb.get("spec") or {}).get("selector")
        if selector is not None and selector_matches(selector, labels):
            found.append(str((pdb.get("metadata") or {}).get("name", "")))
    return sorted(found)


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A ``metav1.LabelSelector`` against a label set (empty selector matches all)."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key = expr.get("key", "")
        op = expr.get("operator", "")
        values = expr.get("values") or []
        present = key in labels
        if op == "In" and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True

"""Execute a plan: apply in stages, concurrently, with retries; then prune.

Only entries whose action is create or update are sent (server-side apply, field manager
``syncer``, force). Stages (:mod:`syncer.cluster.ordering`) run one after another; the
objects of a stage go through a bounded thread pool, which is what makes a first apply
of 1,000 objects several times faster than ``kubectl apply --server-side`` (one request
at a time). After the CRD stage, the engine waits until each applied CRD is
``Established`` before the stages that hold its objects.

Errors are per object (:class:`ObjectResult`): transport errors, timeouts, 409 conflicts,
429 throttling and 5xx are retried with exponential backoff (honouring ``Retry-After``);
400/403/404/422 are answers about the object and are reported at once. One bad object
never stops the others.

The new inventory (:attr:`ApplyResult.inventory`) is what syncer must answer for after
this run: every desired object (a failed one too — it may exist, and an entry for an
object that does not is harmless), pruned objects removed, and objects that could not be
pruned (or whose pruning is disabled) kept, so they stay prunable later. A run in which
any object failed to apply prunes nothing (as Flux skips garbage collection after a
failed apply): deleting on the word of a revision that did not apply cleanly is how
accidents happen; the next clean apply prunes.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from syncer.cluster import ordering
from syncer.cluster.client import WORKERS, ApiError, KubeClient, Resource
from syncer.cluster.objects import ObjectRef
from syncer.cluster.plan import Action, Plan, PlanEntry

T = TypeVar("T")
CRDS = Resource("apiextensions.k8s.io", "v1", "CustomResourceDefinition",
                "customresourcedefinitions", False)


class Outcome(StrEnum):
    CREATED = "created"
    CONFIGURED = "configured"
    UNCHANGED = "unchanged"
    PRUNED = "pruned"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass(frozen=True)
class ObjectResult:
    ref: ObjectRef
    outcome: Outcome
    error: str = ""
    attempts: int = 0
    prune: bool = False  # the result of a deletion, not of an apply

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "apiVersion": self.ref.api_version, "kind": self.ref.kind,
            "namespace": self.ref.namespace, "name": self.ref.name,
            "outcome": str(self.outcome),
        }
        if self.error:
            out["error"] = self.error
        return out


@dataclass
class ApplyResult:
    results: list[ObjectResult] = field(default_factory=list)
    inventory: set[ObjectRef] = field(default_factory=set)
    dry_run: bool = False

    def count(self, outcome: Outcome) -> int:
        return sum(1 for r in self.results if r.outcome is outcome)

    @property
    def failed(self) -> list[ObjectResult]:
        return [r for r in self.results if r.outcome is Outcome.FAILED]


@dataclass(frozen=True)
class ApplyOptions:
    workers: int = WORKERS
    dry_run: bool = False
    attempts: int = 4  # per request, including the first
    backoff: float = 0.2  # seconds before the first retry; doubles, with jitter
    crd_timeout: float = 60.0
    sleep: Callable[[float], None] = time.sleep


def apply_plan(
    plan: Plan, client: KubeClient, options: ApplyOptions | None = None
) -> ApplyResult:
    """Apply and prune what ``plan`` says. A refused plan must not be passed here."""
    options = options or ApplyOptions()
    if plan.refusal:
        raise ValueError(f"refused plan: {plan.refusal}")
    result = ApplyResult(dry_run=options.dry_run)
    by_ref: dict[ObjectRef, ObjectResult] = {}
    with ThreadPoolExecutor(max_workers=max(1, options.workers)) as pool:
        to_apply = [e for e in plan.entries if e.action.desired]
        for stage in ordering.stages(to_apply, lambda e: e.ref):
            for entry in stage:
                if not entry.action.applies:
                    by_ref[entry.ref] = ObjectResult(entry.ref, Outcome.UNCHANGED)
            sent = [e for e in stage if e.action.applies]
            for done in pool.map(lambda e: _apply_one(client, e, options), sent):
                by_ref[done.ref] = done
            if sent and sent[0].stage == ordering.CRD_STAGE and not options.dry_run:
                for done in _wait_established(client, sent, by_ref, options):
                    by_ref[done.ref] = done
        to_prune = [e for e in plan.entries if e.action is Action.PRUNE]
        failed = sum(1 for r in by_ref.values() if r.outcome is Outcome.FAILED)
        if failed:
            # A revision that did not apply cleanly deletes nothing: its objects stay in
            # the inventory and are pruned by the next clean apply.
            for entry in to_prune:
                by_ref[entry.ref] = ObjectResult(
                    entry.ref, Outcome.SKIPPED, f"not pruned: {failed} objects failed to apply",
                    prune=True,
                )
            to_prune = []
        for stage in ordering.prune_order(to_prune, lambda e: e.ref):
            for done in pool.map(lambda e: _prune_one(client, e, options), stage):
                by_ref[done.ref] = done
    for entry in plan.entries:
        res = by_ref.get(entry.ref)
        if res is not None:
            result.results.append(res)
        if _keep(entry, res):
            result.inventory.add(entry.ref)
    return result


def _keep(entry: PlanEntry, res: ObjectResult | None) -> bool:
    """Whether ``entry`` stays in the inventory after this run."""
    if entry.action.desired:
        return True
    if entry.action is Action.PRUNE:
        return res is None or res.outcome is not Outcome.PRUNED
    return entry.skip is not None and entry.skip.keep_in_inventory


def _apply_one(client: KubeClient, entry: PlanEntry, options: ApplyOptions) -> ObjectResult:
    if entry.error or entry.resource is None or entry.desired is None:
        return ObjectResult(entry.ref, Outcome.FAILED, entry.error or "cannot be applied")
    if options.dry_run and entry.awaits_crd:
        return ObjectResult(entry.ref, Outcome.SKIPPED, "its CRD is not applied in a dry run")
    resource, desired = entry.resource, entry.desired
    _, error, attempts = with_retries(
        lambda: client.apply(resource, desired, dry_run=options.dry_run), options
    )
    if error is not None:
        return ObjectResult(entry.ref, Outcome.FAILED, str(error), attempts)
    outcome = Outcome.CREATED if entry.action is Action.CREATE else Outcome.CONFIGURED
    return ObjectResult(entry.ref, outcome, attempts=attempts)


def _prune_one(client: KubeClient, entry: PlanEntry, options: ApplyOptions) -> ObjectResult:
    if entry.resource is None:
        return ObjectResult(entry.ref, Outcome.SKIPPED, "kind not served", prune=True)
    if options.dry_run:
        return ObjectResult(entry.ref, Outcome.PRUNED, prune=True)
    resource, ref = entry.resource, entry.ref
    uid = ((entry.live or {}).get("metadata") or {}).get("uid")
    _, error, attempts = with_retries(
        lambda: client.delete(resource, ref.namespace, ref.name, uid=uid), options,
        retry=lambda err: err.retryable and err.status != 409,  # 409: uid changed
    )
    if error is not None:
        return ObjectResult(ref, Outcome.FAILED, str(error), attempts, prune=True)
    return ObjectResult(ref, Outcome.PRUNED, attempts=attempts, prune=True)


def with_retries(
    call: Callable[[], T], options: ApplyOptions,
    retry: Callable[[ApiError], bool] = lambda err: err.retryable,
) -> tuple[T | None, ApiError | None, int]:
    """(result, None, attempts) or (None, last error, attempts)."""
    for attempt in range(1, options.attempts + 1):
        try:
            return call(), None, attempt
        except ApiError as err:
            if attempt == options.attempts or not retry(err):
                return None, err, attempt
            delay = err.retry_after or options.backoff * 2 ** (attempt - 1)
            options.sleep(min(delay, 10.0) * random.uniform(0.8, 1.2))
    raise AssertionError("unreachable")


def _wait_established(
    client: KubeClient, stage: list[PlanEntry], by_ref: dict[ObjectRef, ObjectResult],
    options: ApplyOptions,
) -> list[ObjectResult]:
    """Wait until every CRD applied in this run serves its kind; fail those that don't."""
    waiting = [e for e in stage if by_ref[e.ref].outcome in (Outcome.CREATED, Outcome.CONFIGURED)]
    deadline = time.monotonic() + options.crd_timeout
    failed: list[ObjectResult] = []
    while waiting:
        still = []
        for entry in waiting:
            try:
                live = client.get(CRDS, "", entry.ref.name)
            except ApiError:
                live = None
            if not _established(live):
                still.append(entry)
        waiting = still
        if waiting and time.monotonic() > deadline:
            for entry in waiting:
                failed.append(ObjectResult(
                    entry.ref, Outcome.FAILED,
                    f"not Established after {options.crd_timeout:.0f}s",
                ))
            break
        if waiting:
            options.sleep(0.05)
    for entry in stage:
        spec = (entry.desired or {}).get("spec") or {}
        for version in spec.get("versions") or []:
            client.forget(f"{spec.get('group')}/{(version or {}).get('name')}")
    return failed


def _established(crd: dict[str, Any] | None) -> bool:
    conditions = ((crd or {}).get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)

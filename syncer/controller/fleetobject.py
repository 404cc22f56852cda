"""The WindowsFleet resource: one fleet's source for ``syncer run``, and its status.

``syncer run --fleet-object NAME`` follows ``windowsfleets.syncer.io/NAME`` in its
namespace (``'*'``: every one, :mod:`.fleets`; the CRD is
``manifests/base/crd/windowsfleets.yaml``) instead of taking the source from flags alone:

- **spec** (``url``, ``ref.branch``, ``path``, ``interval``, ``suspend``, and the
  Secrets of ``secretRef``, ``verify`` and ``forge``: :mod:`.fleetsecrets`) overrides the
  matching flags. It is read before every reconcile; a changed spec is used from that
  reconcile on (the Git source is rebuilt), so an edit never interrupts a host step;
- **"reconcile now"** is the annotation ``reconcile.syncer.io/requestedAt`` (Flux's
  ``reconcile.fluxcd.io/requestedAt``); the value handled is copied to
  ``status.lastHandledReconcileAt``. ``spec.suspend`` stops reconciles, as in Flux. The
  ``syncer-control`` ConfigMap is not read in this mode: the object is the control;
- **status** is written by the leader through the ``status`` subresource, with kstatus
  conditions (https://github.com/kubernetes-sigs/cli-utils/tree/master/pkg/kstatus) and
  Flux's reasons, so ``kubectl wait --for=condition=Ready``, Argo CD health checks and
  ``flux``-minded users read it without learning anything new:

  ==========================  ======  ===========  =======  =============================
  situation                   Ready   Reconciling  Stalled  reason
  ==========================  ======  ===========  =======  =============================
  reconcile running           Unknown True          -        Progressing
  revision applied, hosts ok  True    -            -        ReconciliationSucceeded
  Git/API failure (retried)   False   True         -        GitOperationFailed / …
  revision refused            False   -            True     ValidationFailed/PruneRefused
  WMCO manages the nodes      False   -            True     WMCOActive
  ==========================  ======  ===========  =======  =============================

  ``observedGeneration`` is the generation whose spec the reconcile ran with, and a
  condition's ``lastTransitionTime`` changes only when its status does.

Events of the reconcile regard this object, so ``kubectl describe windowsfleet NAME``
tells the story (an Event regarding the controller's Pod goes away with the Pod).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from syncer import names
from syncer.cluster.client import MERGE_PATCH, ApiError, KubeClient
from syncer.cluster.objects import JSON, micro_time
from syncer.controller.control import ControlState
from syncer.controller.loop import SUCCESS, ReconcileOutcome
from syncer.durations import seconds
from syncer.nodes.status import Phase

log = logging.getLogger(__name__)

TIMEOUT = (5.0, 5.0)
HOST_TABLE_LIMIT = 50  # rows of status.hostTable (the CRD's maxItems); counts cover all

# Condition types and reasons (kstatus; reasons as Flux spells them).
READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"
PROGRESSING = "Progressing"
PROGRESSING_WITH_RETRY = "ProgressingWithRetry"
SUCCEEDED = "ReconciliationSucceeded"
FAILED = "ReconciliationFailed"

# Host phases as the hosts gauge labels them (HostStatus.label).
_UP_TO_DATE = Phase.UP_TO_DATE.value
_FAILED = frozenset({Phase.FAILED.value, Phase.ROLLED_BACK.value, Phase.REMOVAL_FAILED.value})
_BLOCKED = Phase.BLOCKED.value


@dataclass(frozen=True)
class ForgeSpec:
    """``spec.forge``: where pull-request previews and commit statuses go."""

    provider: str
    url: str | None = None
    repository: str | None = None
    secret_ref: str | None = None


@dataclass(frozen=True)
class FleetSpec:
    """What a WindowsFleet asks for; ``None`` fields keep the flag's value."""

    url: str | None = None
    branch: str | None = None
    path: str | None = None
    interval: float | None = None
    suspend: bool = False
    secret_ref: str | None = None  # Git credentials (syncer.controller.fleetsecrets)
    verify_mode: str | None = None  # head | tag | tag-and-head
    verify_secret_ref: str | None = None
    forge: ForgeSpec | None = None


class SpecError(ValueError):
    """A spec the controller cannot use (the CRD's schema normally stops it first)."""


def parse_spec(obj: JSON) -> FleetSpec:
    spec = obj.get("spec") or {}
    if not isinstance(spec, dict):
        raise SpecError("spec must be an object")
    interval = None
    if spec.get("interval") is not None:
        interval = seconds(str(spec["interval"]))
        if not interval:
            raise SpecError(f"spec.interval: {spec['interval']!r} is not a positive "
                            "duration such as 1m or 30s")
    ref = spec.get("ref") or {}
    url = spec.get("url")
    if url is not None and not isinstance(url, str):
        raise SpecError("spec.url must be a string")
    verify = _object(spec, "verify")
    if verify and not (verify.get("mode") and _ref(verify)):
        raise SpecError("spec.verify needs mode and secretRef.name")
    forge = _object(spec, "forge")
    return FleetSpec(
        url=url or None,
        branch=str(ref["branch"]) if isinstance(ref, dict) and ref.get("branch") else None,
        path=str(spec["path"]) if spec.get("path") is not None else None,
        interval=interval,
        suspend=spec.get("suspend") is True,
        secret_ref=_ref(spec),
        verify_mode=str(verify["mode"]) if verify else None,
        verify_secret_ref=_ref(verify) if verify else None,
        forge=ForgeSpec(str(forge.get("provider") or "github"), _str(forge, "url"),
                        _str(forge, "repository"), _ref(forge)) if forge else None,
    )


def _object(doc: Mapping[str, object], key: str) -> dict[str, object]:
    value = doc.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SpecError(f"spec.{key} must be an object")
    return value


def _ref(doc: Mapping[str, object]) -> str | None:
    ref = doc.get("secretRef")
    return str(ref["name"]) if isinstance(ref, dict) and ref.get("name") else None


def _str(doc: Mapping[str, object], key: str) -> str | None:
    value = doc.get(key)
    return str(value) if value else None


def _condition(type_: str, status: str, reason: str, message: str, generation: int,
               previous: Mapping[str, JSON], now: str) -> JSON:
    old = previous.get(type_)
    since = old.get("lastTransitionTime") if old and old.get("status") == status else None
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": " ".join(message.split())[:1024],
        "observedGeneration": generation,
        "lastTransitionTime": since or now,
    }


def host_counts(hosts: Mapping[str, int]) -> JSON:
    """``status.hosts``: every wanted host by what an operator acts on."""
    total = sum(hosts.values())
    up = hosts.get(_UP_TO_DATE, 0)
    failed = sum(n for phase, n in hosts.items() if phase in _FAILED)
    blocked = hosts.get(_BLOCKED, 0)
    return {"total": total, "upToDate": up, "failed": failed, "blocked": blocked,
            "inProgress": total - up - failed - blocked}


class FleetObject:
    """Reads one WindowsFleet and writes its status (the leader only)."""

    def __init__(self, client: KubeClient, namespace: str, name: str) -> None:
        self.client = client
        self.namespace = namespace
        self.name = name
        self.generation = 0
        self.uid: str | None = None
        self._conditions: dict[str, JSON] = {}

    @property
    def path(self) -> str:
        return (f"/apis/{names.FLEET_RESOURCE_GROUP}/{names.FLEET_RESOURCE_VERSION}/namespaces/"
                f"{self.namespace}/{names.FLEET_RESOURCE_PLURAL}/{self.name}")

    @property
    def title(self) -> str:
        return f"{names.FLEET_RESOURCE_KIND} {self.name}"

    @property
    def reference(self) -> JSON:
        """The object as an Event's ``regarding``."""
        ref: JSON = {"apiVersion": f"{names.FLEET_RESOURCE_GROUP}/"
                                   f"{names.FLEET_RESOURCE_VERSION}",
                     "kind": names.FLEET_RESOURCE_KIND, "name": self.name,
                     "namespace": self.namespace}
        if self.uid:  # kubectl describe finds an object's Events by uid
            ref["uid"] = self.uid
        return ref

    def get(self) -> JSON:
        obj: JSON = self.client.request("GET", self.path, timeout=TIMEOUT)
        metadata = obj.get("metadata") or {}
        self.generation = int(metadata.get("generation") or 0)
        self.uid = metadata.get("uid") or None
        status = obj.get("status") or {}
        self._conditions = {c.get("type", ""): c for c in status.get("conditions") or []
                            if isinstance(c, dict)}
        return obj

    # --- the control (the same interface as the syncer-control ConfigMap) --------------
    def read(self) -> ControlState:
        obj = self.get()
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        return ControlState(
            suspended=parse_spec(obj).suspend,
            requested_at=annotations.get(names.ANNOTATION_REQUESTED_AT) or None,
            handled_at=(obj.get("status") or {}).get("lastHandledReconcileAt") or None,
        )

    def request_reconcile(self, stamp: str | None = None) -> str:
        stamp = stamp or micro_time()
        self.client.request(
            "PATCH", self.path, content_type=MERGE_PATCH, timeout=TIMEOUT,
            body={"metadata": {"annotations": {names.ANNOTATION_REQUESTED_AT: stamp}}})
        return stamp

    def mark_handled(self, stamp: str) -> None:
        self._patch_status({"lastHandledReconcileAt": stamp})

    # --- status --------------------------------------------------------------------------
    def _patch_status(self, status: JSON) -> None:
        self.client.request("PATCH", self.path + "/status", content_type=MERGE_PATCH,
                            body={"status": status}, timeout=TIMEOUT)

    def _commit(self, status: JSON, conditions: Sequence[JSON] = (),
                drop: Sequence[str] = ()) -> None:
        """Merge ``status`` with the conditions set and dropped (a merge patch replaces a
        list, so the whole list is sent; conditions of other writers are kept)."""
        merged = {t: c for t, c in self._conditions.items() if t not in drop}
        merged.update({c["type"]: c for c in conditions})
        body = {**status, "observedGeneration": self.generation,
                "conditions": list(merged.values())}
        try:
            self._patch_status(body)
        except ApiError as err:  # best effort, like Events: the reconcile goes on
            # (a missing object is reported by the reconcile itself)
            log.log(logging.DEBUG if err.not_found else logging.WARNING,
                    "writing the WindowsFleet status failed",
                    extra={"object": self.name, "error": str(err)})
            return
        self._conditions = merged

    def reconciling(self, message: str) -> None:
        now, prev, gen = micro_time(), self._conditions, self.generation
        self._commit({}, [
            _condition(RECONCILING, "True", PROGRESSING, message, gen, prev, now),
            _condition(READY, "Unknown", PROGRESSING, message, gen, prev, now),
        ], drop=[STALLED])

    def finished(self, outcome: ReconcileOutcome) -> None:
        """Ready/Reconciling/Stalled, revisions and hosts after a reconcile ended."""
        now, prev, gen = micro_time(), self._conditions, self.generation
        ok = outcome.result == SUCCESS and outcome.reason is None
        reason = outcome.reason or (SUCCEEDED if ok else FAILED)
        message = outcome.message
        if ok and outcome.revision:
            message = f"Applied revision: {outcome.ref or 'main'}@sha1:{outcome.revision}"
        ready = _condition(READY, "True" if ok else "False", reason, message, gen, prev, now)
        if outcome.stalled:
            stalled = _condition(STALLED, "True", reason, message, gen, prev, now)
            conditions, drop = [ready, stalled], [RECONCILING]
        elif not ok:
            retry = _condition(RECONCILING, "True", PROGRESSING_WITH_RETRY, message, gen,
                               prev, now)
            conditions, drop = [ready, retry], [STALLED]
        else:
            conditions, drop = [ready], [RECONCILING, STALLED]
        status: JSON = {}
        if outcome.result == SUCCESS and outcome.revision:
            status["lastAppliedRevision"] = outcome.revision
        if outcome.attempted:
            status["lastAttemptedRevision"] = outcome.attempted
        if outcome.hosts is not None:
            counts = host_counts(outcome.hosts)
            status["hosts"] = counts
            status["hostsSummary"] = f"{counts['upToDate']}/{counts['total']}"
            status["hostTable"] = [
                {"name": h.name, "phase": h.phase, "version": h.version,
                 "message": h.message[:256]} for h in outcome.table[:HOST_TABLE_LIMIT]]
        self._commit(status, conditions, drop)

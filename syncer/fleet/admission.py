"""What a fleet may pass through to the cluster: an allow-list the operator owns.

Pass-through objects are applied with the controller's own permissions, so whoever can
merge to the fleet repository could otherwise use all of them (set Pod Security labels
on ``kube-system``, scale a Linux worker MachineSet to zero, bind a ClusterRole). Two
rules decide, before anything is applied, with ``file:line`` for each refusal:

- never, whatever the operator allows: ``Node`` objects (the node stage owns them),
  anything in syncer's own namespace, and syncer's state in WMCO's namespace (its
  ConfigMaps, the SSH key and bootstrap token Secrets, its Leases): a fleet that could
  write those could choose which hosts syncer trusts and what it runs there;
- otherwise, the object's kind must be in :attr:`PassThroughPolicy.kinds` and its
  namespace (a ``Namespace``'s own name) must not match
  :attr:`PassThroughPolicy.denied_namespaces`. The defaults admit what Windows workloads
  need (:data:`DEFAULT_KINDS`) and keep ``kube-*``, ``openshift-*`` and ``default`` out,
  except the two places the fleet legitimately writes: Windows MachineSets in
  ``openshift-machine-api`` and ``windows-instances`` in WMCO's namespace (both checked
  in full by :mod:`syncer.fleet.passthrough`).

Operators change the lists with ``--passthrough-kinds`` and
``--passthrough-denied-namespaces`` (``Kind`` for the core group, ``Kind.group``
otherwise, like ``kubectl``'s ``resource.group``; namespaces as shell patterns).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from syncer import names
from syncer.fleet.fields import Report
from syncer.fleet.model import RawObject
from syncer.fleet.passthrough import is_windows_machine_set

DEFAULT_KINDS = frozenset({
    "Namespace", "ConfigMap", "Secret", "Service", "ServiceAccount", "LimitRange",
    "ResourceQuota", "PersistentVolumeClaim",
    "Deployment.apps", "DaemonSet.apps", "StatefulSet.apps",
    "Job.batch", "CronJob.batch",
    "PodDisruptionBudget.policy", "HorizontalPodAutoscaler.autoscaling",
    "NetworkPolicy.networking.k8s.io", "Ingress.networking.k8s.io",
    "RuntimeClass.node.k8s.io", "MachineSet.machine.openshift.io", "Route.route.openshift.io",
})
DEFAULT_DENIED_NAMESPACES = ("kube-*", "openshift-*", "default")
# Where the fleet writes although the namespace is denied: (kind, namespace, name or *).
FLEET_PLACES = (
    ("MachineSet.machine.openshift.io", names.MACHINE_API_NAMESPACE, "*"),
    ("ConfigMap", names.WMCO_NAMESPACE, names.BYOH_CONFIGMAP),
)
# syncer's own state in WMCO's namespace: (kind, name pattern).
SYNCER_STATE = (
    ("ConfigMap", "syncer-*"),
    ("ConfigMap", names.SSH_HOST_KEYS_CONFIGMAP),
    ("Secret", names.PRIVATE_KEY_SECRET),
    ("Secret", "syncer-*"),
    ("Lease.coordination.k8s.io", "syncer-*"),
)


def kind_of(obj: RawObject) -> str:
    """``Kind`` or ``Kind.group``."""
    group = obj.api_version.rpartition("/")[0] if "/" in obj.api_version else ""
    return f"{obj.kind}.{group}" if group else obj.kind


@dataclass(frozen=True)
class PassThroughPolicy:
    kinds: frozenset[str] = DEFAULT_KINDS
    denied_namespaces: tuple[str, ...] = DEFAULT_DENIED_NAMESPACES

    @classmethod
    def parse(cls, kinds: str = "", denied_namespaces: str | None = None) -> PassThroughPolicy:
        """From the flags' comma-separated lists (empty: the defaults)."""
        split = [k.strip() for k in kinds.replace(" ", ",").split(",") if k.strip()]
        denied = DEFAULT_DENIED_NAMESPACES if denied_namespaces is None else tuple(
            n.strip() for n in denied_namespaces.replace(" ", ",").split(",") if n.strip())
        return cls(frozenset(split) if split else DEFAULT_KINDS, denied)

    def refuses(self, obj: RawObject) -> str | None:
        """Why ``obj`` may not pass through, or None."""
        kind = kind_of(obj)
        namespace = obj.name if obj.kind == "Namespace" and obj.namespace is None \
            else obj.namespace
        if obj.kind == "Node" and "/" not in obj.api_version:
            return "Nodes are the node stage's; a fleet cannot write them"
        if namespace == names.SYSTEM_NAMESPACE:
            return f"namespace {namespace} holds syncer itself; a fleet cannot write there"
        if obj.namespace == names.WMCO_NAMESPACE and any(
                kind == k and fnmatch.fnmatchcase(obj.name, n) for k, n in SYNCER_STATE):
            return f"{obj.kind} {obj.name} is syncer's own state; a fleet cannot write it"
        if kind == "MachineSet.machine.openshift.io" and not is_windows_machine_set(obj.body):
            return ("only Windows MachineSets (spec.template.metadata.labels "
                    "machine.openshift.io/os-id: Windows) may pass through")
        if kind not in self.kinds:
            return (f"kind {kind} may not pass through (allowed: "
                    f"{', '.join(sorted(self.kinds))}; see --passthrough-kinds)")
        denied = namespace and any(fnmatch.fnmatchcase(namespace, p)
                                   for p in self.denied_namespaces)
        if denied and not any(kind == k and namespace == ns and fnmatch.fnmatchcase(obj.name, n)
                              for k, ns, n in FLEET_PLACES):
            return (f"namespace {namespace} may not be written by the fleet (see "
                    "--passthrough-denied-namespaces)")
        return None


DEFAULT = PassThroughPolicy()


def admit(objects: list[RawObject], policy: PassThroughPolicy, report: Report) -> None:
    """Report every pass-through object ``policy`` refuses, at its source line."""
    for obj in objects:
        why = policy.refuses(obj)
        if why is not None:
            report.error(obj.source.file, obj.source.line,
                         f"{obj.kind} {obj.namespace + '/' if obj.namespace else ''}"
                         f"{obj.name}: {why}")

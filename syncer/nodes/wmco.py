"""Whether WMCO manages the Windows nodes: then syncer's node stage stands aside.

WMCO and syncer configure the same hosts with the same services; two controllers doing
so at once would fight over every file and service. So before a round touches anything
(a host, a Node, a CSR, the user-data Secret), it asks whether WMCO is active in the
fleet namespace, as OLM installs it there:

- the Deployment ``windows-machine-config-operator`` (the name WMCO's
  ClusterServiceVersion gives it) with ``spec.replicas`` above zero, or
- a ClusterServiceVersion ``windows-machine-config-operator.*`` that is not failed or being
  deleted (OLM puts the Deployment back, replicas included, while it stands).

Uninstalling WMCO's operator (its Subscription and ClusterServiceVersion; the Windows
nodes keep running) hands the nodes to syncer, as does scaling a Deployment not managed
by OLM to zero (``docs/wmco-migration.md``).
A cluster without OLM (no ClusterServiceVersion kind) is judged by the Deployment alone.
When the answer cannot be read (no permission), the round does nothing either: guessing
"not active" could start the fight.
"""

from __future__ import annotations

from dataclasses import dataclass

from syncer.cluster.client import ApiError, KubeClient

DEPLOYMENT = "windows-machine-config-operator"
CSV_PREFIX = "windows-machine-config-operator."
_INACTIVE_CSV_PHASES = ("Failed", "Deleting", "Replacing")


@dataclass(frozen=True)
class WmcoState:
    active: bool
    reason: str  # what was found, for the blocked round's message


def wmco_state(api: KubeClient, namespace: str) -> WmcoState:
    """Whether WMCO is active in ``namespace`` (see the module docstring)."""
    where = f"{namespace}/{DEPLOYMENT}"
    try:
        deployment = api.request(
            "GET", f"/apis/apps/v1/namespaces/{namespace}/deployments/{DEPLOYMENT}")
    except ApiError as err:
        if not err.not_found:
            return WmcoState(True, f"cannot tell whether WMCO is active: reading Deployment "
                                   f"{where}: {err}")
        deployment = None
    if deployment is not None:
        replicas = (deployment.get("spec") or {}).get("replicas", 1)
        if replicas:
            return WmcoState(True, f"WMCO is active (Deployment {where}, {replicas} "
                                   "replica(s))")
    try:
        csvs = api.request(
            "GET", f"/apis/operators.coreos.com/v1alpha1/namespaces/{namespace}/"
                   "clusterserviceversions")
    except ApiError as err:
        if err.not_found:  # no OLM on this cluster
            return WmcoState(False, "WMCO is not installed")
        return WmcoState(True, f"cannot tell whether WMCO is active: listing "
                               f"ClusterServiceVersions in {namespace}: {err}")
    for csv in csvs.get("items") or []:
        name = str((csv.get("metadata") or {}).get("name", ""))
        phase = str((csv.get("status") or {}).get("phase", ""))
        if name.startswith(CSV_PREFIX) and phase not in _INACTIVE_CSV_PHASES:
            return WmcoState(True, f"WMCO is installed (ClusterServiceVersion {name}, "
                                   f"phase {phase or 'unknown'})")
    return WmcoState(False, "WMCO is scaled to zero" if deployment is not None
                     else "WMCO is not installed")

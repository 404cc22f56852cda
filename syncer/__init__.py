"""syncer: GitOps for the Windows nodes of a Kubernetes/OpenShift cluster.

Data flows forward through small modules, each with one job (see docs/architecture.md):

    source/   Git revision (fetched, verified)
    fleet/    load + validate + render the fleet repository
    cluster/  server-side apply, inventory, prune, drift, drain, CSRs, leases
    nodes/    per-host SSH configuration and the rollout across hosts
    report/   status branch, git notes, pull-request previews
    controller.py  the loop that ties them together (`syncer run`)
"""

__version__ = "0.1.0"

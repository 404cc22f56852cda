"""syncer: GitOps for the Windows nodes of a Kubernetes/OpenShift cluster.

Data flows forward through small modules, each with one job (see docs/architecture.md):

    source/      Git revision (fetched, verified)
    fleet/       load + validate + render the fleet repository
    cluster/     server-side apply, inventory, prune, drift
    nodes/       per-host SSH configuration, CSRs, drain and the rollout across hosts
    writeback/   status branch, git notes, pull-request previews
    reconcile.py one reconcile: the above in order
    pipeline/    the reconcile and its write-back, shared by ``syncer run`` and
                 ``syncer sync --once``
    controller/  the loop that ties them together (``syncer run``)
    cli/         the ``syncer`` command
"""

__version__ = "0.1.0"

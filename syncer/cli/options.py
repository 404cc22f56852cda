"""Option groups the commands share besides the pipeline settings.

The Git source and write-back options are one table bound to ``run`` and ``sync --once``
alike (:mod:`syncer.pipeline.settings`); here is the group of the commands that apply to a
cluster from a workstation (``plan``, ``sync --once``): kubeconfig, context, where the
inventory lives, and the prune confirmation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from syncer.names import INVENTORY_CONFIGMAP, SYSTEM_NAMESPACE

F = TypeVar("F", bound=Callable[..., Any])

_CLUSTER = [
    click.option("--kubeconfig", metavar="FILE",
                 help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)"),
    click.option("--context", help="kubeconfig context (default: the current one)"),
    click.option("--inventory-namespace", default=SYSTEM_NAMESPACE, show_default=True,
                 help="namespace of the inventory ConfigMap"),
    click.option("--inventory-name", default=INVENTORY_CONFIGMAP, show_default=True,
                 help="name of the inventory ConfigMap"),
    click.option("--confirm-prune", is_flag=True,
                 help="allow a prune the guard (spec.prune.maxDeletions) refuses"),
]


def cluster_options(fn: F) -> F:
    """Add the cluster options to a click command."""
    for option in reversed(_CLUSTER):
        fn = option(fn)
    return fn

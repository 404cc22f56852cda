"""Option groups the commands share besides the pipeline settings.

The Git source and write-back options are one table bound to ``run`` and ``sync --once``
alike (:mod:`syncer.pipeline.settings`); here is the group of the commands that apply to a
cluster from a workstation (``plan``, ``sync --once``): kubeconfig, context, where the
inventory lives (``-n``, as namespace means everywhere), and the prune confirmation; and
``-o`` of every read command: its human format, ``yaml`` or ``json`` of the same document.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any, TypeVar

import click

from syncer.names import INVENTORY_CONFIGMAP, SYSTEM_NAMESPACE

F = TypeVar("F", bound=Callable[..., Any])

_KUBECONFIG = [
    click.option("--kubeconfig", metavar="FILE",
                 help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)"),
    click.option("--context", help="kubeconfig context (default: the current one)"),
]
_CLUSTER = [
    *_KUBECONFIG,
    click.option("--inventory-namespace", "-n", default=SYSTEM_NAMESPACE, show_default=True,
                 help="namespace of the inventory ConfigMap (the controller's)"),
    click.option("--inventory-name", default=INVENTORY_CONFIGMAP, show_default=True,
                 help="name of the inventory ConfigMap"),
    click.option("--confirm-prune", is_flag=True,
                 help="allow a prune the guard (spec.prune.maxDeletions) refuses"),
]


def kubeconfig_options(fn: F) -> F:
    """Add ``--kubeconfig`` and ``--context`` to a click command that reads a cluster."""
    for option in reversed(_KUBECONFIG):
        fn = option(fn)
    return fn


def cluster_options(fn: F) -> F:
    """Add the cluster options to a click command."""
    for option in reversed(_CLUSTER):
        fn = option(fn)
    return fn


def output_option(human: str) -> Callable[[F], F]:
    """``-o/--output``: ``human`` (the default), ``yaml`` or ``json``."""
    return click.option("-o", "--output", type=click.Choice([human, "yaml", "json"]),
                        default=human, show_default=True,
                        help=f"{human}, or the same document as YAML or JSON")


def emit(document: Any, output: str) -> None:
    """Print ``document`` as JSON or YAML (``output`` is not the human format)."""
    if output == "json":
        click.echo(json.dumps(document, indent=2))
        return
    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    stream = io.StringIO()
    yaml.dump(document, stream)
    click.echo(stream.getvalue(), nl=False)

"""The controller's subcommands: ``syncer run``, ``suspend``, ``resume``, ``reconcile``.

``syncer/cli/main.py`` adds these to the ``syncer`` group. Heavy imports (the Kubernetes
client, waitress, watchdog) happen inside the commands, so ``syncer --help`` stays fast.
``suspend``/``resume``/``reconcile`` only write the ``syncer-control`` ConfigMap (see
``control.py``); they work against any cluster the kubeconfig reaches, with the user's
own permissions (``patch`` on that ConfigMap).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from syncer import names
from syncer.controller.config import DURATION, config_from_context, run_options
from syncer.problems import UserError


@click.command("run", context_settings={"show_default": True})
@run_options
@click.pass_context
def run(ctx: click.Context, /, **values: Any) -> None:
    """Run the controller: poll and receive webhooks, elect a leader, reconcile.

    Every option can also be set with the environment variable shown and in the YAML file
    given by --config; flags win over the environment, which wins over the file.
    """
    from syncer.controller.app import run_controller

    config = config_from_context(ctx, values).check()
    sys.exit(run_controller(config))


def _cluster_options(func: Any) -> Any:
    func = click.option(
        "--namespace", "-n", default=names.SYSTEM_NAMESPACE, envvar="SYNCER_NAMESPACE",
        show_default=True, help="Namespace of the controller.",
    )(func)
    func = click.option("--context", default=None, help="kubeconfig context.")(func)
    # $KUBECONFIG (several paths, merged as kubectl does) is read by connect(), not here.
    func = click.option(
        "--kubeconfig", type=click.Path(dir_okay=False, path_type=Path), default=None,
        help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config).",
    )(func)
    return func


def _control(kubeconfig: Path | None, context: str | None, namespace: str) -> Any:
    from syncer.cluster.client import connect
    from syncer.controller.control import Control

    client = connect(str(kubeconfig) if kubeconfig else None, context)
    return Control(client, namespace)


@contextlib.contextmanager
def _reported() -> Iterator[None]:
    """API errors of the control ConfigMap as one line (exit 1), not a traceback."""
    from syncer.cluster.client import ApiError

    try:
        yield
    except ApiError as err:
        raise UserError(f"{names.CONTROL_CONFIGMAP}: {err}") from None


@click.command("suspend")
@_cluster_options
def suspend(kubeconfig: Path | None, context: str | None, namespace: str) -> None:
    """Stop reconciling (the controller keeps running) until `syncer resume`."""
    with _reported():
        _control(kubeconfig, context, namespace).set_suspended(True)
    click.echo(f"suspended: {namespace}/{names.CONTROL_CONFIGMAP} suspend=true")


@click.command("resume")
@_cluster_options
def resume(kubeconfig: Path | None, context: str | None, namespace: str) -> None:
    """Resume reconciling after `syncer suspend`."""
    with _reported():
        _control(kubeconfig, context, namespace).set_suspended(False)
    click.echo(f"resumed: {namespace}/{names.CONTROL_CONFIGMAP} suspend=false")


@click.command("reconcile")
@_cluster_options
@click.option("--wait/--no-wait", default=False, help="Wait until the controller has run it.")
@click.option("--timeout", type=DURATION, default="5m", show_default=True,
              help="How long --wait waits.")
def reconcile(
    kubeconfig: Path | None, context: str | None, namespace: str, wait: bool, timeout: float
) -> None:
    """Ask the running controller to reconcile now (like `flux reconcile`)."""
    with _reported():
        control = _control(kubeconfig, context, namespace)
        state = control.read()
        stamp = control.request_reconcile()
    click.echo(f"reconcile requested at {stamp}")
    if state.suspended:
        click.echo("note: reconciles are suspended; it runs after `syncer resume`", err=True)
    if wait:
        with _reported():
            done = control.wait_handled(stamp, timeout)
        if not done:
            raise UserError(f"the controller did not handle the request within {timeout:g}s")
        click.echo("reconcile done")

"""``syncer version`` and ``syncer completion``: what is installed, and shell completion.

``version`` prints the CLI's version and, unless ``--client``, the version of the
controller that leads in ``-n NAMESPACE``: the leader records it on its Lease
(``syncer.io/controller-version``), so the answer is the replica that acts, not an image
tag. ``completion`` prints click's completion script for bash, zsh or fish.
"""

from __future__ import annotations

import click

from syncer import __version__, names
from syncer.cli.options import emit, kubeconfig_options, output_option
from syncer.problems import UserError


@click.command("version")
@click.option("--client", is_flag=True, help="Only the CLI; do not ask the cluster.")
@kubeconfig_options
@click.option("-n", "--namespace", default=names.SYSTEM_NAMESPACE, show_default=True,
              help="the controller's namespace")
@output_option("text")
def version_command(client: bool, kubeconfig: str | None, context: str | None,
                    namespace: str, output: str) -> None:
    """Print the version of this CLI and of the controller leading in the cluster."""
    if output == "text":
        click.echo(f"syncer {__version__}")  # first, as kubectl does, even if the cluster fails
    document: dict[str, object] = {"client": __version__}
    if not client:
        document["controller"] = controller = _controller(kubeconfig, context, namespace)
        if output == "text" and controller["version"]:
            click.echo(f"controller {controller['version']} (leader {controller['leader']}, "
                       f"namespace {namespace})")
        elif output == "text":
            click.echo(f"controller: {controller['detail']}")
    if output != "text":
        emit(document, output)


def _controller(kubeconfig: str | None, context: str | None, namespace: str
                ) -> dict[str, str | None]:
    from syncer.cluster.client import ApiError, connect
    from syncer.controller.leader import lease_path

    api = connect(kubeconfig, context)
    try:
        lease = api.request("GET", lease_path(namespace, names.LEADER_LEASE),
                            timeout=(5.0, 10.0))
    except ApiError as err:
        if err.not_found:
            return {"version": None, "leader": None,
                    "detail": f"no controller has run in namespace {namespace} "
                              f"(no Lease {names.LEADER_LEASE})"}
        raise UserError(f"Lease {namespace}/{names.LEADER_LEASE}: {err}") from None
    finally:
        api.close()
    annotations = (lease.get("metadata") or {}).get("annotations") or {}
    leader = (lease.get("spec") or {}).get("holderIdentity") or None
    version = annotations.get(names.ANNOTATION_CONTROLLER_VERSION) or None
    detail = "" if leader else "no leader right now"
    if leader and not version:
        detail = f"leader {leader} runs a version older than 0.1.0 (no version recorded)"
    return {"version": version if leader else None, "leader": leader, "detail": detail}


@click.command("completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion_command(shell: str) -> None:
    """Print the shell completion script, e.g. `source <(syncer completion bash)`."""
    from click.shell_completion import get_completion_class

    from syncer.cli.main import cli

    completion = get_completion_class(shell)
    assert completion is not None
    click.echo(completion(cli, {}, "syncer", "_SYNCER_COMPLETE").source())

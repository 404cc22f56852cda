"""``syncer status``: one row per Windows host, read from the cluster.

Columns: address, Node, current -> desired version, phase, since when, last error. The
rows come from the node stage's last report (ConfigMap ``syncer-node-status`` in the
fleet namespace), refreshed from the live Nodes (version, failure records, the phase of
a host being worked on right now), so the table is right during a rollout too. Registered
on the click group in :mod:`syncer.cli.main`.
"""

from __future__ import annotations

import click

from syncer import names
from syncer.cli.options import emit, kubeconfig_options, output_option
from syncer.cluster.client import ApiError, connect
from syncer.problems import UserError


@click.command("status")
@kubeconfig_options
@click.option("-n", "--namespace", default=names.WMCO_NAMESPACE, show_default=True,
              help="the fleet (WMCO) namespace")
@output_option("table")
def status_command(kubeconfig: str | None, context: str | None, namespace: str,
                   output: str) -> None:
    """Show every Windows host: address, node, current -> desired version, phase, since
    when, last error."""
    from syncer.nodes.status import format_table, live_rows

    client = connect(kubeconfig, context)
    try:
        rows, rollout = live_rows(client, namespace)
    except ApiError as err:
        raise UserError(f"cannot read the node status: {err}") from None
    finally:
        client.close()
    if output != "table":
        emit({"hosts": [r.to_json() for r in rows], "rollout": rollout}, output)
        return
    if not rows:
        click.echo(f"no Windows hosts reported in namespace {namespace} yet "
                   "(run `syncer sync --once` or `syncer run`)")
        return
    click.echo(format_table(rows, rollout), nl=False)

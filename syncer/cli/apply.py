"""``syncer plan`` and ``syncer sync --once``: the apply engine on the command line.

Registered on the click group in :mod:`syncer.cli.main`. Both commands validate the whole
fleet before touching the cluster; validation problems print as ``file:line: message``
and exit 1. Cluster trouble (bad kubeconfig, unreachable API server, forbidden) is one
line and exit 1, never a traceback.

``syncer plan`` with no cluster configured (no ``--kubeconfig``, no ``$KUBECONFIG``, no
``~/.kube/config``, not in a Pod) prints what would be created, offline.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from syncer.cli.main import check_fleet_at
from syncer.cli.options import cluster_options, emit, output_option
from syncer.cluster.apply import Outcome
from syncer.cluster.client import WORKERS, ApiError, cluster_configured, connect
from syncer.cluster.display import plan_table
from syncer.cluster.inventory import InventoryStore
from syncer.cluster.plan import Plan, compute_plan, offline_plan
from syncer.cluster.prune import Confirmation
from syncer.fleet import render
from syncer.fleet.admission import DEFAULT_DENIED_NAMESPACES, PassThroughPolicy
from syncer.nodes.downloads import FetchPolicy, parse_networks
from syncer.pipeline import settings
from syncer.pipeline.run import Pipeline, Target
from syncer.problems import UserError
from syncer.reconcile import ReconcileOptions, ReconcileResult, local_revision, source_lookup

EXIT_CHANGES = 3
# Keys a `sync --once` config file may hold: the settings it shares with `syncer run`.
SYNC_KNOWN = frozenset(s.field for s in settings.SETTINGS)


@click.command("plan")
@click.argument("path", default=".",
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@cluster_options
@click.option("--exit-code", is_flag=True, help=f"exit {EXIT_CHANGES} when there are changes")
@output_option("table")
def plan_command(
    path: Path, kubeconfig: str | None, context: str | None, inventory_namespace: str,
    inventory_name: str, confirm_prune: bool, exit_code: bool, output: str,
) -> None:
    """Show what applying the fleet at PATH would change.

    Per object: create, update (with the diff), prune, unchanged. Without a cluster
    configured: the objects that would be created."""
    model = check_fleet_at(path)
    objects = render(model)
    revision = local_revision(path)
    source_of = source_lookup(model)
    plan: Plan
    if not cluster_configured(kubeconfig):
        plan = offline_plan(objects, model.fleet.name, source_of, revision)
    else:
        client = connect(kubeconfig, context)
        try:
            inventory = InventoryStore(client, inventory_namespace, inventory_name).load()
            plan = compute_plan(
                objects, model.fleet, client, inventory, source_of=source_of,
                revision=revision, confirm=Confirmation(confirm_prune, inventory.confirm_prune),
            )
        except ApiError as err:
            raise UserError(str(err)) from None
        finally:
            client.close()
    if output != "table":
        emit(plan.to_json(), output)
    else:
        click.echo(plan_table(plan))
    if exit_code and plan.has_changes:
        sys.exit(EXIT_CHANGES)


@click.command("sync")
@click.argument("local_path", metavar="[PATH]", required=False,
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--once", is_flag=True, help="one full reconcile, then exit (required)")
@settings.bind()
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path),
              default=Path(".syncer/source"), show_default=True,
              help="where the local clone and checkouts live")
@cluster_options
@click.option("--dry-run", is_flag=True, help="server-side dry run: nothing is written")
@click.option("--workers", default=WORKERS, show_default=True, type=click.IntRange(1, 64),
              help="concurrent API requests")
@output_option("text")
@click.option("--nodes/--no-nodes", default=True, show_default=True,
              help="after a successful apply, bring the Windows hosts to the committed "
                   "version over SSH (the node stage)")
@click.option("--allow-file-payloads", is_flag=True, envvar="SYNCER_ALLOW_FILE_PAYLOADS",
              help="read file:// payload URLs from this machine (a workstation; "
                   "syncer run never does)")
@click.option("--payload-allow-networks", default="", envvar="SYNCER_PAYLOAD_ALLOW_NETWORKS",
              metavar="CIDRS",
              help="networks payload URLs may resolve to although internal (loopback, "
                   "link-local, the Service network); comma-separated")
@click.option("--passthrough-kinds", default="", envvar="SYNCER_PASSTHROUGH_KINDS",
              metavar="KINDS", help="kinds the fleet may pass through (Kind or Kind.group, "
                                    "comma-separated); default: what Windows workloads need")
@click.option("--passthrough-denied-namespaces", default=",".join(DEFAULT_DENIED_NAMESPACES),
              envvar="SYNCER_PASSTHROUGH_DENIED_NAMESPACES", show_default=True,
              metavar="PATTERNS", help="namespaces the fleet may not write")
@settings.config_option(SYNC_KNOWN)
def sync_command(
    local_path: Path | None, once: bool, workdir: Path, kubeconfig: str | None,
    context: str | None, inventory_namespace: str, inventory_name: str,
    confirm_prune: bool, dry_run: bool, workers: int, output: str, nodes: bool,
    allow_file_payloads: bool, payload_allow_networks: str, passthrough_kinds: str,
    passthrough_denied_namespaces: str, **values: Any,
) -> None:
    """Apply the fleet (a local PATH or --repo) to the cluster once, prune, and report.

    Then write back (unless --dry-run): a status commit and a git note when the state
    changed, and with --forge a preview on each open pull request. Write-back failures
    are printed and never change the exit code. The Git and write-back options are those
    of `syncer run`, with the same SYNCER_* variables and --config keys."""
    if not once:
        raise click.UsageError("syncer sync needs --once (the continuous loop is `syncer run`)")
    source_settings, writeback = settings.sections(values)
    if (local_path is None) == (not source_settings.repo):
        raise click.UsageError("give either a PATH or --repo URL")
    try:
        allowed = parse_networks(payload_allow_networks)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--payload-allow-networks") from None
    source: Path | settings.SourceSettings = local_path or source_settings
    passthrough = PassThroughPolicy.parse(passthrough_kinds, passthrough_denied_namespaces)
    pipeline = Pipeline(source, writeback, Target(
        workdir, inventory_namespace=inventory_namespace, inventory_name=inventory_name,
        passthrough=passthrough,
    ), dry_run=dry_run)
    client = connect(kubeconfig, context, workers=workers)
    try:
        run = pipeline.reconcile(client, ReconcileOptions(
            inventory_namespace=inventory_namespace, inventory_name=inventory_name,
            confirm_prune=confirm_prune, dry_run=dry_run, workers=workers,
            nodes=_node_stage_options(FetchPolicy(allow_file_payloads, allowed))
            if nodes and not dry_run else None,
            passthrough=passthrough,
        ))
    finally:
        client.close()
        pipeline.close()
    result, after = run.result, run.last_writeback
    if output != "text":
        doc = result.to_json()
        if after is not None:
            doc["writeBack"] = after.to_json()
        emit(doc, output)
    else:
        _print_result(result)
        for line in after.lines() if after is not None else []:
            click.echo(line)
    if not result.ok:
        sys.exit(1)


def _print_result(result: ReconcileResult) -> None:
    for problem in result.problems:
        click.echo(str(problem), err=True)
    if result.applied is not None:
        for res in result.applied.results:
            if res.outcome is Outcome.UNCHANGED:
                continue
            line = f"{res.outcome} {res.ref}"
            click.echo(f"{line}: {res.error}" if res.error else line,
                       err=res.outcome is Outcome.FAILED)
    shown = {str(p) for p in result.problems}
    # Without an apply, the summary line carries the first error.
    for error in result.errors[0 if result.applied is not None else 1:]:
        if error not in shown:
            click.echo(f"error: {error}", err=True)
    click.echo(result.summary(), err=not result.ok)
    if result.nodes is not None:
        for problem in result.nodes.problems:
            click.echo(str(problem), err=True)
        for row in result.nodes.rows:
            if row.last_error:
                click.echo(f"{row.address}: {row.text}: {row.last_error}", err=True)
        click.echo(result.nodes.summary(), err=not result.nodes.ok)


def _node_stage_options(payloads: FetchPolicy) -> Any:
    from syncer.nodes.progress import reporter
    from syncer.nodes.stage import NodeStageOptions

    return NodeStageOptions(progress=reporter(), payloads=payloads)

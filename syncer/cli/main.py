"""The ``syncer`` command line.

One click group; each subcommand is a thin wrapper that parses options, calls into the
stage modules and prints. Exit codes: 0 success, 1 invalid input or failed operation
(each problem printed as one ``file:line: message`` line, never a traceback), 2 usage
errors (click's own), 3 ``plan --exit-code`` found changes.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from syncer import __version__
from syncer.problems import Problem, UserError

if TYPE_CHECKING:
    from syncer.fleet import FleetModel


# Subcommands imported only when used: `syncer validate` should not pay for importing the
# Kubernetes client, paramiko and the rest. `demo` is the lab's, named here and never
# imported otherwise (the product does not depend on the lab; the image does not ship it).
_LAB = "syncer_lab"
_LAZY_COMMANDS = {
    "plan": "syncer.cli.apply:plan_command",
    "sync": "syncer.cli.apply:sync_command",
    "status": "syncer.cli.status:status_command",
    "history": "syncer.cli.history:history_command",
    "run": "syncer.cli.controller:run",
    "suspend": "syncer.cli.controller:suspend",
    "resume": "syncer.cli.controller:resume",
    "reconcile": "syncer.cli.controller:reconcile",
    "version": "syncer.cli.about:version_command",
    "completion": "syncer.cli.about:completion_command",
    "demo": "syncer_lab.demo.command:demo_command",
}


class _Group(click.Group):
    """Loads subcommands on first use, and turns :class:`UserError` into printed
    problems and exit 1, for every subcommand."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in _LAZY_COMMANDS and cmd_name not in self.commands:
            module, _, attr = _LAZY_COMMANDS[cmd_name].partition(":")
            try:
                command = getattr(importlib.import_module(module), attr)
            except ModuleNotFoundError as err:
                if err.name is None or not err.name.startswith(_LAB):
                    raise
                raise click.ClickException(
                    f"syncer {cmd_name} runs on the simulators in {_LAB}, which come with a "
                    "development install (git clone, then `make demo`); this installation "
                    "has the controller only"
                ) from None
            assert isinstance(command, click.Command)
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UserError as err:
            for problem in err.problems:
                click.echo(str(problem), err=True)
            sys.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="syncer")
def cli() -> None:
    """GitOps for the Windows nodes of a Kubernetes/OpenShift cluster."""


# --- the fleet repository (syncer/fleet/): validate, render ----------------------------
def check_fleet_at(path: Path) -> FleetModel:
    """Check the fleet at ``path``: print warnings, raise UserError on errors.

    Problem paths are shown relative to the current directory (``PATH/file:line``), so
    editors and CI logs can jump to them.
    """
    from syncer.fleet import check_fleet

    if not path.exists():
        raise UserError([Problem(str(path), 0, "no such file or directory")])
    base = path if path.is_dir() else path.parent
    prefix = os.path.normpath(base)
    model, problems = check_fleet(path, display_prefix="" if prefix == "." else prefix)
    for problem in problems:
        if not problem.is_error:
            click.echo(str(problem), err=True)
    errors = [p for p in problems if p.is_error]
    if errors or model is None:
        raise UserError(errors)
    return model


_PATH = click.argument("path", default=".", type=click.Path(path_type=Path))


@cli.command()
@_PATH
@click.option("--strict", is_flag=True, help="Fail (exit 1) on warnings too.")
def validate(path: Path, strict: bool) -> None:
    """Check the fleet repository at PATH (default: the current directory).

    Reads every *.yaml/*.yml file under PATH and checks it against the fleet contract.
    Prints warnings, then either a one-line summary (exit 0) or every error as
    file:line: message (exit 1).
    """
    from syncer.fleet import summary

    model = check_fleet_at(path)
    if strict and model.warnings:
        click.echo(f"{len(model.warnings)} warning(s) and --strict: not valid", err=True)
        sys.exit(1)
    click.echo(summary(model))


@cli.command("render")
@_PATH
@click.option(
    "-o",
    "--output",
    type=click.Choice(["yaml", "json"]),
    default="yaml",
    show_default=True,
    help="Multi-document YAML, or a JSON v1 List with items.",
)
def render_command(path: Path, output: str) -> None:
    """Print the Kubernetes objects the fleet at PATH renders to.

    Validates first: when the fleet has errors, prints them (exit 1) and renders
    nothing. Output is deterministic: objects sorted by group, kind, namespace and name.
    """
    from syncer.fleet import render, to_json, to_yaml

    objects = render(check_fleet_at(path))
    click.echo(to_json(objects) if output == "json" else to_yaml(objects), nl=False)


def main() -> None:
    cli(prog_name="syncer")

"""The ``syncer`` command line.

One click group; each subcommand is a thin wrapper that parses options, calls into the
stage modules and prints. Exit codes: 0 success, 1 invalid input or failed operation
(each problem printed as one ``file:line: message`` line, never a traceback), 2 usage
errors (click's own), 3 ``plan --exit-code`` found changes.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from syncer import __version__
from syncer.problems import UserError


class _Group(click.Group):
    """Turns :class:`UserError` into printed problems and exit 1, for every subcommand."""

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


def main() -> None:
    cli(prog_name="syncer")

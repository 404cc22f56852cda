"""``syncer history``: the applied revisions, read from the git notes.

Thin wrappers: parse options, call :mod:`syncer.writeback.status.history`, print. A Git failure
(unreachable, authentication, no such branch) is a :class:`UserError`: one line, exit 1.
"""

from __future__ import annotations

from pathlib import Path

import click

from syncer.cli.options import emit, output_option
from syncer.names import NOTES_REF
from syncer.problems import UserError


@click.command("history")
@click.option(
    "--repo",
    default=".",
    show_default=True,
    metavar="URL|PATH",
    help="The fleet repository: a local clone or a file://, ssh:// or https:// URL.",
)
@click.option("--branch", default="main", show_default=True, help="The tracked branch.")
@click.option(
    "--limit",
    "-l",
    default=20,
    show_default=True,
    type=click.IntRange(min=1),
    help="Show at most N commits.",
)
@click.option(
    "--all", "all_commits", is_flag=True, help="Also list commits syncer never applied (no note)."
)
@click.option("--notes-ref", default=NOTES_REF, show_default=True)
@click.option(
    "--ssh-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="SSH private key for an ssh:// URL.",
)
@click.option(
    "--known-hosts",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="known_hosts file for an ssh:// URL (required for ssh://).",
)
@click.option(
    "--token-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="File holding the HTTPS token.",
)
@click.option("--token-env", metavar="VAR", help="Environment variable holding the token.")
@output_option("table")
@click.option(
    "--ca-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CA bundle for an https:// URL.",
)
def history_command(
    repo: str,
    branch: str,
    limit: int,
    all_commits: bool,
    notes_ref: str,
    ssh_key: Path | None,
    known_hosts: Path | None,
    token_file: Path | None,
    token_env: str | None,
    ca_file: Path | None,
    output: str,
) -> None:
    """Print the audit trail: each applied commit, its author, when syncer applied it,
    the outcome, and how long until all hosts reached it (from the git notes)."""
    from syncer.source.config import RemoteConfig
    from syncer.source.errors import SourceError
    from syncer.writeback.status.history import format_table, read_history

    remote = None
    if "://" in repo or any((ssh_key, known_hosts, token_file, token_env, ca_file)):
        remote = RemoteConfig(
            repo,
            ssh_key_file=ssh_key,
            known_hosts_file=known_hosts,
            token_file=token_file,
            token_env=token_env,
            ca_file=ca_file,
        )
    try:
        rows = read_history(
            repo, branch, limit, notes_ref=notes_ref, remote=remote, all_commits=all_commits
        )
    except SourceError as err:
        raise UserError(str(err)) from None
    if output != "table":
        emit({"commits": [row.to_json() for row in rows]}, output)
        return
    if not rows:
        click.echo(f"no commit on {branch} has a syncer note ({notes_ref})", err=True)
        return
    click.echo(format_table(rows))

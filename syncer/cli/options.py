"""The write-back options of ``syncer sync --once``, and the :class:`WriteBack` they build.

:func:`writeback_options` decorates the command; the values arrive as keyword arguments
the command passes on to :func:`writeback_for_sync` unchanged, so the command itself only
gains two lines. ``syncer run`` builds its write-back from the controller configuration
instead (:mod:`syncer.controller.wiring`); both end in the same :class:`WriteBack`.

=========================  =====================================================
``--status-branch B``      branch of status commits (default: the Fleet's
                           ``spec.status.branch``, ``syncer/status``)
``--status-repo URL``      repository of the status branch (default: ``--repo``,
                           same credentials)
``--no-status``            no status commits, no notes
``--forge P``              ``github`` | ``gitlab`` | ``gitea``: PR previews
``--forge-url URL``        API base URL (derived for self-hosted forges)
``--forge-repo R``         ``owner/name`` / GitLab project (derived from ``--repo``)
``--forge-token-file F``   the API token, from a file …
``--forge-token-env VAR``  … or an environment variable
=========================  =====================================================
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import click

from syncer.names import INVENTORY_CONFIGMAP, STATUS_BRANCH, SYSTEM_NAMESPACE
from syncer.problems import UserError
from syncer.source import GitSource, RemoteConfig, SourceError
from syncer.writeback.forges import ForgeConfigError
from syncer.writeback.step import WriteBack, WriteBackSettings, forge_settings

F = TypeVar("F", bound=Callable[..., Any])

_OPTIONS = [
    click.option("--status-branch", metavar="BRANCH",
                 help="branch that receives one status commit per change of state "
                      f"(default: the Fleet's spec.status.branch, {STATUS_BRANCH})"),
    click.option("--status-repo", metavar="URL",
                 help="repository of the status branch and notes (default: --repo, with "
                      "the same credentials)"),
    click.option("--no-status", is_flag=True,
                 help="write no status commit and no git note"),
    click.option("--forge", type=click.Choice(["github", "gitlab", "gitea"]),
                 help="post a preview comment and commit status on each open pull request "
                      "against --ref"),
    click.option("--forge-url", metavar="URL",
                 help="forge API base URL (default: the public service, or derived from "
                      "--repo for a self-hosted forge)"),
    click.option("--forge-repo", metavar="OWNER/NAME",
                 help="repository on the forge (default: derived from --repo)"),
    click.option("--forge-token-file", type=click.Path(dir_okay=False, path_type=Path),
                 help="file holding the forge API token"),
    click.option("--forge-token-env", metavar="VAR",
                 help="environment variable holding the forge API token"),
]


def writeback_options(fn: F) -> F:
    """Add the write-back options to a click command."""
    for option in reversed(_OPTIONS):
        fn = option(fn)
    return fn


def writeback_for_sync(
    values: Mapping[str, Any],
    source: GitSource | Path,
    *,
    workdir: Path,
    auth: RemoteConfig | None = None,
    inventory_namespace: str = SYSTEM_NAMESPACE,
    inventory_name: str = INVENTORY_CONFIGMAP,
) -> WriteBack | None:
    """The write-back the options ask for (None: nothing to write). ``auth`` carries the
    source's credentials for a ``--status-repo``. Mistakes raise :class:`UserError`."""
    status_repo: str | None = values.get("status_repo")
    forge: str | None = values.get("forge")
    status = not values.get("no_status", False)
    if isinstance(source, Path):
        if forge:
            raise UserError("--forge previews pull requests of a Git source: give --repo")
        status = status and status_repo is not None
    if not status and not forge:
        return None
    remote = None
    if status_repo is not None:
        remote = replace(auth, url=status_repo) if auth else RemoteConfig(status_repo)
    try:
        forge_config = None
        if forge:
            assert isinstance(source, GitSource)
            token_file = values.get("forge_token_file")
            forge_config = forge_settings(
                forge, source.config.url, api_url=values.get("forge_url"),
                repository=values.get("forge_repo"),
                token_file=str(token_file) if token_file else None,
                token_env=values.get("forge_token_env"),
            )
        return WriteBack(
            WriteBackSettings(
                workdir=workdir, status=status, status_remote=remote,
                status_branch=values.get("status_branch"),
                forge=forge_config, inventory_namespace=inventory_namespace,
                inventory_name=inventory_name,
            ),
            source,
        )
    except SourceError as err:
        raise UserError(err.message) from None
    except ForgeConfigError as err:
        raise UserError(str(err)) from None

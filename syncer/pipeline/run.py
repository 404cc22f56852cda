"""One pipeline for ``syncer run`` and ``syncer sync --once``: source, reconcile, write-back.

:class:`Pipeline` owns the Git source and its write-back, built from the shared settings
(:mod:`syncer.pipeline.settings`) the same way for both commands, and runs one reconcile
(:func:`syncer.reconcile.reconcile_once`) followed by the write-back
(:class:`syncer.writeback.step.WriteBack`). Only *when* the write-back runs differs:

- ``sync --once`` (``live=False``): once, after the reconcile, hosts included.
- ``syncer run`` (``live=True``): as soon as the objects are applied when they changed
  (Git records the apply, and previews go out, without waiting for a rollout that may
  take hours); then each time a host starts or finishes during the rollout (the status
  only: previews do not change as hosts move on); and after the node stage, with the
  hosts. A resync that changed nothing waits for the hosts, so the status does not flip
  between a report with and without them.

Write-back failures never fail the reconcile; they come back in :attr:`Run.writebacks`.

Credentials: under ``syncer run`` the Git key and token are mounted files that may be
rotated. :class:`Pipeline` asks its :class:`Credentials` for a generation before each
reconcile and rebuilds the source and the write-back together when it changed (git reads
the key file at every run, but the token goes into git's environment when the source is
built); ``ssh`` gets a private mode-0600 copy of the key.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from syncer.cluster.apply import Outcome
from syncer.cluster.client import KubeClient
from syncer.fleet.admission import DEFAULT as DEFAULT_PASSTHROUGH
from syncer.fleet.admission import PassThroughPolicy
from syncer.names import INVENTORY_CONFIGMAP, SYSTEM_NAMESPACE
from syncer.nodes.stage import NodeStageResult
from syncer.pipeline.settings import SourceSettings, WriteBackOptions
from syncer.problems import UserError
from syncer.reconcile import ReconcileOptions, ReconcileResult, reconcile_once
from syncer.source import GitSource, RemoteConfig, SourceError
from syncer.writeback.forges import ForgeConfigError
from syncer.writeback.step import WriteBack, WriteBackOutcome, WriteBackSettings, forge_settings


class Credentials(Protocol):
    """Where a long-running pipeline gets rotating Git credentials."""

    def generation(self) -> Hashable:
        """Changes whenever the Git key, token or known_hosts file changed."""

    def ssh_key_file(self) -> Path | None:
        """A private copy of the Git SSH key (None: use the configured file)."""


@dataclass
class Run:
    """One reconcile and every write-back done for it, in order."""

    result: ReconcileResult
    writebacks: list[WriteBackOutcome] = field(default_factory=list)

    @property
    def last_writeback(self) -> WriteBackOutcome | None:
        return self.writebacks[-1] if self.writebacks else None


@dataclass(frozen=True)
class Target:
    """Where the pipeline keeps its state and which inventory it reconciles."""

    workdir: Path
    inventory_namespace: str = SYSTEM_NAMESPACE
    inventory_name: str = INVENTORY_CONFIGMAP
    instance: str | None = None  # the controller named in notes and status commits
    passthrough: PassThroughPolicy = DEFAULT_PASSTHROUGH  # what the fleet may pass through


class Pipeline:
    """A source (a Git remote, or a local directory) and its write-back."""

    def __init__(
        self,
        source: SourceSettings | Path,
        writeback: WriteBackOptions,
        target: Target,
        *,
        credentials: Credentials | None = None,
        live: bool = False,
        dry_run: bool = False,
    ) -> None:
        self.settings = source
        self.writeback_options = writeback
        self.target = target
        self.credentials = credentials
        self.live = live
        self.dry_run = dry_run
        self._generation: Hashable = None
        self._source: GitSource | Path | None = None
        self._writeback: WriteBack | None = None
        self._lock = threading.Lock()
        self.source()  # configuration mistakes fail at start, not at the first reconcile

    # --- building ------------------------------------------------------------------------
    def source(self) -> GitSource | Path:
        """The source, rebuilt (with its write-back) when a Git credential changed."""
        if isinstance(self.settings, Path):
            if self._source is None:
                self._source = self.settings
                self._writeback = self._build_writeback(self.settings)
            return self._source
        generation = self.credentials.generation() if self.credentials else None
        if self._source is None or generation != self._generation:
            key = self.credentials.ssh_key_file() if self.credentials else None
            config = self.settings.source_config(self.target.workdir / "source",
                                                 ssh_key_file=key)
            try:
                source = GitSource(config)
            except SourceError as err:
                raise UserError(err.message) from None
            writeback = self._build_writeback(source)
            self.close()
            self._source, self._writeback, self._generation = source, writeback, generation
        assert self._source is not None
        return self._source

    @property
    def writeback(self) -> WriteBack | None:
        return self._writeback

    def _build_writeback(self, source: GitSource | Path) -> WriteBack | None:
        """The write-back the options ask for (None: nothing to write). Mistakes raise
        :class:`UserError` (they are configuration, reported at start)."""
        options = self.writeback_options
        if self.dry_run:
            return None
        status = options.status_write
        if isinstance(source, Path):
            if options.previews:
                raise UserError("--forge previews pull requests of a Git source: give --repo")
            status = status and options.status_repo is not None
        if not status and not options.previews:
            return None
        remote = None
        if options.status_repo is not None:
            auth = source.config.remote if isinstance(source, GitSource) else None
            remote = (replace(auth, url=options.status_repo) if auth
                      else RemoteConfig(options.status_repo))
        try:
            forge = None
            if options.previews:
                assert isinstance(source, GitSource)
                forge = forge_settings(
                    options.forge, source.config.url, api_url=options.forge_url,
                    repository=options.forge_repo,
                    token_file=str(options.forge_token_file) if options.forge_token_file
                    else None,
                    token_env=options.forge_token_env,
                    ca_bundle=str(options.forge_ca_file) if options.forge_ca_file else None,
                )
            return WriteBack(WriteBackSettings(
                workdir=self.target.workdir,
                status=status,
                status_remote=remote,
                status_branch=options.status_branch,
                forge=forge,
                previews_from_forks=options.previews_from_forks,
                passthrough=self.target.passthrough,
                instance=self.target.instance,
                inventory_namespace=self.target.inventory_namespace,
                inventory_name=self.target.inventory_name,
            ), source)
        except SourceError as err:
            raise UserError(err.message) from None
        except ForgeConfigError as err:
            raise UserError(str(err)) from None

    def close(self) -> None:
        if self._writeback is not None:
            self._writeback.close()
            self._writeback = None

    # --- running -------------------------------------------------------------------------
    def reconcile(
        self,
        client: KubeClient,
        options: ReconcileOptions,
        *,
        shutdown: threading.Event | None = None,
        on_writeback: Callable[[WriteBackOutcome], None] | None = None,
    ) -> Run:
        """One reconcile and its write-back (see the module docstring for the timing).
        One at a time: a second caller waits."""
        with self._lock:
            source = self.source()
            run = Run(ReconcileResult())
            applied: list[ReconcileResult] = []

            def write_back(result: ReconcileResult, previews: bool = True) -> None:
                if self._writeback is not None:
                    outcome = self._writeback.after(result, client, previews=previews)
                    run.writebacks.append(outcome)
                    if on_writeback is not None:
                        on_writeback(outcome)

            def on_applied(result: ReconcileResult) -> None:
                applied.append(result)
                if self.live and result.applied is not None and any(
                        r.outcome is not Outcome.UNCHANGED for r in result.applied.results):
                    write_back(result)

            def on_update(snapshot: NodeStageResult) -> None:
                if applied:
                    write_back(replace(applied[-1], nodes=snapshot), previews=False)

            if self.live and options.nodes is not None:
                options = replace(options, nodes=replace(options.nodes, on_update=on_update))
            run.result = reconcile_once(source, client, options, shutdown=shutdown,
                                        on_applied=on_applied)
            if not run.writebacks or run.result.nodes is not None:
                write_back(run.result)
            return run

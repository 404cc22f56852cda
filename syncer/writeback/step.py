"""The write-back step both ``syncer sync --once`` and ``syncer run`` run after a reconcile.

:func:`syncer.reconcile.reconcile_once` stays about the cluster (source → fleet → apply
→ nodes). Afterwards the caller runs :meth:`WriteBack.after` with the result:

1. the status branch commit and the git note
   (:func:`syncer.writeback.status.record.report_reconcile`),
2. the pull-request previews (:func:`syncer.writeback.previews.rounds.preview_pull_requests`).

:class:`WriteBackSettings` is what the two callers fill from their options; everything
else (the :class:`~syncer.writeback.status.writer.StatusWriter` with its journal, the forge
client, the preview cache) is built once by :class:`WriteBack` and lives as long as the
caller's source. Configuration mistakes (a bad status branch name, a forge without a
repository) raise at construction, so they are reported at start; after that nothing
here raises: every failure is data in :class:`WriteBackOutcome`, logged once, and retried
by the next reconcile.

The Fleet's ``spec.status`` steers it (the Fleet of the last valid revision): ``notes:
false`` writes no notes, ``pullRequests: false`` posts no previews, and ``branch`` names
the status branch unless the command sets one (a writer, with its own journal, per
branch). The policy is kept in ``status-policy.json`` in the work dir, so a rejected
revision (which has no valid Fleet) is reported where the last valid one said, also by a
new ``syncer sync --once`` process.

Defaults that save configuration: the status branch lives in the source repository with
the source's credentials; the forge repository (``owner/name``, or the GitLab project
path) and, for self-hosted forges, the API URL are derived from the source URL
(:func:`forge_repository`, :func:`forge_api_url`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from syncer.cluster.client import KubeClient
from syncer.cluster.inventory import InventoryStore
from syncer.fleet import StatusPolicy
from syncer.fleet.admission import DEFAULT as DEFAULT_PASSTHROUGH
from syncer.fleet.admission import PassThroughPolicy
from syncer.names import INVENTORY_CONFIGMAP, STATUS_BRANCH, SYSTEM_NAMESPACE
from syncer.nodes.annotations import WINDOWS_NODES
from syncer.reconcile import ReconcileResult
from syncer.source import GitSource, Reason, RemoteConfig, SourceError
from syncer.source.state import write_atomic
from syncer.writeback.forges import Forge, ForgeConfig, ForgeConfigError, TokenSource, make_forge
from syncer.writeback.forges.config import PROVIDERS, Provider
from syncer.writeback.previews.rounds import (
    PREVIEW_CACHE,
    PreviewCache,
    PreviewRound,
    preview_pull_requests,
)
from syncer.writeback.status.record import LastReport, WritebackResult, report_reconcile
from syncer.writeback.status.writer import RetryPolicy, StatusWriter

log = logging.getLogger(__name__)

WRITEBACK_DIR = "writeback"
POLICY_FILE = "status-policy.json"
_SCP_LIKE = re.compile(r"^[\w.-]+@(?P<host>[\w.-]+):(?!//)(?P<path>.*)$")
_PUBLIC_HOSTS = {"github": "github.com", "gitlab": "gitlab.com"}
_API_PATHS = {"github": "/api/v3", "gitlab": "/api/v4", "gitea": "/api/v1"}


@dataclass(frozen=True)
class WriteBackSettings:
    """What to write back, filled from the command's options."""

    workdir: Path  # the journal (``writeback/``) and the preview cache live here
    status: bool = True  # status branch commits (and notes)
    status_remote: RemoteConfig | None = None  # None: the source repository
    status_branch: str | None = None  # None: the Fleet's spec.status.branch (syncer/status)
    notes: bool = True
    forge: ForgeConfig | None = None  # None: no pull-request previews
    previews_from_forks: bool = False  # a fork's author reads its preview: off by default
    passthrough: PassThroughPolicy = DEFAULT_PASSTHROUGH  # previews judge as the reconcile
    instance: str | None = None  # the controller instance named in notes and status
    inventory_namespace: str = SYSTEM_NAMESPACE
    inventory_name: str = INVENTORY_CONFIGMAP
    node_selector: str = WINDOWS_NODES
    push_retry: RetryPolicy | None = None


@dataclass(frozen=True)
class WriteBackOutcome:
    """What the write-back did after one reconcile; never a reason to fail it."""

    status: WritebackResult | None = None
    previews: PreviewRound | None = None
    internal: tuple[str, ...] = field(default_factory=tuple)  # bugs caught, not raised

    @property
    def errors(self) -> list[str]:
        found = list(self.internal)
        if self.status is not None and self.status.error:
            found.append(f"status: {self.status.error}")
        if self.previews is not None:
            found += [f"previews: {e}" for e in self.previews.errors]
        return found

    @property
    def retry_after(self) -> float | None:
        """How soon a forge rate limit said to try again, if it said."""
        waits = [p.retry_after for p in (self.previews.previews if self.previews else ())
                 if p.retry_after is not None]
        return max(waits) if waits else None

    def lines(self) -> list[str]:
        out = [self.status.describe()] if self.status is not None else []
        out += self.previews.lines() if self.previews is not None else []
        return out + [f"write-back: {e}" for e in self.internal]

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status.to_json() if self.status is not None else None,
            "previews": self.previews.to_json() if self.previews is not None else None,
            "errors": self.errors,
        }


class WriteBack:
    """The write-back of one source; call :meth:`after` after each reconcile."""

    def __init__(
        self, settings: WriteBackSettings, source: GitSource | Path, *, forge: Forge | None = None
    ) -> None:
        self.settings = settings
        self.source = source
        remote = settings.status_remote
        if remote is None and isinstance(source, GitSource):
            remote = source.config.remote
        self._remote = remote if settings.status else None
        self._writers: dict[str, tuple[StatusWriter, LastReport]] = {}
        self._policy_file = settings.workdir / POLICY_FILE
        self._policy = _load_policy(self._policy_file)  # of the last valid revision
        self.writer: StatusWriter | None = None
        if self._remote is not None:  # built now: configuration mistakes show at start
            self.writer = self._writer(settings.status_branch or STATUS_BRANCH)[0]
        self._owns_forge = forge is None
        self.forge = forge
        if forge is None and settings.forge is not None and isinstance(source, GitSource):
            self.forge = make_forge(settings.forge)
        self.cache = PreviewCache.load(settings.workdir / PREVIEW_CACHE)

    @property
    def enabled(self) -> bool:
        return self.writer is not None or self.forge is not None

    def _writer(self, branch: str) -> tuple[StatusWriter, LastReport]:
        """The writer of ``branch`` (its journal in a directory of its own). Refuses the
        branch syncer follows: each status commit would be a new revision to reconcile,
        whose status commit is the next one, forever."""
        if branch not in self._writers:
            assert self._remote is not None
            if isinstance(self.source, GitSource) and self._remote == self.source.config.remote \
                    and _branch(branch) == _branch(self.source.config.ref):
                raise SourceError(
                    f"status branch {branch!r} is the branch syncer follows: every status "
                    "commit would start another reconcile; use another branch "
                    "(the default is syncer/status)", Reason.CONFIG)
            name = WRITEBACK_DIR if branch == STATUS_BRANCH else (
                f"{WRITEBACK_DIR}-{hashlib.sha256(branch.encode()).hexdigest()[:12]}")
            writer = StatusWriter(
                self._remote, self.settings.workdir / name, branch,
                instance=self.settings.instance, retry=self.settings.push_retry,
            )
            self._writers[branch] = (writer, LastReport(writer))
        return self._writers[branch]

    def after(self, result: ReconcileResult, client: KubeClient | None, *,
              previews: bool = True) -> WriteBackOutcome:
        """Status commit + note, then previews (``previews=False``: the status only, as
        for a host moving on during a rollout). Never raises (see the module docstring)."""
        if result.fleet is not None and result.fleet.status != self._policy:
            self._policy = result.fleet.status
            _save_policy(self._policy_file, self._policy)
        policy = self._policy
        internal: list[str] = []
        status = None
        if self._remote is not None:
            try:
                writer, last = self._writer(self.settings.status_branch or policy.branch)
                status = report_reconcile(
                    result, result.nodes, writer, source=self.source,
                    notes=self.settings.notes and policy.notes,
                    controller=self.settings.instance, last=last,
                )
            except SourceError as err:  # a new branch whose writer cannot be set up
                internal.append(f"status: {err.message}")
            except Exception as err:  # a bug must not fail the reconcile that already ran
                log.exception("write-back: the status stage failed")
                internal.append(f"status stage: {type(err).__name__}: {err}")
        preview_round = None
        dry_run = result.applied is not None and result.applied.dry_run
        if (previews and self.forge is not None and isinstance(self.source, GitSource)
                and not dry_run and policy.pull_requests):
            inventory = (InventoryStore(client, self.settings.inventory_namespace,
                                        self.settings.inventory_name) if client else None)
            try:
                preview_round = preview_pull_requests(
                    self.source, self.forge, client, inventory=inventory, cache=self.cache,
                    node_selector=self.settings.node_selector,
                    forks=self.settings.previews_from_forks,
                    policy=self.settings.passthrough,
                )
            except Exception as err:
                log.exception("write-back: the previews failed")
                internal.append(f"previews: {type(err).__name__}: {err}")
            if preview_round is not None:
                for line in preview_round.errors:
                    log.warning("previews: %s", line)
        return WriteBackOutcome(status, preview_round, tuple(internal))

    def close(self) -> None:
        if self.forge is not None and self._owns_forge:
            self.forge.close()


def _branch(ref: str) -> str:
    return ref.removeprefix("refs/heads/")


def _load_policy(path: Path) -> StatusPolicy:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return StatusPolicy(str(data["branch"]), bool(data["notes"]),
                            bool(data["pullRequests"]))
    except (OSError, ValueError, KeyError, TypeError):
        return StatusPolicy()


def _save_policy(path: Path, policy: StatusPolicy) -> None:
    data = {"branch": policy.branch, "notes": policy.notes,
            "pullRequests": policy.pull_requests}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(data).encode())
    except OSError as err:
        log.warning("write-back: cannot keep %s: %s", path, err)


# --- deriving forge settings from the repository URL -------------------------------------


def _host_and_path(url: str) -> tuple[str, str] | None:
    scp = _SCP_LIKE.match(url)
    if scp:
        return scp.group("host"), scp.group("path")
    parts = urlsplit(url)
    if parts.scheme in ("", "file") or not parts.hostname:
        return None
    return parts.hostname, parts.path


def forge_repository(url: str) -> str | None:
    """``owner/name`` (GitLab: ``group/…/project``) of a Git URL; None for local paths."""
    found = _host_and_path(url)
    if found is None:
        return None
    path = found[1].strip("/").removesuffix(".git").strip("/")
    return path or None


def forge_api_url(provider: str, url: str) -> str | None:
    """The API URL of a self-hosted forge serving ``url`` (None: the public default)."""
    found = _host_and_path(url)
    if found is None or found[0] == _PUBLIC_HOSTS.get(provider):
        return None
    return f"https://{found[0]}{_API_PATHS[provider]}"


def forge_settings(
    provider: str,
    source_url: str,
    *,
    api_url: str | None = None,
    repository: str | None = None,
    token_file: str | None = None,
    token_env: str | None = None,
    ca_bundle: str | None = None,
) -> ForgeConfig:
    """A :class:`ForgeConfig`, deriving what was not given from the source URL."""
    if provider not in PROVIDERS:
        raise ForgeConfigError(f"unknown forge {provider!r} (github, gitlab or gitea)")
    repository = repository or forge_repository(source_url)
    if not repository:
        raise ForgeConfigError(
            "cannot tell the forge repository from the source URL; give --forge-repo"
        )
    if not token_file and not token_env:
        raise ForgeConfigError("the forge needs a token: --forge-token-file or --forge-token-env")
    kind: Provider = provider
    return ForgeConfig(
        kind, repository, TokenSource(file=token_file, env=token_env),
        api_url=api_url or forge_api_url(provider, source_url), ca_bundle=ca_bundle,
    )

"""Pull-request previews: evaluate each open PR against the live cluster, post the result.

:func:`preview_pull_requests` runs after a reconcile (and so also after a ``pull_request``
webhook, which triggers one). For each open pull request that targets the tracked branch:

1. **Skip what is already shown.** The :class:`PreviewCache` (a JSON file in the work dir,
   so ``syncer sync --once`` run by cron skips too) remembers per PR the head SHA, the
   *live key* it was evaluated against and a digest of the preview. The live key
   (:func:`read_live`) digests what a plan depends on and is cheap to read: the
   inventory (applied revision and object ids; one GET) and the Windows Nodes' versions
   and component records (one LIST). Same head and same key: nothing is fetched,
   rendered or sent — a reconcile every minute costs one forge listing.
2. **Fetch the head** read-only through the source's clone
   (:meth:`GitSource.fetch_ref <syncer.source.GitSource.fetch_ref>` of ``pr.fetch_ref``,
   which also works for forks, then :meth:`~syncer.source.GitSource.checkout`). A head
   that moved since the listing is evaluated as fetched.
3. **Pending first**, when the head is new: the ``syncer/preview`` status turns
   ``pending`` before the evaluation.
4. **Evaluate** (:func:`syncer.writeback.previews.evaluate.evaluate`): validation, plan,
   host upgrades.
5. **Publish** (:func:`syncer.writeback.previews.post.publish_preview`): the one comment
   (found by its hidden marker, edited in place) and the final status. When only the live
   key changed and the preview's digest did not, nothing is sent. When the plan changed,
   the same comment is edited.

Forge and Git failures are per pull request and never raised: they come back in
:class:`PullRequestPreview.errors`, and the PR is not cached, so the next round tries
again. The clone is only read; nothing of a pull request is ever applied.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from syncer.cluster.client import ApiError, KubeClient
from syncer.cluster.inventory import InventoryStore
from syncer.fleet.admission import DEFAULT as DEFAULT_PASSTHROUGH
from syncer.fleet.admission import PassThroughPolicy
from syncer.nodes.annotations import WINDOWS_NODES, NodeRecord, list_windows_nodes
from syncer.problems import Problem
from syncer.source import GitSource, Reason, SourceError
from syncer.source.state import write_atomic
from syncer.writeback.forges import (
    CommentResult,
    CommitState,
    Forge,
    ForgeOutcome,
    PullRequest,
    attempt,
)
from syncer.writeback.previews.comment import Preview, render_comment, status_state
from syncer.writeback.previews.evaluate import evaluate
from syncer.writeback.previews.post import PREVIEW_CONTEXT, announce, publish_preview

log = logging.getLogger(__name__)

PREVIEW_CACHE = "previews.json"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class PullRequestPreview:
    """What one round did for one pull request."""

    number: int
    head_sha: str
    action: str  # "published" | "unchanged" | "failed" | "skipped (...)"
    state: CommitState | None = None  # the status set (published) or last set (unchanged)
    comment: str | None = None  # created | updated | unchanged (published only)
    errors: tuple[str, ...] = ()
    retry_after: float | None = None  # a forge rate limit said when to try again

    @property
    def ok(self) -> bool:
        return not self.errors

    def describe(self) -> str:
        head = f"preview #{self.number} ({self.head_sha[:7]})"
        if self.errors:
            return f"{head}: failed: {'; '.join(self.errors)}"
        state = self.state.value if self.state else "?"
        if self.action == "unchanged":
            return f"{head}: {state}, unchanged"
        return f"{head}: {state}, comment {self.comment}"

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "head": self.head_sha,
            "action": self.action,
            "state": self.state.value if self.state else None,
            "comment": self.comment,
            "errors": list(self.errors),
        }


@dataclass(frozen=True)
class PreviewRound:
    """The previews of one reconcile."""

    previews: tuple[PullRequestPreview, ...] = ()
    error: str | None = None  # the pull requests could not be listed

    @property
    def errors(self) -> list[str]:
        return ([self.error] if self.error else []) + [
            e for p in self.previews for e in p.errors
        ]

    def lines(self) -> list[str]:
        if self.error:
            return [f"previews: {self.error}"]
        return [p.describe() for p in self.previews]

    def to_json(self) -> dict[str, Any]:
        return {"error": self.error, "pullRequests": [p.to_json() for p in self.previews]}


@dataclass
class _Entry:
    head: str
    live: str
    digest: str
    state: str


@dataclass
class PreviewCache:
    """Per pull request: the head, live key and preview digest last published."""

    path: Path | None = None
    entries: dict[int, _Entry] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | None) -> PreviewCache:
        cache = cls(path)
        if path is None:
            return cache
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            for number, item in dict(data).items():
                cache.entries[int(number)] = _Entry(
                    str(item["head"]), str(item["live"]), str(item["digest"]),
                    str(item["state"]),
                )
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass
        return cache

    def get(self, number: int) -> _Entry | None:
        return self.entries.get(number)

    def put(self, number: int, entry: _Entry) -> None:
        self.entries[number] = entry

    def retain(self, numbers: set[int]) -> None:
        """Forget closed and merged pull requests."""
        for number in list(self.entries):
            if number not in numbers:
                del self.entries[number]

    def save(self) -> None:
        if self.path is None:
            return
        data = {str(n): vars(e) for n, e in sorted(self.entries.items())}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(self.path, json.dumps(data, indent=1, sort_keys=True).encode())
        except OSError as err:
            log.warning("previews: cannot save %s: %s", self.path, err)


@dataclass(frozen=True)
class LiveState:
    """What the plan of every pull request is computed against, read once per round."""

    key: str
    nodes: tuple[NodeRecord, ...] = ()
    error: str | None = None


def read_live(
    client: KubeClient | None, inventory: InventoryStore | None, node_selector: str = WINDOWS_NODES
) -> LiveState:
    """The live key and Nodes (see the module docstring); the error when unreadable."""
    if client is None or inventory is None:
        return LiveState("no-cluster", error="no cluster configured")
    try:
        current = inventory.load()
        nodes = tuple(list_windows_nodes(client, node_selector))
    except ApiError as err:
        return LiveState("unavailable", error=f"the cluster cannot be read: {err}")
    basis = {
        "applied": current.last_applied_revision,
        "inventory": sorted(ref.id for ref in current.entries),
        "nodes": [
            [n.name, n.version, n.address, n.internal_ip,
             {k: [c.version, c.sha256] for k, c in sorted(n.components.items())}]
            for n in nodes
        ],
    }
    return LiveState(_digest(json.dumps(basis, sort_keys=True)), nodes)


def preview_pull_requests(
    source: GitSource,
    forge: Forge,
    client: KubeClient | None,
    *,
    inventory: InventoryStore | None,
    cache: PreviewCache | None = None,
    node_selector: str = WINDOWS_NODES,
    context: str = PREVIEW_CONTEXT,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    forks: bool = False,
    policy: PassThroughPolicy = DEFAULT_PASSTHROUGH,
) -> PreviewRound:
    """Preview every open pull request against the tracked branch (module docstring);
    those from forks only with ``forks`` (``--previews-from-forks``)."""
    cache = cache if cache is not None else PreviewCache()
    branch = source.config.ref
    listing = attempt(f"{forge.provider}: listing open pull requests against {branch}",
                      lambda: forge.open_pull_requests(branch))
    if not listing.ok or listing.value is None:
        return PreviewRound(error=listing.error or "listing pull requests failed")
    prs = listing.value
    live = read_live(client, inventory, node_selector) if prs else LiveState("")
    results = []
    for pr in prs:
        if pr.fork and not forks:
            results.append(PullRequestPreview(pr.number, pr.head_sha, "skipped (from a fork; "
                                              "see --previews-from-forks)"))
            continue
        results.append(_preview_one(source, forge, client, pr, live, cache, inventory,
                                    context, clock, policy))
    cache.retain({pr.number for pr in prs})
    cache.save()
    return PreviewRound(tuple(results))


def _preview_one(
    source: GitSource,
    forge: Forge,
    client: KubeClient | None,
    pr: PullRequest,
    live: LiveState,
    cache: PreviewCache,
    inventory: InventoryStore | None,
    context: str,
    clock: Callable[[], datetime],
    policy: PassThroughPolicy,
) -> PullRequestPreview:
    entry = cache.get(pr.number)
    if entry is not None and entry.head == pr.head_sha and entry.live == live.key:
        return PullRequestPreview(pr.number, pr.head_sha, "unchanged", CommitState(entry.state))
    fleet_path = source.config.fleet_path
    problems: list[Problem] = []
    path: Path | None = None
    try:
        sha = source.fetch_ref(pr.fetch_ref)
        if sha != pr.head_sha:
            pr = _moved(pr, sha)
        path = source.checkout(sha)
    except SourceError as err:
        if err.reason is not Reason.PATH:
            log.warning("preview #%d: %s", pr.number, err.message)
            return PullRequestPreview(pr.number, pr.head_sha, "failed",
                                      errors=(f"fetching the head: {err.message}",))
        problems = [Problem(fleet_path or ".", 0, err.message)]
    new_head = entry is None or entry.head != pr.head_sha
    outcomes: list[ForgeOutcome[Any]] = []
    if new_head:
        outcomes.append(announce(forge, pr, context=context))
    if path is None:
        preview = Preview(pr.head_sha, clock(), problems=problems, fleet_path=fleet_path)
    else:
        preview = evaluate(
            path, client, head_sha=pr.head_sha, evaluated_at=clock(), fleet_path=fleet_path,
            inventory=inventory, nodes=live.nodes, live_error=live.error, policy=policy,
        )
    digest = preview_digest(preview, pr)
    state = status_state(preview)
    if not new_head and entry is not None and entry.digest == digest:
        cache.put(pr.number, _Entry(pr.head_sha, live.key, digest, state.value))
        return PullRequestPreview(pr.number, pr.head_sha, "unchanged", state)
    report = publish_preview(forge, pr, preview, context=context)
    outcomes.extend(report.outcomes)
    errors = tuple(f"{o.action}: {o.error}" for o in outcomes if not o.ok)
    comment = next((o.value.action for o in report.outcomes
                    if isinstance(o.value, CommentResult)), None)
    if not errors:
        cache.put(pr.number, _Entry(pr.head_sha, live.key, digest, state.value))
    waits = [o.retry_after for o in outcomes if o.retry_after is not None]
    return PullRequestPreview(pr.number, pr.head_sha, "failed" if errors else "published",
                              state, comment, errors, max(waits) if waits else None)


def preview_digest(preview: Preview, pr: PullRequest) -> str:
    """A digest of what the comment and status would say, without the evaluation time."""
    body = render_comment(replace(preview, evaluated_at=_EPOCH), file_url=pr.file_url)
    return _digest(status_state(preview).value + "\0" + body)


def _moved(pr: PullRequest, sha: str) -> PullRequest:
    """``pr`` at the head the fetch found (the branch moved after the listing)."""
    files_url = pr.files_url.replace(pr.head_sha, sha) if pr.files_url else None
    return replace(pr, head_sha=sha, files_url=files_url)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


__all__ = [
    "LiveState",
    "PreviewCache",
    "PreviewRound",
    "PullRequestPreview",
    "preview_digest",
    "preview_pull_requests",
    "read_live",
]

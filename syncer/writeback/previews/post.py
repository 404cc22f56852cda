"""Publishing a preview on a pull request, without ever failing the reconcile.

The reconciler calls, for each open pull request against the tracked branch:

1. :func:`announce` — a ``pending`` commit status on the head while it evaluates;
2. :func:`publish_preview` — the comment (created once, then edited in place) and the
   final status (``success`` / ``failure`` / ``error``).

Both return :class:`~syncer.writeback.forges.ForgeOutcome`\\ s instead of raising, so a
forge that is down or rate-limits us shows up in the reconciler's report and the next
reconcile tries again; the fleet is applied regardless.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from syncer.writeback.forges import (
    CommitState,
    Forge,
    ForgeOutcome,
    PullRequest,
    StatusResult,
    attempt,
)
from syncer.writeback.previews.comment import (
    Preview,
    render_comment,
    status_description,
    status_state,
)

PREVIEW_MARKER = "preview"
PREVIEW_CONTEXT = "syncer/preview"


@dataclass(frozen=True)
class PreviewReport:
    """What publishing one pull request's preview did."""

    pr: PullRequest
    state: CommitState
    outcomes: tuple[ForgeOutcome[Any], ...]

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outcomes)

    def __str__(self) -> str:
        return "; ".join(str(o) for o in self.outcomes)


def announce(
    forge: Forge,
    pr: PullRequest,
    *,
    context: str = PREVIEW_CONTEXT,
    target_url: str | None = None,
) -> ForgeOutcome[StatusResult]:
    """Mark the pull request's head ``pending`` while syncer evaluates it."""
    return attempt(
        f"{forge.provider}: pending status on #{pr.number} ({pr.head_sha[:12]})",
        lambda: forge.set_commit_status(
            pr.head_sha,
            CommitState.PENDING,
            context,
            f"evaluating {pr.head_sha[:12]}",
            target_url,
            ref=pr.head_ref,
        ),
    )


def publish_preview(
    forge: Forge,
    pr: PullRequest,
    preview: Preview,
    *,
    marker: str = PREVIEW_MARKER,
    context: str = PREVIEW_CONTEXT,
    target_url: str | None = None,
) -> PreviewReport:
    """Upsert the preview comment and set the final commit status on ``preview.head_sha``."""
    body = render_comment(preview, marker=marker, file_url=pr.file_url)
    state = status_state(preview)
    comment = attempt(
        f"{forge.provider}: preview comment on #{pr.number}",
        lambda: forge.upsert_comment(pr, marker, body),
    )
    status = attempt(
        f"{forge.provider}: {state.value} status on #{pr.number} ({preview.head_sha[:12]})",
        lambda: forge.set_commit_status(
            preview.head_sha,
            state,
            context,
            status_description(preview),
            target_url,
            ref=pr.head_ref,
        ),
    )
    return PreviewReport(pr, state, (comment, status))

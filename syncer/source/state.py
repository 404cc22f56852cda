"""What the source remembers between polls and across restarts (``state.json``).

Kept in the work dir next to the clone and written atomically (temporary file, fsync,
rename), so a controller killed at any point finds either the old or the new state:

* ``fetched``  — the remote head last fetched into the clone: a poll whose ``ls-remote``
  answer equals it does not fetch again, also after a restart.
* ``seen``     — the last head :meth:`GitSource.poll` handed out (verified), with its
  metadata; a poll that finds the same head again returns nothing.
* ``rejected`` — the head whose signature check failed, and why; it is re-checked
  locally (no fetch) while it stays the remote head, so fixing the trust store helps.
* ``good`` — the last revision the controller confirmed as applied
  (:meth:`GitSource.mark_good`): what stays current when a newer one fails.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RevisionInfo:
    """Metadata of one commit, stored and returned as part of a Revision."""

    sha: str
    ref: str
    message: str
    author: str
    committed_at: datetime
    verified_by: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["committed_at"] = self.committed_at.isoformat()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RevisionInfo:
        return cls(
            sha=str(data["sha"]),
            ref=str(data["ref"]),
            message=str(data.get("message", "")),
            author=str(data.get("author", "")),
            committed_at=datetime.fromisoformat(str(data["committed_at"])),
            verified_by=data.get("verified_by"),
        )


@dataclass
class SourceState:
    url: str = ""
    ref: str = ""
    fetched: str | None = None
    seen: RevisionInfo | None = None
    rejected: dict[str, str] | None = None  # {"sha": ..., "reason": ...}
    good: RevisionInfo | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "ref": self.ref,
            "fetched": self.fetched,
            "seen": self.seen.to_json() if self.seen else None,
            "rejected": self.rejected,
            "good": self.good.to_json() if self.good else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SourceState:
        good = data.get("good")
        seen = data.get("seen")
        return cls(
            url=str(data.get("url", "")),
            ref=str(data.get("ref", "")),
            fetched=data.get("fetched"),
            seen=RevisionInfo.from_json(seen) if seen else None,
            rejected=data.get("rejected"),
            good=RevisionInfo.from_json(good) if good else None,
        )


def load_state(path: Path) -> SourceState:
    """The saved state, or a fresh one when there is none (or it is unreadable)."""
    try:
        return SourceState.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        return SourceState()


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so readers see the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def save_state(path: Path, state: SourceState) -> None:
    write_atomic(path, json.dumps(state.to_json(), indent=2, sort_keys=True).encode())

"""A durable, ordered queue of write-back entries waiting to be pushed.

Every state change syncer wants in Git (a status commit, a note update) is first written
here — one JSON file per entry, named ``<seq>-<kind>-<id>.json``, written atomically and
fsynced — and only removed after the push that carries it succeeded. A remote that is
down, a push race, or a controller restart therefore never loses a state change: on the
next flush the entries are pushed in ``seq`` order.

Each entry has a random ``id`` that also goes into the Git commit (trailer
``Syncer-Entry``), so an entry whose push succeeded just before a crash is recognised on
the remote and not pushed twice.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from syncer.source.state import write_atomic

log = logging.getLogger(__name__)

Kind = Literal["status", "note"]
_NAME = re.compile(r"^(\d{10})-(status|note)-([0-9a-f]{32})\.json$")


@dataclass(frozen=True)
class JournalEntry:
    id: str
    seq: int
    kind: Kind
    created: datetime
    data: dict[str, Any]
    path: Path


class Journal:
    """The queue in ``directory`` (created on first use)."""

    def __init__(self, directory: Path):
        self.directory = directory

    def append(self, kind: Kind, data: dict[str, Any], created: datetime) -> JournalEntry:
        self.directory.mkdir(parents=True, exist_ok=True)
        seq = max((e.seq for e in self.entries()), default=0) + 1
        entry_id = uuid.uuid4().hex
        path = self.directory / f"{seq:010d}-{kind}-{entry_id}.json"
        body = {"id": entry_id, "seq": seq, "kind": kind, "created": created.isoformat(),
                "data": data}
        write_atomic(path, json.dumps(body, sort_keys=True).encode())
        return JournalEntry(entry_id, seq, kind, created, data, path)

    def entries(self, kind: Kind | None = None) -> list[JournalEntry]:
        """Queued entries (of ``kind``), oldest first."""
        if not self.directory.is_dir():
            return []
        found: list[JournalEntry] = []
        for path in sorted(self.directory.iterdir()):
            match = _NAME.match(path.name)
            if not match or (kind is not None and match.group(2) != kind):
                continue
            try:
                body = json.loads(path.read_text(encoding="utf-8"))
                found.append(JournalEntry(
                    id=str(body["id"]), seq=int(body["seq"]), kind=body["kind"],
                    created=datetime.fromisoformat(body["created"]),
                    data=dict(body["data"]), path=path,
                ))
            except (OSError, ValueError, KeyError, TypeError):
                log.warning("write-back journal: unreadable entry %s set aside", path.name)
                path.rename(path.with_suffix(".corrupt"))
        return found

    def remove(self, entries: list[JournalEntry]) -> None:
        for entry in entries:
            entry.path.unlink(missing_ok=True)

"""Dispatching the documents of a fleet to the reader of their kind.

Each document is classified by ``apiVersion`` and ``kind``: the compact kinds of
``syncer.io/v1alpha1`` go to their readers in :mod:`syncer.fleet.kinds` (the Fleet
first, since the other kinds are checked against its platform), anything else to
:mod:`syncer.fleet.passthrough`. Documents that are not objects at all (a list, a
mapping without ``apiVersion`` or ``kind``), unknown kinds and versions in the
``syncer.io`` group, and compact kinds written without syncer's ``apiVersion`` are
reported here. The result is the fleet's :class:`Parts`, which
:mod:`syncer.fleet.validation` then checks as a whole.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from syncer import names
from syncer.fleet import kinds, passthrough
from syncer.fleet.fields import Report
from syncer.fleet.kinds import BYOHDocument, FleetHead
from syncer.fleet.loading import Document
from syncer.fleet.model import BYOHHost, RawObject, WindowsMachineSet, WindowsRuntimeClass
from syncer.fleet.yamlnodes import describe, is_mapping

SYNCER_GROUP = names.API_VERSION.split("/")[0]


@dataclass
class Parts:
    """The documents of a fleet, read into the model's pieces."""

    heads: list[FleetHead] = field(default_factory=list)
    machine_sets: list[WindowsMachineSet] = field(default_factory=list)
    byoh: list[BYOHDocument] = field(default_factory=list)
    runtime_classes: list[WindowsRuntimeClass] = field(default_factory=list)
    raw: list[RawObject] = field(default_factory=list)

    @property
    def head(self) -> FleetHead | None:
        return self.heads[0] if self.heads else None

    @property
    def byoh_hosts(self) -> list[BYOHHost]:
        return [h for d in self.byoh for h in d.hosts]


def _kind_of(doc: Document, report: Report) -> tuple[str, str] | None:
    """(apiVersion, kind) of a document, or None after reporting why it has none."""
    data = doc.data
    if not is_mapping(data):
        report.error(
            doc.file,
            doc.line,
            f"a document must be a mapping (a Kubernetes object), got {describe(data)}",
        )
        return None
    api_version, kind = data.get("apiVersion"), data.get("kind")
    ok = True
    for key, value in (("apiVersion", api_version), ("kind", kind)):
        if value is None:
            report.error(doc.file, doc.line, f"not a Kubernetes object: {key} is missing")
            ok = False
        elif not isinstance(value, str) or not value:
            report.error(doc.file, doc.line, f"{key}: must be a non-empty string")
            ok = False
    if not ok:
        return None
    return str(api_version), str(kind)


def read_documents(documents: list[Document], report: Report) -> Parts:
    parts = Parts()
    typed: list[tuple[Document, str, str]] = []
    for doc in documents:
        kind_of = _kind_of(doc, report)
        if kind_of is not None:
            typed.append((doc, *kind_of))
    for doc, api_version, kind in typed:
        if api_version == names.API_VERSION and kind == kinds.FLEET:
            parts.heads.append(kinds.read_fleet(doc, report))
    head = parts.head
    for doc, api_version, kind in typed:
        group = passthrough.api_group(api_version)
        if group == SYNCER_GROUP:
            if api_version != names.API_VERSION:
                report.error(
                    doc.file,
                    doc.line,
                    f"apiVersion: unknown version {api_version!r}; syncer's kinds use "
                    f"{names.API_VERSION}",
                )
            elif kind == kinds.FLEET:
                pass  # read above
            elif kind == kinds.WINDOWS_MACHINE_SET:
                ms = kinds.read_machine_set(doc, report, head)
                if ms is not None:
                    parts.machine_sets.append(ms)
            elif kind == kinds.BYOH_HOSTS:
                parts.byoh.append(kinds.read_byoh_hosts(doc, report))
            elif kind == kinds.WINDOWS_RUNTIME_CLASS:
                rc = kinds.read_runtime_class(doc, report)
                if rc is not None:
                    parts.runtime_classes.append(rc)
            else:
                close = difflib.get_close_matches(kind, kinds.COMPACT_KINDS, n=1)
                hint = f"did you mean {close[0]}? " if close else ""
                report.error(
                    doc.file,
                    doc.line,
                    f"kind: unknown kind {kind!r} in {names.API_VERSION} "
                    f"({hint}known: {', '.join(kinds.COMPACT_KINDS)})",
                )
        elif kind in kinds.COMPACT_KINDS and not group:
            report.error(
                doc.file, doc.line, f"apiVersion: kind {kind} needs apiVersion: {names.API_VERSION}"
            )
        else:
            raw = passthrough.read_raw(doc, report, head)
            if raw is not None:
                parts.raw.append(raw)
    return parts

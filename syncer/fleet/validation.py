"""Rules across the documents of a fleet.

:func:`cross_check` applies the rules no single document can decide, to the
:class:`~syncer.fleet.dispatch.Parts` the documents were read into:

- exactly one Fleet;
- no two objects that render to the same group/kind/namespace/name, whether both are
  compact, both pass-through, or one of each (a hand-written ``windows-instances``
  next to ``BYOHHosts``, a raw MachineSet with a WindowsMachineSet's name); the error
  sits on the later one and names the earlier;
- no two compact objects of the same kind and name;
- no BYOH address listed twice (case-insensitive), naming both places;
- every BYOH host carries ``hostKey`` when ``hostKeyPolicy`` is ``pinned``;
- warnings: two RuntimeClasses for the same Windows build, ``maxUnavailable`` larger
  than the fleet, a fleet without any Windows host.

Everything is one pass over the objects with dictionaries keyed by name or address.
"""

from __future__ import annotations

from dataclasses import dataclass

from syncer import names
from syncer.fleet import kinds, passthrough
from syncer.fleet.dispatch import Parts
from syncer.fleet.fields import Report
from syncer.fleet.kinds import FleetHead
from syncer.fleet.model import HostKeyPolicy, ObjectKey, Source


@dataclass
class _Origin:
    source: Source
    description: str  # "WindowsMachineSet win" or "" for a pass-through object


def _object_ref(kind: str, namespace: str, name: str) -> str:
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


def cross_check(
    parts: Parts, report: Report, had_syntax_errors: bool, root: str = "."
) -> dict[ObjectKey, Source]:
    """Apply the rules across documents; return the source of every rendered object.

    ``root`` names the fleet root in problems that belong to no file.
    """
    head = parts.head
    if head is None and not had_syntax_errors:
        report.error(
            root,
            0,
            f"no Fleet found: a fleet repository needs exactly one document with "
            f"apiVersion: {names.API_VERSION} and kind: Fleet",
        )
    for extra in parts.heads[1:]:
        report.error(
            extra.source.file,
            extra.source.line,
            f"a fleet repository holds exactly one Fleet; the first is at {parts.heads[0].source}",
        )

    sources = _check_rendered_names(parts, report, head)
    _check_addresses(parts, report, head)
    _warnings(parts, report, head)
    return sources


def _check_rendered_names(
    parts: Parts, report: Report, head: FleetHead | None
) -> dict[ObjectKey, Source]:
    seen: dict[tuple[str, str, str, str], _Origin] = {}
    sources: dict[ObjectKey, Source] = {}
    compact_seen: dict[tuple[str, str], Source] = {}

    def add(group: str, kind: str, namespace: str, name: str, origin: _Origin) -> None:
        key = (group, kind, namespace, name)
        first = seen.get(key)
        if first is None:
            seen[key] = origin
            sources.setdefault((kind, namespace, name), origin.source)
            return
        where = f"rendered from {first.description} at" if first.description else "defined at"
        report.error(
            origin.source.file,
            origin.source.line,
            f"duplicate object {_object_ref(kind, namespace, name)}: also {where} {first.source}",
        )

    def compact(kind: str, name: str, source: Source) -> bool:
        first = compact_seen.get((kind, name))
        if first is not None:
            report.error(
                source.file, source.line, f"duplicate {kind} {name}: also defined at {first}"
            )
            return False
        compact_seen[(kind, name)] = source
        return True

    namespace = head.namespace if head else names.WMCO_NAMESPACE
    if head is not None:
        add("", "ConfigMap", namespace, names.FLEET_CONFIGMAP, _Origin(head.source, "the Fleet"))
    if parts.byoh:
        first = parts.byoh[0]
        add(
            "",
            "ConfigMap",
            namespace,
            names.BYOH_CONFIGMAP,
            _Origin(first.source, "BYOHHosts"),
        )
        for doc in parts.byoh:
            if doc.name is not None:
                compact(kinds.BYOH_HOSTS, doc.name, doc.source)
    for ms in parts.machine_sets:
        if compact(kinds.WINDOWS_MACHINE_SET, ms.name, ms.source):
            add(
                names.MACHINE_API_GROUP,
                "MachineSet",
                names.MACHINE_API_NAMESPACE,
                ms.name,
                _Origin(ms.source, f"WindowsMachineSet {ms.name}"),
            )
    for rc in parts.runtime_classes:
        if compact(kinds.WINDOWS_RUNTIME_CLASS, rc.name, rc.source):
            add(
                "node.k8s.io",
                "RuntimeClass",
                "",
                rc.name,
                _Origin(rc.source, f"WindowsRuntimeClass {rc.name}"),
            )
    for obj in parts.raw:
        add(
            passthrough.api_group(obj.api_version),
            obj.kind,
            obj.namespace or "",
            obj.name,
            _Origin(obj.source, ""),
        )
    return sources


def _check_addresses(parts: Parts, report: Report, head: FleetHead | None) -> None:
    first_at: dict[str, tuple[str, int]] = {}
    for doc in parts.byoh:
        file = doc.source.file
        for address, line in doc.addresses:
            key = address.lower()
            first = first_at.get(key)
            if first is None:
                first_at[key] = (file, line)
            else:
                report.error(
                    file, line, f"duplicate BYOH address {address}: also at {first[0]}:{first[1]}"
                )
    if head is None or head.host_key_policy is not HostKeyPolicy.PINNED:
        return
    for host in parts.byoh_hosts:
        if host.host_key is None:
            report.error(
                host.file,
                host.line,
                f"BYOH host {host.address}: hostKey is required because the Fleet's "
                "nodes.hostKeyPolicy is pinned",
            )


def _runtime_class_builds(parts: Parts) -> list[tuple[str, str, Source]]:
    """(build, name, source) of every Windows RuntimeClass, compact or raw."""
    builds = [(rc.build, rc.name, rc.source) for rc in parts.runtime_classes]
    for obj in parts.raw:
        if obj.kind != "RuntimeClass" or passthrough.api_group(obj.api_version) != "node.k8s.io":
            continue
        scheduling = obj.body.get("scheduling")
        selector = scheduling.get("nodeSelector") if isinstance(scheduling, dict) else None
        build = selector.get(names.LABEL_WINDOWS_BUILD) if isinstance(selector, dict) else None
        if isinstance(build, str):
            builds.append((build, obj.name, obj.source))
    return sorted(builds, key=lambda b: b[2])


def _warnings(parts: Parts, report: Report, head: FleetHead | None) -> None:
    first_for_build: dict[str, tuple[str, Source]] = {}
    for build, name, source in _runtime_class_builds(parts):
        first = first_for_build.get(build)
        if first is None:
            first_for_build[build] = (name, source)
            continue
        report.warning(
            source.file,
            source.line,
            f"RuntimeClass {name} targets Windows build {build} like RuntimeClass {first[0]} "
            f"at {first[1]}; one RuntimeClass per Windows Server version is enough",
        )

    if head is None or head.fleet is None:
        return
    hosts = len(parts.byoh_hosts) + sum(ms.replicas for ms in parts.machine_sets)
    raw_machines = False
    for obj in parts.raw:
        if obj.kind == "MachineSet" and passthrough.is_windows_machine_set(obj.body):
            raw_machines = True
            replicas = obj.body.get("spec", {}).get("replicas")
            hosts += replicas if isinstance(replicas, int) else 0
        elif obj.kind == "ConfigMap" and obj.name == names.BYOH_CONFIGMAP:
            data = obj.body.get("data")
            hosts += len(data) if isinstance(data, dict) else 0
    fleet = head.fleet
    if hosts == 0 and not parts.byoh and not parts.machine_sets and not raw_machines:
        report.warning(
            head.source.file,
            head.source.line,
            "this fleet defines no Windows hosts (no BYOHHosts and no WindowsMachineSets)",
        )
    elif 0 < hosts < fleet.rollout.max_unavailable:
        report.warning(
            head.source.file,
            head.rollout_line,
            f"spec.rollout.maxUnavailable: {fleet.rollout.max_unavailable} is more than the "
            f"{hosts} Windows hosts of this fleet: every host may be taken down at once",
        )

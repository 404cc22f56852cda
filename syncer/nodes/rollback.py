"""``onFailure: rollback``: put a failed host's previous component set back.

The previous set is named by the Node's component record (``syncer.io/components``:
each component's version and digest). Where those payloads come from is never taken
from the Node, whose annotations its own kubelet can write: syncer remembers the source
(URL and archive member) of every payload it applies in its own ConfigMap
(``syncer-node-status``, key ``payloads.json``; :func:`remember_sources`), and a digest
it has no source for cannot be rolled back to. The payloads come from the cache, or are
fetched again from those sources and verified against the digests.

The host is re-probed and planned against that set (its failure record must not block
this plan), then the restore half of the flow runs on the host, which is already
cordoned and drained: transfer, stop-services, replace, files, services, start, join,
network, verify. If it comes back healthy it is uncordoned; the failure record stays, so
the rollout still halts and says why.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import replace

from syncer import names
from syncer.cluster import configmaps
from syncer.cluster.client import KubeClient
from syncer.components import CATALOGUE
from syncer.desired import ComponentVersion
from syncer.nodes import annotations as node_meta
from syncer.nodes.configure import HostRun
from syncer.nodes.context import StageContext, StepFailed
from syncer.nodes.hostplan import Action, HostPlan, plan_host, probe_files, probe_services
from syncer.nodes.payloads import PayloadCache, PayloadError, fetch_all, host_view
from syncer.nodes.probe import HostFacts, ProbeCommands, probe_host
from syncer.nodes.status import PAYLOAD_SOURCES_KEY

MAX_SOURCES = 512  # remembered payload sources (a few versions of every component)


def source_key(component: str, sha256: str) -> str:
    return f"{component}@{sha256.lower()}"


def remember_sources(api: KubeClient, namespace: str, known: Mapping[str, Mapping[str, str]],
                     committed: Mapping[str, ComponentVersion],
                     installed: Iterable[node_meta.NodeRecord]) -> dict[str, dict[str, str]]:
    """Record where each committed payload comes from, and forget sources no Node's
    record and no committed component names any more (written only when it changed);
    the sources now known."""
    sources = {k: dict(v) for k, v in known.items()}
    for c in committed.values():
        sources[source_key(c.name, c.sha256)] = {
            "version": c.version, "url": c.url, "path": c.path or ""}
    in_use = {source_key(c.name, c.sha256) for c in committed.values()}
    for node in installed:
        in_use.update(source_key(name, rec.sha256) for name, rec in node.components.items())
    kept = {k: v for k, v in sorted(sources.items()) if k in in_use}
    kept = dict(list(kept.items())[:MAX_SOURCES])
    if kept != known:
        configmaps.patch_data(api, namespace, names.NODE_STATUS_CONFIGMAP,
                              {PAYLOAD_SOURCES_KEY: json.dumps(kept, sort_keys=True, indent=1)})
    return kept


def cached_digests(cache: PayloadCache, sources: Mapping[str, Mapping[str, str]]) -> set[str]:
    """The cache entries the sources stand for: each payload, and its extracted member."""
    keep: set[str] = set()
    for key, source in sources.items():
        sha256 = key.rpartition("@")[2]
        keep.add(sha256)
        if source.get("path") and (member := cache.member_digest(sha256, source["path"])):
            keep.add(member)
    return keep


def roll_back(ctx: StageContext, plan: HostPlan, facts: HostFacts) -> str | None:
    """Restore the previous component set; a note for the failure record, or None when
    there is nothing to roll back to."""
    node = plan.node
    assert node is not None
    previous = node.components
    if not previous or not node.version:
        return None
    sources = ctx.payload_sources
    committed: dict[str, ComponentVersion] = {}
    for name, rec in previous.items():
        if name not in CATALOGUE:
            continue
        source = sources.get(source_key(name, rec.sha256))
        if source is None:
            raise StepFailed(f"previous payload unavailable: syncer has no record of where "
                             f"{name} {rec.version} came from")
        committed[name] = ComponentVersion(name, source["version"], source["url"],
                                           rec.sha256, source["path"] or None)
    try:
        old = replace(ctx.desired, version=node.version, components=committed)
        desired = host_view(ctx.cache, old)
        ctx.payloads.update(fetch_all(ctx.cache, committed.values()))
    except PayloadError as err:
        raise StepFailed(f"previous payload unavailable: {err}") from None
    back = replace(ctx, desired=desired, committed=committed, shutdown=threading.Event())
    back.phases = ctx.phases  # one writer per round: the stage closes it
    fresh = node_meta.read_node(ctx.api, node.name) or node
    probe = probe_host(
        plan.host.address,
        lambda: back.open_session(plan.host, node.name),
        ProbeCommands.build(probe_files(desired, ctx.managed), probe_services(desired),
                            ctx.cluster.platform),
        facts.shell,
    )
    # Plan against the previous set; the failure record must not block this plan.
    clean = replace(
        fresh,
        annotations={
            k: v
            for k, v in fresh.annotations.items()
            if k not in (names.ANNOTATION_FAILED_STEP, names.ANNOTATION_PHASE)
        },
        labels={k: v for k, v in fresh.labels.items() if k != names.LABEL_UPGRADING},
    )
    restore = plan_host(plan.host, desired, probe, clean, cluster=ctx.cluster,
                        managed=ctx.managed, committed=committed)
    if restore.action is Action.BLOCKED:
        raise StepFailed(f"cannot plan the rollback: {restore.reason}")
    HostRun(back, restore).restore()
    versions = ", ".join(f"{n} {c.version}" for n, c in sorted(committed.items()))
    return f"restored version {node.version} ({versions})"

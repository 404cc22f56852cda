"""``onFailure: rollback``: put a failed host's previous component set back.

The previous set is the Node's component record (``syncer.io/components``: version,
digest, URL and archive member of each component, as committed). Its payloads come from
the cache, or are fetched again from their recorded URLs and verified against their
recorded digests. The host is re-probed and planned against that set (its failure record
must not block this plan), then the restore half of the flow runs on the host, which is
already cordoned and drained: transfer, stop-services, replace, files, services, start,
join, network, verify. If it comes back healthy it is uncordoned; the failure record stays,
so the rollout still halts and says why.
"""

from __future__ import annotations

import threading
from dataclasses import replace

from syncer import names
from syncer.components import CATALOGUE
from syncer.desired import ComponentVersion
from syncer.nodes import annotations as node_meta
from syncer.nodes.configure import HostRun
from syncer.nodes.context import StageContext, StepFailed
from syncer.nodes.hostplan import Action, HostPlan, plan_host, probe_files, probe_services
from syncer.nodes.payloads import PayloadError, fetch_all, host_view
from syncer.nodes.probe import HostFacts, probe_host


def roll_back(ctx: StageContext, plan: HostPlan, facts: HostFacts) -> str | None:
    """Restore the previous component set; a note for the failure record, or None when
    there is nothing to roll back to."""
    node = plan.node
    assert node is not None
    previous = node.components
    if not previous or not node.version:
        return None
    committed = {
        name: ComponentVersion(name, rec.version, rec.url, rec.sha256, rec.path or None)
        for name, rec in previous.items() if name in CATALOGUE
    }
    try:
        old = replace(ctx.desired, version=node.version, components=committed)
        desired = host_view(ctx.cache, old)
        ctx.payloads.update(fetch_all(ctx.cache, committed.values()))
    except PayloadError as err:
        raise StepFailed(f"previous payload unavailable: {err}") from None
    back = replace(ctx, desired=desired, committed=committed, shutdown=threading.Event())
    fresh = node_meta.read_node(ctx.api, node.name) or node
    probe = probe_host(
        plan.host.address,
        lambda: back.open_session(plan.host, node.name),
        probe_files(desired, ctx.managed),
        probe_services(desired),
        facts.shell,
        ctx.cluster.platform,
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

"""What merging a revision would do, computed read-only: the data of a PR preview.

:func:`evaluate` takes a checked-out fleet directory (a pull request's head) and the live
cluster and fills a :class:`~syncer.writeback.previews.comment.Preview`:

- **validation** — :func:`syncer.fleet.check_fleet`: every error and warning with its
  ``file:line`` (relative to the fleet directory; the comment links them to the file at
  the head). An invalid revision gets no plan, exactly as the reconcile would not apply it.
- **objects** — :func:`syncer.cluster.plan.compute_plan` against the inventory and the
  objects syncer applied itself (``owned_only``: nothing outside syncer's inventory is
  read): create / update (the patch lines of ``syncer plan``, with the values the change
  writes and never the live ones) / prune / unchanged. Whoever opened the pull request
  reads the preview, so it shows nothing of the cluster that Git did not put there;
  Secret values are never shown. A prune the guard would refuse is reported
  as an error at the ``Fleet`` document, since merging would not be applied either.
- **hosts** — :func:`host_upgrades`: the PR's Fleet version and components against the
  cluster's Windows Node records (WMCO's ``version`` annotation and syncer's component
  record); BYOH hosts of the PR without a configured Node are new hosts. No SSH.

Only GET and LIST requests are sent (discovery, the inventory ConfigMap, the objects of
the fleet's kinds, Nodes), so the preview needs no RBAC beyond what ``syncer plan`` needs
and never a dry-run write. A cluster that cannot be read leaves the validation intact and
sets :attr:`Preview.plan_error`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from syncer.cluster.client import ApiError, KubeClient
from syncer.cluster.diff import REDACTED
from syncer.cluster.display import component_changes, patch_lines
from syncer.cluster.inventory import InventoryStore
from syncer.cluster.plan import Action as PlanAction
from syncer.cluster.plan import Plan, PlanEntry, compute_plan
from syncer.cluster.prune import Confirmation
from syncer.fleet import FleetModel, check_fleet, render, to_yaml
from syncer.fleet.admission import DEFAULT as DEFAULT_PASSTHROUGH
from syncer.fleet.admission import PassThroughPolicy
from syncer.nodes.annotations import NodeRecord
from syncer.problems import Problem
from syncer.reconcile import source_lookup
from syncer.writeback.previews.comment import Action, HostUpgrade, ObjectChange, Preview

_ACTIONS = {
    PlanAction.CREATE: Action.CREATE,
    PlanAction.UPDATE: Action.UPDATE,
    PlanAction.UNCHANGED: Action.UNCHANGED,
    PlanAction.PRUNE: Action.PRUNE,
}


def evaluate(
    path: Path,
    client: KubeClient | None,
    *,
    head_sha: str,
    evaluated_at: datetime,
    fleet_path: str = "",
    inventory: InventoryStore | None = None,
    nodes: Sequence[NodeRecord] | None = None,
    live_error: str | None = None,
    policy: PassThroughPolicy = DEFAULT_PASSTHROUGH,
) -> Preview:
    """The preview of the fleet at ``path`` (see the module docstring); ``policy`` is the
    operator's pass-through policy, as the reconcile would apply it.

    ``nodes`` are the cluster's Windows Nodes (read once per round by the caller);
    ``live_error`` says why the cluster could not be read, which skips the plan.
    """
    model, problems = check_fleet(path, policy=policy)
    base = Preview(head_sha, evaluated_at, problems=problems, fleet_path=fleet_path)
    if model is None or any(p.is_error for p in problems):
        return base
    if live_error is not None or client is None or inventory is None:
        return replace(base, plan_error=live_error or "no cluster configured")
    try:
        plan = plan_against(model, client, inventory, head_sha)
    except ApiError as err:
        return replace(base, plan_error=str(err))
    if plan.refusal:
        fleet = model.fleet.source
        refused = Problem(fleet.file, fleet.line,
                          f"the prune guard would refuse to apply this revision: {plan.refusal}")
        problems = [*problems, refused]
    components = [c for entry in plan.entries for c in component_changes(entry)]
    return replace(base, problems=problems, objects=object_changes(plan),
                   hosts=host_upgrades(model, nodes or ()), components=components)


def plan_against(model: FleetModel, client: KubeClient, inventory: InventoryStore,
                 revision: str) -> Plan:
    """The plan of ``model`` against the live cluster (read-only)."""
    current = inventory.load()
    return compute_plan(
        render(model), model.fleet, client, current,
        source_of=source_lookup(model),
        revision=revision,
        confirm=Confirmation(False, current.confirm_prune),
        owned_only=True,
    )


def object_changes(plan: Plan) -> list[ObjectChange]:
    """Plan entries as preview rows (``prune-skipped`` entries are left out)."""
    changes: list[ObjectChange] = []
    for entry in plan.entries:
        action = _ACTIONS.get(entry.action)
        if action is None:
            continue
        changes.append(ObjectChange(
            action, entry.ref.kind, entry.ref.name, entry.ref.namespace,
            entry.ref.api_version, _diff_text(entry, action),
        ))
    return changes


def host_upgrades(model: FleetModel, nodes: Iterable[NodeRecord]) -> list[HostUpgrade]:
    """Hosts whose components merging would change: ``current → desired`` per host.

    BYOH hosts of the revision are matched to Nodes by syncer's address annotation or a
    status address; a host without a configured Node would be configured (``current``
    None). Configured Nodes that are not BYOH (Machines) follow the Fleet as well.
    """
    fleet = model.fleet
    records = list(nodes)
    claimed: set[str] = set()
    upgrades: list[HostUpgrade] = []
    for host in model.byoh_hosts:
        node = _node_of(records, host.address)
        if node is not None:
            claimed.add(node.name)
        if node is None or not node.configured:
            upgrades.append(HostUpgrade(host.address, fleet.version, None,
                                        node.name if node else None))
        elif _differs(node, model):
            upgrades.append(HostUpgrade(host.address, fleet.version, node.version, node.name))
    for node in records:
        if node.name in claimed or node.byoh or not node.configured:
            continue
        if _differs(node, model):
            address = node.address or node.internal_ip or node.name
            upgrades.append(HostUpgrade(address, fleet.version, node.version, node.name))
    return sorted(upgrades, key=lambda u: (u.address, u.node or ""))


def _node_of(nodes: list[NodeRecord], address: str) -> NodeRecord | None:
    for node in nodes:
        if node.address == address:
            return node
    for node in nodes:
        if node.address is None and node.has_address(address):
            return node
    return None


def _differs(node: NodeRecord, model: FleetModel) -> bool:
    fleet = model.fleet
    if node.version != fleet.version:
        return True
    installed = node.components
    if not installed:
        return False  # configured by WMCO, which records the version only
    for name, spec in fleet.components.items():
        record = installed.get(name)
        if record is None or record.version != spec.version:
            return True
        if record.sha256 and record.sha256 != spec.sha256:
            return True
    return False


def _diff_text(entry: PlanEntry, action: Action) -> str:
    lines: list[str] = []
    if action is Action.UPDATE:
        lines = patch_lines(entry, live_values=False)
    elif action is Action.CREATE and entry.desired is not None:
        lines = ["+ " + line for line in to_yaml([_redacted(entry.desired)]).splitlines()
                 if line != "---"]
    if entry.error:
        lines.append(f"! {entry.error}")
    return "\n".join(lines)


def _redacted(obj: dict[str, Any]) -> dict[str, Any]:
    if obj.get("kind") != "Secret":
        return obj
    out = copy.deepcopy(obj)
    for key in ("data", "stringData"):
        if isinstance(out.get(key), dict):
            out[key] = {name: REDACTED for name in out[key]}
    return out

"""Removal: deconfigure a host that left the fleet, then delete its Node.

A host is removed when its address left ``windows-instances`` or its Machine is gone
(:attr:`NodeInputs.removed`, see :mod:`syncer.nodes.inputs`). Never in a round where any
BYOH address failed to resolve: :func:`read_node_inputs` returns no removals then, and
:func:`syncer.nodes.stage.run_node_stage` does not call this module at all (a DNS blip is
not a removal).

Steps, recorded in ``syncer.io/phase`` like the configure flow:

1. **cordon** and **drain** the Node (Eviction API, as for an upgrade);
2. over SSH: find every managed service — the union of the current catalogue, the
   services of the components recorded on the Node (``syncer.io/components``, the old
   list), and every service whose description starts with ``OpenShift managed`` (WMCO's
   and syncer's markers, WMCO's ``windows-instance-config-daemon`` among them) — stop
   them in reverse dependency order, waiting for their processes to exit; end the
   containerd shims of pods still there (they hold files in ``C:\\k``; WMCO's cleanup
   ``Stop-Process -Force -Name containerd-shim-runhcs-v1``); delete the services;
3. remove the HNS networks hybrid-overlay made (``OVNKubernetesHybridOverlayNetwork``,
   then ``BaseOVNKubernetesHybridOverlayNetwork``), reconnecting after each because
   removing one drops the host's connections (WMCO ``ensureHNSNetworksAreRemoved``): a
   re-joined host, or a new one on the same address, must not find the old subnet;
4. delete ``C:\\k`` and ``C:\\var\\lib\\cni`` (stale IPAM state must not survive a re-join);
5. remove WMCO's ``version`` and syncer's record, delete the Node, forget the host's
   ConfigMap host-key pin and any failure record.

The SSH user is the Node's ``username`` annotation, decrypted with the private key as
WMCO does (:mod:`syncer.nodes.usernames`, :mod:`syncer.nodes.inputs`).

A Machine whose instance is gone cannot be reached: its host cleanup is skipped (the
instance is being deleted with the Machine) and the Node is deleted. A BYOH host that
cannot be reached keeps its Node (cordoned, with the error in ``syncer.io/last-error``)
and is retried next round: its disk still holds the services.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

from syncer import names
from syncer.cluster.client import ApiError
from syncer.components import CATALOGUE, start_order
from syncer.nodes import annotations as node_meta
from syncer.nodes import drain as draining
from syncer.nodes.context import StageContext, describe_error
from syncer.nodes.hostkeys import HostKeyMismatch
from syncer.nodes.inputs import Host, HostKind, RemovedHost
from syncer.nodes.resolving import is_ipv4
from syncer.nodes.services import Services
from syncer.nodes.ssh import HostSession, SshError
from syncer.nodes.windows import vocabulary
from syncer.nodes.windows.layout import ROOT, SHIM_PROCESS, process_name
from syncer.nodes.windows.vocabulary import BASE_NETWORK, OVERLAY_NETWORK

log = logging.getLogger(__name__)


@dataclass
class RemovalOutcome:
    node_name: str
    address: str | None
    ok: bool
    step: str = ""
    error: str | None = None
    services_deleted: tuple[str, ...] = ()


def deconfigure(ctx: StageContext, removed: RemovedHost) -> RemovalOutcome:
    """Deconfigure one removed host (see the module docstring)."""
    out = RemovalOutcome(removed.node_name, removed.address, False)
    api = ctx.api
    node = node_meta.read_node(api, removed.node_name)
    try:
        if removed.kind is HostKind.BYOH and not (removed.address and removed.username):
            # Checked before the drain: a host syncer cannot log in to is left as it is.
            raise RuntimeError(removed.username_problem or
                               "no address or username recorded: cannot clean the host")
        if node is not None:
            out.step = "cordon"
            node_meta.set_phase(api, removed.node_name, "deconfigure")
            draining.cordon(api, removed.node_name)
            out.step = "drain"
            options = ctx.drain or draining.DrainOptions()
            result = draining.drain(api, removed.node_name, options)
            if not result.ok:
                raise RuntimeError(result.message)
        out.step = "cleanup"
        if removed.address and removed.username:
            try:
                out.services_deleted = tuple(_clean_host(ctx, removed, node))
            except (SshError, HostKeyMismatch, OSError) as err:
                if removed.kind is HostKind.BYOH:
                    raise
                log.info("%s: Machine host unreachable, skipping its cleanup: %s",
                         removed.node_name, err)
        out.step = "delete-node"
        if node is not None:
            node_meta.mark_deconfigured(api, removed.node_name)
            try:
                api.request("DELETE", node_meta.node_path(removed.node_name))
            except ApiError as err:
                if not err.not_found:
                    raise
        if removed.address:
            ctx.store.forget(removed.address)
            ctx.lock.clear_failure(removed.address)
            ctx.lock.release(removed.address)
        out.ok = True
        out.step = "deconfigured"
    except Exception as err:
        out.error = describe_error(err)
        log.warning("%s: deconfigure failed at %s: %s", removed.node_name, out.step, out.error)
        if node is not None:
            with contextlib.suppress(ApiError):
                node_meta.patch_node_metadata(
                    api,
                    removed.node_name,
                    annotations={
                        names.ANNOTATION_LAST_ERROR: node_meta.truncate_error(
                            f"deconfigure: {out.step}: {out.error}"
                        ),
                        names.ANNOTATION_PHASE: names.PHASE_DECONFIGURE_FAILED,
                    },
                )
    return out


def _clean_host(
    ctx: StageContext, removed: RemovedHost, node: node_meta.NodeRecord | None
) -> list[str]:
    assert removed.address is not None and removed.username is not None
    extras = ctx.desired.extras.get(removed.address)
    host = Host(
        address=removed.address,
        username=removed.username,
        kind=removed.kind,
        ip=removed.address if is_ipv4(removed.address) else None,
        node_name=removed.node_name,
        pinned_host_key=extras.host_key if extras is not None else None,
    )
    with ctx.open_session(host, removed.node_name if node is not None else None) as session:
        services = Services(session, ctx.waits)
        found = _managed_services(session, node)
        by_service = {c.service: c for c in CATALOGUE.values() if c.service}
        for service in found:
            component = by_service.get(service)
            services.stop(service, process_name(component) if component else None)
        services.end_processes(SHIM_PROCESS)
        for service in found:
            services.delete(service)
        for network in (OVERLAY_NETWORK, BASE_NETWORK):
            _remove_network(session, network)
        vocabulary.check_done(session.run(vocabulary.remove_path(ROOT)), "remove-path")
        vocabulary.check_done(session.run(vocabulary.remove_cni_state()), "remove-cni-state")
        return found


def _remove_network(session: HostSession, network: str) -> None:
    """Remove one HNS network; the host drops its connections meanwhile, so reconnect."""
    with contextlib.suppress(SshError):  # the connection may go down with the network
        vocabulary.parse_remove_hns_network(session.run(vocabulary.remove_hns_network(network)))
    session.connect()


def _managed_services(session: HostSession, node: node_meta.NodeRecord | None) -> list[str]:
    """Every managed service on the host, in stop order (dependents first)."""
    wanted: set[str] = {c.service for c in CATALOGUE.values() if c.service}
    if node is not None:
        wanted |= {
            svc for name in node.components if name in CATALOGUE
            if (svc := CATALOGUE[name].service) is not None
        }
    inv = vocabulary.parse_inventory(session.run(vocabulary.inventory(services=sorted(wanted))))
    facts = vocabulary.parse_node_facts(session.run(vocabulary.node_facts()))
    present = {name for name, info in inv.services.items() if info is not None}
    present |= set(facts.managed)
    by_service = {c.service: c.name for c in CATALOGUE.values() if c.service}
    known = [by_service[s] for s in present if s in by_service]
    ordered = [CATALOGUE[c].service for c in reversed(start_order(known))]
    unknown = sorted(s for s in present if s not in by_service)
    # Services syncer does not know (WICD, older versions) may depend on known ones.
    return unknown + [s for s in ordered if s is not None]

"""The network step: the node's pod network on OVN-Kubernetes' hybrid overlay.

What WMCO's ``network-conf.ps1`` does before every kube-proxy start
(``pkg/nodeconfig/payload/payload.go``), done once per configure or upgrade by syncer:

1. hybrid-overlay-node runs (it needs the kubelet's credentials, so it starts after the
   Node joined). Once OVN-Kubernetes gave the Node its
   ``k8s.ovn.org/hybrid-overlay-node-subnet``, it creates the HNS network
   ``OVNKubernetesHybridOverlayNetwork`` on that subnet.
2. The ``VIPEndpoint``: a host endpoint on that network, created and attached to the
   host's compartment when missing (``hns.psm1``). Its address is kube-proxy's source VIP.
   The step polls for both (``Timeouts.network_wait``); hybrid-overlay stopping meanwhile
   ends the wait with its state.
3. ``cni.conf`` and ``kube-proxy.conf`` from the network's subnet and management IP and
   the VIP (:mod:`syncer.nodes.managedfiles`), written when they differ.
4. kube-proxy runs with them: restarted if its configuration changed under it.

Without ``cni.conf`` containerd reports no pod network and the Node never becomes Ready;
without the network, kube-proxy waits for it forever; without a source VIP it exits.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from syncer.nodes.context import StageContext, StepFailed
from syncer.nodes.managedfiles import network_files
from syncer.nodes.probe import HostFacts
from syncer.nodes.services import Services
from syncer.nodes.ssh import HostSession
from syncer.nodes.windows import vocabulary
from syncer.nodes.windows.files import Overlay
from syncer.nodes.windows.layout import HNS_MODULE, KUBE_PROXY_CONFIG
from syncer.nodes.windows.vocabulary import ServiceState

HYBRID_OVERLAY = "hybrid-overlay-node"
KUBE_PROXY = "kube-proxy"


def ensure(ctx: StageContext, session: HostSession, services: Services, facts: HostFacts,
           node_name: str, *, restart: list[str],
           digests: Callable[[list[str]], Mapping[str, str | None]]) -> None:
    """Steps 1-4 of the module docstring. ``restart``: components the flow restarts
    itself (kube-proxy among them is started by the flow once this returns); ``digests``
    reads the SHA-256 of the given files on the host now (None: no such file). Reading
    only these two files, and the network with the VIP, keeps the step to four commands
    and off the host's other files: hashing every payload again is ``verify``'s work."""
    services.start(HYBRID_OVERLAY)
    network = _wait_for_network(ctx, session, services)
    if not network.subnet or not network.management_ip or network.vip is None:
        raise StepFailed(f"the HNS network {vocabulary.OVERLAY_NETWORK} has no subnet or "
                         "management IP")
    overlay = Overlay(network.subnet, network.management_ip, network.vip)
    wanted = network_files(overlay, ctx.cluster, node_name)
    found = digests(list(wanted))
    changed = []
    for f in wanted.values():
        if found.get(f.path) != f.sha256:
            session.upload(f.content, f.path, f.sha256)
            changed.append(f.path)
        facts.files[f.path] = f.sha256
    if KUBE_PROXY in restart:
        return
    if KUBE_PROXY_CONFIG in changed:
        services.restart(KUBE_PROXY, KUBE_PROXY)
    else:
        services.start(KUBE_PROXY)


def _wait_for_network(ctx: StageContext, session: HostSession, services: Services
                      ) -> vocabulary.HnsNetwork:
    deadline = time.monotonic() + ctx.timeouts.network_wait
    while True:
        network = vocabulary.parse_vip_endpoint(
            session.run(vocabulary.vip_endpoint(HNS_MODULE)))
        if network is not None:
            return network
        state = services.state(HYBRID_OVERLAY)
        if state is not ServiceState.RUNNING and state is not ServiceState.START_PENDING:
            raise StepFailed(f"{HYBRID_OVERLAY} is {state.name if state else 'missing'} "
                             f"while waiting for the {vocabulary.OVERLAY_NETWORK} network "
                             "(its log is in C:\\var\\log\\hybrid-overlay)")
        if time.monotonic() > deadline:
            raise StepFailed(
                f"no HNS network {vocabulary.OVERLAY_NETWORK} after "
                f"{ctx.timeouts.network_wait:.0f}s: OVN-Kubernetes gives the Node its "
                "k8s.ovn.org/hybrid-overlay-node-subnet only with hybrid networking enabled")
        time.sleep(ctx.timeouts.poll)

"""The Host Networking Service (HNS) of one simulated host: networks and endpoints.

What the node's pod network depends on, modelled from the code that drives it:

- Only a host with the **Containers** feature has HNS (and HCS): without it there is no
  ``vmcompute`` service, so hybrid-overlay cannot create networks and containerd cannot
  create sandboxes (WMCO enables the feature before anything else:
  ``pkg/windows/windows.go`` ``ensureHostNameAndContainersFeature``).
- **hybrid-overlay** creates ``BaseOVNKubernetesHybridOverlayNetwork`` and then, once its
  Node carries ``k8s.ovn.org/hybrid-overlay-node-subnet``, the overlay network
  ``OVNKubernetesHybridOverlayNetwork`` with that subnet, the first address of it as
  gateway, VSID 4097 and the configured VXLAN port, not persistent
  (ovn-kubernetes ``go-controller/hybrid-overlay/pkg/controller/ho_node_windows.go``
  ``ensureBaseNetwork`` and ``initSelf``). An overlay network's management IP is the
  host's own address.
- The **VIPEndpoint** (``New-HnsEndpoint``/``Attach-HNSHostEndpoint`` from ``hns.psm1``,
  WMCO ``pkg/nodeconfig/payload/payload.go`` network-conf script) takes the second
  address of the subnet after the gateway; kube-proxy uses it as ``sourceVip``.
- Networks are not persistent: a reboot removes them (``IsPersistent: false``), and
  removing a network resets the host's connections (WMCO reconnects after each
  ``Remove-HnsNetwork``: ``pkg/windows/windows.go`` ``ensureHNSNetworksAreRemoved``).
"""

from __future__ import annotations

import ipaddress
import threading
import uuid
from dataclasses import dataclass, field

BASE_NETWORK = "BaseOVNKubernetesHybridOverlayNetwork"
OVERLAY_NETWORK = "OVNKubernetesHybridOverlayNetwork"
VIP_ENDPOINT = "VIPEndpoint"
DEFAULT_VXLAN_PORT = 4789
# The base network's placeholder subnet (ho_node_windows.go ensureBaseNetwork).
BASE_SUBNET = "100.64.0.0/30"


@dataclass
class Network:
    name: str
    subnet: str
    gateway: str
    management_ip: str
    vxlan_port: int
    id: str = field(default_factory=lambda: str(uuid.uuid4()).upper())


@dataclass
class Endpoint:
    name: str
    network_id: str
    ip: str
    mac: str
    id: str = field(default_factory=lambda: str(uuid.uuid4()).upper())


class HostNetworking:
    """Networks and endpoints of one host; cleared when the host reboots."""

    def __init__(self, management_ip: str) -> None:
        self.management_ip = management_ip
        self._lock = threading.Lock()
        self.networks: dict[str, Network] = {}
        self.endpoints: dict[str, Endpoint] = {}

    def ensure_network(self, name: str, subnet: str, vxlan_port: int) -> Network:
        net = ipaddress.ip_network(subnet, strict=False)
        gateway = str(net.network_address + 1)
        with self._lock:
            existing = self.networks.get(name)
            if existing is not None and (existing.subnet, existing.gateway) == (str(net), gateway):
                return existing  # "Reusing existing overlay network"
            network = Network(name, str(net), gateway, self.management_ip, vxlan_port)
            self.networks[name] = network
            return network

    def network(self, name: str) -> Network | None:
        with self._lock:
            return self.networks.get(name)

    def remove_network(self, name: str) -> bool:
        with self._lock:
            network = self.networks.pop(name, None)
            if network is None:
                return False
            for key, endpoint in list(self.endpoints.items()):
                if endpoint.network_id == network.id:
                    del self.endpoints[key]
            return True

    def endpoint(self, name: str) -> Endpoint | None:
        with self._lock:
            return self.endpoints.get(name)

    def vip_endpoint(self, network_name: str) -> Endpoint:
        """The VIPEndpoint on ``network_name``, created when missing."""
        with self._lock:
            network = self.networks.get(network_name)
            if network is None:
                raise LookupError(f"cannot find HNS network with name {network_name}")
            existing = self.endpoints.get(VIP_ENDPOINT)
            if existing is not None and existing.network_id == network.id:
                return existing
            net = ipaddress.ip_network(network.subnet)
            ip = str(net.network_address + 2)
            mac = "00-15-5D-" + "-".join(f"{b:02X}" for b in net.network_address.packed[1:])
            endpoint = Endpoint(VIP_ENDPOINT, network.id, ip, mac)
            self.endpoints[VIP_ENDPOINT] = endpoint
            return endpoint

    def reset(self) -> None:
        """A reboot: nothing HNS held survives (the networks are not persistent)."""
        with self._lock:
            self.networks.clear()
            self.endpoints.clear()

"""What every Windows node needs to know about its cluster, read once per round.

A kubelet on a Windows host cannot ask the cluster where it is; everything it needs is
written into its files and command lines (:mod:`syncer.nodes.windows.layout`). WMCO
reads the same facts from the same OpenShift objects (``pkg/cluster/config.go``,
``pkg/nodeconfig/init.go``):

- **API server URL** hosts connect to: ``Infrastructure cluster``
  ``status.apiServerInternalURI`` (``https://api-int.<cluster>:6443``). Never the
  controller's own URL: in a cluster that is the ``kubernetes`` Service IP, which a host
  that is not a node yet cannot reach.
- **Service network** (``Network.config.openshift.io cluster`` ``spec.serviceNetwork[0]``)
  and from it the **cluster DNS** address, its 10th IP (``172.30.0.0/16`` ->
  ``172.30.0.10``), for ``kubelet.conf`` and the CNI configuration's service route.
- **Hybrid overlay** (``Network.operator.openshift.io cluster``): OVN-Kubernetes must have
  ``hybridOverlayConfig`` with a ``hybridClusterNetwork`` (WMCO refuses to configure
  nodes otherwise: "cluster is not configured for OVN hybrid networking"), and its
  ``hybridOverlayVXLANPort`` (custom on vSphere) is passed to hybrid-overlay-node.
- **Platform** (``status.platformStatus.type``), unless the Fleet names one.

:func:`read_cluster_settings` reads what WMCO carries to every node besides: registry
mirrors (:mod:`syncer.nodes.registries`), the cluster proxy (``Proxy cluster``
``status.httpProxy``/``httpsProxy``/``noProxy``) and the trusted CA bundle (the proxy's
``spec.trustedCA`` ConfigMap and the registry CAs of ``Image cluster``
``spec.additionalTrustedCA``, both in ``openshift-config``). A cluster without these
objects has none of them.

The Fleet's ``spec.nodes`` (``apiServer``, ``serviceNetwork``, ``clusterDNS``,
``hybridOverlayVXLANPort``) overrides each fact, which is also how a cluster without
these OpenShift objects is described. A fact that is neither given nor readable stops
the round with :class:`ClusterFactsError`, whose message says what to set: a node
configured with a guessed API URL or DNS address would never work.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from syncer.cluster.client import ApiError, KubeClient
from syncer.desired import NodePolicy, Platform
from syncer.nodes import registries

INFRASTRUCTURE = "/apis/config.openshift.io/v1/infrastructures/cluster"
NETWORK_CONFIG = "/apis/config.openshift.io/v1/networks/cluster"
NETWORK_OPERATOR = "/apis/operator.openshift.io/v1/networks/cluster"
PROXY = "/apis/config.openshift.io/v1/proxies/cluster"
IMAGE = "/apis/config.openshift.io/v1/images/cluster"
OPENSHIFT_CONFIG = "openshift-config"

_PLATFORMS = {
    "AWS": Platform.AWS, "Azure": Platform.AZURE, "GCP": Platform.GCP,
    "VSphere": Platform.VSPHERE, "Nutanix": Platform.NUTANIX, "None": Platform.NONE,
}


class ClusterFactsError(Exception):
    """A fact the nodes need is unknown; the message says which and what to set."""


@dataclass(frozen=True)
class ClusterFacts:
    api_server: str  # https URL the hosts' kubelets and hybrid-overlay connect to
    service_network: str  # CIDR of Services
    cluster_dns: str  # the cluster DNS Service's IP
    vxlan_port: int | None  # hybrid overlay VXLAN port, None for the default (4789)
    platform: Platform


def cluster_dns_of(service_network: str) -> str:
    """The 10th address of the service network (the Kubernetes convention WMCO uses)."""
    network = ipaddress.ip_network(service_network, strict=False)
    return str(network.network_address + 10)


def _get(api: KubeClient, path: str) -> Mapping[str, Any] | None:
    """The object, or None when it does not exist (a cluster that is not OpenShift)."""
    try:
        doc: Mapping[str, Any] = api.request("GET", path)
    except ApiError as err:
        if err.not_found:
            return None
        raise ClusterFactsError(f"cannot read {path}: {err}") from None
    return doc


def read_cluster_facts(api: KubeClient, policy: NodePolicy, *, overlay: bool = True
                       ) -> ClusterFacts:
    """The facts (see the module docstring). ``overlay``: the Fleet runs hybrid-overlay,
    so the cluster must offer hybrid networking."""
    infrastructure = _get(api, INFRASTRUCTURE) if not (
        policy.api_server and policy.platform) else None
    status = (infrastructure or {}).get("status") or {}

    api_server = policy.api_server or str(status.get("apiServerInternalURI") or "")
    if not api_server:
        raise ClusterFactsError(
            "the API server URL for Windows hosts is unknown: set spec.nodes.apiServer in "
            "the Fleet (no status.apiServerInternalURI in Infrastructure cluster)")

    platform = policy.platform
    if platform is None:
        kind = str((status.get("platformStatus") or {}).get("type") or "None")
        platform = _PLATFORMS.get(kind, Platform.NONE)

    service_network = policy.service_network
    if not service_network:
        config = _get(api, NETWORK_CONFIG)
        networks = ((config or {}).get("spec") or {}).get("serviceNetwork") or []
        if not networks:
            raise ClusterFactsError(
                "the cluster's service network is unknown: set spec.nodes.serviceNetwork in "
                "the Fleet (no spec.serviceNetwork in Network.config.openshift.io cluster)")
        service_network = str(networks[0])
    try:
        dns = policy.cluster_dns or cluster_dns_of(service_network)
    except ValueError as err:
        raise ClusterFactsError(f"service network {service_network!r}: {err}") from None

    vxlan_port = policy.vxlan_port
    operator = _get(api, NETWORK_OPERATOR) if overlay else None
    if operator is not None:
        ovn = (((operator.get("spec") or {}).get("defaultNetwork") or {})
               .get("ovnKubernetesConfig") or {})
        hybrid = ovn.get("hybridOverlayConfig")
        if not hybrid or not hybrid.get("hybridClusterNetwork"):
            raise ClusterFactsError(
                "the cluster is not configured for OVN hybrid networking: Windows nodes "
                "need spec.defaultNetwork.ovnKubernetesConfig.hybridOverlayConfig with a "
                "hybridClusterNetwork in Network.operator.openshift.io cluster")
        if vxlan_port is None and hybrid.get("hybridOverlayVXLANPort"):
            vxlan_port = int(hybrid["hybridOverlayVXLANPort"])
    return ClusterFacts(api_server.rstrip("/"), service_network, dns, vxlan_port, platform)


@dataclass(frozen=True)
class ClusterSettings:
    """What WMCO carries from the cluster to every Windows node besides its own files."""

    registries: Mapping[str, bytes] = field(default_factory=dict)  # relative path -> file
    trusted_ca: bytes = b""  # PEM bundle
    proxy: Mapping[str, str] = field(default_factory=dict)  # HTTP_PROXY, HTTPS_PROXY, NO_PROXY


def _config_map(api: KubeClient, name: str) -> Mapping[str, str]:
    if not name:
        return {}
    try:
        cm = api.request("GET", f"/api/v1/namespaces/{OPENSHIFT_CONFIG}/configmaps/{quote(name)}")
    except ApiError as err:
        if err.not_found:
            return {}
        raise ClusterFactsError(f"cannot read ConfigMap {OPENSHIFT_CONFIG}/{name}: {err}") from None
    data: Mapping[str, str] = cm.get("data") or {}
    return data


def read_cluster_settings(api: KubeClient) -> ClusterSettings:
    """Registry mirrors, proxy and trusted CA bundle (see the module docstring)."""
    try:
        mirrors = registries.read_registry_files(api)
    except ApiError as err:
        raise ClusterFactsError(f"cannot read the cluster's image mirror sets: {err}") from None
    proxy_doc = _get(api, PROXY) or {}
    status = proxy_doc.get("status") or {}
    proxy = {"HTTP_PROXY": str(status.get("httpProxy") or ""),
             "HTTPS_PROXY": str(status.get("httpsProxy") or ""),
             "NO_PROXY": str(status.get("noProxy") or "")}
    bundle = []
    trusted = ((proxy_doc.get("spec") or {}).get("trustedCA") or {}).get("name") or ""
    if ca := _config_map(api, str(trusted)).get("ca-bundle.crt"):
        bundle.append(ca.strip())
    image_doc = _get(api, IMAGE) or {}
    extra = ((image_doc.get("spec") or {}).get("additionalTrustedCA") or {}).get("name") or ""
    for _, pem in sorted(_config_map(api, str(extra)).items()):
        bundle.append(pem.strip())
    text = "\n".join(b for b in bundle if b)
    return ClusterSettings(mirrors, (text + "\n").encode() if text else b"",
                           proxy if any(proxy.values()) else {})


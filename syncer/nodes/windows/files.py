"""The configuration files syncer writes on a Windows node, with WMCO's values.

Every file is rendered here as bytes, deterministically, so its SHA-256 tells whether
the copy on a host is current (:mod:`syncer.nodes.hostplan` compares, the configure flow
writes; a file that differs is rewritten on every kind of run, not only on a new host):

- ``C:\\k\\kubelet.conf`` (``KubeletConfiguration``, WMCO ``pkg/nodeconfig/nodeconfig.go``
  ``generateKubeletConfiguration``): ``resolvConf: ""`` (the Windows kubelet rejects any
  other value but ``Host`` for every pod, ``pkg/kubelet/network/dns/dns_windows.go``),
  ``clusterDNS`` (the cluster's DNS Service), ``registerWithTaints`` ``os=Windows:NoSchedule``,
  ``containerRuntimeEndpoint``, the Windows reservations and eviction signals, and the
  ``NodeLogQuery``/``RotateKubeletServerCertificate`` gates;
- ``C:\\k\\containerd\\containerd_conf.toml`` (WMCO ``pkg/internal/containerd_conf.toml``):
  CNI binaries in ``C:\\k\\cni``, configuration in ``C:\\k\\cni\\config``, the
  ``runhcs-wcow-process`` runtime, the pause image and registry mirrors under
  ``C:\\k\\containerd\\registries``. Upstream containerd tarballs ship no configuration;
- ``C:\\k\\cni\\config\\cni.conf`` (WMCO's network-conf script): ``win-overlay`` on the
  hybrid overlay network, ``host-local`` IPAM on the node's subnet, no NAT and an SDN
  route for the service network, the network's management IP as provider address;
- ``C:\\k\\kube-proxy.conf``: kernelspace on the overlay network with the VIP endpoint's
  address as ``sourceVip``, DSR, the ``WinDSR``/``WinOverlay`` gates, the node subnet as
  ``clusterCIDR``.

The last two depend on what hybrid-overlay made on the host (the network's subnet and
management IP, the VIP endpoint), so they are rendered from the host's inventory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from syncer import names
from syncer.nodes.windows.layout import (
    CNI_CONFIG_DIR,
    CNI_DIR,
    KUBECONFIG,
    KUBELET_CA,
    REGISTRIES_DIR,
)
from syncer.nodes.windows.vocabulary import OVERLAY_NETWORK

# The pause image WMCO's containerd configuration names (pkg/internal/containerd_conf.toml).
PAUSE_IMAGE = "mcr.microsoft.com/oss/kubernetes/pause:3.9"
RUNTIME_ENDPOINT = "npipe://./pipe/containerd-containerd"


def _json(doc: dict[str, Any]) -> bytes:
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode("utf-8")


def kubelet_config(cluster_dns: str) -> bytes:
    """``C:\\k\\kubelet.conf`` (JSON is YAML; the kubelet reads either)."""
    return _json({
        "kind": "KubeletConfiguration",
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "rotateCertificates": True,
        "serverTLSBootstrap": True,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": KUBELET_CA},
        },
        "authorization": {"mode": "Webhook"},
        "clusterDomain": "cluster.local",
        "clusterDNS": [cluster_dns],
        "resolvConf": "",
        "cgroupsPerQOS": False,
        "runtimeRequestTimeout": "10m0s",
        "maxPods": 250,
        "kubeAPIQPS": 50,
        "kubeAPIBurst": 100,
        "serializeImagePulls": False,
        "logging": {"flushFrequency": "5s"},
        "enableSystemLogHandler": True,
        "enableSystemLogQuery": True,
        "featureGates": {"NodeLogQuery": True, "RotateKubeletServerCertificate": True},
        "containerLogMaxSize": "50Mi",
        "enforceNodeAllocatable": ["none"],
        "evictionHard": {"nodefs.available": "10%", "imagefs.available": "15%"},
        "systemReserved": {"cpu": "500m", "ephemeral-storage": "1Gi", "memory": "2Gi"},
        "containerRuntimeEndpoint": RUNTIME_ENDPOINT,
        "registerNode": True,
        "registerWithTaints": [{"key": names.WINDOWS_TAINT_KEY,
                                "value": names.WINDOWS_TAINT_VALUE, "effect": "NoSchedule"}],
        "tlsCipherSuites": [
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        ],
        "tlsMinVersion": "VersionTLS12",
    })


def _toml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


CONTAINERD_ROOT = "C:\\ProgramData\\containerd\\root"
CONTAINERD_STATE = "C:\\ProgramData\\containerd\\state"
CONTAINERD_PIPE = "\\\\.\\pipe\\containerd-containerd"


def containerd_config() -> bytes:
    """``C:\\k\\containerd\\containerd_conf.toml`` (containerd config version 2)."""
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    lines = [
        "version = 2",
        f"root = {_toml_string(CONTAINERD_ROOT)}",
        f"state = {_toml_string(CONTAINERD_STATE)}",
        'disabled_plugins = ["io.containerd.nri.v1.nri"]',
        "",
        "[grpc]",
        f"  address = {_toml_string(CONTAINERD_PIPE)}",
        "",
        f"[{cri}]",
        f"  sandbox_image = {_toml_string(PAUSE_IMAGE)}",
        "",
        f"[{cri}.cni]",
        f"  bin_dir = {_toml_string(CNI_DIR)}",
        f"  conf_dir = {_toml_string(CNI_CONFIG_DIR)}",
        "  max_conf_num = 1",
        "",
        f"[{cri}.containerd]",
        '  default_runtime_name = "runhcs-wcow-process"',
        '  snapshotter = "windows"',
        "",
        f"[{cri}.containerd.runtimes.runhcs-wcow-process]",
        '  runtime_type = "io.containerd.runhcs.v1"',
        "",
        f"[{cri}.registry]",
        f"  config_path = {_toml_string(REGISTRIES_DIR)}",
        "",
    ]
    return "\n".join(lines).encode("utf-8")


@dataclass(frozen=True)
class Overlay:
    """The node's pod network as hybrid-overlay made it on the host."""

    subnet: str  # the node's hybrid overlay subnet
    management_ip: str  # the host address the overlay network uses
    source_vip: str  # the VIP endpoint's address, kube-proxy's source VIP


# Every no-change pass renders each host's two network files to compare their digests
# with the host's, and ``json.dumps`` with an indent runs json's pure-Python encoder: a
# quarter of a probe thread's CPU at 200 hosts. Both are pure functions of a few short
# strings, so the last renderings are kept, enough for a fleet of a few thousand hosts.
_NETWORK_FILES_KEPT = 4096


@lru_cache(maxsize=_NETWORK_FILES_KEPT)
def cni_config(overlay: Overlay, service_network: str) -> bytes:
    """``C:\\k\\cni\\config\\cni.conf``."""
    return _json({
        "cniVersion": "0.2.0",
        "name": OVERLAY_NETWORK,
        "type": "win-overlay",
        "apiVersion": 2,
        "capabilities": {"portMappings": True, "dns": True},
        "ipam": {"type": "host-local", "subnet": overlay.subnet},
        "policies": [
            {"name": "EndpointPolicy", "value": {
                "type": "OutBoundNAT",
                "settings": {"exceptionList": [service_network], "destinationPrefix": "",
                             "needEncap": False}}},
            {"name": "EndpointPolicy", "value": {
                "type": "SDNRoute",
                "settings": {"exceptionList": [], "destinationPrefix": service_network,
                             "needEncap": True}}},
            {"name": "EndpointPolicy", "value": {
                "type": "ProviderAddress",
                "settings": {"providerAddress": overlay.management_ip}}},
        ],
    })


@lru_cache(maxsize=_NETWORK_FILES_KEPT)
def kube_proxy_config(overlay: Overlay, node_name: str) -> bytes:
    """``C:\\k\\kube-proxy.conf`` (``KubeProxyConfiguration``)."""
    return _json({
        "kind": "KubeProxyConfiguration",
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "featureGates": {"WinDSR": True, "WinOverlay": True},
        "clientConnection": {"kubeconfig": KUBECONFIG},
        "hostnameOverride": node_name,
        "mode": "kernelspace",
        "winkernel": {"networkName": OVERLAY_NETWORK, "sourceVip": overlay.source_vip,
                      "enableDSR": True},
        "clusterCIDR": overlay.subnet,
        "logging": {"verbosity": 0},
    })

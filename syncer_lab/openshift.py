"""OpenShift's own API definitions for the test control plane, from github.com/openshift/api.

``tools/openshift`` pins the module (the version WMCO's release-5.0 line builds with) and
builds ``openshift-check``, which decodes objects strictly into its Go types. The test
control plane installs the module's CustomResourceDefinitions of the kinds syncer reads or
renders (the ``Default`` feature set, as a default OpenShift installation serves them):

- ``config.openshift.io/v1`` Network (service CIDR) and Infrastructure
  (``apiServerInternalURL``, platform);
- ``operator.openshift.io/v1`` Network (hybrid overlay: networks, VXLAN port);
- ``config.openshift.io/v1`` Proxy, Image (trusted CAs), ImageDigestMirrorSet and
  ImageTagMirrorSet (registry mirrors);
- ``machine.openshift.io/v1beta1`` MachineSet and Machine.
"""

from __future__ import annotations

import json
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from syncer_lab.binaries import kube_binaries

SERVICE_NETWORK = "172.30.0.0/16"
CLUSTER_NETWORK = {"cidr": "10.128.0.0/14", "hostPrefix": 23}
HYBRID_CLUSTER_NETWORK = {"cidr": "10.132.0.0/14", "hostPrefix": 23}

TOOLS = Path(__file__).resolve().parents[1] / "tools" / "openshift"
CRD_FILES = (
    "config/v1/zz_generated.crd-manifests/0000_10_config-operator_01_networks-Default.crd.yaml",
    "config/v1/zz_generated.crd-manifests/"
    "0000_10_config-operator_01_infrastructures-Default.crd.yaml",
    "operator/v1/zz_generated.crd-manifests/0000_70_network_01_networks-Default.crd.yaml",
    "config/v1/zz_generated.crd-manifests/0000_03_config-operator_01_proxies.crd.yaml",
    "config/v1/zz_generated.crd-manifests/0000_10_config-operator_01_images.crd.yaml",
    "config/v1/zz_generated.crd-manifests/"
    "0000_10_config-operator_01_imagedigestmirrorsets.crd.yaml",
    "config/v1/zz_generated.crd-manifests/"
    "0000_10_config-operator_01_imagetagmirrorsets.crd.yaml",
    "machine/v1beta1/zz_generated.crd-manifests/0000_10_machine-api_01_machinesets-Default.crd.yaml",
    "machine/v1beta1/zz_generated.crd-manifests/0000_10_machine-api_01_machines-Default.crd.yaml",
)


@cache
def api_dir() -> Path:
    """The pinned openshift/api module's directory (downloaded by ``make setup``)."""
    done = subprocess.run([str(TOOLS / "build.sh"), "--api-dir"], capture_output=True,
                          text=True, check=True, timeout=300)
    return Path(done.stdout.strip().splitlines()[-1])


def crd_paths() -> list[Path]:
    return [api_dir() / name for name in CRD_FILES]


# What the OpenShift overlay (manifests/openshift) creates besides core kinds, checked by a
# server-side dry run against the upstream CRDs: Route from openshift/api, ServiceMonitor
# from prometheus-operator (the release its monitoring/v1 API the cluster monitoring
# stack of OpenShift 4.20 serves; its module carries the generated CRDs under example/).
ROUTE_CRD = "route/v1/zz_generated.crd-manifests/routes.crd.yaml"
PROMETHEUS_OPERATOR = "github.com/prometheus-operator/prometheus-operator@v0.94.0"
SERVICEMONITOR_CRD = "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml"


def overlay_crd_paths() -> list[Path]:
    """The upstream CRDs of the OpenShift overlay's Route and ServiceMonitor."""
    done = subprocess.run(["go", "mod", "download", "-json", PROMETHEUS_OPERATOR],
                          capture_output=True, text=True, timeout=600, check=False)
    try:
        module = Path(json.loads(done.stdout)["Dir"])
    except (ValueError, KeyError):
        raise RuntimeError(f"go mod download {PROMETHEUS_OPERATOR} failed: "
                           f"{done.stdout.strip()} {done.stderr.strip()}") from None
    return [api_dir() / ROUTE_CRD, module / SERVICEMONITOR_CRD]


def strict_decode(objects: list[dict[str, object]]) -> list[str | None]:
    """Decode each object strictly into openshift/api's Go types: None when it decodes,
    else the error (an unknown field, a wrong type, a missing providerSpec kind)."""
    done = subprocess.run([str(kube_binaries().bin_dir / "openshift-check"), "decode"],
                          input=json.dumps(objects), capture_output=True, text=True,
                          check=True, timeout=60)
    results = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return [None if r.get("ok") else str(r.get("error")) for r in results]


def install_cluster_config(api: client.ApiClient, server: str, *,
                           vxlan_port: int | None = None, platform: str = "None") -> None:
    """The cluster-scoped objects an OpenShift installation has, as far as syncer reads
    them: ``networks.config.openshift.io/cluster`` (OVNKubernetes, its service and
    cluster networks), ``networks.operator.openshift.io/cluster`` (hybrid overlay on, with
    its network and VXLAN port) and ``infrastructures.config.openshift.io/cluster`` (the
    internal API server URL, for kubelets). Values are the OpenShift documentation's
    defaults (hybrid networking: ``hybridClusterNetwork`` 10.132.0.0/14, hostPrefix 23)."""
    custom = client.CustomObjectsApi(api)
    hybrid: dict[str, Any] = {"hybridClusterNetwork": [HYBRID_CLUSTER_NETWORK]}
    if vxlan_port is not None:
        hybrid["hybridOverlayVXLANPort"] = vxlan_port
    objects: list[tuple[str, str, str, dict[str, Any], dict[str, Any] | None]] = [
        ("config.openshift.io", "v1", "networks", {
            "networkType": "OVNKubernetes", "serviceNetwork": [SERVICE_NETWORK],
            "clusterNetwork": [CLUSTER_NETWORK]},
         {"networkType": "OVNKubernetes", "serviceNetwork": [SERVICE_NETWORK],
          "clusterNetwork": [CLUSTER_NETWORK]}),
        ("operator.openshift.io", "v1", "networks", {
            "clusterNetwork": [CLUSTER_NETWORK], "serviceNetwork": [SERVICE_NETWORK],
            "defaultNetwork": {"type": "OVNKubernetes",
                               "ovnKubernetesConfig": {"hybridOverlayConfig": hybrid}}}, None),
        ("config.openshift.io", "v1", "infrastructures", {
            "platformSpec": {"type": platform}},
         {"apiServerInternalURI": server, "apiServerURL": server,
          "infrastructureName": "test-cluster", "platform": platform,
          "platformStatus": {"type": platform}, "controlPlaneTopology": "HighlyAvailable",
          "infrastructureTopology": "HighlyAvailable"}),
    ]
    for group, version, plural, spec, status in objects:
        kind = {"networks": "Network", "infrastructures": "Infrastructure"}[plural]
        body = {"apiVersion": f"{group}/{version}", "kind": kind,
                "metadata": {"name": "cluster"}, "spec": spec}
        try:
            custom.create_cluster_custom_object(group, version, plural, body)
        except ApiException as err:
            if err.status != 409:
                raise
            custom.patch_cluster_custom_object(group, version, plural, "cluster",
                                               {"spec": spec})
        if status is not None:
            try:
                custom.patch_cluster_custom_object_status(group, version, plural, "cluster",
                                                          {"status": status})
            except ApiException as err:
                if err.status != 404:
                    raise
                # No status subresource in this CRD (config.openshift.io Network): the
                # status is written with the object, as its operator does.
                custom.patch_cluster_custom_object(group, version, plural, "cluster",
                                                   {"status": status})

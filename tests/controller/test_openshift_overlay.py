"""manifests/openshift: what an OpenShift cluster requires of the install, checked by the
API server itself (server-side dry run against the upstream Route and ServiceMonitor
CRDs, Pod Security "restricted" admission) and by reading what kustomize builds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from syncer import names
from syncer_lab.kube import ControlPlane
from syncer_lab.openshift import overlay_crd_paths

OVERLAY = Path(__file__).resolve().parents[2] / "manifests" / "openshift"
REGISTRY = "image-registry.openshift-image-registry.svc:5000/syncer-system/syncer"


@pytest.fixture(scope="module")
def built(control_plane: ControlPlane) -> dict[tuple[str, str], dict[str, Any]]:
    out = control_plane.kubectl("kustomize", str(OVERLAY)).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def test_the_pod_leaves_uid_gid_and_fsgroup_to_restricted_v2(
    built: dict[tuple[str, str], dict[str, Any]]
) -> None:
    pod = built["Deployment", "syncer"]["spec"]["template"]["spec"]
    assert not {"runAsUser", "runAsGroup", "fsGroup"} & set(pod["securityContext"])
    assert pod["securityContext"]["runAsNonRoot"] is True
    container = pod["containers"][0]
    assert container["image"] == f"{REGISTRY}:0.1.0"
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["SYNCER_FLEET_OBJECT"] == "*"
    bundle = "/etc/syncer/trusted-ca/ca-bundle.crt"
    assert env["SYNCER_GIT_CA_FILE"] == env["SSL_CERT_FILE"] == env["REQUESTS_CA_BUNDLE"] == bundle
    assert container["envFrom"] == [{"configMapRef": {"name": "syncer-proxy", "optional": True}}]
    ca = built["ConfigMap", "syncer-trusted-ca"]
    assert ca["metadata"]["labels"]["config.openshift.io/inject-trusted-cabundle"] == "true"


def test_only_the_webhook_path_is_exposed(built: dict[tuple[str, str], dict[str, Any]]) -> None:
    route = built["Route", "syncer-webhooks"]["spec"]
    assert route["path"] == "/hooks/" and route["port"] == {"targetPort": "http"}
    assert route["tls"]["termination"] == "edge"
    service = built["Service", "syncer"]["spec"]
    http = next(p for p in service["ports"] if p["name"] == "http")
    assert http["targetPort"] == "http"  # the webhook server; probes and metrics are not
    monitor = built["ServiceMonitor", "syncer"]["spec"]
    assert monitor["endpoints"][0]["port"] == "metrics"
    assert monitor["selector"]["matchLabels"].items() <= built["Service", "syncer"][
        "metadata"]["labels"].items()


def test_server_side_dry_run_against_the_upstream_crds(control_plane: ControlPlane) -> None:
    cp = control_plane
    for crd in overlay_crd_paths():
        cp.kubectl("apply", "--server-side", "-f", str(crd))
    cp.kubectl("wait", "--for=condition=Established", "--timeout=60s",
               "crd/routes.route.openshift.io", "crd/servicemonitors.monitoring.coreos.com")
    cp.kubectl("create", "namespace", names.SYSTEM_NAMESPACE, check=False)
    cp.kubectl("create", "namespace", names.WMCO_NAMESPACE, check=False)
    result = cp.kubectl("apply", "--dry-run=server", "-k", str(OVERLAY), check=False)
    assert result.returncode == 0, result.stderr
    assert "route.route.openshift.io/syncer-webhooks created (server dry run)" in result.stdout
    assert "servicemonitor.monitoring.coreos.com/syncer created (server dry run)" in result.stdout


def test_the_pod_passes_pod_security_restricted_with_an_arbitrary_uid(
    control_plane: ControlPlane, built: dict[tuple[str, str], dict[str, Any]], namespace: str,
) -> None:
    """restricted-v2 is Pod Security "restricted" plus a UID from the namespace's range:
    the API server's own PodSecurity admission judges the pod as the SCC assigns it."""
    cp = control_plane
    cp.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    cp.kubectl("create", "serviceaccount", "-n", namespace, "syncer")
    template = built["Deployment", "syncer"]["spec"]["template"]
    spec = json.loads(json.dumps(template["spec"]))
    spec["securityContext"].update(runAsUser=1000650000, fsGroup=1000650000)  # the SCC's
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "syncer-check", "namespace": namespace},
           "spec": {**spec, "volumes": [{"name": v["name"], "emptyDir": {}}
                                         for v in spec["volumes"]]}}
    result = cp.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(pod),
                        check=False)
    assert result.returncode == 0, result.stderr
    # ... and the same admission refuses what restricted-v2 refuses.
    spec["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    result = cp.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(pod),
                        check=False)
    assert result.returncode != 0 and "allowPrivilegeEscalation" in result.stderr

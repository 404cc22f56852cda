"""manifests/base: the kustomization builds and applies, and its RBAC is enough and not more.

The RBAC proof runs the real thing as the `syncer` ServiceAccount (a bound token, not
admin): a full reconcile of the example fleet, and `syncer run` itself (Lease, Events,
syncer-control, inventory); then requests outside the role, which the API server denies.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from controller_helpers import SyncerRun, wait_for

from syncer import names
from syncer.cluster.client import MERGE_PATCH, ApiError, KubeClient, connect
from syncer.controller.leader import lease_path
from syncer.nodes.stage import run_node_stage
from syncer.reconcile import reconcile_once
from syncer_lab.gitrepos import WorkRepo, make_bare
from syncer_lab.kube import ControlPlane
from syncer_lab.nodelab import NodeLab
from syncer_lab.winhost import HostLab
from syncer_lab.winhost.kubelet import Kubelets

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests" / "base"
EXAMPLE = ROOT / "examples" / "byoh"
SA_NAMESPACE, SA_NAME = names.SYSTEM_NAMESPACE, "syncer"


def built(control_plane: ControlPlane) -> list[dict[str, Any]]:
    out = control_plane.kubectl("kustomize", str(MANIFESTS)).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


@pytest.fixture(scope="module")
def installed(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`kubectl apply -k manifests/base` on the test control plane (WMCO's namespace exists on
    OpenShift; here it is created first). Returns a kubeconfig for the ServiceAccount."""
    control_plane.kubectl("create", "namespace", names.WMCO_NAMESPACE, check=False)
    result = control_plane.kubectl("apply", "-k", str(MANIFESTS), check=False)
    assert result.returncode == 0, result.stderr
    path = tmp_path_factory.mktemp("sa") / "kubeconfig"
    return control_plane.kubeconfig_for_service_account(SA_NAMESPACE, SA_NAME, path)


def test_kustomization_builds_what_the_issue_lists(control_plane: ControlPlane) -> None:
    docs = built(control_plane)
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert {("Namespace", "syncer-system"), ("ServiceAccount", "syncer"),
            ("ClusterRole", "syncer"), ("Deployment", "syncer"), ("Service", "syncer"),
            ("ConfigMap", "syncer-control"),
            ("CustomResourceDefinition", "windowsfleets.syncer.io")} <= kinds
    # No credentials are installed (see secrets.example.yaml); the one Secret is the node
    # bootstrapper's token, which the cluster fills in.
    assert [(d["metadata"]["name"], d["type"]) for d in docs if d["kind"] == "Secret"] == [
        ("syncer-node-bootstrapper-token", "kubernetes.io/service-account-token")]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert deployment["spec"]["replicas"] == 2
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert pod["affinity"]["podAntiAffinity"]
    assert pod["terminationGracePeriodSeconds"] > 270  # > --shutdown-grace
    assert all("subPath" not in m for m in container["volumeMounts"])


def test_example_secrets_are_valid_objects(control_plane: ControlPlane,
                                           installed: Path) -> None:
    result = control_plane.kubectl("apply", "--dry-run=server", "-f",
                                   str(MANIFESTS / "secrets.example.yaml"), check=False)
    assert result.returncode == 0, result.stderr


def test_full_reconcile_as_the_service_account(installed: Path) -> None:
    client = connect(str(installed))
    result = reconcile_once(EXAMPLE, client)
    assert result.ok, result.errors
    assert result.stage == "done"
    again = reconcile_once(EXAMPLE, client)  # a no-change resync works too (reads, lists)
    assert again.ok, again.errors


def test_syncer_run_as_the_service_account(
    control_plane: ControlPlane, installed: Path, tmp_path: Path, kube: Any,
    syncer_run: Callable[..., SyncerRun]
) -> None:
    """As the shipped Deployment runs it: following every WindowsFleet (listed, spec
    read, its own inventory, status and Events written, reconcile-now), and with the
    flags and the syncer-control ConfigMap too."""
    remote = make_bare(tmp_path / "fleet.git")
    author = WorkRepo(tmp_path / "author", f"file://{remote}")
    shutil.copytree(EXAMPLE, author.path / "fleet")
    author.commit("Fleet lab")
    author.push("main")
    fleet = {"apiVersion": "syncer.io/v1alpha1", "kind": "WindowsFleet",
             "metadata": {"name": "fleet", "namespace": SA_NAMESPACE},
             "spec": {"url": f"file://{remote}", "path": "fleet", "interval": "10m"}}
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(fleet))
    common = ["--kubeconfig", str(installed), "--namespace", SA_NAMESPACE,
              "--workdir", str(tmp_path / "w"), "--lease-duration", "3s",
              "--renew-deadline", "2s", "--retry-period", "200ms",
              "--control-poll-interval", "300ms", "--log-format", "json"]
    proc = syncer_run("syncer-sa", [*common, "--fleet-object", "*"])  # as shipped
    assert wait_for(lambda: proc.revision() == author.head(), timeout=60)
    control_plane.kubectl("annotate", "-n", SA_NAMESPACE, "--overwrite", "windowsfleet/fleet",
                          f"{names.ANNOTATION_REQUESTED_AT}=again")
    waited = control_plane.kubectl(
        "wait", "-n", SA_NAMESPACE, "--timeout=60s", "windowsfleet/fleet",
        "--for=jsonpath={.status.lastHandledReconcileAt}=again", check=False)
    assert waited.returncode == 0, waited.stderr
    status = json.loads(control_plane.kubectl("get", "-n", SA_NAMESPACE, "windowsfleet/fleet",
                                              "-o", "json").stdout)["status"]
    assert status["lastAppliedRevision"] == author.head() and status["conditions"]
    assert proc.terminate() == 0
    out = proc.output()
    assert "forbidden" not in out.lower(), out

    # The flags alone, with the syncer-control ConfigMap.
    proc = syncer_run("syncer-sa-flags", [*common, "--repo", f"file://{remote}", "--path",
                                          "fleet"])
    assert wait_for(lambda: proc.revision() == author.head(), timeout=60)
    k = KubeClient(kube)
    k.request("PATCH", f"/api/v1/namespaces/{SA_NAMESPACE}/configmaps/{names.CONTROL_CONFIGMAP}",
              body={"metadata": {"annotations": {
                  names.ANNOTATION_RECONCILE_REQUESTED_AT: "2026-01-01T00:00:00.000000Z"}}},
              content_type=MERGE_PATCH)
    assert wait_for(lambda: proc.metric("syncer_reconciles_total", result="success") == 2.0)
    assert proc.terminate() == 0
    spec = k.request("GET", lease_path(SA_NAMESPACE, names.LEADER_LEASE))["spec"]
    assert not spec.get("holderIdentity")
    out = proc.output()
    assert "forbidden" not in out.lower(), out


def test_the_node_stage_runs_as_the_service_account(
        installed: Path, control_plane: ControlPlane, kube: Any, tmp_path: Path) -> None:
    """A host joins, with everything the node stage reads and writes (Nodes, CSRs, the
    rollout Lease, the status ConfigMaps, the bootstrap token, the cluster's network
    objects, windows-user-data) done as the ServiceAccount the manifests bind."""
    control_plane.start_ovn_kubernetes()
    kubelets = Kubelets(heartbeat_seconds=0.5, status_seconds=1.0, bootstrap_timeout=60.0)
    with HostLab(tmp_path / "hosts", kubelets=kubelets, first_address="127.233.7.1") as lab:
        nl = NodeLab(KubeClient(kube), names.WMCO_NAMESPACE, lab, tmp_path, "rbac")
        try:
            [host] = nl.add_hosts(1)
            nl.set_fleet("1.0.0")
            nl.write_instances()
            as_syncer = connect(str(installed))
            result = run_node_stage(as_syncer, nl.options(
                machine_namespace=names.MACHINE_API_NAMESPACE))
            assert result.ok, (result.summary(), result.rows, result.problems)
            node = nl.node_of(host)
            assert node is not None
            assert node["metadata"]["annotations"][names.ANNOTATION_VERSION] == "1.0.0"
        finally:
            lab.stop()
            for name in nl.nodes():
                KubeClient(kube).request("DELETE", f"/api/v1/nodes/{name}")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/v1/namespaces/kube-system/secrets", None),
        ("GET", f"/api/v1/namespaces/{names.WMCO_NAMESPACE}/secrets/some-other-secret", None),
        ("DELETE", "/api/v1/namespaces/windows-apps", None),
        ("POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "syncer-escalates"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "cluster-admin"},
            "subjects": [{"kind": "ServiceAccount", "name": SA_NAME,
                          "namespace": SA_NAMESPACE}]}),
        ("POST", "/apis/apps/v1/namespaces/default/deployments", {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}}),
        ("PUT", f"/apis/coordination.k8s.io/v1/namespaces/{SA_NAMESPACE}/leases/other", {
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "other"}}),
        ("DELETE", "/api/v1/namespaces/kube-system/pods/etcd-0", None),
        ("GET", "/api/v1/nodes?watch=true&timeoutSeconds=1", None),
        ("GET", "/apis/syncer.io/v1alpha1/namespaces/default/windowsfleets/fleet", None),
        ("GET", f"/api/v1/namespaces/{SA_NAMESPACE}/secrets", None),
        ("DELETE", f"/apis/syncer.io/v1alpha1/namespaces/{SA_NAMESPACE}/windowsfleets/fleet",
         None),
    ],
    ids=["secrets-kube-system", "other-wmco-secret", "delete-namespace", "bind-cluster-admin",
         "create-deployment", "foreign-lease", "delete-a-pod", "watch-nodes",
         "fleet-elsewhere", "list-own-secrets", "delete-the-fleet"],
)
def test_requests_outside_the_role_are_denied(
    installed: Path, method: str, path: str, body: dict[str, Any] | None
) -> None:
    client = connect(str(installed))
    with pytest.raises(ApiError) as denied:
        client.request(method, path, body=body)
    assert denied.value.status == 403, denied.value


def test_allowed_reads_by_name(installed: Path, kube: Any) -> None:
    try:
        KubeClient(kube).request("POST", f"/api/v1/namespaces/{names.WMCO_NAMESPACE}/secrets",
                                 body={"apiVersion": "v1", "kind": "Secret",
                                       "metadata": {"name": names.PRIVATE_KEY_SECRET},
                                       "stringData": {names.PRIVATE_KEY_SECRET_KEY: "key"}})
    except ApiError as err:
        assert err.conflict
    client = connect(str(installed))
    secret = client.request(
        "GET", f"/api/v1/namespaces/{names.WMCO_NAMESPACE}/secrets/{names.PRIVATE_KEY_SECRET}")
    assert secret["metadata"]["name"] == names.PRIVATE_KEY_SECRET

"""Bootstrap files for a new host: kubeconfig with a bounded TokenRequest token for
syncer-node-bootstrapper, which can file CSRs and do nothing else."""

from __future__ import annotations

import base64

import pytest
from kubernetes import client
from ruamel.yaml import YAML

from syncer.cluster.client import ApiError, KubeClient
from syncer.nodes.kubeconfig import BOOTSTRAP_CA, BOOTSTRAP_KUBECONFIG, KUBELET_CA, bootstrap_files
from syncer_lab.kube import ControlPlane


def test_bootstrap_kubeconfig_authenticates_as_the_bootstrapper(
    control_plane: ControlPlane, api: KubeClient, namespace: str
) -> None:
    files = bootstrap_files(api, namespace, expiration_seconds=600)
    assert set(files.files()) == {BOOTSTRAP_KUBECONFIG, BOOTSTRAP_CA, KUBELET_CA}
    ca = control_plane.ca_cert_path.read_bytes()
    assert files.bootstrap_ca == ca and files.kubelet_ca == ca
    doc = YAML(typ="safe").load(files.kubeconfig.decode())
    cluster = doc["clusters"][0]["cluster"]
    assert cluster["server"] == control_plane.server
    assert base64.b64decode(cluster["certificate-authority-data"]) == ca
    token = doc["users"][0]["user"]["token"]

    cfg = client.Configuration()
    cfg.host = cluster["server"]
    cfg.ssl_ca_cert = str(control_plane.ca_cert_path)
    cfg.api_key = {"BearerToken": token}
    cfg.api_key_prefix = {"BearerToken": "Bearer"}
    as_bootstrapper = KubeClient(client.ApiClient(cfg))
    try:
        review = as_bootstrapper.request(
            "POST",
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
        )
        assert (
            review["status"]["userInfo"]["username"]
            == f"system:serviceaccount:{namespace}:syncer-node-bootstrapper"
        )
        as_bootstrapper.request("GET", "/apis/certificates.k8s.io/v1/certificatesigningrequests")
        with pytest.raises(ApiError) as denied:
            as_bootstrapper.request("GET", f"/api/v1/namespaces/{namespace}/secrets")
        assert denied.value.status == 403
    finally:
        as_bootstrapper.close()


def test_api_server_override_and_expiry_bounds(api: KubeClient, namespace: str) -> None:
    files = bootstrap_files(api, namespace, api_server="https://api-int.lab:6443/", ca=b"CA")
    assert files.server == "https://api-int.lab:6443"
    assert b"https://api-int.lab:6443" in files.kubeconfig
    with pytest.raises(ValueError, match="between 600 and 86400"):
        bootstrap_files(api, namespace, expiration_seconds=60)

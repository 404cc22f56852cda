"""Bootstrap files for the hosts: a kubeconfig with the long-lived token of
syncer-node-bootstrapper (its token Secret, filled by the cluster's tokens controller),
which can file CSRs and do nothing else; the kubelet's client CA from OpenShift's
ConfigMap, never silently from elsewhere."""

from __future__ import annotations

import base64
import contextlib

import pytest
from kubernetes import client
from ruamel.yaml import YAML

from syncer.cluster.client import ApiError, KubeClient
from syncer.nodes.kubeconfig import (
    BOOTSTRAP_CA,
    BOOTSTRAP_KUBECONFIG,
    KUBELET_CA,
    TOKEN_SECRET,
    BootstrapError,
    bootstrap_files,
    kubelet_client_ca,
)
from syncer_lab.kube import ControlPlane


def test_bootstrap_kubeconfig_authenticates_as_the_bootstrapper(
    control_plane: ControlPlane, api: KubeClient, namespace: str
) -> None:
    files = bootstrap_files(api, namespace, api_server=control_plane.server)
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


def test_the_token_lives_as_long_as_its_secret(api: KubeClient, namespace: str) -> None:
    """Not an hour-long token: the same token every round (hosts' files stay put), and
    deleting its Secret revokes it and makes a new one."""
    first = bootstrap_files(api, namespace, api_server="https://api-int.lab:6443/")
    assert first.server == "https://api-int.lab:6443"
    assert b"https://api-int.lab:6443" in first.kubeconfig
    assert bootstrap_files(api, namespace, api_server="https://api-int.lab:6443").kubeconfig \
        == first.kubeconfig
    api.request("DELETE", f"/api/v1/namespaces/{namespace}/secrets/{TOKEN_SECRET}")
    assert bootstrap_files(api, namespace, api_server="https://api-int.lab:6443").kubeconfig \
        != first.kubeconfig


def test_no_silent_fallback_for_the_kubelet_client_ca(api: KubeClient, namespace: str,
                                                        control_plane: ControlPlane) -> None:
    """OpenShift's kube-apiserver-to-kubelet-client-ca when it exists; the cluster CA only
    where it does not; a ConfigMap syncer may not read is an error, not the wrong CA."""
    ns, name = "openshift-kube-apiserver-operator", "kube-apiserver-to-kubelet-client-ca"
    assert kubelet_client_ca(api, b"CLUSTER") == b"CLUSTER"
    with contextlib.suppress(ApiError):
        api.request("POST", "/api/v1/namespaces", body={
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    with contextlib.suppress(ApiError):
        api.request("POST", f"/api/v1/namespaces/{ns}/configmaps", body={
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
            "data": {"ca-bundle.crt": "KUBELET-CLIENT-CA"}})
    try:
        assert kubelet_client_ca(api, b"CLUSTER") == b"KUBELET-CLIENT-CA"
        sa = control_plane.service_account_client(namespace, "nobody")
        with sa as nobody, pytest.raises(BootstrapError, match="cannot read ConfigMap"):
            kubelet_client_ca(KubeClient(nobody), b"CLUSTER")
    finally:  # the control plane is the session's: other tests run without OpenShift's CA
        api.request("DELETE", f"/api/v1/namespaces/{ns}/configmaps/{name}")

"""RBAC through impersonation and real ServiceAccount tokens (TokenRequest API)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from syncer_lab.kube import ControlPlane, unique_name


def _status(call: Any) -> int:
    try:
        call()
    except ApiException as exc:
        return int(exc.status)
    return 200


def _grant_configmap_reader(kube: client.ApiClient, namespace: str, sa: str) -> None:
    rbac = client.RbacAuthorizationV1Api(kube)
    rbac.create_namespaced_role(
        namespace,
        {
            "metadata": {"name": "cm-reader"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}],
        },
    )
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "cm-reader"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "cm-reader",
            },
            "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": namespace}],
        },
    )


def test_service_account_gets_exactly_what_rbac_grants(
    control_plane: ControlPlane, kube: client.ApiClient, namespace: str
) -> None:
    with control_plane.service_account_client(namespace, "syncer") as sa_api:
        core = client.CoreV1Api(sa_api)
        assert _status(lambda: core.list_namespaced_config_map(namespace)) == 403
        _grant_configmap_reader(kube, namespace, "syncer")
        assert _status(lambda: core.list_namespaced_config_map(namespace)) == 200
        assert _status(lambda: core.list_namespaced_secret(namespace)) == 403
        assert _status(lambda: core.list_namespaced_config_map("kube-system")) == 403
        assert (
            _status(
                lambda: core.create_namespaced_config_map(namespace, {"metadata": {"name": "x"}})
            )
            == 403
        )

        review = client.AuthenticationV1Api(sa_api).create_self_subject_review({})
        assert review.status.user_info.username == f"system:serviceaccount:{namespace}:syncer"
        assert sorted(review.status.user_info.groups) == sorted(
            [
                "system:serviceaccounts",
                f"system:serviceaccounts:{namespace}",
                "system:authenticated",
            ]
        )


def test_impersonated_user_and_groups(control_plane: ControlPlane, kube: client.ApiClient) -> None:
    """Also proves the aggregation stand-in: `view` is an aggregated ClusterRole."""
    client.RbacAuthorizationV1Api(kube).create_cluster_role_binding(
        {
            "metadata": {"name": unique_name("windows-admins-view")},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "view",
            },
            "subjects": [
                {"kind": "Group", "name": "windows-admins", "apiGroup": "rbac.authorization.k8s.io"}
            ],
        }
    )
    with control_plane.impersonate("alice", ["windows-admins", "system:authenticated"]) as alice:
        assert _status(lambda: client.CoreV1Api(alice).list_namespaced_pod("default")) == 200
    with control_plane.impersonate("bob") as bob:
        assert _status(lambda: client.CoreV1Api(bob).list_namespaced_pod("default")) == 403


def _jwt_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def test_token_request_issues_a_working_token(
    control_plane: ControlPlane, kube: client.ApiClient, namespace: str
) -> None:
    control_plane.ensure_service_account(namespace, "syncer")
    resp = client.CoreV1Api(kube).create_namespaced_service_account_token(
        "syncer", namespace, {"spec": {"audiences": [], "expirationSeconds": 3600}}
    )
    claims = _jwt_claims(resp.status.token)
    assert claims["sub"] == f"system:serviceaccount:{namespace}:syncer"
    assert claims["iss"] == control_plane.server

    cfg = control_plane.configuration()
    cfg.cert_file = cfg.key_file = None
    cfg.api_key = {"authorization": resp.status.token}
    cfg.api_key_prefix = {"authorization": "Bearer"}
    with client.ApiClient(cfg) as as_sa:
        review = client.AuthenticationV1Api(as_sa).create_self_subject_review({})
    assert review.status.user_info.username == f"system:serviceaccount:{namespace}:syncer"


def test_kubeconfig_for_a_service_account(
    control_plane: ControlPlane, kube: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    path = control_plane.kubeconfig_for_service_account(
        namespace, "syncer", tmp_path / "kubeconfig"
    )
    _grant_configmap_reader(kube, namespace, "syncer")
    # What a subprocess such as `syncer run --kubeconfig` would do with it.
    with config.new_client_from_config(config_file=str(path)) as api:
        core = client.CoreV1Api(api)
        assert _status(lambda: core.list_namespaced_config_map(namespace)) == 200
        assert _status(lambda: core.list_namespaced_secret(namespace)) == 403
    out = control_plane.kubectl("auth", "whoami", "-o", "json", kubeconfig=path).stdout
    assert (
        json.loads(out)["status"]["userInfo"]["username"]
        == f"system:serviceaccount:{namespace}:syncer"
    )


def test_no_default_service_account_without_the_stand_in(
    control_plane: ControlPlane, kube: client.ApiClient
) -> None:
    """Without kube-controller-manager a bare namespace has no `default` ServiceAccount."""
    core, bare = client.CoreV1Api(kube), unique_name("bare")
    core.create_namespace({"metadata": {"name": bare}})
    with pytest.raises(ApiException) as err:
        core.read_namespaced_service_account("default", bare)
    assert err.value.status == 404
    # ... so the ServiceAccount admission plugin rejects Pods until one exists.
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "pause"}]}}
    assert _status(lambda: core.create_namespaced_pod(bare, pod)) == 403
    control_plane.ensure_service_account(bare)
    assert _status(lambda: core.create_namespaced_pod(bare, pod)) == 200

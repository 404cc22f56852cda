"""Bootstrap files for a new host's kubelet: where the API server is and how to ask for a
certificate.

The node stage uploads three files to a host before it starts the kubelet (the SSH stage
writes them; this module only produces their bytes):

- ``C:\\k\\bootstrap-kubeconfig``: API server URL, its CA (embedded), and a bootstrap
  credential. The kubelet uses it once, to send its client CSR (``--bootstrap-kubeconfig``);
  syncer approves that CSR (:mod:`syncer.nodes.csr`), and from then on the kubelet
  authenticates with its own certificate (``C:\\k\\kubeconfig``).
- ``C:\\k\\bootstrap-ca.crt``: the CA that signed the API server's serving certificate.
- ``C:\\k\\kubelet-ca.crt``: the CA the kubelet trusts for *client* certificates (the
  API server calling the kubelet for logs/exec). On OpenShift that is the
  ``kube-apiserver-to-kubelet-client-ca`` bundle; elsewhere the cluster CA.

**The credential** is a bound ServiceAccount token from the TokenRequest API, for
ServiceAccount ``syncer-node-bootstrapper`` in the fleet namespace, bound to the
ClusterRole ``system:node-bootstrapper`` (create/get/list/watch CSRs, nothing else). It
expires (default one hour, never more than a day, at least the API's 10 minutes), so a
bootstrap file left on a host is useless soon after.

**The URL** is ``spec.nodes.apiServer`` of the Fleet when set — set it on OpenShift
(``https://api-int.<cluster>:6443``): an in-cluster controller's own URL is the
``kubernetes`` Service IP, which a host that is not yet a node cannot reach. Without it,
the controller's own client URL is used (right for the demo and out-of-cluster runs).

RBAC the controller needs for this (also returned by :func:`rbac_objects`): create
``serviceaccounts`` and ``serviceaccounts/token`` in the fleet namespace, create
``clusterrolebindings``, and — because RBAC forbids granting what you do not hold unless
you may ``bind`` it — ``bind`` on ``clusterroles/system:node-bootstrapper``.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ruamel.yaml import YAML

from syncer import names
from syncer.cluster import configmaps
from syncer.cluster.client import ApiError, KubeClient

BOOTSTRAP_KUBECONFIG = r"C:\k\bootstrap-kubeconfig"
BOOTSTRAP_CA = r"C:\k\bootstrap-ca.crt"
KUBELET_CA = r"C:\k\kubelet-ca.crt"

MIN_EXPIRATION = 600  # the API server's minimum for TokenRequest
MAX_EXPIRATION = 86400
DEFAULT_EXPIRATION = 3600

# OpenShift: CA bundle for the API server's client certificate towards kubelets.
OPENSHIFT_KUBELET_CLIENT_CA = (
    "openshift-kube-apiserver-operator",
    "kube-apiserver-to-kubelet-client-ca",
)


@dataclass(frozen=True)
class BootstrapFiles:
    server: str
    kubeconfig: bytes
    bootstrap_ca: bytes
    kubelet_ca: bytes
    expiration_seconds: int

    def files(self) -> dict[str, bytes]:
        """Windows path -> content, for the SSH stage to upload."""
        return {
            BOOTSTRAP_KUBECONFIG: self.kubeconfig,
            BOOTSTRAP_CA: self.bootstrap_ca,
            KUBELET_CA: self.kubelet_ca,
        }


def render_kubeconfig(server: str, ca_pem: bytes, token: str) -> bytes:
    """A kubeconfig with one cluster, one token user, one context (deterministic)."""
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "cluster",
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca_pem).decode("ascii"),
                },
            }
        ],
        "users": [{"name": "kubelet-bootstrap", "user": {"token": token}}],
        "contexts": [
            {
                "name": "kubelet-bootstrap",
                "context": {"cluster": "cluster", "user": "kubelet-bootstrap"},
            }
        ],
        "current-context": "kubelet-bootstrap",
    }
    out = io.StringIO()
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.dump(doc, out)
    return out.getvalue().encode("utf-8")


def rbac_objects(namespace: str) -> list[dict[str, Any]]:
    """The ServiceAccount and ClusterRoleBinding the bootstrap credential needs."""
    sa = names.NODE_BOOTSTRAPPER_SERVICE_ACCOUNT
    labels = {names.LABEL_MANAGED_BY: names.MANAGED_BY_VALUE}
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": sa, "namespace": namespace, "labels": labels},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": f"{sa}-{namespace}", "labels": labels},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": names.NODE_BOOTSTRAPPER_CLUSTER_ROLE,
            },
            "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": namespace}],
        },
    ]


def ensure_bootstrapper(api: KubeClient, namespace: str) -> None:
    """Create the ServiceAccount and its ClusterRoleBinding if missing (idempotent)."""
    sa, binding = rbac_objects(namespace)
    for obj, collection in (
        (sa, f"/api/v1/namespaces/{quote(namespace)}/serviceaccounts"),
        (binding, "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"),
    ):
        try:
            api.request("POST", collection, body=obj)
        except ApiError as err:
            if err.status != 409:
                raise


def request_token(api: KubeClient, namespace: str, expiration_seconds: int) -> str:
    """A bound token for ``syncer-node-bootstrapper`` (TokenRequest API)."""
    path = (
        f"/api/v1/namespaces/{quote(namespace)}/serviceaccounts/"
        f"{names.NODE_BOOTSTRAPPER_SERVICE_ACCOUNT}/token"
    )
    body = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"expirationSeconds": expiration_seconds},
    }
    doc = api.request("POST", path, body=body)
    return str(doc["status"]["token"])


def cluster_ca(api: KubeClient, namespace: str) -> bytes:
    """The CA that verifies the API server: the client's own CA file, else the
    ``kube-root-ca.crt`` ConfigMap every namespace gets."""
    ca_file = getattr(api.api_client.configuration, "ssl_ca_cert", None)
    if ca_file and Path(ca_file).is_file():
        return Path(ca_file).read_bytes()
    ca = (configmaps.read_data(api, namespace, "kube-root-ca.crt") or {}).get("ca.crt")
    if ca:
        return str(ca).encode("utf-8")
    raise ValueError(
        "cannot tell which CA signed the API server: pass ca=, or run with a kubeconfig "
        "that names certificate-authority"
    )


def kubelet_client_ca(api: KubeClient, fallback: bytes) -> bytes:
    """OpenShift's kube-apiserver-to-kubelet client CA bundle, else ``fallback``."""
    ns, name = OPENSHIFT_KUBELET_CLIENT_CA
    try:
        cm = api.request("GET", f"/api/v1/namespaces/{ns}/configmaps/{name}")
    except ApiError as err:
        if err.not_found or err.status == 403:
            return fallback
        raise
    bundle = (cm.get("data") or {}).get("ca-bundle.crt")
    return str(bundle).encode("utf-8") if bundle else fallback


def bootstrap_files(
    api: KubeClient,
    namespace: str,
    *,
    api_server: str | None = None,
    ca: bytes | None = None,
    kubelet_ca: bytes | None = None,
    expiration_seconds: int = DEFAULT_EXPIRATION,
    ensure_service_account: bool = True,
) -> BootstrapFiles:
    """The bootstrap files for one new host (a fresh token each call)."""
    if not MIN_EXPIRATION <= expiration_seconds <= MAX_EXPIRATION:
        raise ValueError(
            f"expiration_seconds must be between {MIN_EXPIRATION} and {MAX_EXPIRATION}"
        )
    server = (api_server or str(api.api_client.configuration.host)).rstrip("/")
    ca_pem = ca if ca is not None else cluster_ca(api, namespace)
    if ensure_service_account:
        ensure_bootstrapper(api, namespace)
    token = request_token(api, namespace, expiration_seconds)
    return BootstrapFiles(
        server=server,
        kubeconfig=render_kubeconfig(server, ca_pem, token),
        bootstrap_ca=ca_pem,
        kubelet_ca=kubelet_ca if kubelet_ca is not None else kubelet_client_ca(api, ca_pem),
        expiration_seconds=expiration_seconds,
    )

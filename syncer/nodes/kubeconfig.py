"""Bootstrap files for a host's kubelet: where the API server is and how to ask for a
certificate.

The node stage writes three files on every host (the configure flow uploads them; this
module only produces their bytes) and keeps them current every round:

- ``C:\\k\\bootstrap-kubeconfig``: API server URL, its CA (embedded), and a bootstrap
  credential. The kubelet uses it to send its client CSR (``--bootstrap-kubeconfig``)
  whenever it has no valid client certificate: on its first start, and again if its
  certificate is ever lost or expires. syncer approves that CSR (:mod:`syncer.nodes.csr`);
  from then on the kubelet authenticates with its own certificate (``C:\\k\\kubeconfig``).
- ``C:\\k\\bootstrap-ca.crt``: the CA bundle that verifies the API server (also
  hybrid-overlay's ``--k8s-cacert``).
- ``C:\\k\\kubelet-ca.crt``: the CA the kubelet trusts for *client* certificates (the
  API server calling the kubelet for logs/exec). On OpenShift that is the
  ``kube-apiserver-to-kubelet-client-ca`` bundle, read every round so a signer rotation
  reaches every node (WMCO refreshes it on every ControllerConfig change); a cluster
  without that ConfigMap (not OpenShift) signs with its cluster CA. A ConfigMap syncer
  may not read is an error, never a silent fallback to the wrong CA.

**The credential** is a long-lived token of ServiceAccount ``syncer-node-bootstrapper``
in the fleet namespace, kept in the Secret ``syncer-node-bootstrapper-token`` (type
``kubernetes.io/service-account-token``; the cluster's token controller fills in the
token and the CA bundle, like MCO's ``node-bootstrapper-token`` that WMCO uses). A
kubelet that has to re-bootstrap a year later still can. The ServiceAccount is bound to
the ClusterRole ``system:node-bootstrapper`` (create/get/list/watch CSRs, nothing
else), and syncer approves a first client CSR only when this ServiceAccount filed it.
Deleting the Secret revokes the token; the next round creates a new one and rewrites
every host's bootstrap kubeconfig.

**The URL** comes from :mod:`syncer.nodes.clusterinfo` (``Infrastructure``
``apiServerInternalURI`` or the Fleet's ``apiServer``): never the controller's own.

The ServiceAccount, its binding and its token Secret come with the controller's
manifests (``manifests/base/node-bootstrapper.yaml``), so the controller itself only reads the
Secret. Run with more rights (``syncer sync --once`` as an administrator), syncer creates
them when missing (:func:`rbac_objects`).
"""

from __future__ import annotations

import base64
import io
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from ruamel.yaml import YAML

from syncer import names
from syncer.cluster.client import ApiError, KubeClient

BOOTSTRAP_KUBECONFIG = r"C:\k\bootstrap-kubeconfig"
BOOTSTRAP_CA = r"C:\k\bootstrap-ca.crt"
KUBELET_CA = r"C:\k\kubelet-ca.crt"
TOKEN_SECRET = names.NODE_BOOTSTRAPPER_SERVICE_ACCOUNT + "-token"
TOKEN_WAIT = 30.0  # how long to wait for the token controller to fill a new Secret

# OpenShift: CA bundle for the API server's client certificate towards kubelets.
OPENSHIFT_KUBELET_CLIENT_CA = (
    "openshift-kube-apiserver-operator",
    "kube-apiserver-to-kubelet-client-ca",
)


class BootstrapError(Exception):
    """The bootstrap files cannot be made; the message says why."""


@dataclass(frozen=True)
class BootstrapFiles:
    server: str
    kubeconfig: bytes
    bootstrap_ca: bytes
    kubelet_ca: bytes

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
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/service-account-token",
            "metadata": {"name": TOKEN_SECRET, "namespace": namespace, "labels": labels,
                         "annotations": {"kubernetes.io/service-account.name": sa}},
        },
    ]


def ensure_bootstrapper(api: KubeClient, namespace: str) -> None:
    """Create the ServiceAccount, its ClusterRoleBinding and its token Secret if missing
    (idempotent)."""
    sa, binding, secret = rbac_objects(namespace)
    for obj, collection in (
        (sa, f"/api/v1/namespaces/{quote(namespace)}/serviceaccounts"),
        (binding, "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"),
        (secret, f"/api/v1/namespaces/{quote(namespace)}/secrets"),
    ):
        try:
            api.request("POST", collection, body=obj)
        except ApiError as err:
            if err.status != 409:
                raise


def read_token(api: KubeClient, namespace: str, wait: float = TOKEN_WAIT
               ) -> tuple[str, bytes] | None:
    """(token, CA bundle) from the token Secret, waiting (bounded) for the cluster's token
    controller to fill a new one; None when the Secret does not exist."""
    path = f"/api/v1/namespaces/{quote(namespace)}/secrets/{TOKEN_SECRET}"
    deadline = time.monotonic() + wait
    while True:
        try:
            data = (api.request("GET", path).get("data") or {})
        except ApiError as err:
            if err.not_found:
                return None
            raise BootstrapError(f"cannot read Secret {namespace}/{TOKEN_SECRET}: {err}") from None
        if data.get("token") and data.get("ca.crt"):
            return (base64.b64decode(data["token"]).decode("ascii"),
                    base64.b64decode(data["ca.crt"]))
        if time.monotonic() > deadline:
            raise BootstrapError(
                f"Secret {namespace}/{TOKEN_SECRET} has no token after {wait:.0f}s: is the "
                "cluster's token controller (kube-controller-manager) running?")
        time.sleep(0.2)


def kubelet_client_ca(api: KubeClient, cluster_ca: bytes) -> bytes:
    """OpenShift's kube-apiserver-to-kubelet client CA bundle; ``cluster_ca`` where that
    ConfigMap does not exist (the cluster CA signs the API server's client certificate
    then). Any other failure is a BootstrapError: the wrong CA would break logs/exec."""
    ns, name = OPENSHIFT_KUBELET_CLIENT_CA
    try:
        cm = api.request("GET", f"/api/v1/namespaces/{ns}/configmaps/{name}")
    except ApiError as err:
        if err.not_found:
            return cluster_ca
        raise BootstrapError(f"cannot read ConfigMap {ns}/{name} (the CA kubelets must "
                             f"trust for the API server's client certificate): {err}") from None
    bundle = (cm.get("data") or {}).get("ca-bundle.crt")
    if not bundle:
        raise BootstrapError(f"ConfigMap {ns}/{name} has no ca-bundle.crt")
    return str(bundle).encode("utf-8")


def bootstrap_files(api: KubeClient, namespace: str, *, api_server: str) -> BootstrapFiles:
    """The bootstrap files for the hosts of one round (the bootstrapper is created the
    first time; later rounds only read). Raises BootstrapError."""
    found = read_token(api, namespace)
    if found is None:
        try:
            ensure_bootstrapper(api, namespace)
        except ApiError as err:
            raise BootstrapError(f"cannot create the node bootstrapper: {err}") from None
        found = read_token(api, namespace)
        if found is None:
            raise BootstrapError(f"Secret {namespace}/{TOKEN_SECRET} disappeared")
    token, ca_pem = found
    server = api_server.rstrip("/")
    return BootstrapFiles(
        server=server,
        kubeconfig=render_kubeconfig(server, ca_pem, token),
        bootstrap_ca=ca_pem,
        kubelet_ca=kubelet_client_ca(api, ca_pem),
    )

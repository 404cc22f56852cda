"""Stand-in for kube-controller-manager's ServiceAccount tokens controller (test control
plane only).

A Secret of type ``kubernetes.io/service-account-token`` whose annotation
``kubernetes.io/service-account.name`` names an existing ServiceAccount gets, from the
real controller (``pkg/controller/serviceaccount/tokens_controller.go``), a legacy token
and the cluster CA bundle: ``data.token``, ``data.ca.crt`` and ``data.namespace``. The
token is a JWT signed with the service-account signing key, issuer
``kubernetes/serviceaccount`` and the legacy claims of ``pkg/serviceaccount/legacy.go``
(namespace, secret name, ServiceAccount name and UID; ``sub`` =
``system:serviceaccount:<ns>:<name>``). The API server validates it with its
``--service-account-key-file`` and looks the Secret up, so deleting the Secret revokes
the token, as on a real cluster.

Polls every ``interval`` seconds (a list across namespaces), which is enough for tests.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from kubernetes import client
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)

TOKEN_TYPE = "kubernetes.io/service-account-token"
SA_NAME = "kubernetes.io/service-account.name"
LEGACY_ISSUER = "kubernetes/serviceaccount"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def legacy_token(key: ec.EllipticCurvePrivateKey, namespace: str, secret: str, sa: str,
                 uid: str) -> str:
    """A legacy ServiceAccount token (ES256, as the API server's key is P-256)."""
    header = {"alg": "ES256", "kid": ""}
    claims = {
        "iss": LEGACY_ISSUER,
        "sub": f"system:serviceaccount:{namespace}:{sa}",
        "kubernetes.io/serviceaccount/namespace": namespace,
        "kubernetes.io/serviceaccount/secret.name": secret,
        "kubernetes.io/serviceaccount/service-account.name": sa,
        "kubernetes.io/serviceaccount/service-account.uid": uid,
    }
    signing_input = (_b64url(json.dumps(header, separators=(",", ":")).encode()) + "." +
                     _b64url(json.dumps(claims, separators=(",", ":")).encode()))
    der = key.sign(signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    size = (key.curve.key_size + 7) // 8
    return signing_input + "." + _b64url(r.to_bytes(size, "big") + s.to_bytes(size, "big"))


class TokensController:
    """Fills ServiceAccount token Secrets (see the module docstring)."""

    def __init__(self, api_client: client.ApiClient, signing_key_pem: bytes, ca_pem: bytes,
                 *, interval: float = 0.2) -> None:
        self._core = client.CoreV1Api(api_client)
        loaded = serialization.load_pem_private_key(signing_key_pem, password=None)
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise TypeError("the service-account signing key must be an EC key")
        self._key = loaded
        self._ca = ca_pem
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.filled: list[str] = []  # namespace/name of every Secret filled

    def start(self) -> TokensController:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="tokens-controller",
                                            daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._sync()
            except Exception:  # the API server may be stopping; try again
                log.debug("tokens controller: sync failed", exc_info=True)

    def _sync(self) -> None:
        secrets: Any = self._core.list_secret_for_all_namespaces(
            field_selector=f"type={TOKEN_TYPE}", _request_timeout=5)
        for secret in secrets.items:
            if (secret.data or {}).get("token"):
                continue
            self._fill(secret)

    def _fill(self, secret: Any) -> None:
        meta = secret.metadata
        sa_name = (meta.annotations or {}).get(SA_NAME)
        if not sa_name:
            return
        try:
            sa: Any = self._core.read_namespaced_service_account(sa_name, meta.namespace)
        except ApiException as err:
            if err.status == 404:
                return  # the real controller deletes such Secrets; leave it
            raise
        token = legacy_token(self._key, meta.namespace, meta.name, sa_name, sa.metadata.uid)
        data = {"token": token.encode(), "ca.crt": self._ca, "namespace": meta.namespace.encode()}
        body: Any = {
            "metadata": {"annotations": {"kubernetes.io/service-account.uid": sa.metadata.uid},
                         "resourceVersion": meta.resource_version},
            "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
        }
        try:
            self._core.patch_namespaced_secret(meta.name, meta.namespace, body)
        except ApiException as err:
            if err.status != 409:
                raise
            return
        self.filled.append(f"{meta.namespace}/{meta.name}")

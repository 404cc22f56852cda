"""Stand-in for kube-controller-manager's CSR signing controller (test control plane only).

The test control plane runs no kube-controller-manager, so nothing would ever issue a
certificate for an approved CertificateSigningRequest. :class:`CSRSigner` does what
kube-controller-manager's ``csrsigning`` controller does for the two kubelet signers:

- ``kubernetes.io/kube-apiserver-client-kubelet`` (a kubelet's client certificate), and
- ``kubernetes.io/kubelet-serving`` (a kubelet's serving certificate).

and for ``kubernetes.io/kube-apiserver-client`` (any client certificate; here the
per-node certificates of hybrid-overlay and ovnkube-node).

It watches CSRs; for each one that is *approved* (and neither denied nor failed) and has
no certificate yet, it checks the request against the signer's rules (kubelet signers:
organization ``system:nodes``, common name ``system:node:<name>``; every signer: allowed
usages, SANs), then writes
``status.certificate`` signed by the cluster CA, or a ``Failed`` condition with reason
``SignerValidationFailure`` when the request breaks a rule — the same outcomes a real
cluster shows. Approval is not its job: that is what syncer (or a test) does.

Certificates last ``spec.expirationSeconds`` (at least 10 minutes) or one year, never
longer than the CA, and are backdated five minutes, like the real signer.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import threading
from collections.abc import Mapping
from typing import Any, cast

from cryptography import x509
from cryptography.x509.oid import NameOID
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from syncer_lab.pki import CertificateAuthority, cert_pem

log = logging.getLogger(__name__)

KUBELET_CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
KUBELET_SERVING_SIGNER = "kubernetes.io/kubelet-serving"
KUBE_APISERVER_CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client"

# Usages each signer accepts, and the one it requires (certificates/v1 helpers).
_ALLOWED_USAGES = {
    KUBELET_CLIENT_SIGNER: {"key encipherment", "digital signature", "client auth"},
    KUBELET_SERVING_SIGNER: {"key encipherment", "digital signature", "server auth"},
    KUBE_APISERVER_CLIENT_SIGNER: {"key encipherment", "digital signature", "client auth"},
}
_REQUIRED_USAGE = {KUBELET_CLIENT_SIGNER: "client auth", KUBELET_SERVING_SIGNER: "server auth",
                   KUBE_APISERVER_CLIENT_SIGNER: "client auth"}
DEFAULT_DURATION = dt.timedelta(days=365)
MIN_DURATION = dt.timedelta(minutes=10)


class SignerValidationError(ValueError):
    """The CSR does not meet its signer's rules."""


def _conditions(csr: Mapping[str, Any]) -> dict[str, str]:
    return {
        c.get("type", ""): c.get("status", "True")
        for c in (csr.get("status") or {}).get("conditions") or []
    }


def _subject_alt_names(req: x509.CertificateSigningRequest) -> list[x509.GeneralName]:
    """The request's SANs; none when it has no SAN extension (a kubelet client CSR).

    A list, never an empty ``SubjectAlternativeName``: the extension must hold at least
    one name (RFC 5280 4.2.1.6), and cryptography 51 refuses to build an empty one.
    """
    try:
        return list(req.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        return []


def validate(csr_obj: Mapping[str, Any], req: x509.CertificateSigningRequest) -> None:
    """Raise :class:`SignerValidationError` when ``req`` breaks its signer's rules."""
    spec = csr_obj["spec"]
    signer = spec["signerName"]
    orgs = [a.value for a in req.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    cns = [a.value for a in req.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if signer == KUBE_APISERVER_CLIENT_SIGNER:
        usages = set(spec.get("usages") or [])
        if not usages <= _ALLOWED_USAGES[signer] or "client auth" not in usages:
            raise SignerValidationError(f"usages {sorted(usages)} not allowed for {signer}")
        if list(_subject_alt_names(req)):
            raise SignerValidationError("client certificates must not have SANs")
        return
    if orgs != ["system:nodes"]:
        raise SignerValidationError(f"subject organization is not system:nodes: {orgs}")
    if len(cns) != 1 or not str(cns[0]).startswith("system:node:"):
        raise SignerValidationError(
            f'subject common name does not begin with "system:node:": {cns}'
        )
    usages = set(spec.get("usages") or [])
    if not usages <= _ALLOWED_USAGES[signer] or _REQUIRED_USAGE[signer] not in usages:
        raise SignerValidationError(
            f"usages {sorted(usages)} not allowed for {signer}; "
            f"allowed {sorted(_ALLOWED_USAGES[signer])}, must include {_REQUIRED_USAGE[signer]}"
        )
    san = _subject_alt_names(req)
    dns = [n.value for n in san if isinstance(n, x509.DNSName)]
    ips = [n.value for n in san if isinstance(n, x509.IPAddress)]
    others = [n for n in san if not isinstance(n, x509.DNSName | x509.IPAddress)]
    if signer == KUBELET_CLIENT_SIGNER and (dns or ips or others):
        raise SignerValidationError("kubelet client certificates must not have SANs")
    if signer == KUBELET_SERVING_SIGNER:
        if others:
            raise SignerValidationError("only DNS and IP SANs are allowed")
        if not dns and not ips:
            raise SignerValidationError("at least one DNS or IP SAN is required")


def sign(ca: CertificateAuthority, csr_obj: Mapping[str, Any]) -> bytes:
    """Validate and sign one CSR object; returns the PEM certificate."""
    req = x509.load_pem_x509_csr(base64.b64decode(csr_obj["spec"]["request"]))
    if not req.is_signature_valid:
        raise SignerValidationError("CSR signature is invalid")
    validate(csr_obj, req)
    duration = DEFAULT_DURATION
    if seconds := csr_obj["spec"].get("expirationSeconds"):
        duration = min(duration, max(MIN_DURATION, dt.timedelta(seconds=int(seconds))))
    usages = set(csr_obj["spec"].get("usages") or [])
    san = _subject_alt_names(req)
    cert = ca.sign(
        req.subject,
        req.public_key(),
        client="client auth" in usages,
        server="server auth" in usages,
        dns_names=[n.value for n in san if isinstance(n, x509.DNSName)],
        ip_addresses=[n.value for n in san if isinstance(n, x509.IPAddress)],
        validity=duration,
        digital_signature="digital signature" in usages,
        key_encipherment="key encipherment" in usages,
    )
    return cert_pem(cert)


class CSRSigner:
    """A background thread that signs approved kubelet CSRs with the cluster CA."""

    def __init__(self, api_client: client.ApiClient, ca: CertificateAuthority) -> None:
        self._api = client.CertificatesV1Api(api_client)
        self._ca = ca
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.signed: list[str] = []  # names of CSRs this signer issued, in order
        self.failed: list[str] = []  # names it marked Failed

    def start(self) -> CSRSigner:
        """Start the watch thread (idempotent)."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="csr-signer", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the watch thread and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._list_and_watch()
            except Exception:  # the API server may be stopping; retry until told to stop
                if self._stop.wait(0.5):
                    return
                log.debug("csr signer: watch failed, retrying", exc_info=True)

    def _list_and_watch(self) -> None:
        api_client: Any = self._api.api_client
        listing = api_client.sanitize_for_serialization(
            self._api.list_certificate_signing_request()
        )
        for item in listing["items"]:
            self._handle(item)
        rv = listing["metadata"]["resourceVersion"]
        while not self._stop.is_set():
            w: Any = watch.Watch()  # type: ignore[no-untyped-call]
            try:
                for event in w.stream(
                    self._api.list_certificate_signing_request,
                    resource_version=rv,
                    timeout_seconds=1,
                    allow_watch_bookmarks=True,
                    _request_timeout=5,
                ):
                    raw = event["raw_object"]
                    rv = raw["metadata"]["resourceVersion"]
                    if event["type"] in ("ADDED", "MODIFIED"):
                        self._handle(raw)
                    if self._stop.is_set():
                        break
            except ApiException as exc:
                if exc.status == 410:  # resource version too old: list again
                    return
                raise
            finally:
                w.stop()

    def _handle(self, csr: dict[str, Any]) -> None:
        spec = csr.get("spec") or {}
        name = csr["metadata"]["name"]
        if spec.get("signerName") not in _ALLOWED_USAGES:
            return
        conditions = _conditions(csr)
        if conditions.get("Approved") != "True" or "Denied" in conditions or "Failed" in conditions:
            return
        if (csr.get("status") or {}).get("certificate"):
            return
        status = dict(csr.get("status") or {})
        try:
            pem = sign(self._ca, csr)
            status["certificate"] = base64.b64encode(pem).decode()
            outcome = self.signed
        except (SignerValidationError, ValueError) as exc:
            now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            status["conditions"] = [
                *status.get("conditions", []),
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "SignerValidationFailure",
                    "message": str(exc),
                    "lastUpdateTime": now,
                    "lastTransitionTime": now,
                },
            ]
            outcome = self.failed
        body = {**csr, "status": status}
        try:
            self._api.replace_certificate_signing_request_status(name, cast(Any, body))
        except ApiException as exc:
            if exc.status in (404, 409):  # deleted or changed meanwhile; the watch brings it back
                return
            raise
        outcome.append(name)
        log.info("csr signer: %s %s", "signed" if outcome is self.signed else "failed", name)

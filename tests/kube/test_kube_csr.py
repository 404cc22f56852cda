"""CSRs: create, approve through the approval subresource, signed by the signer stand-in.

The CSR signer is the stand-in for kube-controller-manager's csrsigning controller
(see syncer_lab/csr_signer.py); approving is what syncer (like WMCO) does.
"""

from __future__ import annotations

import base64
import ipaddress
import time
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from kubernetes import client
from kubernetes.client.rest import ApiException

from syncer_lab.csr_signer import KUBELET_CLIENT_SIGNER, KUBELET_SERVING_SIGNER
from syncer_lab.kube import ControlPlane, unique_name


def _csr_pem(
    key: ec.EllipticCurvePrivateKey, cn: str, sans: list[x509.GeneralName] | None = None
) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
                x509.NameAttribute(NameOID.COMMON_NAME, cn),
            ]
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def _create(kube: client.ApiClient, name: str, pem: bytes, signer: str, usages: list[str]) -> None:
    client.CertificatesV1Api(kube).create_certificate_signing_request(
        {
            "metadata": {"name": name},
            "spec": {
                "request": base64.b64encode(pem).decode(),
                "signerName": signer,
                "usages": usages,
                "expirationSeconds": 3600,
            },
        }
    )


def _decide(kube: client.ApiClient, name: str, decision: str) -> None:
    certs = client.CertificatesV1Api(kube)
    csr = certs.read_certificate_signing_request(name)
    csr.status.conditions = [
        client.V1CertificateSigningRequestCondition(
            type=decision, status="True", reason="SyncerTest", message=f"{decision} by test"
        )
    ]
    certs.replace_certificate_signing_request_approval(name, csr)


def _wait(kube: client.ApiClient, name: str, done: Any, timeout: float = 15) -> Any:
    certs = client.CertificatesV1Api(kube)
    deadline = time.monotonic() + timeout
    while True:
        csr = certs.read_certificate_signing_request(name)
        if done(csr):
            return csr
        assert time.monotonic() < deadline, f"CSR {name} not done: {csr.status}"
        time.sleep(0.1)


def _signed(csr: Any) -> bool:
    return bool(csr.status.certificate)


def test_approved_kubelet_client_csr_is_signed_and_authenticates_as_the_node(
    control_plane: ControlPlane, kube: client.ApiClient, tmp_path: Any
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    node, other, csr_name = unique_name("win"), unique_name("win"), unique_name("node-client")
    _create(
        kube,
        csr_name,
        _csr_pem(key, f"system:node:{node}"),
        KUBELET_CLIENT_SIGNER,
        ["digital signature", "client auth"],
    )
    time.sleep(0.3)
    pending = client.CertificatesV1Api(kube).read_certificate_signing_request(csr_name)
    assert not pending.status.certificate  # nothing signs before approval

    _decide(kube, csr_name, "Approved")
    csr = _wait(kube, csr_name, _signed)
    cert = x509.load_pem_x509_certificate(base64.b64decode(csr.status.certificate))
    ca = x509.load_pem_x509_certificate(control_plane.ca_cert_path.read_bytes())
    cert.verify_directly_issued_by(ca)
    assert cert.subject.rfc4514_string() == f"CN=system:node:{node},O=system:nodes"
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert 3600 <= lifetime.total_seconds() <= 3600 + 600  # expirationSeconds + backdating

    # The certificate works: the API server's Node authorizer and NodeRestriction apply.
    (tmp_path / "node.crt").write_bytes(base64.b64decode(csr.status.certificate))
    (tmp_path / "node.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cfg = control_plane.configuration()
    cfg.cert_file, cfg.key_file = str(tmp_path / "node.crt"), str(tmp_path / "node.key")
    with client.ApiClient(cfg) as as_node:
        core = client.CoreV1Api(as_node)
        core.create_node({"metadata": {"name": node, "labels": {"kubernetes.io/os": "windows"}}})
        client.CoreV1Api(kube).create_node({"metadata": {"name": other}})
        with pytest.raises(ApiException) as err:
            core.patch_node(other, {"metadata": {"labels": {"stolen": "yes"}}})
        assert err.value.status == 403
        with pytest.raises(ApiException) as err:
            core.list_secret_for_all_namespaces()
        assert err.value.status == 403


def test_kubelet_serving_csr_keeps_its_sans(kube: client.ApiClient) -> None:
    serving, node = unique_name("node-serving"), unique_name("win")
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [
        x509.DNSName(f"{node}.example.internal"),
        x509.IPAddress(ipaddress.ip_address("10.0.128.7")),
    ]
    _create(
        kube,
        serving,
        _csr_pem(key, f"system:node:{node}", sans),
        KUBELET_SERVING_SIGNER,
        ["digital signature", "server auth"],
    )
    _decide(kube, serving, "Approved")
    csr = _wait(kube, serving, _signed)
    cert = x509.load_pem_x509_certificate(base64.b64decode(csr.status.certificate))
    got = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert got.get_values_for_type(x509.DNSName) == [f"{node}.example.internal"]
    assert [str(ip) for ip in got.get_values_for_type(x509.IPAddress)] == ["10.0.128.7"]


def test_csr_breaking_the_signer_rules_fails(kube: client.ApiClient) -> None:
    bad = unique_name("node-serving-bad")
    key = ec.generate_private_key(ec.SECP256R1())
    # A serving CSR without any SAN: a real signer refuses it the same way.
    _create(
        kube,
        bad,
        _csr_pem(key, f"system:node:{unique_name('win')}"),
        KUBELET_SERVING_SIGNER,
        ["digital signature", "server auth"],
    )
    _decide(kube, bad, "Approved")
    csr = _wait(
        kube,
        bad,
        lambda c: any(x.type == "Failed" for x in c.status.conditions or []),
    )
    failed = next(x for x in csr.status.conditions if x.type == "Failed")
    assert failed.reason == "SignerValidationFailure"
    assert not csr.status.certificate


def test_denied_csr_is_never_signed(control_plane: ControlPlane, kube: client.ApiClient) -> None:
    denied = unique_name("node-client-denied")
    key = ec.generate_private_key(ec.SECP256R1())
    _create(
        kube,
        denied,
        _csr_pem(key, f"system:node:{unique_name('win')}"),
        KUBELET_CLIENT_SIGNER,
        ["digital signature", "client auth"],
    )
    _decide(kube, denied, "Denied")
    time.sleep(0.5)
    csr = client.CertificatesV1Api(kube).read_certificate_signing_request(denied)
    assert not csr.status.certificate
    signer = control_plane.csr_signer
    assert signer is not None and denied not in signer.signed


def test_the_ovn_kubernetes_stand_in_judges_only_ovn_node_csrs(
        control_plane: ControlPlane, kube: client.ApiClient) -> None:
    """ovn-kubernetes' approver (go-controller/pkg/csrapprover/approver.go) denies an
    ovn-node CSR that a user other than the node asked for, and ignores other names."""
    ovnk = control_plane.start_ovn_kubernetes()
    key = ec.generate_private_key(ec.SECP256R1())
    ovn, other = unique_name("ovn-node"), unique_name("not-ovn")
    pem = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:ovn-nodes"),
        x509.NameAttribute(NameOID.COMMON_NAME, "system:ovn-node:win-a"),
    ])).sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
    usages = ["digital signature", "client auth"]
    _create(kube, ovn, pem, "kubernetes.io/kube-apiserver-client", usages)
    _create(kube, other, _csr_pem(key, "someone"), "kubernetes.io/kube-apiserver-client", usages)
    certs = client.CertificatesV1Api(kube)
    deadline = time.monotonic() + 20
    while ovn not in ovnk.denied and time.monotonic() < deadline:
        time.sleep(0.1)
    [condition] = certs.read_certificate_signing_request(ovn).status.conditions
    assert condition.type == "Denied" and "created by an unexpected user" in condition.message
    assert certs.read_certificate_signing_request(other).status.conditions is None
    assert other not in ovnk.denied and other not in ovnk.approved

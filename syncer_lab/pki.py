"""Certificates for the test control plane, made with ``cryptography``.

A control plane needs one cluster CA (it signs the API server's serving certificate, the
admin's client certificate and, through the CSR signer stand-in, kubelet certificates),
and a key pair for ServiceAccount tokens. All keys are ECDSA P-256: generating one takes
well under a millisecond, so a fresh PKI per control plane costs nothing at start-up.

Only what the harness needs is here; it is not a general-purpose CA.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Validity of certificates the harness issues; tests never run that long.
DEFAULT_VALIDITY = dt.timedelta(days=365)
# Like kube-controller-manager's signer: backdate so clock skew does not bite.
BACKDATE = dt.timedelta(minutes=5)

# What an x509 IPAddress name holds (a CSR may even carry a network).
IPAddress = (
    ipaddress.IPv4Address | ipaddress.IPv6Address | ipaddress.IPv4Network | ipaddress.IPv6Network
)


def new_key() -> ec.EllipticCurvePrivateKey:
    """A fresh ECDSA P-256 private key."""
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """The private key as unencrypted PKCS#8 PEM."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """The public half of ``key`` as SubjectPublicKeyInfo PEM."""
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def cert_pem(cert: x509.Certificate) -> bytes:
    """The certificate as PEM."""
    return cert.public_bytes(serialization.Encoding.PEM)


def csr_object(name: str, common_name: str, organization: str, signer: str,
               usages: Sequence[str], *, sans: Sequence[x509.GeneralName] = (),
               expiration_seconds: int | None = None
               ) -> tuple[ec.EllipticCurvePrivateKey, Any]:
    """A fresh key and the ``certificates.k8s.io/v1`` CertificateSigningRequest ``name``
    asking for a certificate of it, as the kubelet's and hybrid-overlay's certificate
    managers send one (subject ``O=<organization>, CN=<common_name>``). The object is its
    JSON form, which the kubernetes client accepts where its stubs name a model class."""
    key = new_key()
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        _name(common_name, [organization]))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)),
                                        critical=False)
    request = builder.sign(key, hashes.SHA256())
    spec: dict[str, Any] = {
        "request": base64.b64encode(request.public_bytes(serialization.Encoding.PEM)).decode(),
        "signerName": signer,
        "usages": list(usages),
    }
    if expiration_seconds is not None:
        spec["expirationSeconds"] = expiration_seconds
    return key, {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
                 "metadata": {"name": name}, "spec": spec}


def _name(common_name: str, organizations: Iterable[str] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _key_usage(
    *, digital_signature: bool, key_encipherment: bool = False, cert_sign: bool = False
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


@dataclass(frozen=True)
class CertificateAuthority:
    """A self-signed CA and its key."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def create(cls, common_name: str) -> CertificateAuthority:
        """A new self-signed CA valid for :data:`DEFAULT_VALIDITY`."""
        key = new_key()
        now = _now()
        name = _name(common_name)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + DEFAULT_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_key_usage(digital_signature=True, cert_sign=True), critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        return cls(key=key, cert=cert)

    def sign(
        self,
        subject: x509.Name,
        public_key: CertificatePublicKeyTypes,
        *,
        client: bool = False,
        server: bool = False,
        dns_names: Sequence[str] = (),
        ip_addresses: Sequence[IPAddress] = (),
        validity: dt.timedelta = DEFAULT_VALIDITY,
        digital_signature: bool = True,
        key_encipherment: bool = True,
    ) -> x509.Certificate:
        """Issue a leaf certificate for ``public_key``.

        ``client``/``server`` select the extended key usages (TLS client and/or server
        authentication), ``digital_signature``/``key_encipherment`` the key usages. The
        certificate never outlives the CA.
        """
        now = _now()
        not_after = min(now + validity, self.cert.not_valid_after_utc)
        usages = []
        if client:
            usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        if server:
            usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                _key_usage(
                    digital_signature=digital_signature, key_encipherment=key_encipherment
                ),
                critical=True,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        if usages:
            builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
        sans += [x509.IPAddress(ip) for ip in ip_addresses]
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return builder.sign(self.key, hashes.SHA256())

    def issue(
        self,
        common_name: str,
        organizations: Sequence[str] = (),
        *,
        client: bool = False,
        server: bool = False,
        dns_names: Sequence[str] = (),
        ip_addresses: Sequence[IPAddress] = (),
    ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        """A new key and a certificate for it, signed by this CA."""
        key = new_key()
        cert = self.sign(
            _name(common_name, organizations),
            key.public_key(),
            client=client,
            server=server,
            dns_names=dns_names,
            ip_addresses=ip_addresses,
        )
        return key, cert


def write_key_and_cert(
    directory: Path,
    stem: str,
    key: ec.EllipticCurvePrivateKey,
    cert: x509.Certificate,
) -> tuple[Path, Path]:
    """Write ``<stem>.key`` (mode 0600) and ``<stem>.crt`` into ``directory``."""
    key_path = directory / f"{stem}.key"
    cert_path = directory / f"{stem}.crt"
    key_path.touch(mode=0o600)
    key_path.write_bytes(key_pem(key))
    cert_path.write_bytes(cert_pem(cert))
    return key_path, cert_path

"""The SSH private key that reaches every Windows host (Secret ``cloud-private-key``).

WMCO's contract: key ``private-key.pem`` of Secret ``cloud-private-key`` in the fleet
(WMCO) namespace holds an RSA, ECDSA or Ed25519 private key, in PEM (PKCS#1, SEC1,
PKCS#8) or OpenSSH format, unencrypted. Hosts authorise its public half.

:func:`parse_private_key` loads any of those with ``cryptography`` and hands paramiko the
OpenSSH form, which every paramiko key class reads (paramiko's Ed25519 class reads no
other). :class:`PrivateKey` also carries the public key in ``authorized_keys`` form
(``<type> <base64>``, no comment, no newline) and WMCO's ``pub-key-hash``: the sha256 hex
of exactly that string, so a Node WMCO configured and one syncer configured agree.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from syncer.nodes.windows.sshlib import paramiko


class PrivateKeyError(ValueError):
    """The Secret does not hold a usable private key (message says why, no key material)."""


@dataclass(frozen=True)
class PrivateKey:
    """A loaded private key: the paramiko key to authenticate with, its public half."""

    pkey: paramiko.PKey
    public_key: str  # authorized_keys form: "<type> <base64>", no newline
    key_type: str  # "ssh-rsa", "ecdsa-sha2-nistp256", "ssh-ed25519", ...
    # The key's bytes exactly as stored: WMCO's passphrase for the username annotation.
    secret: bytes = field(default=b"", repr=False, compare=False)

    @property
    def pub_key_hash(self) -> str:
        """WMCO's ``pub-key-hash`` annotation value."""
        return pub_key_hash(self.public_key)

    @property
    def fingerprint(self) -> str:
        """OpenSSH SHA256 fingerprint of the public key, for messages."""
        return str(self.pkey.fingerprint)


def pub_key_hash(authorized_key: str) -> str:
    """sha256 hex of ``<type> <base64>`` (WMCO trims the trailing newline; so do we, and
    a trailing comment is dropped because WMCO hashes the marshalled key, which has none).
    """
    parts = authorized_key.strip().split()
    canonical = " ".join(parts[:2])
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def parse_private_key(data: bytes | str) -> PrivateKey:
    """Load an RSA/ECDSA/Ed25519 key in PEM or OpenSSH format. Raises :class:`PrivateKeyError`."""
    raw = data.encode() if isinstance(data, str) else data
    raw = raw.strip() + b"\n"
    key: object
    try:
        if b"-----BEGIN OPENSSH PRIVATE KEY-----" in raw:
            key = serialization.load_ssh_private_key(raw, password=None)
        else:
            key = serialization.load_pem_private_key(raw, password=None)
    except TypeError as err:  # encrypted key, no password
        raise PrivateKeyError(
            f"the private key is encrypted; syncer needs it unencrypted ({err})"
        ) from None
    except (ValueError, UnsupportedAlgorithm) as err:
        raise PrivateKeyError(f"not a PEM or OpenSSH private key: {err}") from None

    cls: type[paramiko.PKey]
    if isinstance(key, rsa.RSAPrivateKey):
        cls = paramiko.RSAKey
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        cls = paramiko.ECDSAKey
    elif isinstance(key, ed25519.Ed25519PrivateKey):
        cls = paramiko.Ed25519Key
    else:
        raise PrivateKeyError(
            f"unsupported key type {type(key).__name__}: use RSA, ECDSA or Ed25519"
        )
    openssh = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode("ascii")
    pkey = cls.from_private_key(io.StringIO(openssh))
    public = f"{pkey.get_name()} {pkey.get_base64()}"
    return PrivateKey(pkey=pkey, public_key=public, key_type=pkey.get_name(),
                      secret=data.encode() if isinstance(data, str) else data)

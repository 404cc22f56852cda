"""The username annotation in WMCO's format, checked against WMCO's own library both ways
(``openshift-check wmco-encrypt|wmco-decrypt``: golang.org/x/crypto/openpgp at the
version WMCO's go.mod pins)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from syncer.nodes.usernames import MARKER, UsernameError, seal, unseal
from syncer_lab.wmco import wmco_decrypt, wmco_encrypt

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
    serialization.NoEncryption())


@pytest.mark.parametrize("name", ["Administrator", "capi", "domain\\ops user", "ü" * 200])
def test_wmco_reads_what_syncer_writes_and_syncer_reads_what_wmco_writes(name: str) -> None:
    ours = seal(name, KEY)
    assert "\n" not in ours and MARKER in ours and name not in ours
    assert wmco_decrypt(ours, KEY) == name
    theirs = wmco_encrypt(name, KEY)
    assert unseal(theirs, KEY) == name


def test_the_armor_lines_of_older_wmco_values_are_read_too() -> None:
    value = wmco_encrypt("Administrator", KEY).replace(MARKER, "\n")
    armored = f"-----BEGIN ENCRYPTED DATA-----\n\n{value}\n-----END ENCRYPTED DATA-----"
    assert unseal(armored, KEY) == "Administrator"


def test_another_key_plain_text_or_tampering_is_an_error() -> None:
    value = seal("Administrator", KEY)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption())
    with pytest.raises(UsernameError, match="wrong key"):
        unseal(value, other)
    with pytest.raises(UsernameError):
        unseal("Administrator", KEY)
    body, crc = value.rsplit(MARKER, 1)
    flipped = body[:40] + ("A" if body[40] != "A" else "B") + body[41:]
    with pytest.raises(UsernameError):
        unseal(flipped + MARKER + crc, KEY)
    with pytest.raises(UsernameError, match="too long"):
        unseal("A" * 100_000, KEY)

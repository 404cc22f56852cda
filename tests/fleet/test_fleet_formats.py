"""The scalar format checks, directly (the rules tests cover them through documents)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from syncer import durations
from syncer.fleet import formats, platforms


def _openssh(key: object) -> str:
    public = key.public_key()  # type: ignore[attr-defined]
    return public.public_bytes(  # type: ignore[no-any-return]
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()


@pytest.mark.parametrize(
    "key",
    [
        ed25519.Ed25519PrivateKey.generate(),
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP384R1()),
        ec.generate_private_key(ec.SECP521R1()),
    ],
    ids=["ed25519", "rsa", "ecdsa-256", "ecdsa-384", "ecdsa-521"],
)
def test_real_host_keys_are_accepted(key: object) -> None:
    line = _openssh(key)
    assert formats.check_host_key(line) is None
    assert formats.check_host_key(line + " root@win-1") is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "must be an OpenSSH public key line"),
        ("ssh-ed25519", "must be an OpenSSH public key line"),
        ("ssh-dss AAAAB3NzaC1kc3M=", "unknown key type"),
        ("ssh-ed25519 !!!", "not valid base64"),
        ("ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQABAAABAQC=", "key data is not a ssh-ed25519 key"),
    ],
)
def test_bad_host_keys(value: str, reason: str) -> None:
    assert reason in (formats.check_host_key(value) or "")


def test_host_key_type_must_match_blob() -> None:
    line = _openssh(ed25519.Ed25519PrivateKey.generate())
    assert formats.check_host_key(line.replace("ssh-ed25519", "ssh-rsa")) == (
        "key data is not a ssh-rsa key"
    )


@pytest.mark.parametrize(
    ("address", "ok"),
    [
        ("10.1.42.1", True),
        ("127.0.1.3", True),
        ("win-build-7.example.com", True),
        ("win-7", True),
        ("win-7.Corp.Example.com", True),
        ("a" * 63 + ".example.com", True),
        ("a" * 64 + ".example.com", False),
        ("10.1.42.256", False),
        ("10.1.42", False),
        ("010.1.42.1", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("255.255.255.255", False),
        ("::1", False),
        ("fe80::1%eth0", False),
        ("win_7.example.com", False),
        ("-win.example.com", False),
        ("win-.example.com", False),
        ("Win-7.example.com", False),
        ("host.example.123", False),
        ("host.example.com.", False),
        ("host name", False),
        ("x" * 254, False),
    ],
)
def test_byoh_addresses(address: str, ok: bool) -> None:
    assert (formats.check_byoh_address(address) is None) is ok, formats.check_byoh_address(address)


@pytest.mark.parametrize(
    ("key", "ok"),
    [
        ("app", True),
        ("example.com/pool", True),
        ("node-role.kubernetes.io/worker", True),
        ("a_b.c-d", True),
        ("/x", False),
        ("Example.com/x", False),
        ("example.com/", False),
        ("a/b/c", False),
        ("x" * 64, False),
        ("-x", False),
    ],
)
def test_label_keys(key: str, ok: bool) -> None:
    assert (formats.check_label_key(key) is None) is ok


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("10m", 600.0), ("1h30m", 5400.0), ("90s", 90.0), ("1.5h", 5400.0), ("500ms", 0.5)],
)
def test_durations(value: str, seconds: float) -> None:
    assert durations.seconds(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["10", "10 m", "m", "-5m", "10min", ""])
def test_bad_durations(value: str) -> None:
    assert durations.seconds(value) is None


@pytest.mark.parametrize(
    ("zone", "region"),
    [
        ("us-east-1a", "us-east-1"),
        ("eu-central-1c", "eu-central-1"),
        ("us-gov-west-1a", "us-gov-west-1"),
        ("us-west-2-lax-1a", "us-west-2"),
        ("centralus", None),
    ],
)
def test_aws_region_from_zone(zone: str, region: str | None) -> None:
    assert platforms.aws_region_from_zone(zone) == region


@pytest.mark.parametrize(
    ("zone", "region"),
    [("us-central1-a", "us-central1"), ("europe-west4-b", "europe-west4"), ("us-central1", None)],
)
def test_gcp_region_from_zone(zone: str, region: str | None) -> None:
    assert platforms.gcp_region_from_zone(zone) == region


@pytest.mark.parametrize(
    ("branch", "ok"),
    [
        ("syncer/status", True),
        ("status", True),
        ("a..b", False),
        ("a b", False),
        ("/a", False),
        ("a/", False),
        ("a.lock", False),
        ("a~1", False),
        ("@", False),
    ],
)
def test_git_branches(branch: str, ok: bool) -> None:
    assert (formats.check_git_branch(branch) is None) is ok

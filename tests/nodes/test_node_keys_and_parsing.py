"""Unit tests: private key loading and WMCO's pub-key-hash, windows-instances parsing,
the Fleet ConfigMap, durations."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from syncer import durations, names
from syncer.fleet import load_fleet, render
from syncer.nodes.inputs import (
    check_address,
    parse_byoh_entries,
    parse_desired_state,
)
from syncer.nodes.windows.keys import PrivateKeyError, parse_private_key, pub_key_hash
from syncer.problems import Problem


def _keys() -> list[tuple[str, object, bytes]]:
    r = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    e = ec.generate_private_key(ec.SECP256R1())
    d = ed25519.Ed25519PrivateKey.generate()
    out: list[tuple[str, object, bytes]] = [
        (
            "rsa-pkcs1",
            r,
            r.private_bytes(
                ser.Encoding.PEM, ser.PrivateFormat.TraditionalOpenSSL, ser.NoEncryption()
            ),
        ),
        (
            "rsa-pkcs8",
            r,
            r.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption()),
        ),
        (
            "rsa-openssh",
            r,
            r.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.OpenSSH, ser.NoEncryption()),
        ),
        (
            "ecdsa-sec1",
            e,
            e.private_bytes(
                ser.Encoding.PEM, ser.PrivateFormat.TraditionalOpenSSL, ser.NoEncryption()
            ),
        ),
        (
            "ecdsa-openssh",
            e,
            e.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.OpenSSH, ser.NoEncryption()),
        ),
        (
            "ed25519-pkcs8",
            d,
            d.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption()),
        ),
        (
            "ed25519-openssh",
            d,
            d.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.OpenSSH, ser.NoEncryption()),
        ),
    ]
    return out


@pytest.mark.parametrize("label,key,pem", _keys(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_wmco_key_format_loads_and_hashes_like_wmco(
    label: str, key: object, pem: bytes
) -> None:
    loaded = parse_private_key(pem)
    public = key.public_key().public_bytes(ser.Encoding.OpenSSH, ser.PublicFormat.OpenSSH).decode()  # type: ignore[attr-defined]
    # authorized_keys form, as Go's ssh.MarshalAuthorizedKey minus the trailing newline
    assert loaded.public_key == public
    assert loaded.pub_key_hash == hashlib.sha256(public.encode()).hexdigest()
    assert not loaded.public_key.endswith("\n")
    assert loaded.fingerprint.startswith("SHA256:")


def test_pub_key_hash_ignores_comment_and_newline() -> None:
    line = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIkP"
    assert pub_key_hash(line + " admin@bastion\n") == hashlib.sha256(line.encode()).hexdigest()


def test_encrypted_or_garbage_key_is_a_clear_error() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.BestAvailableEncryption(b"pw")
    )
    with pytest.raises(PrivateKeyError, match="encrypted"):
        parse_private_key(pem)
    with pytest.raises(PrivateKeyError, match="not a PEM or OpenSSH private key"):
        parse_private_key(b"hello")


def test_windows_instances_strict_parse_reports_and_skips_bad_entries() -> None:
    data = {
        "10.1.0.1": "username=Administrator",
        "win-2.example.com": "username=core",
        "10.1.0.3": "Administrator",  # no '=' (WMCO crashed on this)
        "10.1.0.4": " username=x",  # no trimming
        "10.1.0.5": "username=",
        "10.1.0.6": "user=x",
        "10.1.0.7": "username=a=b",
        "fe80::1": "username=x",
        "bad_name!": "username=x",
        "10.1.0.9": "username=x ",
    }
    problems: list = []
    valid, listed = parse_byoh_entries(data, "windows-instances", problems)
    assert valid == [("10.1.0.1", "Administrator"), ("win-2.example.com", "core")]
    assert listed == set(data)
    messages = "\n".join(str(p) for p in problems)
    assert len(problems) == 8
    assert (
        "10.1.0.3: value must be exactly 'username=<user>', got 'Administrator'; host skipped"
        in messages
    )
    assert "fe80::1: IPv6 addresses are not supported" in messages
    assert all(str(p).startswith("windows-instances: ") for p in problems)


def test_check_address() -> None:
    assert check_address("10.0.0.1") is None
    assert check_address("Win-1.Example.com") is None
    assert check_address("10.0.0.256") is not None
    assert check_address("::1") == "IPv6 addresses are not supported"


def test_fleet_configmap_parses_every_key() -> None:
    data = {
        "fleet": "prod",
        "version": "2024.1",
        "components.json": json.dumps(
            {"kubelet": {"version": "v1.34.4", "url": "https://x/kubelet.exe", "sha256": "AB" * 32}}
        ),
        "nodes.json": json.dumps(
            {
                "rollout": {
                    "maxUnavailable": 2,
                    "drainTimeout": "1h30m",
                    "onFailure": "rollback",
                    "paused": True,
                },
                "nodes": {
                    "sshPort": 2222,
                    "hostKeyPolicy": "pinned",
                    "userData": "wmco",
                    "apiServer": "https://api-int.x:6443",
                },
                "platform": "Azure",
            }
        ),
        "hosts.json": json.dumps(
            {"10.0.0.1": {"hostKey": "ssh-ed25519 AAAA", "labels": {"zone": "a"}}}
        ),
    }
    desired = parse_desired_state(data)
    assert desired.fleet == "prod" and desired.version == "2024.1"
    assert desired.kubelet_version == "v1.34.4"
    assert desired.components["kubelet"].sha256 == "ab" * 32
    assert desired.rollout.max_unavailable == 2
    assert desired.rollout.drain_seconds == 5400.0
    assert desired.rollout.on_failure == "rollback" and desired.rollout.paused
    assert desired.nodes.ssh_port == 2222 and desired.nodes.host_key_policy == "pinned"
    assert desired.nodes.user_data == "wmco" and desired.nodes.platform == "azure"
    assert desired.nodes.api_server == "https://api-int.x:6443"
    assert desired.extras["10.0.0.1"].host_key == "ssh-ed25519 AAAA"
    assert desired.extras["10.0.0.1"].labels == {"zone": "a"}


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_fleet_configmap_as_the_renderer_writes_it() -> None:
    """The node stage reads exactly what syncer.fleet renders (the contract between them)."""
    model = load_fleet(EXAMPLES / "azure")
    [configmap] = [
        o
        for o in render(model)
        if o["kind"] == "ConfigMap" and o["metadata"]["name"] == names.FLEET_CONFIGMAP
    ]
    problems: list[Problem] = []
    desired = parse_desired_state(configmap["data"], "cm", problems)
    assert problems == []
    assert desired.fleet == model.fleet.name and desired.version == model.fleet.version
    assert set(desired.components) == set(model.fleet.components)
    assert desired.rollout.max_unavailable == model.fleet.rollout.max_unavailable
    assert desired.nodes.platform == "azure"
    assert desired.nodes.ssh_port == model.fleet.nodes.ssh_port


def test_fleet_configmap_defaults_and_bad_json_is_a_problem() -> None:
    problems: list = []
    desired = parse_desired_state({"version": "1", "nodes.json": "{oops"}, "cm", problems)
    assert desired.rollout.max_unavailable == 1 and desired.rollout.drain_seconds == 600.0
    assert desired.nodes.ssh_port == 22 and desired.nodes.user_data == "syncer"
    assert len(problems) == 1 and "nodes.json: not valid JSON" in str(problems[0])


@pytest.mark.parametrize(
    "value,seconds",
    [
        ("10m", 600.0),
        ("1h30m", 5400.0),
        ("90s", 90.0),
        ("1.5h", 5400.0),
        (120, 120.0),
        ("45", 45.0),
        ("x", 7.0),
        (None, 7.0),
    ],
)
def test_durations(value: object, seconds: float) -> None:
    assert durations.seconds_or(value, 7.0) == seconds

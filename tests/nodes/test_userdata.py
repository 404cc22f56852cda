"""The windows-user-data Secret: content like WMCO's, regenerated on key rotation, and
left alone when WMCO manages it."""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from syncer import names
from syncer.cluster.client import KubeClient
from syncer.nodes.userdata import Action, ensure_user_data, render_user_data
from syncer.nodes.windows.keys import PrivateKey, parse_private_key


def _key(kind: str = "ed25519") -> PrivateKey:
    key = (
        ed25519.Ed25519PrivateKey.generate()
        if kind == "ed25519"
        else rsa.generate_private_key(65537, 2048)
    )
    return parse_private_key(
        key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption())
    )


def test_user_data_prepares_ssh_like_wmco() -> None:
    key = _key()
    text = render_user_data(key.public_key + " comment", platform="aws")
    assert text.startswith("<powershell>") and text.endswith(
        "</powershell>\n<persist>true</persist>\n"
    )
    assert "Add-WindowsCapability -Online -Name OpenSSH.Server~~~~0.0.1.0" in text
    assert "Set-Service -Name sshd -StartupType Automatic" in text
    for port in ("22", "10250", "9182"):
        assert f"-LocalPort {port} " in text
    assert "'PasswordAuthentication no'" in text and "'PubkeyAuthentication yes'" in text
    assert "administrators_authorized_keys" in text
    assert f"-Value '{key.public_key}'" in text  # the comment is not carried
    assert "icacls.exe $keys /inheritance:r /grant '*S-1-5-32-544:F' /grant '*S-1-5-18:F'" in text
    assert text.rstrip().endswith(
        "Restart-Service sshd\n</powershell>\n<persist>true</persist>".rstrip()
    )
    assert "EC2Launch" in text
    assert "EC2Launch" not in render_user_data(key.public_key, platform="azure")


def test_user_data_is_deterministic_and_gcp_takes_the_bare_script() -> None:
    key = _key("rsa")
    assert render_user_data(key.public_key) == render_user_data(key.public_key)
    gcp = render_user_data(key.public_key, platform="gcp")
    assert not gcp.startswith("<powershell>") and "<persist>" not in gcp


def _secret(api: KubeClient, namespace: str) -> dict:  # type: ignore[type-arg]
    return api.request("GET", f"/api/v1/namespaces/{namespace}/secrets/{names.USER_DATA_SECRET}")


def test_created_unchanged_then_regenerated_on_key_rotation(
    api: KubeClient, namespace: str
) -> None:
    first, second = _key(), _key("rsa")
    created = ensure_user_data(api, first, "syncer", namespace=namespace, fleet="lab")
    assert created.action is Action.CREATED
    secret = _secret(api, namespace)
    assert secret["metadata"]["labels"] == {
        names.LABEL_MANAGED_BY: "syncer",
        names.LABEL_FLEET: "lab",
    }
    data = base64.b64decode(secret["data"][names.USER_DATA_SECRET_KEY]).decode()
    assert first.public_key in data

    again = ensure_user_data(api, first, "syncer", namespace=namespace, fleet="lab")
    assert again.action is Action.UNCHANGED
    assert (
        _secret(api, namespace)["metadata"]["resourceVersion"]
        == secret["metadata"]["resourceVersion"]
    )

    rotated = ensure_user_data(api, second, "syncer", namespace=namespace, fleet="lab")
    assert rotated.action is Action.UPDATED and second.fingerprint in rotated.message
    data = base64.b64decode(_secret(api, namespace)["data"][names.USER_DATA_SECRET_KEY]).decode()
    assert second.public_key in data and first.public_key not in data


def test_wmco_mode_touches_nothing(api: KubeClient, namespace: str) -> None:
    result = ensure_user_data(api, _key(), "wmco", namespace=namespace)
    assert result.action is Action.SKIPPED
    listed = api.request("GET", f"/api/v1/namespaces/{namespace}/secrets")["items"]
    assert names.USER_DATA_SECRET not in [s["metadata"]["name"] for s in listed]
    wmco = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": names.USER_DATA_SECRET, "namespace": namespace},
        "data": {names.USER_DATA_SECRET_KEY: base64.b64encode(b"WMCO's").decode()},
    }
    api.request("POST", f"/api/v1/namespaces/{namespace}/secrets", body=wmco)
    before = _secret(api, namespace)
    assert ensure_user_data(api, _key(), "wmco", namespace=namespace).action is Action.SKIPPED
    assert (
        _secret(api, namespace)["metadata"]["resourceVersion"]
        == before["metadata"]["resourceVersion"]
    )


def test_default_namespace_is_openshift_machine_api(api: KubeClient) -> None:
    key = _key()
    ensure_user_data(api, key, "syncer")
    secret = _secret(api, names.MACHINE_API_NAMESPACE)
    assert key.public_key in base64.b64decode(secret["data"]["userData"]).decode()

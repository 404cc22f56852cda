"""The ``windows-user-data`` Secret that Windows MachineSets reference.

A new Windows Machine boots with this user data. It prepares the VM so the node stage can
reach it the way WMCO's user data does:

- on platforms without a ``capi`` user (everything but Azure) enable ``Administrator``
  (with a random password nobody knows: authentication is by key only);
- install and enable the OpenSSH server (``sshd``, automatic start);
- open inbound TCP 22 (SSH), 10250 (kubelet logs/exec) and 9182 (windows_exporter);
- key-only auth: ``PubkeyAuthentication yes``, ``PasswordAuthentication no`` in
  ``C:\\ProgramData\\ssh\\sshd_config``;
- the public half of ``cloud-private-key`` in
  ``C:\\ProgramData\\ssh\\administrators_authorized_keys``, readable only by
  Administrators and SYSTEM (``icacls /inheritance:r``, by well-known SID so a localised
  Windows works too), then restart ``sshd``.

The script is idempotent (``<persist>true</persist>`` runs it at every boot: firewall rules
are created once, not once per boot). It is wrapped as ``<powershell>…</powershell>`` +
``\\n<persist>true</persist>\\n`` except on GCP, which takes the bare script (as WMCO).
On AWS it also asks EC2Launch v2, when present, to persist the instance metadata routes.

The content is a pure function of the public key and the platform (no timestamps), so
:func:`ensure_user_data` can compare it with the Secret: when the key in
``cloud-private-key`` rotates, the content differs and the Secret is rewritten; otherwise
nothing is written.

The switch ``spec.nodes.userData`` of the Fleet (``nodes.json`` -> ``userData``):

- ``syncer`` (default): syncer creates and updates the Secret and labels it
  ``app.kubernetes.io/managed-by: syncer``;
- ``wmco``: WMCO (or the user) owns the Secret; syncer reads nothing and writes nothing.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import quote

from syncer import names
from syncer.cluster.client import MERGE_PATCH, ApiError, KubeClient
from syncer.desired import UserDataMode
from syncer.nodes.windows.keys import PrivateKey

FIREWALL_RULES = (
    ("syncer-ssh", "OpenSSH server", 22),
    ("syncer-kubelet", "kubelet logs and exec", 10250),
    ("syncer-windows-exporter", "windows_exporter metrics", 9182),
)


class Action(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    SKIPPED = "skipped"  # mode wmco: not syncer's Secret


@dataclass(frozen=True)
class UserDataResult:
    action: Action
    message: str


def render_script(public_key: str, platform: str | None = None) -> str:
    """The PowerShell that prepares a new Windows VM (see module docstring)."""
    key = " ".join(public_key.strip().split()[:2])  # "<type> <base64>": no quotes possible
    if not key or "'" in key or '"' in key:
        raise ValueError("the public key must be an OpenSSH '<type> <base64>' line")
    lines = [
        "$ErrorActionPreference = 'Continue'",
        "$ProgressPreference = 'SilentlyContinue'",
        "# Azure provisions the 'capi' user; elsewhere make sure Administrator is enabled.",
        "if (-not (Get-LocalUser -Name 'capi' -ErrorAction SilentlyContinue)) {",
        "  $admin = Get-LocalUser -Name 'Administrator' -ErrorAction SilentlyContinue",
        "  if ($admin -and -not $admin.Enabled) {",
        "    Add-Type -AssemblyName 'System.Web'",
        "    $secret = [System.Web.Security.Membership]::GeneratePassword(24, 4)",
        "    $admin | Set-LocalUser -Password (ConvertTo-SecureString $secret -AsPlainText -Force)",
        "    $admin | Enable-LocalUser",
        "  }",
        "}",
        "# OpenSSH server, started now and at every boot.",
        "if (-not (Get-Service -Name sshd -ErrorAction SilentlyContinue)) {",
        "  Add-WindowsCapability -Online -Name OpenSSH.Server~~~~0.0.1.0",
        "}",
        "Set-Service -Name sshd -StartupType Automatic",
        "Start-Service sshd",
        "# Inbound ports: SSH, kubelet, windows_exporter.",
    ]
    for name, description, port in FIREWALL_RULES:
        lines += [
            f"if (-not (Get-NetFirewallRule -Name '{name}' -ErrorAction SilentlyContinue)) {{",
            f"  New-NetFirewallRule -Name '{name}' -DisplayName '{description}' "
            f"-Direction Inbound -Action Allow -Protocol TCP -LocalPort {port} "
            "-EdgeTraversalPolicy Allow",
            "}",
        ]
    lines += [
        "# Key-only authentication.",
        '$config = "$env:ProgramData\\ssh\\sshd_config"',
        "$text = Get-Content -Path $config -Raw",
        "$text = $text -replace '(?m)^#?\\s*PubkeyAuthentication\\s+\\S+', "
        "'PubkeyAuthentication yes'",
        "$text = $text -replace '(?m)^#?\\s*PasswordAuthentication\\s+\\S+', "
        "'PasswordAuthentication no'",
        "if ($text -notmatch '(?m)^PasswordAuthentication no') "
        '{ $text = "PasswordAuthentication no`r`n" + $text }',
        "if ($text -notmatch '(?m)^PubkeyAuthentication yes') "
        '{ $text = "PubkeyAuthentication yes`r`n" + $text }',
        "Set-Content -Path $config -Value $text -Encoding ascii -NoNewline",
        "# The public key of cloud-private-key, for administrators only.",
        '$keys = "$env:ProgramData\\ssh\\administrators_authorized_keys"',
        f"Set-Content -Path $keys -Value '{key}' -Encoding ascii",
        "icacls.exe $keys /inheritance:r /grant '*S-1-5-32-544:F' /grant '*S-1-5-18:F'",
    ]
    if platform == "aws":
        lines += [
            "# EC2Launch v2: keep the instance metadata routes across reboots.",
            '$ec2launch = "$env:ProgramFiles\\Amazon\\EC2Launch\\EC2Launch.exe"',
            "if (Test-Path -Path $ec2launch -PathType Leaf) "
            "{ & $ec2launch run-task add-routes --persistent }",
        ]
    lines += ["Restart-Service sshd"]
    return "\n".join(lines) + "\n"


def render_user_data(public_key: str, platform: str | None = None) -> str:
    """The Secret's ``userData`` value for this public key and platform."""
    script = render_script(public_key, platform)
    if platform == "gcp":
        return script
    return f"<powershell>{script}</powershell>\n<persist>true</persist>\n"


def user_data_secret(
    public_key: str,
    *,
    platform: str | None = None,
    namespace: str = names.MACHINE_API_NAMESPACE,
    fleet: str | None = None,
) -> dict[str, Any]:
    """The whole Secret object (JSON form)."""
    labels = {names.LABEL_MANAGED_BY: names.MANAGED_BY_VALUE}
    if fleet:
        labels[names.LABEL_FLEET] = fleet
    data = render_user_data(public_key, platform).encode("utf-8")
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": names.USER_DATA_SECRET, "namespace": namespace, "labels": labels},
        "data": {names.USER_DATA_SECRET_KEY: base64.b64encode(data).decode("ascii")},
    }


def ensure_user_data(
    api: KubeClient,
    private_key: PrivateKey,
    mode: str | UserDataMode = UserDataMode.SYNCER,
    *,
    platform: str | None = None,
    namespace: str = names.MACHINE_API_NAMESPACE,
    fleet: str | None = None,
) -> UserDataResult:
    """Create or update ``windows-user-data`` in mode ``syncer``; touch nothing in ``wmco``.

    Writes only when the content or syncer's labels differ (so a key rotation rewrites it
    and a steady state writes nothing).
    """
    if UserDataMode(mode) is UserDataMode.WMCO:
        return UserDataResult(
            Action.SKIPPED, f"userData is 'wmco': {names.USER_DATA_SECRET} is left to WMCO"
        )
    wanted = user_data_secret(
        private_key.public_key, platform=platform, namespace=namespace, fleet=fleet
    )
    path = f"/api/v1/namespaces/{quote(namespace)}/secrets/{names.USER_DATA_SECRET}"
    try:
        live: dict[str, Any] | None = api.request("GET", path)
    except ApiError as err:
        if not err.not_found:
            raise
        live = None
    if live is None:
        try:
            api.request("POST", f"/api/v1/namespaces/{quote(namespace)}/secrets", body=wanted)
            return UserDataResult(
                Action.CREATED,
                f"created {namespace}/{names.USER_DATA_SECRET} for key {private_key.fingerprint}",
            )
        except ApiError as err:
            if err.status != 409:
                raise
            live = api.request("GET", path)
    assert live is not None
    live_data = (live.get("data") or {}).get(names.USER_DATA_SECRET_KEY)
    live_labels = (live.get("metadata") or {}).get("labels") or {}
    wanted_labels = wanted["metadata"]["labels"]
    same_data = live_data == wanted["data"][names.USER_DATA_SECRET_KEY]
    same_labels = all(live_labels.get(k) == v for k, v in wanted_labels.items())
    if same_data and same_labels:
        return UserDataResult(Action.UNCHANGED, f"{names.USER_DATA_SECRET} is up to date")
    patch = {"metadata": {"labels": wanted_labels}, "data": wanted["data"]}
    api.request("PATCH", path, body=patch, content_type=MERGE_PATCH)
    why = "content changed: new key or platform" if not same_data else "labels restored"
    return UserDataResult(
        Action.UPDATED,
        f"updated {namespace}/{names.USER_DATA_SECRET} ({why}; key {private_key.fingerprint})",
    )

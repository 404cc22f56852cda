"""The Secrets a WindowsFleet names, as the files the pipeline reads.

A WindowsFleet may name Secrets in its own namespace instead of the controller's mounted
credential files, as Flux's ``spec.secretRef`` and ``spec.verify.secretRef`` do:

==========================  ===================================================
``spec.secretRef``          ``identity`` (SSH key), ``known_hosts``, ``token``
                            (HTTPS), ``ca.crt`` (the Git server's CA)
``spec.verify.secretRef``   ``allowed_signers`` (OpenSSH) or ``keyring.gpg``
``spec.forge.secretRef``    ``token`` (the forge API)
==========================  ===================================================

:func:`materialize` reads them before every reconcile and writes each key to a mode-0600
file under the fleet's work directory (rewritten only when the Secret's
``resourceVersion`` changes); the reconcile is rebuilt when one does, so a rotated
credential is used from the next reconcile on. Values are never logged: errors name the
Secret and the key, never the content.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from pathlib import Path

from syncer.cluster.client import ApiError, KubeClient
from syncer.cluster.objects import JSON
from syncer.controller.credentials import write_private
from syncer.controller.fleetobject import TIMEOUT, FleetSpec

# Keys of each kind of Secret, and the setting each one fills.
GIT_KEYS = {"identity": "git_ssh_key_file", "known_hosts": "git_known_hosts_file",
            "token": "git_token_file", "ca.crt": "git_ca_file"}
VERIFY_KEYS = {"allowed_signers": "allowed_signers", "keyring.gpg": "gpg_keyring"}
FORGE_KEYS = {"token": "forge_token_file"}


class SecretError(Exception):
    """A named Secret is missing, unreadable, or lacks every key it needs."""


@dataclass(frozen=True)
class Materialized:
    """Setting name -> file, and the Secrets' versions (a change means: rebuild)."""

    files: dict[str, Path] = field(default_factory=dict)
    versions: tuple[tuple[str, str], ...] = ()


def materialize(client: KubeClient, namespace: str, spec: FleetSpec,
                directory: Path) -> Materialized:
    files: dict[str, Path] = {}
    versions: list[tuple[str, str]] = []
    wanted = [(spec.secret_ref, GIT_KEYS, "spec.secretRef"),
              (spec.verify_secret_ref, VERIFY_KEYS, "spec.verify.secretRef"),
              (spec.forge.secret_ref if spec.forge else None, FORGE_KEYS,
               "spec.forge.secretRef")]
    for name, keys, where in wanted:
        if not name:
            continue
        secret = _read(client, namespace, name, where)
        version = str((secret.get("metadata") or {}).get("resourceVersion") or "")
        data = secret.get("data") or {}
        found = {key: setting for key, setting in keys.items() if key in data}
        if not found:
            raise SecretError(f"{where}: Secret {namespace}/{name} has none of the keys "
                              f"{', '.join(sorted(keys))}")
        for key, setting in found.items():
            files[setting] = _write(directory / name, key, data[key], where, name)
        versions.append((name, version))
    return Materialized(files, tuple(versions))


def _read(client: KubeClient, namespace: str, name: str, where: str) -> JSON:
    try:
        secret: JSON = client.request(
            "GET", f"/api/v1/namespaces/{namespace}/secrets/{name}", timeout=TIMEOUT)
    except ApiError as err:
        if err.not_found:
            raise SecretError(f"{where}: Secret {namespace}/{name} not found") from None
        raise SecretError(f"{where}: Secret {namespace}/{name}: {err.status} "
                          f"{err.reason}") from None
    return secret


def _write(directory: Path, key: str, encoded: object, where: str, name: str) -> Path:
    try:
        value = base64.b64decode(str(encoded), validate=True)
    except (binascii.Error, ValueError):
        raise SecretError(f"{where}: Secret {name}: key {key} is not base64") from None
    return write_private(directory, key, value)

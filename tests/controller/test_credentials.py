"""Credential files: read on demand, reloaded on change without a restart.

The Kubernetes case is reproduced exactly as the kubelet's AtomicWriter does it: keys are
symlinks ``key -> ..data/key``, ``..data`` points at a timestamped directory, and an update
writes a new directory, points ``..data_tmp`` at it and renames it over ``..data``.
"""

from __future__ import annotations

import io
import logging
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from controller_helpers import SecretVolume, restored_logging

from syncer.controller import logs
from syncer.controller.credentials import SSH_PRIVATE_KEY, WEBHOOK_SECRET, CredentialFiles

KEY_1 = "-----BEGIN OPENSSH PRIVATE KEY-----\nkey-one-AAAA\n-----END OPENSSH PRIVATE KEY-----\n"
KEY_2 = "-----BEGIN OPENSSH PRIVATE KEY-----\nkey-two-BBBB\n-----END OPENSSH PRIVATE KEY-----\n"


def wait_for(predicate: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def volume(tmp_path: Path) -> SecretVolume:
    vol = SecretVolume(tmp_path / "ssh")
    vol.write({"ssh-privatekey": KEY_1})
    return vol


@pytest.fixture
def files(volume: SecretVolume, tmp_path: Path) -> Iterator[CredentialFiles]:
    creds = CredentialFiles({SSH_PRIVATE_KEY: volume.root / "ssh-privatekey"},
                            runtime_dir=tmp_path / "run")
    creds.start()
    try:
        yield creds
    finally:
        creds.stop()


def test_kubernetes_symlink_swap_is_picked_up(
    volume: SecretVolume, files: CredentialFiles
) -> None:
    changes: list[str] = []
    seen = threading.Event()
    files.on_change(lambda name: (changes.append(name), seen.set()))
    assert files.get_text(SSH_PRIVATE_KEY) == KEY_1.strip()
    volume.write({"ssh-privatekey": KEY_2})
    # the watchdog event on the directory (not a read) notices the swap
    assert seen.wait(5), "no change notification after the ..data swap"
    assert changes == [SSH_PRIVATE_KEY]
    assert files.get_text(SSH_PRIVATE_KEY) == KEY_2.strip()
    assert files.generation(SSH_PRIVATE_KEY) == 1


def test_read_notices_change_even_without_events(tmp_path: Path) -> None:
    vol = SecretVolume(tmp_path / "tok")
    vol.write({"token": "first-token\n"})
    creds = CredentialFiles({WEBHOOK_SECRET: vol.root / "token"})  # never started: no watcher
    assert creds.get_text(WEBHOOK_SECRET) == "first-token"
    vol.write({"token": "second-token\n"})
    assert creds.get_text(WEBHOOK_SECRET) == "second-token"


def test_plain_file_rewrite(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("alpha-secret")
    with CredentialFiles({WEBHOOK_SECRET: path}) as creds:
        changed = threading.Event()
        creds.on_change(lambda name: changed.set())
        assert creds.get_bytes(WEBHOOK_SECRET) == b"alpha-secret"
        path.write_text("bravo-secret")
        assert changed.wait(5)
        assert creds.get_bytes(WEBHOOK_SECRET) == b"bravo-secret"


def test_private_copy_is_0600_and_follows_rotation(
    volume: SecretVolume, files: CredentialFiles
) -> None:
    copy = files.private_copy(SSH_PRIVATE_KEY)
    assert copy is not None and copy.read_text() == KEY_1
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    volume.write({"ssh-privatekey": KEY_2})
    assert wait_for(lambda: files.private_copy(SSH_PRIVATE_KEY).read_text() == KEY_2)  # type: ignore[union-attr]
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600


def test_missing_and_unconfigured(tmp_path: Path) -> None:
    creds = CredentialFiles({WEBHOOK_SECRET: tmp_path / "absent", SSH_PRIVATE_KEY: None})
    assert creds.get_bytes(WEBHOOK_SECRET) is None
    assert creds.get_bytes(SSH_PRIVATE_KEY) is None
    assert not creds.configured(SSH_PRIVATE_KEY)
    (tmp_path / "absent").write_text("now-present")
    assert creds.get_text(WEBHOOK_SECRET) == "now-present"


def test_secrets_never_reach_the_logs(volume: SecretVolume, files: CredentialFiles) -> None:
    stream = io.StringIO()
    with restored_logging():
        logs.setup("json", "info", stream)
        value = files.get_text(SSH_PRIVATE_KEY)
        volume.write({"ssh-privatekey": KEY_2})
        assert wait_for(lambda: files.generation(SSH_PRIVATE_KEY) == 1)
        log = logging.getLogger("test")
        log.error("git failed: %s", value)
        log.warning("leak attempt", extra={"detail": f"token was {KEY_2}"})
    out = stream.getvalue()
    assert "credential reloaded" in out and '"credential": "ssh-private-key"' in out
    for secret in ("key-one-AAAA", "key-two-BBBB"):
        assert secret not in out
    assert "***" in out

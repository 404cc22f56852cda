"""Helpers for the controller tests: Secret-volume lookalikes and `syncer run` processes.

A module with a unique name (not conftest) so test modules can import it even when
several test directories have a conftest.py."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import requests

from syncer_lab.syncerproc import SyncerProcess

HERE = Path(__file__).parent


class SecretVolume:
    """A directory laid out like a Secret volume and updated like the kubelet does it
    (AtomicWriter): ``key -> ..data/key``, ``..data -> ..<timestamp>``, and an update
    renames a new ``..data_tmp`` symlink over ``..data``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True)
        self.generation = 0

    def write(self, data: dict[str, str]) -> None:
        self.generation += 1
        stamp = f"..2026_01_01_00_00_{self.generation:02d}.{os.getpid()}"
        target = self.root / stamp
        target.mkdir()
        for key, value in data.items():
            (target / key).write_text(value)
            os.chmod(target / key, 0o440)
        data_link = self.root / "..data"
        old = os.readlink(data_link) if data_link.is_symlink() else None
        tmp = self.root / "..data_tmp"
        os.symlink(stamp, tmp)
        os.rename(tmp, data_link)
        for key in data:
            link = self.root / key
            if not link.is_symlink():
                os.symlink(f"..data/{key}", link)
        if old:
            for child in (self.root / old).iterdir():
                child.unlink()
            (self.root / old).rmdir()


@contextlib.contextmanager
def restored_logging() -> Iterator[None]:
    """Undo ``logs.setup`` (root handlers and levels) so other tests see pytest's setup."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    noisy = {n: logging.getLogger(n).level for n in
             ("urllib3", "kubernetes", "waitress", "watchdog", "git")}
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, lvl in noisy.items():
            logging.getLogger(name).setLevel(lvl)


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            return value
        time.sleep(every)


def github_headers(body: bytes, secret: bytes, event: str = "push") -> dict[str, str]:
    sig = hmac.new(secret, body, hashlib.sha256).hexdigest()
    return {"X-GitHub-Event": event, "X-Hub-Signature-256": f"sha256={sig}",
            "X-GitHub-Delivery": str(uuid.uuid4()),  # a new GUID per delivery, as GitHub's
            "Content-Type": "application/json"}


class SyncerRun(SyncerProcess):
    """`syncer run` as a subprocess, the way the container runs it."""

    def webhook(self, payload: dict[str, Any], secret: bytes, event: str = "push") -> Any:
        body = json.dumps(payload).encode()
        return requests.post(f"{self.url}/hooks/github", data=body,
                             headers=github_headers(body, secret, event), timeout=5)

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM; the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

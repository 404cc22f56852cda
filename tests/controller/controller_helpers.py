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
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
            "X-GitHub-Delivery": "test", "Content-Type": "application/json"}


class SyncerRun:
    """`syncer run` as a subprocess (the way the container runs it)."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        full_env = {**os.environ, **env,
                    "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
                    "SYNCER_LISTEN": f"127.0.0.1:{self.port}", "POD_NAME": name}
        self._log_file = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "syncer", "run", *args],
            env=full_env, stdout=self._log_file, stderr=subprocess.STDOUT,
        )

    def healthy(self) -> bool:
        try:
            return requests.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        text = requests.get(f"{self.url}/metrics", timeout=5).text
        found = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                found[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return found

    def metric(self, name: str, **labels: str) -> float | None:
        try:
            return self.metrics().get((name, tuple(sorted(labels.items()))))
        except requests.RequestException:
            return None

    def is_leader(self) -> bool:
        return self.metric("syncer_leader") == 1.0

    def revision(self) -> str | None:
        for (name, labels), value in self.metrics().items():
            if name == "syncer_last_applied_revision_info" and value == 1:
                return dict(labels)["revision"]
        return None

    def webhook(self, payload: dict[str, Any], secret: bytes, event: str = "push") -> Any:
        body = json.dumps(payload).encode()
        return requests.post(f"{self.url}/hooks/github", data=body,
                             headers=github_headers(body, secret, event), timeout=5)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def terminate(self, timeout: float = 30) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._log_file.close()

"""`syncer demo`, the README's first command, run as a user runs it — so it cannot rot.

Each run is a child process with a marker in its environment, which every process it
starts inherits (the controller, kube-apiserver, etcd, git). After it exits, no process
may carry the marker, no simulated host may still listen, and its temp directory is gone:
after a complete story, and after a Ctrl-C in the middle of one.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def marked_processes(marker: str) -> list[str]:
    """``pid cmdline`` of every process whose environment carries the marker."""
    found = []
    needle = f"SYNCER_DEMO_TEST={marker}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                found.append(f"{entry.name} {cmdline}")
        except OSError:
            continue
    return found


def listening(address: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((address, port)) == 0


class Demo:
    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.marker = uuid.uuid4().hex
        self.out = tmp_path / "demo.out"
        self._file = self.out.open("wb")
        env = {**os.environ, "SYNCER_DEMO_TEST": self.marker, "COLUMNS": "120"}
        self.proc = subprocess.Popen([sys.executable, "-m", "syncer", "demo", *args],
                                     stdout=self._file, stderr=subprocess.STDOUT, env=env)

    def output(self) -> str:
        return self.out.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self._file.close()

    def check_cleaned_up(self) -> None:
        text = self.output()
        assert marked_processes(self.marker) == []
        hosts = re.search(r"SSH at ([\d., ]+) port (\d+)", text)
        if hosts:
            for address in hosts.group(1).split(", "):
                assert not listening(address, int(hosts.group(2))), address
        root = re.search(r"removed (/\S+syncer-demo-\S+)", text)
        assert root, text[-2000:]
        assert not Path(root.group(1)).exists()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def test_demo_tells_the_whole_story_and_cleans_up(tmp_path: Path) -> None:
    demo = Demo(tmp_path, "--hosts", "2")
    try:
        code = demo.wait(timeout=420)
    finally:
        demo.kill()
    text = demo.output()
    assert code == 0, text[-4000:]
    for step in ("1. Setting the stage", "2. Initial sync", "3. A pull request",
                 "4. Merge", "5. Rollout", "6. Write-back", "Done: the story completed"):
        assert step in text, step
    assert "syncer preview: valid" in text  # the PR comment, as the forge shows it
    assert "commit status syncer/preview on" in text
    assert "2/2 hosts at 1.1.0 (kubelet v1.34.5)" in text
    assert re.search(r"Applied [0-9a-f]{7}: \d+ objects, hosts 2/2 at 1\.1\.0", text)
    # The WindowsFleet after the rollout: the merge applied, Ready, every host there.
    assert re.search(r"kubectl get windowsfleets -n syncer-system\n.*NAME +REVISION +READY +HOSTS"
                     r".*\n.*fleet +[0-9a-f]{40} +True +2/2 +Applied revision: main@sha1:", text)
    assert "Traceback" not in text
    demo.check_cleaned_up()


def test_ctrl_c_in_the_middle_cleans_up_everything(tmp_path: Path) -> None:
    demo = Demo(tmp_path, "--hosts", "2")
    try:
        deadline = time.monotonic() + 180
        while "2. Initial sync" not in demo.output():  # the controller is running
            assert demo.proc.poll() is None, demo.output()[-3000:]
            assert time.monotonic() < deadline, demo.output()[-3000:]
            time.sleep(0.2)
        demo.proc.send_signal(signal.SIGINT)
        code = demo.wait(timeout=120)
    finally:
        demo.kill()
    text = demo.output()
    assert code == 130, text[-3000:]
    assert "interrupted" in text and "Cleaning up" in text
    assert "Traceback" not in text
    demo.check_cleaned_up()

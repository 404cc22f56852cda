"""The lab: fifty hosts at once, clean stop, address allocation, the standalone process."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import paramiko
import pytest
from winhelpers import run

from syncer.nodes.windows import vocabulary as c
from syncer_lab.winhost import HostLab, SimClient, SimHost

ROOT = Path(__file__).resolve().parents[2]


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_fifty_hosts_start_in_seconds_and_answer_together(
    admin_key: paramiko.PKey, admin_key_line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    threads_before, fds_before = threading.active_count(), _open_fds()
    began = time.perf_counter()
    lab = HostLab().start()
    hosts = [lab.add_host(f"WIN-SCALE{i:02d}", authorized_keys=[admin_key_line])
             for i in range(50)]
    started = time.perf_counter() - began
    probe = c.inventory(files=["C:\\k\\kubelet.exe"], services=["kubelet", "containerd"],
                        processes=["kubelet"])

    def one(host: SimHost) -> str:
        with SimClient(host.address, host.port, host.host_key_line, admin_key) as client:
            return c.parse_inventory(run(client, probe)).hostname

    try:
        began = time.perf_counter()
        with ThreadPoolExecutor(10) as pool:
            names = list(pool.map(one, hosts))
        answered = time.perf_counter() - began
        assert names == [h.name for h in hosts]
        assert len({h.address for h in hosts}) == 50
        assert all(len(h.commands) == 1 and not h.unexpected_commands for h in hosts)
    finally:
        lab.stop()
    with capsys.disabled():
        print(f"\n50 simulated hosts started in {started:.2f}s; connect + inventory on each "
              f"(10 clients at once) {answered:.2f}s")
    assert started < 10
    assert answered < 30
    # Nothing leaks: every thread and socket the lab opened is closed.
    deadline = time.monotonic() + 5
    while threading.active_count() > threads_before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= threads_before, threading.enumerate()
    assert _open_fds() <= fds_before


def test_stop_closes_live_connections(admin_key: paramiko.PKey, admin_key_line: str) -> None:
    threads_before = threading.active_count()
    lab = HostLab().start()
    host = lab.add_host("WIN-LIVE", authorized_keys=[admin_key_line])
    client = SimClient(host.address, host.port, host.host_key_line, admin_key)
    assert run(client, c.hostname()).exit_code == 0
    lab.stop()
    with pytest.raises((paramiko.SSHException, EOFError, OSError)):
        run(client, c.hostname())
    client.close()
    deadline = time.monotonic() + 5
    while threading.active_count() > threads_before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= threads_before, threading.enumerate()
    assert not Path(lab.root).exists()


def test_addresses_in_use_are_skipped(host_lab: HostLab) -> None:
    first = host_lab.add_host("WIN-FIRST")
    # Occupy the next free address after the first host's (another lab, another sshd).
    squatter = socket.socket()
    number = int(ipaddress.IPv4Address(first.address))
    while True:
        number += 1
        try:
            squatter.bind((str(ipaddress.IPv4Address(number)), host_lab.port))
            break
        except OSError:
            continue
    squatter.listen()
    try:
        second = host_lab.add_host("WIN-SECOND")
        assert second.address not in (first.address, squatter.getsockname()[0])
    finally:
        squatter.close()
    with pytest.raises(ValueError):
        host_lab.add_host("WIN-FIRST")


def test_removed_host_refuses_connections(host_lab: HostLab, admin_key: paramiko.PKey,
                                          admin_key_line: str) -> None:
    host = host_lab.add_host("WIN-GONE", authorized_keys=[admin_key_line])
    host_lab.remove_host("WIN-GONE")
    # Refused; or, if another lab on this machine took the address meanwhile, not this
    # host (its key does not match).
    with pytest.raises((paramiko.ssh_exception.NoValidConnectionsError,
                        paramiko.BadHostKeyException)):
        SimClient(host.address, host.port, host.host_key_line, admin_key, timeout=2)
    assert not (host_lab.root / "WIN-GONE").exists()


def test_standalone_process(tmp_path: Path, admin_key: paramiko.PKey,
                            admin_key_line: str) -> None:
    config = tmp_path / "lab.json"
    config.write_text(json.dumps({
        "root": str(tmp_path / "drives"),
        "authorized_keys": [admin_key_line],
        "hosts": [{"name": "WIN-STANDALONE", "os_build": "10.0.17763.6054"}],
    }))
    proc = subprocess.Popen(
        [sys.executable, "-m", "syncer_lab.winhost", "--config", str(config),
         "--hosts", "2", "--prefix", "WIN-EXTRA"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        lines = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            doc = json.loads(line)
            if doc.get("ready"):
                break
            lines.append(doc)
        assert [d["name"] for d in lines] == ["WIN-STANDALONE", "WIN-EXTRA01", "WIN-EXTRA02"]
        first = lines[0]
        assert set(first) == {"name", "address", "port", "host_key", "drive"}
        with SimClient(first["address"], first["port"], first["host_key"], admin_key) as client:
            assert c.parse_os_build(run(client, c.os_build())).label == "10.0.17763"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        with pytest.raises(OSError):
            socket.create_connection((first["address"], first["port"]), timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

"""Simulated hosts in several lab processes (``LabProcesses``): what a benchmark relies on.

Hosts are dealt to the processes, answer real SSH with their own host keys, take faults
set from the parent, report commands outside the vocabulary, and the processes are gone
after ``stop()``; a lab process that dies is an error naming its log.
"""

from __future__ import annotations

import time
from pathlib import Path

import paramiko
import pytest

from syncer_lab.winhost import SimClient, key_line
from syncer_lab.winhost.host import generate_host_key
from syncer_lab.winhost.workers import LabProcessError, LabProcesses

pytestmark = pytest.mark.timeout(120)


def test_hosts_in_two_processes_answer_ssh_and_take_faults(tmp_path: Path) -> None:
    key = generate_host_key("ed25519")
    with LabProcesses(2, tmp_path, first_address="127.73.0.1", kubelets=None) as lab:
        hosts = lab.add_hosts(["WIN-P1", "WIN-P2", "WIN-P3"],
                              authorized_keys=[key_line(key)], host_key_types=["ecdsa"])
        assert [h.process for h in hosts] == [0, 1, 0]
        # Neighbours in address order live in different processes.
        assert [h.address for h in hosts] == ["127.73.0.1", "127.73.0.2", "127.73.0.3"]
        pids = [p.proc.pid for p in lab._processes]
        for host in hosts:
            with SimClient(host.address, host.port, host.host_key_line, key) as client:
                assert client.run("hostname").stdout.strip() == host.name

        # A host key of another host is refused: each host has its own.
        with pytest.raises(paramiko.SSHException):
            SimClient(hosts[0].address, hosts[0].port, hosts[1].host_key_line, key)

        lab.slow_command(r"^hostname$", 0.6)
        with SimClient(hosts[1].address, hosts[1].port, hosts[1].host_key_line, key) as client:
            began = time.monotonic()
            client.run("hostname")
            assert time.monotonic() - began >= 0.6
            lab.clear_faults()
            began = time.monotonic()
            client.run("hostname")
            assert time.monotonic() - began < 0.5
            client.run("format C:")
        assert lab.unexpected() == ["WIN-P2: format C:"]
        assert lab.rss_kib() > 10_000
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(
            f"/proc/{pid}/status").read_text()


def test_a_lab_process_that_dies_is_an_error_naming_its_log(tmp_path: Path) -> None:
    with LabProcesses(1, tmp_path, first_address="127.74.0.1", kubelets=None) as lab:
        lab._processes[0].proc.kill()
        with pytest.raises(LabProcessError, match=r"lab process 0 exited .*lab-0\.log"):
            lab.add_hosts(["WIN-GONE"], authorized_keys=[])

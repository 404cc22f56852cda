"""Every SSH call is bounded: a host that hangs, trickles or floods fails alone.

Real SSH (paramiko client against the simulated Windows OpenSSH server) with the
simulator's faults: a command that prints a byte every 0.2 s forever (no read ever times
out), one that prints 12 MiB, an ``sftp-server.exe`` that never answers. The round-level
consequence (the other hosts finish) is in the fault matrix.
"""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from syncer.nodes.hostkeys import HostKeyStore, PinningPolicy
from syncer.nodes.ssh import HostSession, SshError, UploadFailed
from syncer.nodes.windows import vocabulary
from syncer_lab.nodelab import SSH, NodeLab


def _session(node_lab: NodeLab, **options: float | int) -> tuple[HostSession, object]:
    [host] = node_lab.add_hosts(1)
    policy = PinningPolicy(HostKeyStore(node_lab.api, node_lab.namespace), host.address)
    session = HostSession(host.address, "Administrator", node_lab.key, policy,
                          replace(SSH, **options))  # type: ignore[arg-type]
    session.connect()
    return session, host


def test_a_trickling_command_meets_its_deadline(node_lab: NodeLab) -> None:
    session, host = _session(node_lab, command_timeout=2.0)
    host.faults.trickle_output(r"^hostname$", interval=0.2)  # type: ignore[attr-defined]
    started = time.monotonic()
    with pytest.raises(SshError, match="command timed out after 2s"):
        session.run(vocabulary.hostname())
    assert time.monotonic() - started < 4
    assert vocabulary.parse_hostname(session.run(vocabulary.hostname()))  # the host is fine
    session.close()


def test_a_flood_of_output_is_cut_at_the_cap(node_lab: NodeLab) -> None:
    session, host = _session(node_lab, max_output=1 << 20)
    host.faults.flood_output(r"^hostname$", 12 << 20)  # type: ignore[attr-defined]
    with pytest.raises(SshError, match="printed more than 1048576 bytes"):
        session.run(vocabulary.hostname())
    session.close()


def test_a_silent_sftp_server_fails_the_upload_in_bounded_time(node_lab: NodeLab) -> None:
    session, host = _session(node_lab, command_timeout=1.0, upload_attempts=2)
    host.faults.silent_sftp()  # type: ignore[attr-defined]
    started = time.monotonic()
    with pytest.raises(UploadFailed, match="failed after 2 attempts"):
        session.upload(b"kubelet", "C:\\k\\kubelet.exe", "0" * 64)
    assert time.monotonic() - started < 8
    session.close()


def test_an_upload_has_a_total_deadline(node_lab: NodeLab) -> None:
    session, _ = _session(node_lab, transfer_timeout=0.0, upload_attempts=1)
    vocabulary.check_done(session.run(vocabulary.make_directory("C:\\k")))
    with pytest.raises(UploadFailed, match="took longer than 0s"):
        session.upload(b"x" * (1 << 20), "C:\\k\\big.bin", "0" * 64)
    session.close()

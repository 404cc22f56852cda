"""Reboots and injected faults surface as the errors a real Windows host produces."""

from __future__ import annotations

import io
import socket
import time

import paramiko
import pytest
from winhelpers import payload, run, wait_for

from syncer.nodes.windows import vocabulary as c
from syncer_lab.nodelab import tar_gz
from syncer_lab.winhost import SimClient, SimHost


def connect(host: SimHost, key: paramiko.PKey, timeout: float = 3.0) -> SimClient:
    return SimClient(host.address, host.port, host.host_key_line, key, timeout=timeout)


def test_reboot_drops_is_unreachable_then_back_with_auto_services(
    win_client: SimClient, win_host: SimHost, admin_key: paramiko.PKey
) -> None:
    win_host.reboot_downtime = 1.0
    win_host.fs.make_directory("C:\\k")
    for name in ("containerd", "windows_exporter", "csi-proxy"):
        win_host.fs.write_bytes(f"C:\\k\\{name}.exe", payload(name, "v1.0.0"))
    win_host.scm.create("containerd", "C:\\k\\containerd.exe", "auto")
    win_host.scm.create("windows_exporter", "C:\\k\\windows_exporter.exe", "auto",
                        ["containerd"])
    win_host.scm.create("csi-proxy", "C:\\k\\csi-proxy.exe", "demand")
    win_host.scm.create("doomed", "C:\\k\\csi-proxy.exe", "auto")
    win_host.scm.start("doomed")
    win_host.scm.delete("doomed")  # marked for deletion: gone after the boot
    boot_id = win_host.boot_id

    win_host.reboot()
    with pytest.raises((paramiko.SSHException, EOFError, OSError)):
        run(win_client, c.hostname())  # the connection is gone
    with pytest.raises(paramiko.ssh_exception.NoValidConnectionsError):
        connect(win_host, admin_key)  # connection refused while down
    assert wait_for(win_host.wait_until_up, 10)
    with connect(win_host, admin_key) as client:
        inv = c.parse_inventory(run(client, c.inventory(
            services=["containerd", "windows_exporter", "csi-proxy", "doomed", "sshd"])))
    states = {n: (s.state if s else None) for n, s in inv.services.items()}
    assert states == {"containerd": c.ServiceState.RUNNING,
                      "windows_exporter": c.ServiceState.RUNNING,
                      "csi-proxy": c.ServiceState.STOPPED, "doomed": None,
                      "sshd": c.ServiceState.RUNNING}
    assert win_host.boot_id != boot_id and win_host.reboots == 1


def test_up_after_a_reboot_means_sshd_answers(
    win_host: SimHost, admin_key: paramiko.PKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``wait_until_up`` returns only once the port listens again, however long the
    services take to start at boot (sshd is one of them)."""
    win_host.reboot_downtime = 0.2
    boot = win_host.scm.boot

    def slow_boot() -> list[str]:
        time.sleep(0.5)
        return boot()

    monkeypatch.setattr(win_host.scm, "boot", slow_boot)
    win_host.reboot()
    assert wait_for(win_host.wait_until_up, 10)
    with connect(win_host, admin_key) as client:
        assert run(client, c.hostname())


def test_restart_computer_keeps_answering_briefly_then_goes_down(
    win_client: SimClient, win_host: SimHost, admin_key: paramiko.PKey
) -> None:
    """WMCO declared reboots done before they started: the host is still up right after."""
    win_host.reboot_delay = 0.8
    win_host.reboot_downtime = 0.5
    c.parse_restart_computer(run(win_client, c.restart_computer()))
    with connect(win_host, admin_key) as client:  # still reachable for a moment
        assert c.parse_hostname(run(client, c.hostname())) == "WIN-TEST01"
    assert wait_for(lambda: not win_host.up, 5)
    assert wait_for(lambda: win_host.reboots == 1, 5) and win_host.wait_until_up(5)
    with connect(win_host, admin_key) as client:
        assert c.parse_hostname(run(client, c.hostname())) == "WIN-TEST01"


def test_refused_and_hanging_connections(win_host: SimHost, admin_key: paramiko.PKey) -> None:
    win_host.faults.refuse_connections()
    with pytest.raises(paramiko.ssh_exception.NoValidConnectionsError):
        connect(win_host, admin_key)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((win_host.address, win_host.port), timeout=2)
    win_host.faults.accept_connections()
    connect(win_host, admin_key).close()
    win_host.faults.hang_connections()
    with pytest.raises(paramiko.SSHException):  # no banner: negotiation times out
        connect(win_host, admin_key, timeout=0.5)
    win_host.faults.accept_connections()
    connect(win_host, admin_key).close()


def test_drop_mid_command(win_client: SimClient, win_host: SimHost) -> None:
    win_host.faults.drop_after(10, pattern="inventory")
    result = run(win_client, c.inventory(services=["sshd"]))
    assert result.exit_code == c.NO_EXIT_STATUS
    assert len(result.stdout) <= 10
    with pytest.raises((paramiko.SSHException, EOFError, OSError)):
        run(win_client, c.hostname())
    assert win_host.commands[-1].fault == "drop"


def test_drop_mid_upload_leaves_a_partial_file(win_client: SimClient, win_host: SimHost) -> None:
    win_host.faults.drop_after(50_000, during="upload", pattern=r"kubelet\.exe")
    sftp = win_client.sftp()
    sftp.mkdir("/C:/k")
    with pytest.raises((paramiko.SSHException, EOFError, OSError)):
        sftp.putfo(io.BytesIO(b"k" * 300_000), "/C:/k/kubelet.exe")
    partial = win_host.drive / "k" / "kubelet.exe"
    assert partial.exists() and partial.stat().st_size < 300_000


def test_fail_the_nth_command(win_client: SimClient, win_host: SimHost) -> None:
    win_host.faults.fail_nth_command(2, exit_code=c.ERROR_ACCESS_DENIED)
    assert run(win_client, c.hostname()).exit_code == 0
    failed = run(win_client, c.sc_query("sshd"))
    assert failed.exit_code == c.ERROR_ACCESS_DENIED and "Access is denied." in failed.stderr
    with pytest.raises(c.CommandFailed) as err:
        c.parse_sc_status(failed)
    assert err.value.code == c.ERROR_ACCESS_DENIED
    assert run(win_client, c.sc_query("sshd")).exit_code == 0


def test_slow_command_times_out_the_client(win_client: SimClient, win_host: SimHost) -> None:
    win_host.faults.slow_command(r"^sc query", 1.5, times=1)
    start = time.monotonic()
    with pytest.raises((socket.timeout, TimeoutError)):
        win_client.run(c.sc_query("sshd"), timeout=0.5)
    assert time.monotonic() - start < 1.4
    assert run(win_client, c.hostname()).exit_code == 0  # other commands are not slowed


def test_rotated_host_key_is_refused(win_host: SimHost, admin_key: paramiko.PKey) -> None:
    pinned = win_host.host_key_line
    win_host.faults.rotate_host_key()
    with pytest.raises(paramiko.BadHostKeyException):
        SimClient(win_host.address, win_host.port, pinned, admin_key)


def test_full_disk(win_client: SimClient, win_host: SimHost) -> None:
    win_host.fs.make_directory("C:\\k\\cni")
    win_host.fs.write_bytes("C:\\k\\cni.tar.gz", tar_gz({"win-bridge.exe": b"b" * 1000}))
    win_host.faults.fill_disk(free_bytes=100)
    inv = c.parse_inventory(run(win_client, c.inventory()))
    assert inv.free_bytes == 100
    assert run(win_client, c.write_file("C:\\k\\kubelet.conf", "x" * 500)).exit_code == \
        c.ERROR_DISK_FULL
    sftp = win_client.sftp()
    with pytest.raises(OSError) as err:
        sftp.putfo(io.BytesIO(b"z" * 5000), "/C:/k/kubelet.exe")
    assert not isinstance(err.value, PermissionError | FileNotFoundError)
    tar = run(win_client, c.expand_archive("C:\\k\\cni.tar.gz", "C:\\k\\cni"))
    assert tar.exit_code == 1 and "Write failed" in tar.stderr
    win_host.faults.free_disk()
    c.check_done(run(win_client, c.write_file("C:\\k\\kubelet.conf", "x" * 500)))
    sftp.close()

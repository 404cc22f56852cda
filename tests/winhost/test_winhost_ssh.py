"""The SSH server and SFTP, driven by paramiko exactly as a real client would."""

from __future__ import annotations

import io
import socket

import paramiko
import pytest
from winhelpers import payload, run, wait_for

from syncer.nodes.windows import vocabulary as c
from syncer_lab.winhost import HostLab, SimClient, SimHost, key_line
from syncer_lab.winhost.host import generate_host_key
from syncer_lab.winhost.ssh import BANNER


def test_connect_with_host_key_checking(win_client: SimClient, win_host: SimHost) -> None:
    transport = win_client.ssh.get_transport()
    assert transport is not None
    assert transport.remote_version == BANNER
    assert transport.get_remote_server_key().get_base64() == win_host.host_key.get_base64()
    assert win_host.address.startswith("127.0.1.")
    assert c.parse_hostname(run(win_client, c.hostname())) == win_host.name


def test_unknown_or_wrong_host_key_is_refused(win_host: SimHost, admin_key: paramiko.PKey) -> None:
    other = generate_host_key()
    with pytest.raises(paramiko.BadHostKeyException):
        SimClient(win_host.address, win_host.port, key_line(other), admin_key)
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    with pytest.raises(paramiko.SSHException, match="not found in known_hosts"):
        client.connect(win_host.address, win_host.port, username="Administrator",
                       pkey=admin_key, allow_agent=False, look_for_keys=False, timeout=5)
    client.close()


def test_wrong_key_password_and_user_are_refused(win_host: SimHost,
                                                 admin_key: paramiko.PKey) -> None:
    with pytest.raises(paramiko.AuthenticationException):
        SimClient(win_host.address, win_host.port, win_host.host_key_line, generate_host_key())
    with pytest.raises(paramiko.AuthenticationException):
        SimClient(win_host.address, win_host.port, win_host.host_key_line, admin_key,
                  username="guest")
    client = paramiko.SSHClient()
    client.get_host_keys().add(win_host.address, win_host.host_key.get_name(), win_host.host_key)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    with pytest.raises(paramiko.AuthenticationException):
        client.connect(win_host.address, win_host.port, username="Administrator",
                       password="Passw0rd!", allow_agent=False, look_for_keys=False, timeout=5)
    client.close()


def test_authorized_keys_live_on_the_drive(win_host: SimHost, admin_key: paramiko.PKey,
                                           admin_key_line: str) -> None:
    text = (win_host.drive / "ProgramData" / "ssh" / "administrators_authorized_keys").read_text()
    assert admin_key_line in text
    win_host.set_authorized_keys([])
    with pytest.raises(paramiko.AuthenticationException):
        SimClient(win_host.address, win_host.port, win_host.host_key_line, admin_key)
    win_host.set_authorized_keys([admin_key_line])
    SimClient(win_host.address, win_host.port, win_host.host_key_line, admin_key).close()


def test_rsa_keys_both_ways(host_lab: HostLab) -> None:
    client_key = paramiko.RSAKey.generate(2048)
    host = host_lab.add_host("WIN-RSA", authorized_keys=[key_line(client_key)],
                             host_key_types=("rsa",))
    assert host.host_key_line.startswith("ssh-rsa ")
    with SimClient(host.address, host.port, host.host_key_line, client_key) as client:
        assert c.parse_hostname(run(client, c.hostname())) == "WIN-RSA"


def test_sftp_upload_mkdir_stat_rename(win_client: SimClient, win_host: SimHost) -> None:
    sftp = win_client.sftp()
    assert sftp.normalize(".") == "/C:/Users/Administrator"
    sftp.mkdir("/C:/k")
    sftp.putfo(io.BytesIO(payload("kubelet", "v1.30.4")), "/C:/k/kubelet.exe.new")
    assert sftp.stat("C:/k/kubelet.exe.new").st_size == len(payload("kubelet", "v1.30.4"))
    assert sftp.stat("C:\\K\\KUBELET.EXE.NEW").st_size > 0  # backslashes, any case
    sftp.rename("/C:/k/kubelet.exe.new", "/C:/k/kubelet.exe")
    assert sorted(sftp.listdir("/C:/k")) == ["kubelet.exe"]
    # The product's hash check sees exactly what SFTP wrote.
    digest = c.parse_file_hash(run(win_client, c.file_hash("C:\\k\\kubelet.exe")))
    assert digest == win_host.fs.sha256("C:\\k\\kubelet.exe").lower()
    # posix-rename replaces; plain rename refuses an existing target.
    sftp.putfo(io.BytesIO(payload("kubelet", "v1.31.0")), "/C:/k/kubelet.exe.new")
    with pytest.raises(OSError):
        sftp.rename("/C:/k/kubelet.exe.new", "/C:/k/kubelet.exe")
    sftp.posix_rename("/C:/k/kubelet.exe.new", "/C:/k/kubelet.exe")
    assert win_host.fs.read_bytes("C:\\k\\kubelet.exe") == payload("kubelet", "v1.31.0")
    sftp.remove("/C:/k/kubelet.exe")
    sftp.rmdir("/C:/k")
    sftp.close()


def test_sftp_errors(win_client: SimClient, win_host: SimHost) -> None:
    sftp = win_client.sftp()
    with pytest.raises(FileNotFoundError):
        sftp.stat("/C:/nope/x")
    with pytest.raises(FileNotFoundError):
        sftp.putfo(io.BytesIO(b"x"), "/C:/nope/x")  # parent missing
    with pytest.raises(OSError):
        sftp.mkdir("/C:/Windows")  # exists
    with pytest.raises(OSError):
        sftp.stat("/D:/x")  # only C: exists
    sftp.close()


def test_many_connections_and_channels(win_host: SimHost, admin_key: paramiko.PKey) -> None:
    clients = [SimClient(win_host.address, win_host.port, win_host.host_key_line, admin_key)
               for _ in range(5)]
    try:
        for client in clients:
            for _ in range(3):
                assert run(client, c.hostname()).stdout == "WIN-TEST01\r\n"
        assert wait_for(lambda: win_host.connection_count() == 5)
    finally:
        for client in clients:
            client.close()
    assert wait_for(lambda: win_host.connection_count() == 0)


def test_nothing_listens_on_other_ports(win_host: SimHost) -> None:
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((win_host.address, 2), timeout=2)

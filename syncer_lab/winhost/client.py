"""A minimal paramiko client for tests: connects to a host the way syncer must.

Host-key checking is on (``RejectPolicy`` with the host's key pinned in the client's
known hosts, never ``AutoAddPolicy``), authentication is the private key only (no agent,
no key files from ``~/.ssh``). This is test scaffolding, not the product's SSH session
(that is the node stage's); it returns plain ``(exit_code, stdout, stderr)`` results so
the winhost package does not depend on the product's parsers it is there to check.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from types import TracebackType

import paramiko


@dataclass(frozen=True)
class RunResult:
    exit_code: int  # -1 when the channel closed without an exit status
    stdout: str
    stderr: str


def known_hosts_name(address: str, port: int) -> str:
    return address if port == 22 else f"[{address}]:{port}"


class SimClient:
    def __init__(self, address: str, port: int, host_key_line: str, pkey: paramiko.PKey, *,
                 username: str = "Administrator", timeout: float = 10.0) -> None:
        self.address = address
        self.port = port
        self.timeout = timeout
        self.ssh = paramiko.SSHClient()
        key_type, key_b64 = host_key_line.split()[:2]
        known = paramiko.PKey.from_type_string(key_type, base64.b64decode(key_b64))
        self.ssh.get_host_keys().add(known_hosts_name(address, port), key_type, known)
        self.ssh.set_missing_host_key_policy(paramiko.RejectPolicy())
        self.ssh.connect(
            address, port=port, username=username, pkey=pkey, allow_agent=False,
            look_for_keys=False, timeout=timeout, banner_timeout=timeout, auth_timeout=timeout,
        )

    def run(self, command: str, timeout: float | None = None) -> RunResult:
        transport = self.ssh.get_transport()
        if transport is None or not transport.is_active():
            raise paramiko.SSHException("not connected")
        channel = transport.open_session(timeout=self.timeout)
        channel.settimeout(timeout or self.timeout * 3)
        channel.exec_command(command)
        out = channel.makefile("rb").read()
        err = channel.makefile_stderr("rb").read()
        code = channel.recv_exit_status()  # -1: closed without an exit status
        channel.close()
        return RunResult(code, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))

    def sftp(self) -> paramiko.SFTPClient:
        return self.ssh.open_sftp()

    def close(self) -> None:
        """Close, and wait for paramiko's transport thread: ``SSHClient.close()`` alone
        returns while that thread is still winding down (a leak check would see it)."""
        transport = self.ssh.get_transport()
        self.ssh.close()
        if transport is not None:
            transport.join(2)

    def __enter__(self) -> SimClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


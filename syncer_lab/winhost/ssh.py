"""The SSH side of a simulated host: paramiko's server, looking like Windows OpenSSH.

One :class:`paramiko.Transport` per accepted connection (its own thread), with the
banner ``SSH-2.0-OpenSSH_for_Windows_9.5``, the host's key, and public-key
authentication only: the offered key must be listed in
``C:\\ProgramData\\ssh\\administrators_authorized_keys`` on the host's drive (read at each
attempt, so tests and "user data" can change it) and the user must be one of the host's
administrators; passwords and "none" are refused.

``exec`` requests run through the host (:meth:`SimHost.execute`) on a thread of their
own, so a slow command never blocks the transport. The ``sftp`` subsystem serves the
host's drive with Windows OpenSSH's path conventions: ``/C:/k/kubelet.exe`` (what
``realpath`` returns, the home directory is ``/C:/Users/<user>``), and also
``C:/k/kubelet.exe`` and ``C:\\k\\kubelet.exe``; errors are SFTP status codes
(no such file; permission denied for a file held by a process; failure for a full
disk).
"""

from __future__ import annotations

import functools
import logging
import os
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ParamSpec, TypeVar

import paramiko
from paramiko.common import (
    AUTH_FAILED,
    AUTH_SUCCESSFUL,
    MSG_CHANNEL_FAILURE,
    MSG_CHANNEL_SUCCESS,
    OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED,
    OPEN_SUCCEEDED,
)
from paramiko.sftp import (
    SFTP_FAILURE,
    SFTP_NO_SUCH_FILE,
    SFTP_OK,
    SFTP_OP_UNSUPPORTED,
    SFTP_PERMISSION_DENIED,
)

from syncer_lab.winhost import win32
from syncer_lab.winhost.filesystem import split_windows_path
from syncer_lab.winhost.win32 import Win32Error

if TYPE_CHECKING:
    from syncer_lab.winhost.host import Connection, SimHost

log = logging.getLogger(__name__)

BANNER = "SSH-2.0-OpenSSH_for_Windows_9.5"
TRANSPORT_LOG = "syncer_lab.winhost.transport"
_P = ParamSpec("_P")
_R = TypeVar("_R")


class _QuietDisconnects(logging.Filter):
    """Server transports log a client's disconnect as an ERROR; it is not one here."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Socket exception" not in record.getMessage()


logging.getLogger(TRANSPORT_LOG).addFilter(_QuietDisconnects())


def sftp_code(err: Win32Error) -> int:
    if err.code in (win32.FILE_NOT_FOUND, win32.PATH_NOT_FOUND):
        return SFTP_NO_SUCH_FILE
    if err.code in (win32.ACCESS_DENIED, win32.SHARING_VIOLATION):
        return SFTP_PERMISSION_DENIED
    return SFTP_FAILURE


def _status_on_error(method: Callable[_P, _R]) -> Callable[_P, _R | int]:
    """An SFTP request whose drive operation fails answers with :func:`sftp_code`."""

    @functools.wraps(method)
    def answer(*args: _P.args, **kwargs: _P.kwargs) -> _R | int:
        try:
            return method(*args, **kwargs)
        except Win32Error as err:
            return sftp_code(err)

    return answer


class SSHServer(paramiko.ServerInterface):
    def __init__(self, host: SimHost, connection: Connection) -> None:
        self.host = host
        self.connection = connection
        self.username: str | None = None

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_none(self, username: str) -> int:
        return AUTH_FAILED

    def check_auth_password(self, username: str, password: str) -> int:
        return AUTH_FAILED

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        if self.host.authorizes(username, key):
            self.username = username
            return AUTH_SUCCESSFUL
        return AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return OPEN_SUCCEEDED
        return OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_subsystem_request(self, channel: paramiko.Channel, name: str) -> bool:
        if name == "sftp" and self.host.faults.sftp_silent:
            return True  # accepted, and nothing ever answers (faults.silent_sftp)
        return bool(super().check_channel_subsystem_request(channel, name))

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        text = command.decode("utf-8", errors="replace")
        transport = channel.get_transport()
        wait = None
        if isinstance(transport, ServerTransport):
            expected = transport.replies(channel.remote_chanid) + 1
            chanid = channel.remote_chanid

            def wait() -> bool:
                return transport.wait_replied(chanid, expected)

        return self.host.start_exec(self.connection, channel, text, wait)

    def check_channel_pty_request(self, *args: Any) -> bool:
        return True

    def check_channel_shell_request(self, channel: paramiko.Channel) -> bool:
        return False  # no interactive shell: syncer only uses exec and sftp

    def check_global_request(self, kind: str, msg: paramiko.Message) -> bool:
        return False


class SimSFTPHandle(paramiko.SFTPHandle):
    writefile: IO[Any] | None
    readfile: IO[Any] | None

    def __init__(self, server: SimSFTPServer, windows_path: str, flags: int,
                 limit: int | None) -> None:
        super().__init__(flags)
        self.server = server
        self.windows_path = windows_path
        self.limit = limit  # cut the connection after this many bytes (fault)
        self.written = 0
        self.writefile = None
        self.readfile = None

    def write(self, offset: int, data: Any) -> int:
        host = self.server.host
        f = self.writefile
        if f is None:
            return SFTP_PERMISSION_DENIED
        size = os.fstat(f.fileno()).st_size
        growth = max(0, offset + len(data) - size)
        try:
            host.fs.charge(growth, self.windows_path)
        except Win32Error as err:
            return sftp_code(err)
        if self.server.connection.dropped:
            # Write requests the client pipelined before the cut may still be queued in
            # this server thread; a dropped connection writes none of them.
            return SFTP_FAILURE
        if self.limit is not None and self.written + len(data) >= self.limit:
            keep = max(0, self.limit - self.written)
            f.seek(offset)
            f.write(data[:keep])
            f.flush()
            host.drop_connection(self.server.connection)
            return SFTP_FAILURE
        self.written += len(data)
        result: int = super().write(offset, data)
        return result


class SimSFTPServer(paramiko.SFTPServerInterface):
    def __init__(self, server: SSHServer, *args: Any, **kwargs: Any) -> None:
        super().__init__(server, *args, **kwargs)
        self.host = server.host
        self.connection = server.connection
        self.user = server.username or "Administrator"

    # --- paths -----------------------------------------------------------------------------
    def _windows(self, path: str) -> str:
        p = path.replace("\\", "/")
        if not p or not (p.startswith("/") or (len(p) > 1 and p[1] == ":")):
            p = f"C:/Users/{self.user}/{p}"
        return "C:\\" + "\\".join(split_windows_path(p))

    def canonicalize(self, path: str) -> str:
        try:
            parts = split_windows_path(self._windows(path))
        except Win32Error:
            return "/"
        return "/C:/" + "/".join(parts)

    def _real(self, path: str) -> Path:
        return self.host.fs.resolve(self._windows(path))

    # --- queries ---------------------------------------------------------------------------
    @_status_on_error
    def list_folder(self, path: str) -> Any:
        real = self._real(path)
        if not real.is_dir():
            return SFTP_NO_SUCH_FILE
        return [paramiko.SFTPAttributes.from_stat(os.stat(real / name), filename=name)
                for name in sorted(os.listdir(real))]

    @_status_on_error
    def stat(self, path: str) -> Any:
        real = self._real(path)
        if not real.exists():
            return SFTP_NO_SUCH_FILE
        return paramiko.SFTPAttributes.from_stat(os.stat(real))

    lstat = stat

    # --- files -----------------------------------------------------------------------------
    @_status_on_error
    def open(self, path: str, flags: int, attr: Any) -> Any:
        win = self._windows(path)
        real = self.host.fs.resolve(win)
        writing = bool(flags & (os.O_WRONLY | os.O_RDWR))
        if real.is_dir():
            return SFTP_PERMISSION_DENIED
        if writing:
            if not real.exists() and not flags & os.O_CREAT:
                return SFTP_NO_SUCH_FILE
            if real.exists() and flags & os.O_EXCL:
                return SFTP_FAILURE
            real = self.host.fs.open_for_write(win, truncate=bool(flags & os.O_TRUNC))
            self.host.uploads.append(win)
        elif not real.is_file():
            return SFTP_NO_SUCH_FILE
        mode = "rb"
        if flags & os.O_RDWR:
            mode = "a+b" if flags & os.O_APPEND else "r+b"
        elif flags & os.O_WRONLY:
            mode = "ab" if flags & os.O_APPEND else "wb"
        try:
            fd = os.open(real, flags | getattr(os, "O_BINARY", 0), 0o666)
            fobj = os.fdopen(fd, mode)
        except OSError as err:
            return paramiko.SFTPServer.convert_errno(err.errno or 0)
        limit = self.host.faults.upload_limit(win) if writing else None
        handle = SimSFTPHandle(self, win, flags, limit)
        if writing:
            handle.writefile = fobj
            if flags & os.O_RDWR:
                handle.readfile = fobj
        else:
            handle.readfile = fobj
        return handle

    @_status_on_error
    def remove(self, path: str) -> int:
        win = self._windows(path)
        if self.host.fs.resolve(win).is_dir():
            return SFTP_FAILURE
        self.host.fs.remove(win, recursive=False)
        return SFTP_OK

    @_status_on_error
    def rename(self, oldpath: str, newpath: str) -> int:
        self.host.fs.move(self._windows(oldpath), self._windows(newpath), replace=False)
        return SFTP_OK

    @_status_on_error
    def posix_rename(self, oldpath: str, newpath: str) -> int:
        self.host.fs.move(self._windows(oldpath), self._windows(newpath), replace=True)
        return SFTP_OK

    @_status_on_error
    def mkdir(self, path: str, attr: Any) -> int:
        real = self._real(path)
        if real.exists():
            return SFTP_FAILURE
        if not real.parent.is_dir():
            return SFTP_NO_SUCH_FILE
        real.mkdir()
        return SFTP_OK

    @_status_on_error
    def rmdir(self, path: str) -> int:
        real = self._real(path)
        if not real.is_dir():
            return SFTP_NO_SUCH_FILE
        if any(real.iterdir()):
            return SFTP_FAILURE
        real.rmdir()
        return SFTP_OK

    @_status_on_error
    def chattr(self, path: str, attr: Any) -> int:
        return SFTP_OK if self._real(path).exists() else SFTP_NO_SUCH_FILE

    def readlink(self, path: str) -> Any:
        return SFTP_OP_UNSUPPORTED

    def symlink(self, target_path: str, path: str) -> int:
        return SFTP_OP_UNSUPPORTED


class ServerTransport(paramiko.Transport):
    """A transport that tells when it has answered a channel request.

    paramiko calls ``check_channel_exec_request`` and only *then* sends the request's
    success reply. A command that finishes quickly on its own thread could send its
    output, exit status and close first, and the client would see "Channel closed"
    instead of its reply. The exec thread therefore waits for :meth:`wait_replied`.
    """

    def __init__(self, sock: Any) -> None:
        super().__init__(sock)
        self._replies: dict[int, int] = {}  # remote channel id -> replies sent
        self._replied = threading.Condition()

    def _send_user_message(self, data: Any) -> None:
        super()._send_user_message(data)  # type: ignore[misc]  # private, not in the stubs
        raw = data.asbytes() if hasattr(data, "asbytes") else bytes(data)
        if raw[:1] in (bytes([MSG_CHANNEL_SUCCESS]), bytes([MSG_CHANNEL_FAILURE])):
            chanid = struct.unpack(">I", raw[1:5])[0]
            with self._replied:
                self._replies[chanid] = self._replies.get(chanid, 0) + 1
                self._replied.notify_all()

    def replies(self, remote_chanid: int) -> int:
        with self._replied:
            return self._replies.get(remote_chanid, 0)

    def wait_replied(self, remote_chanid: int, count: int, timeout: float = 10.0) -> bool:
        with self._replied:
            return self._replied.wait_for(
                lambda: self._replies.get(remote_chanid, 0) >= count or not self.is_active(),
                timeout,
            )


def serve(host: SimHost, connection: Connection) -> paramiko.Transport:
    """Start an SSH server transport on an accepted socket."""
    transport = ServerTransport(connection.sock)
    transport.set_log_channel(TRANSPORT_LOG)
    transport.local_version = BANNER
    for key in host.host_keys.values():  # every type at once, as Windows OpenSSH
        transport.add_server_key(key)
    transport.set_subsystem_handler("sftp", paramiko.SFTPServer, SimSFTPServer)
    server = SSHServer(host, connection)
    # With an event, start_server returns at once; negotiation runs on the transport's
    # own thread, so one slow client never holds up the lab's acceptor.
    transport.start_server(event=threading.Event(), server=server)
    return transport

"""One SSH session to one Windows host: connect, run vocabulary commands, upload files.

:class:`HostSession` is the only place syncer opens SSH connections to Windows hosts. It
is a context manager and always closes its client (an SSH client leak was a real WMCO
bug; tests check that no socket or transport thread is left after a rollout).

Connecting
    paramiko ``SSHClient`` with **no** known-hosts file and the host-key policy from
    :mod:`syncer.nodes.hostkeys` (:class:`~syncer.nodes.hostkeys.PinningPolicy`, never
    ``AutoAddPolicy``), public-key authentication only with the key from
    ``cloud-private-key`` (no agent, no ``~/.ssh`` keys, no passwords). WMCO's retry rules:
    an unreachable host is retried every ``retry_interval`` (a minute) for up to
    ``connect_timeout_total`` (10 minutes); an authentication failure for up to
    ``auth_timeout_total`` (5 minutes, the user data may still be installing the key). A
    changed host key is never retried: :class:`~syncer.nodes.hostkeys.HostKeyMismatch`
    propagates at once, and the host stops until an operator acts. A first-use host key is
    pinned (:meth:`PinningPolicy.persist`) right after authentication succeeded.

Commands
    :meth:`run` takes a command string built by :mod:`syncer.nodes.windows.vocabulary` (the only
    source of commands) and returns a :class:`~syncer.nodes.windows.vocabulary.CommandResult`. A
    channel that closes without an exit status gives ``exit_code == -1`` (what
    ``Restart-Computer`` does). A transport that died is reconnected once per command;
    commands are idempotent, so re-running one is safe. Every command is bounded: its
    output and exit status must arrive within ``command_timeout`` (a total, not a
    per-read timeout, so a host that trickles a byte a second fails too), and each of
    stdout and stderr may hold at most ``max_output`` bytes.

Uploads
    :meth:`upload` writes over SFTP to ``<target>.part``, verifies the remote SHA256 with
    the vocabulary's ``file-hash`` entry, then renames into place (``posix-rename``,
    replacing). A connection dropped mid-upload is reconnected and the file is redone from
    the start, up to ``upload_attempts`` times. Every SFTP request must be answered within
    ``command_timeout`` (the SFTP channel's timeout; a hung ``sftp-server.exe`` fails) and
    a whole upload must end within ``transfer_timeout``. SFTP paths use Windows OpenSSH's
    form ``/C:/k/kubelet.exe``.

Reboots
    :meth:`reboot` sends ``Restart-Computer -Force`` (a channel closed without an exit
    status is success — treating it as a failure caused WMCO's reboot loop), closes the
    connection, waits until the host stops accepting connections, then until it accepts
    SSH again, and reconnects. No command is sent in between.

Every failure is counted in :data:`SSH_ERRORS` (exported as ``syncer_ssh_errors_total``).
Nothing here logs key material; commands are logged by their vocabulary entry only.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from syncer.nodes.hostkeys import HostKeyMismatch, PinningPolicy
from syncer.nodes.windows import vocabulary
from syncer.nodes.windows.sshlib import paramiko
from syncer.nodes.windows.vocabulary import CommandResult

CHUNK = 1 << 18  # bytes read from a channel, or written to SFTP, at a time

log = logging.getLogger(__name__)


class ErrorCounter:
    """A thread-safe counter of SSH failures (connects, commands, uploads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value = 0

    def inc(self) -> None:
        with self._lock:
            self._value += 1

    @property
    def value(self) -> int:
        with self._lock:
            return self._value


SSH_ERRORS = ErrorCounter()


class _Closing:
    """Transports closed but whose threads may still be ending: paramiko's ``close()``
    returns before its transport thread has exited (up to its 0.1 s poll). Joining each
    on close would add that to every probe; :func:`wait_closed` joins them all at once
    at the end of a round, so a finished round leaves no SSH thread behind."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._transports: list[paramiko.Transport] = []

    def add(self, transport: paramiko.Transport) -> None:
        with self._lock:
            self._transports = [t for t in self._transports if t.is_alive()]
            self._transports.append(transport)

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._lock:
            transports, self._transports = self._transports, []
        for transport in transports:
            if transport is not threading.current_thread():
                transport.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in transports)


_CLOSING = _Closing()


def wait_closed(timeout: float = 5.0) -> bool:
    """Join the threads of every closed SSH transport; True when all have ended."""
    return _CLOSING.wait(timeout)


class SshError(Exception):
    """The host could not be reached, authenticated to, or talked to."""


class HostUnreachable(SshError):
    """Connecting kept failing for the configured time."""


class AuthenticationFailed(SshError):
    """The host refused the key for the configured time."""


class UploadFailed(SshError):
    """An upload did not arrive intact after every attempt."""


@dataclass(frozen=True)
class SshOptions:
    """Timing of SSH work. Defaults are WMCO's; tests make them small."""

    port: int = 22
    connect_timeout: float = 10.0  # one TCP connect + banner + auth attempt
    connect_timeout_total: float = 600.0  # keep retrying an unreachable host this long
    auth_timeout_total: float = 300.0  # keep retrying an authentication failure this long
    retry_interval: float = 60.0  # between connect attempts
    command_timeout: float = 600.0  # one command, from exec to exit status
    max_output: int = 4 << 20  # bytes of stdout, and of stderr, one command may print
    transfer_timeout: float = 1800.0  # one SFTP upload, start to end
    upload_attempts: int = 3
    reboot_down_timeout: float = 600.0  # until the host stops answering after a restart
    reboot_up_timeout: float = 1200.0  # until it answers SSH again
    poll_interval: float = 1.0  # while waiting for a reboot


def _blocks(local: Path | bytes) -> Iterator[bytes]:
    if isinstance(local, bytes):
        for offset in range(0, len(local), CHUNK):
            yield local[offset:offset + CHUNK]
        return
    with local.open("rb") as file:
        while block := file.read(CHUNK):
            yield block


def sftp_path(windows_path: str) -> str:
    """``C:\\k\\kubelet.exe`` -> ``/C:/k/kubelet.exe`` (Windows OpenSSH's SFTP form)."""
    return "/" + windows_path.replace("\\", "/")


class HostSession:
    """An SSH session to one host (see the module docstring). Use as a context manager."""

    def __init__(
        self,
        address: str,
        username: str,
        pkey: paramiko.PKey,
        policy: PinningPolicy,
        options: SshOptions | None = None,
        *,
        cancel: threading.Event | None = None,
        errors: ErrorCounter = SSH_ERRORS,
    ) -> None:
        self.address = address
        self.username = username
        self._pkey = pkey
        self.policy = policy
        self.options = options or SshOptions()
        self._cancel = cancel
        self._errors = errors
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self.commands_run = 0

    # --- lifecycle ---------------------------------------------------------------------
    def __enter__(self) -> HostSession:
        if not self.connected:
            self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the SFTP channel and the client; safe to call more than once."""
        sftp, self._sftp = self._sftp, None
        client, self._client = self._client, None
        if sftp is not None:
            with contextlib.suppress(Exception):
                sftp.close()
        if client is not None:
            transport = client.get_transport()
            if transport is not None:
                # Wake the transport thread out of its blocking read at once (closing the
                # socket alone leaves it waiting for its 0.1 s poll).
                with contextlib.suppress(OSError, AttributeError):
                    transport.sock.shutdown(socket.SHUT_WR)
            with contextlib.suppress(Exception):
                client.close()
            if transport is not None:
                _CLOSING.add(transport)

    @property
    def connected(self) -> bool:
        if self._client is None:
            return False
        transport = self._client.get_transport()
        return transport is not None and transport.is_active()

    def connect(self) -> None:
        """Connect with WMCO's retry rules (see the module docstring)."""
        self.close()
        opts = self.options
        start = time.monotonic()
        last: BaseException | None = None
        while True:
            client = paramiko.SSHClient()
            client.set_missing_host_key_policy(self.policy)
            try:
                sock = _open_socket(self.address, opts.port, opts.connect_timeout)
                client.connect(
                    self.address,
                    transport_factory=_offering(self.policy.key_types()),
                    port=opts.port,
                    sock=sock,
                    username=self.username,
                    pkey=self._pkey,
                    allow_agent=False,
                    look_for_keys=False,
                    timeout=opts.connect_timeout,
                    banner_timeout=opts.connect_timeout,
                    auth_timeout=opts.connect_timeout,
                    channel_timeout=opts.connect_timeout,
                )
            except HostKeyMismatch:
                client.close()
                self._errors.inc()
                raise
            except paramiko.AuthenticationException as err:
                client.close()
                self._errors.inc()
                last = err
                limit = opts.auth_timeout_total
                kind: type[SshError] = AuthenticationFailed
            except (OSError, EOFError, paramiko.SSHException) as err:
                client.close()
                self._errors.inc()
                last = err
                limit = opts.connect_timeout_total
                kind = HostUnreachable
            else:
                self._client = client
                self.policy.persist()
                return
            elapsed = time.monotonic() - start
            if elapsed + opts.retry_interval > limit:
                what = "authenticate to" if kind is AuthenticationFailed else "connect to"
                raise kind(
                    f"cannot {what} {self.address}:{opts.port} as {self.username} "
                    f"(tried for {elapsed:.0f}s): {_describe(last)}"
                ) from None
            log.info(
                "%s: %s; retrying in %.0fs", self.address, _describe(last), opts.retry_interval
            )
            if self._wait(opts.retry_interval):
                raise SshError(f"{self.address}: stopped while waiting to reconnect") from None

    def _wait(self, seconds: float) -> bool:
        """Sleep; True if the session was cancelled meanwhile."""
        if self._cancel is None:
            time.sleep(seconds)
            return False
        return self._cancel.wait(seconds)

    def _transport(self) -> paramiko.Transport:
        if not self.connected:
            self.connect()
        assert self._client is not None
        transport = self._client.get_transport()
        assert transport is not None
        return transport

    # --- commands ----------------------------------------------------------------------
    def run(
        self, command: str, *, timeout: float | None = None, retry_lost: bool = True
    ) -> CommandResult:
        """Run one vocabulary command. If the connection dies under it (an exception, or
        no exit status and a dead transport), reconnect and run it once more: every
        vocabulary command is idempotent. ``retry_lost=False`` returns the lost result
        instead (``Restart-Computer``)."""
        for attempt in (1, 2):
            transport = self._transport()
            try:
                result = self._exec(transport, command, timeout or self.options.command_timeout)
            except (OSError, EOFError, paramiko.SSHException) as err:
                self._errors.inc()
                if attempt == 2 or transport.is_active():
                    raise SshError(f"{self.address}: command failed: {_describe(err)}") from None
                log.info("%s: connection lost (%s); reconnecting", self.address, _describe(err))
                self.close()
                continue
            lost = retry_lost and result.exit_code == vocabulary.NO_EXIT_STATUS
            if not lost or not _died(transport):
                return result
            self._errors.inc()
            if attempt == 2:
                raise SshError(f"{self.address}: the connection closed during a command twice")
            log.info("%s: connection lost during a command; reconnecting", self.address)
            self.close()
        raise AssertionError("unreachable")

    def _exec(self, transport: paramiko.Transport, command: str, timeout: float) -> CommandResult:
        """Run ``command``; the whole of it (output and exit status) within ``timeout``,
        at most ``max_output`` bytes on each stream. A host that hangs, trickles or
        floods fails with :class:`SshError` and holds nothing up."""
        deadline = time.monotonic() + timeout
        channel = transport.open_session(timeout=self.options.connect_timeout)
        limit = self.options.max_output
        out, err = bytearray(), bytearray()
        try:
            channel.exec_command(command)
            eof = False
            while not eof:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                channel.settimeout(min(remaining, 1.0))
                while channel.recv_stderr_ready():
                    err += channel.recv_stderr(CHUNK)
                try:
                    chunk = channel.recv(CHUNK)  # whatever has arrived; b"" at the end
                except TimeoutError:
                    chunk = None
                if chunk == b"":
                    eof = True
                    while chunk_err := channel.recv_stderr(CHUNK):
                        err += chunk_err
                elif chunk:
                    out += chunk
                if len(out) > limit or len(err) > limit:
                    raise SshError(f"{self.address}: the command printed more than {limit} "
                                   "bytes; stopped")
            if not channel.status_event.wait(max(deadline - time.monotonic(), 0.01)):
                raise TimeoutError
            code = channel.exit_status
        except TimeoutError:
            raise SshError(f"{self.address}: command timed out after {timeout:.0f}s") from None
        finally:
            channel.close()
        self.commands_run += 1
        return CommandResult(code, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))

    # --- files -------------------------------------------------------------------------
    def _sftp_client(self) -> paramiko.SFTPClient:
        if self._sftp is None or not self.connected:
            transport = self._transport()
            channel = transport.open_session(timeout=self.options.connect_timeout)
            channel.settimeout(self.options.command_timeout)  # every SFTP request bounded
            channel.invoke_subsystem("sftp")
            self._sftp = paramiko.SFTPClient(channel)
        return self._sftp

    def upload(self, local: Path | bytes, target: str, sha256: str) -> None:
        """Put ``local`` (a file, or bytes) at Windows path ``target`` and make sure the
        host has exactly ``sha256``; redo the file after a dropped connection."""
        vocabulary.check_path(target, "upload target")
        part = target + ".part"
        last: BaseException | None = None
        for attempt in range(1, self.options.upload_attempts + 1):
            try:
                sftp = self._sftp_client()
                self._put(sftp, local, sftp_path(part))
                remote = vocabulary.parse_file_hash(self.run(vocabulary.file_hash(part)))
                if remote != sha256:
                    raise UploadFailed(
                        f"{self.address}: {target}: uploaded file has sha256 {remote}, "
                        f"expected {sha256}"
                    )
                try:
                    sftp.posix_rename(sftp_path(part), sftp_path(target))
                except OSError:
                    vocabulary.check_done(self.run(vocabulary.move_file(part, target)), "move-file")
                return
            except (OSError, EOFError, paramiko.SSHException, SshError) as err:
                self._errors.inc()
                last = err
                log.info(
                    "%s: upload of %s failed (attempt %d): %s",
                    self.address, target, attempt, _describe(err),
                )
                self.close()
        raise UploadFailed(
            f"{self.address}: upload of {target} failed after "
            f"{self.options.upload_attempts} attempts: {_describe(last)}"
        )

    def _put(self, sftp: paramiko.SFTPClient, local: Path | bytes, remote: str) -> None:
        """Write ``local`` to ``remote`` within ``transfer_timeout`` (each request within
        ``command_timeout``, the channel's timeout)."""
        deadline = time.monotonic() + self.options.transfer_timeout
        with sftp.open(remote, "wb") as f:
            f.set_pipelined(True)
            for block in _blocks(local):
                if time.monotonic() > deadline:
                    raise SshError(f"{self.address}: upload to {remote} took longer than "
                                   f"{self.options.transfer_timeout:.0f}s")
                f.write(block)

    # --- reboots -----------------------------------------------------------------------
    def reboot(self) -> None:
        """``Restart-Computer -Force``, wait for down, then up, then reconnect."""
        result = self.run(vocabulary.restart_computer(), retry_lost=False)
        vocabulary.parse_restart_computer(result)
        self.close()
        opts = self.options
        deadline = time.monotonic() + opts.reboot_down_timeout
        while self._reachable():
            if time.monotonic() > deadline:
                raise SshError(
                    f"{self.address}: still reachable {opts.reboot_down_timeout:.0f}s after "
                    "Restart-Computer; the reboot did not start"
                )
            if self._wait(opts.poll_interval):
                raise SshError(f"{self.address}: stopped while waiting for the reboot")
        log.info("%s: down for the reboot", self.address)
        deadline = time.monotonic() + opts.reboot_up_timeout
        while not self._reachable():
            if time.monotonic() > deadline:
                raise HostUnreachable(
                    f"{self.address}: not back {opts.reboot_up_timeout:.0f}s after going down "
                    "for a reboot"
                )
            if self._wait(opts.poll_interval):
                raise SshError(f"{self.address}: stopped while waiting for the reboot")
        self.connect()
        log.info("%s: back after the reboot", self.address)

    def _reachable(self) -> bool:
        """True if the SSH port answers with a banner (a TCP accept alone is not enough:
        a host going down may still accept and then hang)."""
        try:
            with socket.create_connection(
                (self.address, self.options.port), timeout=self.options.connect_timeout
            ) as sock:
                sock.settimeout(self.options.connect_timeout)
                return sock.recv(4).startswith(b"SSH-")
        except OSError:
            return False


def _offering(key_types: tuple[str, ...]) -> Any:
    """A transport factory whose client offers only ``key_types`` as host key
    algorithms, in that order (the pinned type, or Go's preference)."""

    def transport(sock: socket.socket, **kwargs: Any) -> paramiko.Transport:
        t = paramiko.Transport(sock, **kwargs)
        t.get_security_options().key_types = key_types
        return t

    return transport


def _open_socket(address: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection with Nagle's algorithm off: SSH sends many small packets in
    lock-step (key exchange, channel requests), and Nagle plus delayed ACKs would add
    about 40 ms to many of them."""
    sock = socket.create_connection((address, port), timeout=timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        sock.close()
        raise
    return sock


def _died(transport: paramiko.Transport, wait: float = 0.5) -> bool:
    """True once the transport is dead; waits briefly, as EOF reaches the channel first."""
    deadline = time.monotonic() + wait
    while transport.is_active():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _describe(err: BaseException | None) -> str:
    if err is None:
        return "unknown error"
    text = str(err).strip()
    name = type(err).__name__
    return f"{name}: {text}" if text else name

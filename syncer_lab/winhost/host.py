"""One simulated Windows host: identity, drive, services, SSH connections, reboots.

A :class:`SimHost` belongs to a :class:`~syncer_lab.winhost.lab.HostLab`, which owns
the listening sockets and the one acceptor thread for all hosts. The host owns what is
per machine:

- ``name`` (what ``hostname`` prints), ``address``/``port``, ``os_build``,
  ``default_shell`` (``"cmd"``, WMCO's requirement, or ``"powershell"``);
- ``host_keys``: real RSA, ECDSA (nistp256) and Ed25519 keys, all offered at once, as
  Windows OpenSSH generates and offers them (``ssh-keygen -A`` on the first start of
  sshd); ``host_key`` is the ECDSA one, which Go's x/crypto/ssh, and so WMCO, negotiates
  first (``golang.org/x/crypto/ssh`` ``preferredHostKeyAlgos``/``supportedHostKeyAlgos``
  order); ``host_key_line`` its known_hosts form;
- ``features`` (Windows optional features: ``Containers`` on or off; enabling one
  takes effect at the next boot, as ``Install-WindowsFeature`` reports RestartNeeded) and
  a pending host name (``Rename-Computer`` takes effect at the next boot);
- ``hns`` (:mod:`syncer_lab.winhost.hns`: the host's networks and endpoints, gone at a
  reboot);
- ``drive`` (the real directory behind ``C:\\``) and ``fs`` (its Windows semantics),
  ``scm`` (services and processes);
- ``commands`` (every exec request, decoded, with what the host made of it) and
  ``unexpected_commands`` (the ones outside the vocabulary; tests assert it is empty);
- ``faults`` and timing knobs: ``reboot_delay`` (Restart-Computer returns, the host keeps
  answering that long, then goes down), ``reboot_downtime`` (unreachable: connection
  refused), ``process_linger_seconds``, ``service_transition_seconds``,
  ``command_latency`` (added before every command).

A reboot closes every connection (clients see the socket closed, a running command gets
no exit status), refuses connections for ``reboot_downtime``, then boots: processes are
gone, services marked for deletion are deleted, and automatic services start in
dependency order (the kubelet service starts the simulated kubelet again).
"""

from __future__ import annotations

import contextlib
import io
import itertools
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from syncer_lab.winhost import ssh
from syncer_lab.winhost.faults import CommandFault, Faults
from syncer_lab.winhost.filesystem import Drive
from syncer_lab.winhost.hns import HostNetworking
from syncer_lab.winhost.service_manager import ServiceControlManager
from syncer_lab.winhost.shell import Executed, Interpreter
from syncer_lab.winhost.vocabulary import Outcome
from syncer_lab.winhost.win32 import Win32Error

if TYPE_CHECKING:
    from syncer_lab.winhost.lab import HostLab

log = logging.getLogger(__name__)

AUTHORIZED_KEYS = "C:\\ProgramData\\ssh\\administrators_authorized_keys"
SSHD_EXE = "C:\\Windows\\System32\\OpenSSH\\sshd.exe"


HOST_KEY_TYPES = ("rsa", "ecdsa", "ed25519")


def generate_host_key(kind: str = "ed25519") -> paramiko.PKey:
    if kind == "rsa":
        return paramiko.RSAKey.generate(2048)
    if kind == "ecdsa":
        return paramiko.ECDSAKey.generate()
    if kind != "ed25519":
        raise ValueError(f"host key type must be 'ed25519', 'ecdsa' or 'rsa', not {kind!r}")
    pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    return paramiko.Ed25519Key(file_obj=io.StringIO(pem.decode("ascii")))


def key_line(key: paramiko.PKey) -> str:
    """``<type> <base64>``: the known_hosts / authorized_keys form (no comment)."""
    return f"{key.get_name()} {key.get_base64()}"


@dataclass
class Connection:
    id: int
    sock: socket.socket
    peer: str
    transport: paramiko.Transport | None = None
    dropped: bool = False


@dataclass
class ReceivedCommand:
    """One exec request as the host received and answered it."""

    command: str  # the command line exactly as received
    connection: int
    received_at: float
    executed: Executed | None = None
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    fault: str | None = None  # the fault that shaped the answer, if any
    finished: bool = False

    @property
    def entry(self) -> str | None:
        return self.executed.entry if self.executed else None

    @property
    def script(self) -> str | None:
        return self.executed.script if self.executed else None

    @property
    def params(self) -> dict[str, object]:
        return self.executed.params if self.executed else {}

    @property
    def summary(self) -> str:
        return self.executed.summary if self.executed else self.command[:200]

    @property
    def unexpected(self) -> str | None:
        return self.executed.outcome.unexpected if self.executed else None


class SimHost:
    def __init__(
        self,
        lab: HostLab,
        name: str,
        address: str,
        port: int,
        root: Path,
        *,
        os_build: str = "10.0.20348.2340",
        default_shell: str = "cmd",
        authorized_keys: list[str] | tuple[str, ...] = (),
        users: tuple[str, ...] = ("Administrator",),
        host_key_types: tuple[str, ...] = HOST_KEY_TYPES,
        containers_feature: bool = True,
        dns_suffix: str = "",
        cloud_hostname: str | None = None,
        process_linger_seconds: float = 1.0,
        service_transition_seconds: float = 0.2,
        reboot_delay: float = 0.3,
        reboot_downtime: float = 1.0,
        command_latency: float = 0.0,
    ) -> None:
        if default_shell not in ("cmd", "powershell"):
            raise ValueError("default_shell must be 'cmd' or 'powershell'")
        self.lab = lab
        self.name = name  # the host's name in the lab (stable)
        self.computer_name = name  # what Windows reports (changes with Rename-Computer)
        self.address = address
        self.port = port
        self.os_build = os_build
        self.default_shell = default_shell
        self.users = users
        self.host_key_types = tuple(host_key_types)
        self.host_keys: dict[str, paramiko.PKey] = {
            kind: generate_host_key(kind) for kind in self.host_key_types}
        self.features: dict[str, bool] = {"Containers": containers_feature}
        self.pending_features: dict[str, bool] = {}
        self.pending_name: str | None = None
        self.dns_suffix = dns_suffix  # the primary DNS suffix (ipconfig /all)
        # The host name the cloud's instance metadata service reports (AWS, GCP); None
        # where no metadata service answers.
        self.cloud_hostname = cloud_hostname
        self.trusted_roots: set[str] = set()  # certificates imported into LocalMachine\Root
        # Machine-wide environment variables as written, and as the service control
        # manager read them at the last boot (what services get).
        self.machine_environment: dict[str, str] = {}
        self.service_environment: dict[str, str] = {}
        self.hns = HostNetworking(address)
        self.provider_id: str | None = None  # set by the machine-API simulator
        self.drive = root
        self.fs = Drive(root)
        self.scm = ServiceControlManager(
            self.fs,
            transition_seconds=service_transition_seconds,
            linger_seconds=process_linger_seconds,
        )
        self.reboot_delay = reboot_delay
        self.reboot_downtime = reboot_downtime
        self.command_latency = command_latency
        self.faults = Faults(self)
        self.commands: list[ReceivedCommand] = []
        self.uploads: list[str] = []  # the Windows path of every file opened for writing over SFTP
        self.reboots = 0
        self.boot_id = str(uuid.uuid4())
        self.up = True
        self._lock = threading.RLock()
        self._halt = threading.Event()  # set while the host is down (interrupts sleeps)
        self._connections: dict[int, Connection] = {}
        self._conn_ids = itertools.count(1)
        self._threads: set[threading.Thread] = set()
        self._hung: list[socket.socket] = []
        self._rebooting = False
        self.interpreter = Interpreter(self, default_shell, self._environment())
        self._lay_out_drive(authorized_keys)
        self.scm.add_running("sshd", SSHD_EXE, "auto", "OpenSSH SSH Server")

    # --- knobs kept by the service control manager ---------------------------------------
    @property
    def process_linger_seconds(self) -> float:
        return self.scm.linger_seconds

    @process_linger_seconds.setter
    def process_linger_seconds(self, value: float) -> None:
        self.scm.linger_seconds = value

    @property
    def service_transition_seconds(self) -> float:
        return self.scm.transition_seconds

    @service_transition_seconds.setter
    def service_transition_seconds(self, value: float) -> None:
        self.scm.transition_seconds = value

    # --- identity ------------------------------------------------------------------------
    @property
    def host_key(self) -> paramiko.PKey:
        """The key a Go client (WMCO) negotiates: ECDSA when offered, else the first."""
        for kind in ("ecdsa", "rsa", "ed25519"):
            if kind in self.host_keys:
                return self.host_keys[kind]
        raise LookupError("the host offers no host key")

    @property
    def host_key_line(self) -> str:
        return key_line(self.host_key)

    @property
    def unexpected_commands(self) -> list[ReceivedCommand]:
        with self._lock:
            return [c for c in self.commands if c.unexpected]

    def _new_host_key(self) -> paramiko.PKey:
        """New keys of every type (a reinstalled host, or an impostor)."""
        self.host_keys = {kind: generate_host_key(kind) for kind in self.host_key_types}
        return self.host_key

    def _environment(self) -> dict[str, str]:
        user = self.users[0]
        return {
            "COMPUTERNAME": self.name.upper(),
            "USERNAME": user,
            "USERPROFILE": f"C:\\Users\\{user}",
            "SystemRoot": "C:\\Windows",
            "windir": "C:\\Windows",
            "SystemDrive": "C:",
            "ComSpec": "C:\\Windows\\system32\\cmd.exe",
            "ProgramData": "C:\\ProgramData",
            "ProgramFiles": "C:\\Program Files",
            "TEMP": f"C:\\Users\\{user}\\AppData\\Local\\Temp",
            "TMP": f"C:\\Users\\{user}\\AppData\\Local\\Temp",
            "OS": "Windows_NT",
            "PROCESSOR_ARCHITECTURE": "AMD64",
            "PATH": "C:\\Windows\\system32;C:\\Windows;C:\\Windows\\System32\\Wbem;"
                    "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\;"
                    "C:\\Windows\\System32\\OpenSSH\\",
        }

    def _lay_out_drive(self, authorized_keys: list[str] | tuple[str, ...]) -> None:
        for directory in ("C:\\Windows\\System32\\OpenSSH", "C:\\ProgramData\\ssh",
                          "C:\\Program Files", f"C:\\Users\\{self.users[0]}",
                          f"C:\\Users\\{self.users[0]}\\AppData\\Local\\Temp"):
            self.fs.make_directory(directory)
        for exe in (SSHD_EXE, "C:\\Windows\\System32\\tar.exe", "C:\\Windows\\System32\\sc.exe",
                    "C:\\Windows\\System32\\HOSTNAME.EXE"):
            if not self.fs.exists(exe):
                self.fs.write_bytes(exe, b"MZ simulated system binary\n")
        self.set_authorized_keys(list(authorized_keys))

    def set_authorized_keys(self, lines: list[str]) -> None:
        """Replace ``administrators_authorized_keys`` (as the user data would write it)."""
        text = "".join(line.strip() + "\r\n" for line in lines if line.strip())
        self.fs.write_bytes(AUTHORIZED_KEYS, text.encode("utf-8"))

    def authorizes(self, username: str, key: paramiko.PKey) -> bool:
        if username.casefold() not in (u.casefold() for u in self.users):
            return False
        try:
            text = self.fs.read_bytes(AUTHORIZED_KEYS).decode("utf-8-sig", errors="replace")
        except (OSError, Win32Error):  # a missing file authorises nobody
            return False
        offered = (key.get_name(), key.get_base64())
        for line in text.splitlines():
            fields = line.split()
            for i, word in enumerate(fields[:-1]):
                if (word, fields[i + 1]) == offered:
                    return True
        return False

    # --- connections ---------------------------------------------------------------------
    def _update_listening(self) -> None:
        self.lab._set_listening(self, self.up and not self.faults.refusing)

    def _release_hung(self) -> None:
        with self._lock:
            hung, self._hung = self._hung, []
        for sock in hung:
            _close_socket(sock)

    def accept(self, sock: socket.socket, peer: str) -> None:
        """A TCP connection arrived on the host's port (called by the lab's acceptor)."""
        if not self.up:  # caught while going down: the connection is reset
            _close_socket(sock)
            return
        if self.faults.hanging:
            with self._lock:
                self._hung.append(sock)
            return
        conn = Connection(next(self._conn_ids), sock, peer)
        with self._lock:
            self._connections[conn.id] = conn
        conn.transport = ssh.serve(self, conn)

    def drop_connections_soon(self) -> None:
        """Every connection is reset in a moment (the host's network stack changed)."""
        def reset() -> None:
            self._close_all()

        self.lab.call_later(0.05, reset)

    def drop_connection(self, conn: Connection) -> None:
        """Cut the TCP connection the hard way (no SSH disconnect message)."""
        conn.dropped = True
        with contextlib.suppress(OSError):
            conn.sock.shutdown(socket.SHUT_RDWR)
        if conn.transport is not None:
            conn.transport.close()

    def _close_all(self) -> list[Connection]:
        with self._lock:
            conns = list(self._connections.values())
            self._connections.clear()
        for conn in conns:
            self.drop_connection(conn)
        self._release_hung()
        return conns

    def connection_count(self) -> int:
        with self._lock:
            for cid, conn in list(self._connections.items()):
                if conn.transport is not None and not conn.transport.is_alive():
                    del self._connections[cid]
            return len(self._connections)

    # --- commands ------------------------------------------------------------------------
    def sleep(self, seconds: float) -> bool:
        """Sleep unless the host goes down meanwhile (then return False at once)."""
        halt = self._halt
        return not halt.wait(seconds)

    def start_exec(self, conn: Connection, channel: paramiko.Channel, command: str,
                   replied: Callable[[], bool] | None = None) -> bool:
        if not self.up or self._halt.is_set():
            return False
        record = ReceivedCommand(command, conn.id, time.time())
        with self._lock:
            self.commands.append(record)
        thread = threading.Thread(
            target=self._exec, args=(conn, channel, record, replied),
            name=f"winhost-exec-{self.name}-{conn.id}", daemon=True,
        )
        with self._lock:
            self._threads.add(thread)
        thread.start()
        return True

    def _exec(self, conn: Connection, channel: paramiko.Channel, record: ReceivedCommand,
              replied: Callable[[], bool] | None) -> None:
        try:
            outcome, drop, stream = self._answer(record)
            if replied is not None:
                replied()  # never answer before the exec request's own reply went out
            if stream is not None and stream.kind == "trickle":
                while not conn.dropped and not channel.closed and self.sleep(stream.seconds):
                    channel.sendall(b".")
                return
            if stream is not None:  # flood: the output first, then the real answer
                block = b"x" * 65536
                for _ in range(0, stream.after_bytes, len(block)):
                    if conn.dropped or channel.closed:
                        return
                    channel.sendall(block)
            record.exit_code = outcome.exit_code
            record.stdout, record.stderr = outcome.stdout, outcome.stderr
            if drop is not None:  # fault: part of the output, then the connection is cut
                data = outcome.stdout.encode("utf-8")[:drop]
                if data:
                    channel.sendall(data)
                    time.sleep(0.05)
                record.exit_code = None
                self.drop_connection(conn)
                return
            if conn.dropped:
                return
            if outcome.stdout:
                channel.sendall(outcome.stdout.encode("utf-8"))
            if outcome.stderr:
                channel.sendall_stderr(outcome.stderr.encode("utf-8"))
            if outcome.exit_code is not None:
                channel.send_exit_status(outcome.exit_code)
            channel.shutdown_write()
            channel.close()
        except (OSError, EOFError, paramiko.SSHException) as err:
            log.debug("%s: exec channel failed: %s", self.name, err)
        finally:
            record.finished = True
            with self._lock:
                self._threads.discard(threading.current_thread())

    def _answer(self, record: ReceivedCommand
                ) -> tuple[Outcome, int | None, CommandFault | None]:
        """The host's answer, the byte count after which to cut (drop fault), and a fault
        that shapes the output stream (trickle, flood)."""
        if self.command_latency and not self.sleep(self.command_latency):
            return Outcome(None), None, None
        executed, match = self.interpreter.understand(record.command)
        record.executed = executed
        if executed.outcome.unexpected:
            log.warning("%s: unexpected command (%s): %r", self.name,
                        executed.outcome.unexpected, record.command[:300])
        texts = [executed.summary, executed.script or record.command]
        drop: int | None = None
        for fault in self.faults.take_command_faults(texts):
            record.fault = fault.kind
            if fault.kind == "fail":
                return Outcome(fault.exit_code, fault.stdout, fault.stderr), None, None
            if fault.kind == "slow" and not self.sleep(fault.seconds):
                return Outcome(None), None, None
            if fault.kind == "drop":
                drop = fault.after_bytes
            if fault.kind == "trickle":
                return Outcome(None), None, fault
            if fault.kind == "flood":
                return self.interpreter.run(executed, match), None, fault
        return self.interpreter.run(executed, match), drop, None

    # --- reboots -------------------------------------------------------------------------
    def request_reboot(self) -> None:
        """``Restart-Computer -Force``: the host goes down after ``reboot_delay``."""
        with self._lock:
            if self._rebooting:
                return
            self._rebooting = True
        self.lab.call_later(self.reboot_delay, self._go_down)

    def reboot(self) -> None:
        """Reboot now (as if someone pulled the power and it came back)."""
        with self._lock:
            self._rebooting = True
        self._go_down()

    def _go_down(self) -> None:
        with self._lock:
            if not self.up:
                return
            self.up = False
            self._halt.set()
        self._update_listening()
        self._close_all()
        self.scm.shutdown()
        self.lab.call_later(self.reboot_downtime, self._come_up)

    def _come_up(self) -> None:
        if self.lab.stopped:
            return
        with self._lock:
            self._halt = threading.Event()
            self.reboots += 1
            self.boot_id = str(uuid.uuid4())
            self.features.update(self.pending_features)
            self.pending_features.clear()
            if self.pending_name is not None:
                self.name_at_boot(self.pending_name)
            self.hns.reset()
            # The service control manager reads the machine environment at boot.
            self.service_environment = dict(self.machine_environment)
            self.interpreter.powershell_started = False
            self.up = True
        failed = self.scm.boot()
        if failed:
            log.info("%s: services that failed to start at boot: %s", self.name, failed)
        self._update_listening()
        # Back only once sshd answers: ``wait_until_up`` must not return before the
        # port listens again.
        with self._lock:
            self._rebooting = False

    def name_at_boot(self, name: str) -> None:
        """The host name a ``Rename-Computer`` set takes effect (at boot). ``name`` stays
        the host's name in the lab; ``computer_name`` is what Windows reports."""
        self.pending_name = None
        self.computer_name = name
        self.interpreter.env["COMPUTERNAME"] = name.upper()

    def wait_until_up(self, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.up and not self._rebooting:
                return True
            time.sleep(0.02)
        return False

    # --- stop ----------------------------------------------------------------------------
    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop for good (lab stop / host removal): close everything, join threads."""
        with self._lock:
            self.up = False
            self._halt.set()
        conns = self._close_all()
        self.scm.shutdown()
        deadline = time.monotonic() + timeout
        for conn in conns:
            if conn.transport is not None:
                conn.transport.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))


def _close_socket(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()

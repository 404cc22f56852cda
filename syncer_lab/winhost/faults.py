"""Fault injection for one simulated host.

Each fault makes the host fail the way a real Windows host (or the network in front of
it) does, so the node stage meets the same errors it will meet in a lab:

- ``refuse_connections()``: nothing listens on port 22 any more (ECONNREFUSED), until
  ``accept_connections()``. ``hang_connections()``: TCP connects, no SSH banner ever comes
  (the client's banner timeout), like a host whose sshd hangs.
- ``drop_after(n, during="command")``: the next matching command runs, its first ``n``
  bytes of output are sent, then the TCP connection is cut (no exit status, EOF);
  ``during="upload"``: the connection is cut once ``n`` bytes of a matching SFTP upload
  have been written (the partial file stays on the drive, as on Windows).
- ``fail_nth_command(n, exit_code, stderr)``: the n-th command from now (counting those
  that match ``pattern``) is not run and answers with that exit code and text.
- ``answer(pattern, stdout)``: the next matching command is not run and prints
  ``stdout`` with exit code 0 (a host whose PowerShell profile or a broken module prints
  something else than the command's output).
- ``slow_command(pattern, seconds)``: matching commands start only after ``seconds``.
- ``trickle_output(pattern, interval)``: a matching command prints one byte every
  ``interval`` seconds and never ends (a process stuck writing progress; the review's
  slow-drip server): no read ever times out, only a total deadline ends it.
- ``flood_output(pattern, nbytes)``: a matching command prints ``nbytes`` of output
  before it exits (a runaway process logging to stdout).
- ``silent_sftp()``: the ``sftp`` subsystem is accepted and then never answers (a hung
  ``sftp-server.exe``).
- ``rotate_host_key()``: a new host key (a client pinning the old one must refuse).
- ``fill_disk(free_bytes=0)``: writes fail with ERROR_DISK_FULL (112) / SFTP failure.
- ``fail_service_start(name, code)``: ``sc.exe start`` fails with ``code`` (e.g. 1053).

Patterns are regular expressions searched in the command's summary (``start-service
kubelet``, ``sc delete kubelet``, ``inventory ...``, ``hostname``) and in its decoded
script text.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import paramiko

if TYPE_CHECKING:
    from syncer_lab.winhost.host import SimHost


@dataclass
class CommandFault:
    kind: str  # "fail", "slow", "drop", "trickle", "flood"
    pattern: re.Pattern[str] | None
    countdown: int = 1  # the command this many matching commands from now (fail, drop)
    times: int | None = 1  # how often it fires; None: every time (slow)
    exit_code: int = 1
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0
    after_bytes: int = 0

    def matches(self, texts: list[str]) -> bool:
        return self.pattern is None or any(self.pattern.search(t) for t in texts)


@dataclass
class UploadFault:
    pattern: re.Pattern[str] | None
    after_bytes: int
    times: int | None = 1


class Faults:
    def __init__(self, host: SimHost) -> None:
        self._host = host
        self._lock = threading.Lock()
        self._commands: list[CommandFault] = []
        self._uploads: list[UploadFault] = []
        self.refusing = False
        self.hanging = False
        self.sftp_silent = False

    # --- connections ---------------------------------------------------------------------
    def refuse_connections(self) -> None:
        self.refusing = True
        self._host._update_listening()

    def hang_connections(self) -> None:
        self.hanging = True

    def accept_connections(self) -> None:
        """Undo ``refuse_connections`` and ``hang_connections``."""
        self.refusing = False
        self.hanging = False
        self._host._release_hung()
        self._host._update_listening()

    # --- commands ------------------------------------------------------------------------
    def drop_after(self, nbytes: int = 0, *, during: str = "command",
                   pattern: str | None = None, times: int | None = 1) -> None:
        compiled = re.compile(pattern) if pattern else None
        with self._lock:
            if during == "command":
                self._commands.append(
                    CommandFault("drop", compiled, after_bytes=nbytes, times=times)
                )
            elif during == "upload":
                self._uploads.append(UploadFault(compiled, nbytes, times))
            else:
                raise ValueError("during must be 'command' or 'upload'")

    def fail_nth_command(self, n: int = 1, exit_code: int = 1, stderr: str = "Access is denied.",
                         pattern: str | None = None) -> None:
        if n < 1:
            raise ValueError("n counts from 1 (the next command)")
        compiled = re.compile(pattern) if pattern else None
        text = stderr if stderr.endswith("\r\n") or not stderr else stderr + "\r\n"
        with self._lock:
            self._commands.append(CommandFault("fail", compiled, countdown=n,
                                               exit_code=exit_code, stderr=text))

    def answer(self, pattern: str, stdout: str, times: int | None = 1) -> None:
        with self._lock:
            self._commands.append(CommandFault("fail", re.compile(pattern), exit_code=0,
                                               stdout=stdout, times=times))

    def slow_command(self, pattern: str, seconds: float, times: int | None = None) -> None:
        with self._lock:
            self._commands.append(CommandFault("slow", re.compile(pattern), seconds=seconds,
                                               times=times, countdown=1))

    def trickle_output(self, pattern: str, interval: float = 1.0, times: int | None = 1) -> None:
        with self._lock:
            self._commands.append(CommandFault("trickle", re.compile(pattern), seconds=interval,
                                               times=times))

    def flood_output(self, pattern: str, nbytes: int, times: int | None = 1) -> None:
        with self._lock:
            self._commands.append(CommandFault("flood", re.compile(pattern), after_bytes=nbytes,
                                               times=times))

    def silent_sftp(self) -> None:
        self.sftp_silent = True

    def take_command_faults(self, texts: list[str]) -> list[CommandFault]:
        """The faults that fire for a command described by ``texts`` (consumes them)."""
        fired: list[CommandFault] = []
        with self._lock:
            for fault in list(self._commands):
                if not fault.matches(texts):
                    continue
                if fault.kind != "slow" and fault.countdown > 1:
                    fault.countdown -= 1
                    continue
                fired.append(fault)
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self._commands.remove(fault)
        return fired

    def upload_limit(self, path: str) -> int | None:
        """Bytes after which an upload of ``path`` is cut (consumes the fault), or None."""
        with self._lock:
            for fault in self._uploads:
                if fault.pattern is None or fault.pattern.search(path):
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            self._uploads.remove(fault)
                    return fault.after_bytes
        return None

    # --- host state ----------------------------------------------------------------------
    def rotate_host_key(self) -> paramiko.PKey:
        return self._host._new_host_key()

    def fill_disk(self, free_bytes: int = 0) -> None:
        self._host.fs.fill(free_bytes)

    def free_disk(self) -> None:
        self._host.fs.unfill()

    def fail_service_start(self, name: str, code: int = 1053) -> None:
        self._host.scm.start_failures[name.casefold()] = code

    def clear(self) -> None:
        """Remove every fault (the host key stays what it is)."""
        with self._lock:
            self._commands.clear()
            self._uploads.clear()
        self._host.scm.start_failures.clear()
        self._host.fs.unfill()
        self.accept_connections()

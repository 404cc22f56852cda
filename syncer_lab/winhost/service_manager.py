"""The simulated service control manager (SCM) and process table of one host.

Services have what ``sc.exe qc`` shows (binary path with arguments, start type,
dependencies, display name), a description, failure actions, and a state. The rules are
Windows' where a node stage can trip over them, a little stricter where that keeps the
node stage honest:

- ``start``: the service must exist (1060) and not be marked for deletion (1072), not be
  disabled (1058) or already running (1056); every dependency must exist (1075) and be
  *running* (1068; Windows would try to start it, the simulator refuses so the node stage's
  dependency order is exercised); the executable must exist (2) and not be empty (193).
  The service is then START_PENDING for ``transition_seconds`` before RUNNING.
- ``stop``: 1062 when not started, 1061 while a start or stop is pending, 1051 while a
  dependent service runs; then STOP_PENDING, STOPPED after ``transition_seconds``, and its
  process lingers ``linger_seconds`` more, holding its executable (so replacing the binary
  fails with a sharing violation until the process is gone, as WMCO learned).
- ``delete`` of a running service marks it for deletion (1072 afterwards) until it stops.

States advance lazily on every access (no timer threads), so fifty hosts cost nothing
while idle. ``on_start``/``on_stop`` callbacks let the simulated kubelet follow its
service. Errors are :class:`~syncer_lab.winhost.win32.Win32Error`.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import IntEnum

from syncer_lab.winhost import win32
from syncer_lab.winhost.filesystem import Drive
from syncer_lab.winhost.win32 import Win32Error


class State(IntEnum):
    STOPPED = 1
    START_PENDING = 2
    STOP_PENDING = 3
    RUNNING = 4


@dataclass
class Process:
    pid: int
    name: str  # image name without extension, as Get-Process shows it
    image: str  # Windows path of the executable
    service: str | None
    exit_at: float | None = None  # None: running

    def alive(self, now: float) -> bool:
        return self.exit_at is None or now < self.exit_at


@dataclass
class Service:
    name: str
    binary_path: str
    start_type: str = "demand"
    dependencies: list[str] = field(default_factory=list)
    display_name: str = ""
    description: str = ""
    failure_reset: int | None = None
    failure_actions: str = ""
    state: State = State.STOPPED
    pending_until: float = 0.0
    pid: int | None = None
    win32_exit_code: int = 1077  # ERROR_SERVICE_NEVER_STARTED, as sc.exe shows for new ones
    marked_for_deletion: bool = False

    @property
    def executable(self) -> str:
        """The executable of ``binary_path`` (quoted, or up to the first space)."""
        text = self.binary_path.strip()
        if text.startswith('"'):
            return text[1:].split('"', 1)[0]
        return text.split()[0] if text.split() else ""

    @property
    def arguments(self) -> str:
        text = self.binary_path.strip()
        if text.startswith('"'):
            return text[1:].split('"', 1)[1].strip() if '"' in text[1:] else ""
        return text.split(None, 1)[1] if len(text.split(None, 1)) > 1 else ""


ServiceHook = Callable[[Service], None]


def _snapshot(svc: Service) -> Service:
    """A copy callers may keep (and hooks may read) while the SCM changes the original."""
    return replace(svc, dependencies=list(svc.dependencies))


class ServiceControlManager:
    def __init__(self, drive: Drive, *, transition_seconds: float = 0.2,
                 linger_seconds: float = 1.0) -> None:
        self.drive = drive
        self.transition_seconds = transition_seconds
        self.linger_seconds = linger_seconds
        self._lock = threading.RLock()
        self._services: dict[str, Service] = {}  # key: casefolded name
        self._processes: dict[int, Process] = {}
        self._pids = itertools.count(4000, 4)
        self.on_start: list[ServiceHook] = []
        self.on_stop: list[ServiceHook] = []
        # service name (casefolded) -> Win32 code its start fails with (fault injection)
        self.start_failures: dict[str, int] = {}
        # The host's own record of its services (like the System event log's service
        # control manager events): (unix time, service, "started" | "stopped" |
        # "crashed" | "powered off"), what tests count outages from.
        self.events: list[tuple[float, str, str]] = []
        drive.holders = self.holders

    # --- time ----------------------------------------------------------------------------
    def _advance(self, now: float) -> None:
        for key, svc in list(self._services.items()):
            if svc.state is State.START_PENDING and now >= svc.pending_until:
                svc.state = State.RUNNING
            elif svc.state is State.STOP_PENDING and now >= svc.pending_until:
                svc.state = State.STOPPED
                svc.win32_exit_code = 0
                for proc in self._processes.values():  # the service's process and children
                    if proc.service == svc.name and proc.exit_at is None:
                        proc.exit_at = svc.pending_until + self.linger_seconds
                svc.pid = None
                if svc.marked_for_deletion:
                    del self._services[key]
        for pid, proc in list(self._processes.items()):
            if not proc.alive(now):
                del self._processes[pid]

    def _get(self, name: str) -> Service:
        self._advance(time.monotonic())
        svc = self._services.get(name.casefold())
        if svc is None:
            raise Win32Error(win32.SERVICE_DOES_NOT_EXIST)
        return svc

    # --- queries -------------------------------------------------------------------------
    def get(self, name: str) -> Service:
        """A snapshot of one service (raises 1060 when it does not exist)."""
        with self._lock:
            return _snapshot(self._get(name))

    def exists(self, name: str) -> bool:
        with self._lock:
            self._advance(time.monotonic())
            return name.casefold() in self._services

    def services(self) -> list[Service]:
        with self._lock:
            self._advance(time.monotonic())
            return [_snapshot(s) for s in self._services.values()]

    def state(self, name: str) -> State | None:
        with self._lock:
            self._advance(time.monotonic())
            svc = self._services.get(name.casefold())
            return svc.state if svc else None

    def processes(self, name: str | None = None) -> list[Process]:
        """Live processes (optionally only those named ``name``, case-insensitively)."""
        with self._lock:
            now = time.monotonic()
            self._advance(now)
            return [
                replace(p) for p in self._processes.values()
                if p.alive(now) and (name is None or p.name.casefold() == name.casefold())
            ]

    def holders(self, key: str) -> list[str]:
        """Names of live processes whose executable is the file ``key`` (casefolded)."""
        with self._lock:
            now = time.monotonic()
            return [
                p.name for p in self._processes.values()
                if p.alive(now) and Drive.key(p.image) == key
            ]

    # --- configuration -------------------------------------------------------------------
    def create(self, name: str, binary_path: str, start_type: str = "demand",
               dependencies: list[str] | None = None, display_name: str | None = None) -> None:
        with self._lock:
            self._advance(time.monotonic())
            existing = self._services.get(name.casefold())
            if existing is not None:
                code = (win32.SERVICE_MARKED_FOR_DELETE if existing.marked_for_deletion
                        else win32.SERVICE_EXISTS)
                raise Win32Error(code)
            self._services[name.casefold()] = Service(
                name=name,
                binary_path=binary_path,
                start_type=start_type,
                dependencies=list(dependencies or []),
                display_name=display_name or name,
            )

    def _configurable(self, name: str) -> Service:
        svc = self._get(name)
        if svc.marked_for_deletion:
            raise Win32Error(win32.SERVICE_MARKED_FOR_DELETE)
        return svc

    def config(self, name: str, *, binary_path: str | None = None,
               start_type: str | None = None, dependencies: list[str] | None = None,
               display_name: str | None = None) -> None:
        with self._lock:
            svc = self._configurable(name)
            if binary_path is not None:
                svc.binary_path = binary_path
            if start_type is not None:
                svc.start_type = start_type
            if dependencies is not None:
                svc.dependencies = list(dependencies)
            if display_name is not None:
                svc.display_name = display_name

    def describe(self, name: str, description: str) -> None:
        with self._lock:
            self._configurable(name).description = description

    def set_failure_actions(self, name: str, reset: int | None, actions: str) -> None:
        with self._lock:
            svc = self._configurable(name)
            if reset is not None:
                svc.failure_reset = reset
            svc.failure_actions = actions

    # --- control -------------------------------------------------------------------------
    def start(self, name: str) -> Service:
        with self._lock:
            svc = self._start_locked(name, time.monotonic())
            snapshot = _snapshot(svc)
        for hook in list(self.on_start):
            hook(snapshot)
        return snapshot

    def _start_locked(self, name: str, now: float) -> Service:
        svc = self._get(name)
        if svc.marked_for_deletion:
            raise Win32Error(win32.SERVICE_MARKED_FOR_DELETE)
        if svc.start_type == "disabled":
            raise Win32Error(win32.SERVICE_DISABLED)
        if svc.state is not State.STOPPED:
            raise Win32Error(win32.SERVICE_ALREADY_RUNNING)
        for dep in svc.dependencies:
            other = self._services.get(dep.casefold())
            if other is None or other.marked_for_deletion:
                raise Win32Error(win32.SERVICE_DEPENDENCY_DELETED)
            if other.state is not State.RUNNING:
                raise Win32Error(win32.SERVICE_DEPENDENCY_FAIL)
        exe = svc.executable
        if not self.drive.is_file(exe):
            svc.win32_exit_code = win32.FILE_NOT_FOUND
            raise Win32Error(win32.FILE_NOT_FOUND)
        if self.drive.resolve(exe).stat().st_size == 0:
            svc.win32_exit_code = win32.BAD_EXE_FORMAT
            raise Win32Error(win32.BAD_EXE_FORMAT)
        fault = self.start_failures.get(svc.name.casefold())
        if fault is not None:
            svc.win32_exit_code = fault
            raise Win32Error(fault)
        pid = next(self._pids)
        self._processes[pid] = Process(pid, _stem(exe), exe, svc.name)
        svc.pid = pid
        svc.state = State.START_PENDING
        svc.pending_until = now + self.transition_seconds
        svc.win32_exit_code = 0
        self.events.append((time.time(), svc.name, "started"))
        return svc

    def stop(self, name: str) -> Service:
        with self._lock:
            now = time.monotonic()
            svc = self._get(name)
            if svc.state is State.STOPPED:
                raise Win32Error(win32.SERVICE_NOT_ACTIVE)
            if svc.state in (State.START_PENDING, State.STOP_PENDING):
                raise Win32Error(win32.SERVICE_CANNOT_ACCEPT_CTRL)
            for other in self._services.values():
                if svc.name.casefold() in (d.casefold() for d in other.dependencies) and (
                    other.state is not State.STOPPED
                ):
                    raise Win32Error(win32.DEPENDENT_SERVICES_RUNNING)
            svc.state = State.STOP_PENDING
            svc.pending_until = now + self.transition_seconds
            self.events.append((time.time(), svc.name, "stopped"))
            snapshot = _snapshot(svc)
        for hook in list(self.on_stop):
            hook(snapshot)
        return snapshot

    def delete(self, name: str) -> None:
        with self._lock:
            svc = self._get(name)
            if svc.marked_for_deletion:
                raise Win32Error(win32.SERVICE_MARKED_FOR_DELETE)
            if svc.state is State.STOPPED:
                del self._services[svc.name.casefold()]
            else:
                svc.marked_for_deletion = True

    def crash(self, name: str, exit_code: int) -> None:
        """The service's process exits on its own (e.g. 1067 ERROR_PROCESS_ABORTED)."""
        with self._lock:
            now = time.monotonic()
            svc = self._get(name)
            for proc in self._processes.values():
                if proc.service == svc.name and proc.exit_at is None:
                    proc.exit_at = now
            svc.state = State.STOPPED
            svc.pid = None
            svc.win32_exit_code = exit_code
            self.events.append((time.time(), svc.name, "crashed"))
            self._advance(now)

    def add_child(self, name: str, image: str) -> int:
        """A process the service's process started (kube-log-runner's child): it holds
        its executable and ends with the service."""
        with self._lock:
            svc = self._get(name)
            pid = next(self._pids)
            self._processes[pid] = Process(pid, _stem(image), image, svc.name)
            return pid

    def add_process(self, image: str) -> int:
        """A process outside any service (a containerd shim of a running pod)."""
        with self._lock:
            pid = next(self._pids)
            self._processes[pid] = Process(pid, _stem(image), image, None)
            return pid

    def end_process(self, pid: int, linger: float = 0.0) -> None:
        """The process exits (after ``linger`` seconds)."""
        with self._lock:
            proc = self._processes.get(pid)
            if proc is not None and proc.exit_at is None:
                proc.exit_at = time.monotonic() + linger

    def kill(self, name: str) -> int:
        """``Stop-Process -Force -Name``: every process of that name exits now."""
        with self._lock:
            now = time.monotonic()
            killed = 0
            for proc in self._processes.values():
                if proc.name.casefold() == name.casefold() and proc.alive(now):
                    proc.exit_at = now
                    killed += 1
            self._advance(now)
            return killed

    # --- whole-host events ---------------------------------------------------------------
    def add_running(self, name: str, binary_path: str, start_type: str = "auto",
                    description: str = "") -> None:
        """A service that is already running when the host is created (e.g. sshd)."""
        with self._lock:
            self.create(name, binary_path, start_type)
            svc = self._services[name.casefold()]
            svc.description = description
            self._start_locked(name, time.monotonic() - self.transition_seconds)

    def shutdown(self) -> list[Service]:
        """Power off: every process dies at once; returns the services that were running."""
        with self._lock:
            self._advance(time.monotonic())
            running = []
            for key, svc in list(self._services.items()):
                if svc.state is not State.STOPPED:
                    running.append(_snapshot(svc))
                    self.events.append((time.time(), svc.name, "powered off"))
                svc.state = State.STOPPED
                svc.pid = None
                if svc.marked_for_deletion:
                    del self._services[key]
            self._processes.clear()
        for svc in running:
            for hook in list(self.on_stop):
                hook(svc)
        return running

    def boot(self) -> list[str]:
        """Start every automatic service in dependency order; returns the ones that failed."""
        failed: list[str] = []
        started: list[Service] = []
        with self._lock:
            now = time.monotonic() - self.transition_seconds  # boot took longer than that
            pending = [s for s in self._services.values() if s.start_type in
                       ("auto", "delayed-auto", "boot", "system")]
            progress = True
            while pending and progress:
                progress = False
                for svc in list(pending):
                    deps = [self._services.get(d.casefold()) for d in svc.dependencies]
                    if any(d is not None and d in pending for d in deps):
                        continue
                    pending.remove(svc)
                    progress = True
                    try:
                        self._start_locked(svc.name, now)
                        self._advance(time.monotonic())
                        started.append(_snapshot(svc))
                    except Win32Error:
                        failed.append(svc.name)
            failed.extend(s.name for s in pending)
        for svc in started:
            for hook in list(self.on_start):
                hook(svc)
        return failed


def _stem(image: str) -> str:
    """The process name Get-Process shows: the image's file name without ``.exe``."""
    name = image.replace("/", "\\").rsplit("\\", 1)[-1]
    return name[:-4] if name.lower().endswith(".exe") else name

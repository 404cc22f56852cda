"""A lab of simulated Windows hosts in one process.

:class:`HostLab` starts and stops many :class:`~syncer_lab.winhost.host.SimHost`\\ s
cheaply: each host has its own loopback address (``127.0.1.1``, ``127.0.1.2``, … —
the whole 127.0.0.0/8 is local on Linux) and a real listening socket on port 22 when
running as root (``port=`` otherwise), but the lab has *one* acceptor thread for all
listening sockets (a selector) and *one* scheduler thread for delayed events (reboots
coming back), so fifty idle hosts cost two threads. Each SSH connection then gets its
paramiko transport thread, and each command a short-lived thread.

Addresses are taken by binding: an address some other process (or another lab) already
uses on that port is skipped, so labs in parallel test runs do not collide.

``lab.stop()`` closes every socket, connection and thread it started (tests check that
no thread or socket leaks). Use it as a context manager::

    with HostLab() as lab:
        host = lab.add_host("win-a", authorized_keys=[public_key_line])
        ...
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import ipaddress
import itertools
import logging
import os
import selectors
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from syncer_lab.winhost import nodecheck
from syncer_lab.winhost.host import SimHost
from syncer_lab.winhost.kubelet import Kubelets
from syncer_lab.winhost.overlay import HybridOverlays
from syncer_lab.winhost.programs import Launch, Programs

log = logging.getLogger(__name__)

FIRST_ADDRESS = "127.0.1.1"
DEFAULT_UNPRIVILEGED_PORT = 2222


def default_port() -> int:
    return 22 if os.geteuid() == 0 else DEFAULT_UNPRIVILEGED_PORT


def _addresses(first: str) -> itertools.count[int]:
    return itertools.count(int(ipaddress.IPv4Address(first)))


class HostLab:
    def __init__(self, root: Path | str | None = None, *, port: int | None = None,
                 first_address: str = FIRST_ADDRESS, kubelets: Kubelets | bool = True) -> None:
        self.port = default_port() if port is None else port
        self.first_address = first_address
        self._own_root = root is None
        # Drives default to /dev/shm: many small files, and a disk-backed /tmp can be 30x
        # slower for them (fifty hosts' layouts are ~1000 file operations).
        shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
        self.root = (Path(tempfile.mkdtemp(prefix="winhost-", dir=shm)) if root is None
                     else Path(root))
        self.root.mkdir(parents=True, exist_ok=True)
        self.hosts: dict[str, SimHost] = {}
        self.stopped = False
        self.started = False
        # The simulated kubelets: passive until a host's kubelet service starts.
        self.kubelets: Kubelets | None = (
            Kubelets() if kubelets is True else (kubelets or None)
        )
        # What each program does when its service starts (judged by node-check), and the
        # hybrid-overlay workers; the kubelet part only with simulated kubelets.
        self.overlays: HybridOverlays | None = None
        self.programs = Programs(
            nodecheck.shared(),
            kubelet=self.kubelets.launch if self.kubelets is not None else None,
            hybrid_overlay=self._launch_overlay,
        )
        if self.kubelets is not None:
            self.kubelets.programs = self.programs
            self.overlays = HybridOverlays(self.programs)
        self._lock = threading.RLock()
        self._listeners: dict[str, socket.socket] = {}  # host name -> listening socket
        self._reserved: dict[str, socket.socket] = {}  # host name -> bound, not listening
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._acceptor: threading.Thread | None = None
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._timer_ids = itertools.count()
        self._timer_cond = threading.Condition(self._lock)
        self._scheduler: threading.Thread | None = None

    # --- hosts ---------------------------------------------------------------------------
    def add_host(self, name: str, address: str | None = None, *,
                 os_build: str = "10.0.20348.2340", default_shell: str = "cmd",
                 authorized_keys: list[str] | tuple[str, ...] = (),
                 **options: Any) -> SimHost:
        """Create a host; it listens at once (connections wait until ``start()``)."""
        with self._lock:
            if self.stopped:
                raise RuntimeError("the lab is stopped")
            if name in self.hosts:
                raise ValueError(f"a host named {name!r} exists already")
            sock, address = self._bind(address)
            drive = self.root / name / "C"
            try:
                host = SimHost(self, name, address, self.port, drive, os_build=os_build,
                               default_shell=default_shell, authorized_keys=authorized_keys,
                               **options)
            except Exception:
                sock.close()
                raise
            self.hosts[name] = host
            self._listeners[name] = sock
            self._selector.register(sock, selectors.EVENT_READ, host)
            self.programs.attach(host)
            if self.kubelets is not None:
                self.kubelets.attach(host)
        return host

    def _launch_overlay(self, launch: Launch, flags: dict[str, str]) -> None:
        if self.overlays is not None:
            self.overlays.launch(launch, flags)

    def by_address(self, address: str) -> SimHost | None:
        for host in list(self.hosts.values()):
            if host.address == address:
                return host
        return None

    def remove_host(self, name: str, *, keep_drive: bool = False) -> None:
        """Power the host off for good and forget it (a deleted cloud instance)."""
        with self._lock:
            host = self.hosts.pop(name, None)
            if host is None:
                return
            self._set_listening(host, False)
        host.shutdown()
        self.programs.detach(host)
        if self.kubelets is not None:
            self.kubelets.detach(host)
        if not keep_drive:
            shutil.rmtree(self.root / name, ignore_errors=True)

    def _bind(self, address: str | None) -> tuple[socket.socket, str]:
        taken = {h.address for h in self.hosts.values()}
        if address is not None:
            return self._listen_socket(address), address
        for number in _addresses(self.first_address):
            candidate = str(ipaddress.IPv4Address(number))
            if not candidate.startswith("127.") or candidate.endswith(".255"):
                raise RuntimeError("no free loopback address left for another host")
            if candidate in taken or candidate.endswith(".0"):
                continue
            try:
                return self._listen_socket(candidate), candidate
            except OSError as err:
                if err.errno not in (errno.EADDRINUSE, errno.EADDRNOTAVAIL):
                    raise
        raise AssertionError("unreachable")

    def _bound_socket(self, address: str) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address, self.port))
        except OSError:
            sock.close()
            raise
        return sock

    def _listen_socket(self, address: str) -> socket.socket:
        sock = self._bound_socket(address)
        sock.listen(64)
        sock.setblocking(False)
        return sock

    def _set_listening(self, host: SimHost, listening: bool) -> None:
        """Open or close a host's port (closed: clients get "connection refused").

        A closed port keeps its address *bound* (a socket that does not listen), so no
        other lab on this machine can take the address while the host reboots.
        """
        with self._lock:
            sock = self._listeners.get(host.name)
            if listening and sock is None and host.name in self.hosts and not self.stopped:
                reserved = self._reserved.pop(host.name, None)
                if reserved is not None:
                    reserved.listen(64)
                    reserved.setblocking(False)
                    sock = reserved
                else:
                    sock = self._listen_socket(host.address)
                self._listeners[host.name] = sock
                self._selector.register(sock, selectors.EVENT_READ, host)
            elif not listening and sock is not None:
                del self._listeners[host.name]
                self._selector.unregister(sock)
                sock.close()
                if host.name in self.hosts and not self.stopped:
                    self._reserved[host.name] = self._bound_socket(host.address)
            elif not listening and host.name not in self.hosts:
                reserved = self._reserved.pop(host.name, None)
                if reserved is not None:
                    reserved.close()

    # --- threads -------------------------------------------------------------------------
    def start(self) -> HostLab:
        with self._lock:
            if self.started:
                return self
            self.started = True
            self._acceptor = threading.Thread(target=self._accept_loop, name="winhost-acceptor",
                                              daemon=True)
            self._scheduler = threading.Thread(target=self._timer_loop, name="winhost-timers",
                                               daemon=True)
        self._acceptor.start()
        self._scheduler.start()
        if self.kubelets is not None:
            self.kubelets.start()
        return self

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def _accept_loop(self) -> None:
        while not self.stopped:
            try:
                events = self._selector.select(timeout=1.0)
            except (OSError, ValueError):
                if self.stopped:
                    return
                time.sleep(0.01)
                continue
            for key, _mask in events:
                if key.data is None:
                    with contextlib.suppress(OSError):
                        self._wake_r.recv(4096)
                    continue
                host: SimHost = key.data
                listener = key.fileobj
                assert isinstance(listener, socket.socket)
                while True:
                    try:
                        conn, peer = listener.accept()
                    except OSError:  # nothing left to accept (or the socket closed)
                        break
                    conn.setblocking(True)
                    # Without it, Nagle and delayed ACKs add ~40 ms to every reply.
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    try:
                        host.accept(conn, f"{peer[0]}:{peer[1]}")
                    except Exception:
                        log.exception("%s: accepting a connection failed", host.name)
                        conn.close()

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        with self._timer_cond:
            heapq.heappush(self._timers, (time.monotonic() + delay, next(self._timer_ids), fn))
            self._timer_cond.notify()

    def _timer_loop(self) -> None:
        while True:
            with self._timer_cond:
                while not self.stopped and (
                    not self._timers or self._timers[0][0] > time.monotonic()
                ):
                    wait = self._timers[0][0] - time.monotonic() if self._timers else None
                    self._timer_cond.wait(wait)
                if self.stopped:
                    return
                _when, _id, fn = heapq.heappop(self._timers)
            try:
                fn()
            except Exception:
                log.exception("scheduled lab event failed")

    # --- stop ----------------------------------------------------------------------------
    def stop(self) -> None:
        with self._lock:
            if self.stopped:
                return
            self.stopped = True
            self._timer_cond.notify_all()
            for sock in self._listeners.values():
                with contextlib.suppress(KeyError, ValueError):
                    self._selector.unregister(sock)
                sock.close()
            self._listeners.clear()
            for sock in self._reserved.values():
                sock.close()
            self._reserved.clear()
            hosts = list(self.hosts.values())
        self._wake()
        if self.overlays is not None:
            self.overlays.stop()
        if self.kubelets is not None:
            self.kubelets.stop()
        for host in hosts:
            host.shutdown()
        for thread in (self._acceptor, self._scheduler):
            if thread is not None:
                thread.join(5)
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> HostLab:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

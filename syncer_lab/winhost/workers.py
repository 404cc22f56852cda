"""Simulated Windows hosts spread over several lab processes.

One :class:`~syncer_lab.winhost.lab.HostLab` in the process of a test or benchmark shares
that process's interpreter lock with the code under test: with hundreds of hosts, the
simulator's SSH handshakes and command parsing compete with the node stage it serves, and
a measurement says as much about the simulator as about syncer. :class:`LabProcesses`
runs ``python -m syncer_lab.winhost --control`` N times (each its own interpreter and
its own simulated kubelets) and deals hosts out to them round-robin; a benchmark's
baseline and syncer then talk to the same processes over real sockets and compete
equally. Consecutive loopback addresses go to consecutive processes: the node stage works
through its hosts sorted by address, and with a /24 per process (as before 2026-12-07) its
16 probes, or a rollout's wave of 20 hosts, all met one interpreter while the others
idled — the baseline, dealing hosts in the order they were made, met all of them.

A host here is a :class:`RemoteHost` (what a client needs: address, port, host key);
faults are set on every host of every process at once (``slow_command``,
``clear_faults``), which is what a benchmark needs. Each process's stderr goes to
``<root>/lab-<n>.log``; a process that dies or does not answer in time is an error that
names that log. ``stop()`` closes the processes' stdin (their signal to stop) and waits.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import queue
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from syncer_lab.winhost.lab import default_port

# At most this many hosts in one lab process, whose one interpreter serves them all.
HOSTS_PER_PROCESS = 254
READY_TIMEOUT = 120.0


@dataclass(frozen=True)
class RemoteHost:
    name: str
    address: str
    port: int
    host_key_line: str
    process: int


class LabProcessError(RuntimeError):
    pass


class _Process:
    def __init__(self, number: int, root: Path, config: dict[str, Any]) -> None:
        self.number = number
        self.log_path = root / f"lab-{number}.log"
        config_path = root / f"lab-{number}.json"
        config_path.write_text(json.dumps(config))
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "syncer_lab.winhost", "--control", "--config",
             str(config_path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True,
        )
        self._lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, args=(self.proc.stdout,),
                                        name=f"lab-{number}-stdout", daemon=True)
        self._reader.start()

    def _read(self, stream: IO[str] | None) -> None:
        assert stream is not None
        for line in stream:
            self._lines.put(json.loads(line))
        self._lines.put(None)

    def next_line(self, timeout: float) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise LabProcessError(f"lab process {self.number} did not answer in {timeout:.0f}s "
                                  f"(see {self.log_path})") from None
        if line is None:
            raise LabProcessError(f"lab process {self.number} exited "
                                  f"({self.proc.wait()}); see {self.log_path}")
        return line

    def send(self, command: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(command) + "\n")
            self.proc.stdin.flush()
        except OSError:  # BrokenPipeError: it is gone
            raise LabProcessError(f"lab process {self.number} exited ({self.proc.wait()}); "
                                  f"see {self.log_path}") from None

    def answer(self, timeout: float) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The host lines, then the ``ok`` line, of one command."""
        hosts: list[dict[str, Any]] = []
        while True:
            line = self.next_line(timeout)
            if "ok" in line or "ready" in line:
                if line.get("ok") is False:
                    raise LabProcessError(f"lab process {self.number}: {line.get('error')}")
                return hosts, line
            hosts.append(line)

    def stop(self, timeout: float) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(5)
        self._log.close()


class LabProcesses:
    """``count`` lab processes; hosts are added round-robin with :meth:`add_hosts`."""

    def __init__(self, count: int, root: Path, *, first_address: str = "127.0.1.1",
                 port: int | None = None, kubelets: dict[str, float] | None = None) -> None:
        if count < 1:
            raise ValueError("at least one lab process")
        self.count = count
        self.root = root
        self.port = default_port() if port is None else port
        self._first = ipaddress.IPv4Address(first_address)
        self._configs = [{"root": str(root / f"lab-{n}"), "port": self.port,
                          **({"kubelets": kubelets} if kubelets is not None else {})}
                         for n in range(count)]
        self._processes: list[_Process] = []
        self.hosts: list[RemoteHost] = []

    def start(self) -> LabProcesses:
        self.root.mkdir(parents=True, exist_ok=True)
        self._processes = [_Process(n, self.root, config)
                           for n, config in enumerate(self._configs)]
        for process in self._processes:
            process.answer(READY_TIMEOUT)
        return self

    def add_hosts(self, names: list[str], *, timeout: float = 300.0,
                  **options: Any) -> list[RemoteHost]:
        """Create hosts (``options`` as ``HostLab.add_host`` takes them, JSON values),
        dealt round-robin to the processes, which create theirs in parallel. The n-th
        host gets the n-th address from ``first_address`` on, so hosts next to each other
        in address order live in different processes: a caller that works through its
        hosts in address order (the node stage sorts them) meets every process at once,
        as it would meet separate machines, not one interpreter at a time."""
        shares: list[list[dict[str, Any]]] = [[] for _ in self._processes]
        for i, name in enumerate(names):
            index = len(self.hosts) + i
            shares[index % self.count].append(
                {"name": name, "address": self._address(index), **options})
        per_process = {n: len([h for h in self.hosts if h.process == n]) + len(share)
                       for n, share in enumerate(shares)}
        if max(per_process.values()) > HOSTS_PER_PROCESS:
            raise ValueError(f"more than {HOSTS_PER_PROCESS} hosts in one lab process: "
                             f"use more processes")
        for process, share in zip(self._processes, shares, strict=True):
            if share:
                process.send({"op": "add_hosts", "hosts": share})
        added: dict[str, RemoteHost] = {}
        for process, share in zip(self._processes, shares, strict=True):
            if share:
                lines, _ = process.answer(timeout)
                for line in lines:
                    added[line["name"]] = RemoteHost(line["name"], line["address"],
                                                     line["port"], line["host_key"],
                                                     process.number)
        new = [added[name] for name in names]
        self.hosts.extend(new)
        return new

    def _address(self, index: int) -> str:
        """The ``index``-th loopback address from the first one, counting only ``.1`` to
        ``.254`` of each /24 (a HostLab never takes ``.0`` or ``.255``)."""
        block, offset = divmod(int(self._first), 256)
        position = min(max(offset, 1), 255) - 1 + index  # among the usable addresses
        block += position // 254
        address = ipaddress.IPv4Address(block * 256 + 1 + position % 254)
        if not str(address).startswith("127."):
            raise ValueError(f"no loopback address left for host {index}")
        return str(address)

    def _broadcast(self, command: dict[str, Any], timeout: float = 60.0) -> list[dict[str, Any]]:
        for process in self._processes:
            process.send(command)
        return [process.answer(timeout)[1] for process in self._processes]

    def slow_command(self, pattern: str, seconds: float) -> None:
        """Every host answers commands matching ``pattern`` ``seconds`` later."""
        self._broadcast({"op": "slow_command", "pattern": pattern, "seconds": seconds})

    def clear_faults(self) -> None:
        self._broadcast({"op": "clear_faults"})

    def unexpected(self) -> list[str]:
        """Commands outside the simulated vocabulary, on any host ("NAME: command")."""
        return [entry for answer in self._broadcast({"op": "unexpected"})
                for entry in answer["unexpected"]]

    def rss_kib(self) -> int:
        """The resident memory of all lab processes together."""
        return sum(int(answer["rss_kib"]) for answer in self._broadcast({"op": "usage"}))

    def stop(self, timeout: float = 30.0) -> None:
        processes, self._processes = self._processes, []
        for process in processes:
            process.stop(timeout)

    def __enter__(self) -> LabProcesses:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

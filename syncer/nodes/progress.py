"""Rollout progress: hosts done / total and each running host's current step.

:class:`ProgressReporter` is what the rollout calls; :func:`reporter` picks the form:

- on a terminal, a live ``rich`` display: one overall bar (hosts done of total) and one
  line per host being worked on with its current step;
- otherwise (CI logs, the controller), log lines: one per step change and per host that
  finishes, each with the running count (``rollout 3/40: 10.1.0.7 drain``).

A reporter is thread-safe; hosts run on worker threads.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import IO, TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from rich.progress import TaskID

log = logging.getLogger("syncer.rollout")


class ProgressReporter(Protocol):
    def start(self, total: int) -> None: ...

    def step(self, address: str, step: str) -> None: ...

    def finished(self, address: str, ok: bool, summary: str) -> None: ...

    def close(self) -> None: ...


class LogProgress:
    """Progress as log lines (the default away from a terminal)."""

    def __init__(self, logger: logging.Logger = log) -> None:
        self._log = logger
        self._lock = threading.Lock()
        self.total = 0
        self.done = 0
        self.current: dict[str, str] = {}

    def start(self, total: int) -> None:
        with self._lock:
            self.total, self.done = total, 0
        if total:
            self._log.info("rollout: %d host(s) to configure", total)

    def step(self, address: str, step: str) -> None:
        with self._lock:
            self.current[address] = step
            done, total = self.done, self.total
        self._log.info("rollout %d/%d: %s %s", done, total, address, step)

    def finished(self, address: str, ok: bool, summary: str) -> None:
        with self._lock:
            self.current.pop(address, None)
            self.done += 1
            done, total = self.done, self.total
        level = logging.INFO if ok else logging.WARNING
        self._log.log(level, "rollout %d/%d: %s %s", done, total, address, summary)

    def close(self) -> None:
        pass


class RichProgress:
    """A live terminal display with ``rich``: overall bar plus one line per busy host."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self._console = Console(file=stream or sys.stderr)
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=self._console,
            transient=False,
        )
        self._lock = threading.Lock()
        self._overall: TaskID | None = None
        self._hosts: dict[str, TaskID] = {}

    def start(self, total: int) -> None:
        with self._lock:
            self._progress.start()
            self._overall = self._progress.add_task("hosts", total=total)

    def step(self, address: str, step: str) -> None:
        with self._lock:
            task = self._hosts.get(address)
            if task is None:
                self._hosts[address] = self._progress.add_task(
                    f"  {address}: {step}", total=None
                )
            else:
                self._progress.update(task, description=f"  {address}: {step}")

    def finished(self, address: str, ok: bool, summary: str) -> None:
        with self._lock:
            task = self._hosts.pop(address, None)
            if task is not None:
                self._progress.remove_task(task)
            if self._overall is not None:
                self._progress.advance(self._overall)
            mark = "[green]done[/green]" if ok else "[red]failed[/red]"
            self._progress.console.print(f"{address}: {mark} {summary}")

    def close(self) -> None:
        with self._lock:
            self._progress.stop()


class NullProgress:
    def start(self, total: int) -> None:
        pass

    def step(self, address: str, step: str) -> None:
        pass

    def finished(self, address: str, ok: bool, summary: str) -> None:
        pass

    def close(self) -> None:
        pass


def reporter(stream: IO[str] | None = None) -> ProgressReporter:
    """Rich on a terminal, log lines otherwise."""
    target = stream or sys.stderr
    if target.isatty():
        return RichProgress(target)
    return LogProgress()

"""Fixtures for the controller tests (helpers live in controller_helpers.py)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from controller_helpers import SyncerRun, wait_for


@pytest.fixture
def syncer_run(tmp_path: Path) -> Iterator[Callable[..., SyncerRun]]:
    """Start `syncer run` subprocesses; they are killed after the test, and their output
    is printed when the test fails."""
    started: list[SyncerRun] = []

    def start(name: str, args: list[str], env: dict[str, str] | None = None,
              wait: bool = True) -> SyncerRun:
        proc = SyncerRun(name, args, tmp_path / f"{name}.log", env or {})
        started.append(proc)
        if wait and not wait_for(lambda: proc.healthy() or proc.proc.poll() is not None,
                                 timeout=30):
            pytest.fail(f"{name} did not become healthy:\n{proc.output()}")
        if proc.proc.poll() is not None and wait:
            pytest.fail(f"{name} exited with {proc.proc.returncode}:\n{proc.output()}")
        return proc

    yield start
    for proc in started:
        proc.close()
    for proc in started:
        sys.stderr.write(f"\n----- {proc.name} -----\n{proc.output()[-6000:]}")

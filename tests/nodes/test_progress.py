"""Rollout progress: log lines away from a terminal, a rich display on one."""

from __future__ import annotations

import io
import logging

import pytest

from syncer.nodes.progress import LogProgress, RichProgress, reporter


def test_log_lines_show_done_total_and_step(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="syncer.rollout")
    progress = LogProgress()
    progress.start(2)
    progress.step("10.0.0.1", "drain")
    progress.finished("10.0.0.1", True, "configured")
    progress.step("10.0.0.2", "transfer")
    progress.finished("10.0.0.2", False, "failed at step transfer: disk full")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "rollout: 2 host(s) to configure",
        "rollout 0/2: 10.0.0.1 drain",
        "rollout 1/2: 10.0.0.1 configured",
        "rollout 1/2: 10.0.0.2 transfer",
        "rollout 2/2: 10.0.0.2 failed at step transfer: disk full",
    ]
    assert caplog.records[-1].levelno == logging.WARNING


def test_terminal_gets_the_rich_display() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Tty()
    progress = reporter(stream)
    assert isinstance(progress, RichProgress)
    progress.start(1)
    progress.step("10.0.0.1", "stop-services")
    progress.finished("10.0.0.1", True, "configured")
    progress.close()
    assert "10.0.0.1" in stream.getvalue() and "done" in stream.getvalue()
    assert isinstance(reporter(io.StringIO()), LogProgress)

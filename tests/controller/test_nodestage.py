"""The node stage under `syncer run`: its progress as /metrics and Events, its options."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from syncer.controller import events as ev
from syncer.controller.config import ControllerConfig
from syncer.controller.credentials import CredentialFiles
from syncer.controller.loop import Progress
from syncer.controller.metrics import Metrics
from syncer.controller.nodestage import (
    ControllerProgress,
    rollout_identity,
    round_outcome,
    stage_options,
)
from syncer.nodes.rollout import RolloutResult
from syncer.nodes.ssh import SSH_ERRORS
from syncer.nodes.stage import NodeStageResult
from syncer.nodes.status import HostStatus, Phase
from syncer.pipeline.settings import SourceSettings


class Events:
    def __init__(self) -> None:
        self.recorded: list[tuple[str, str, str]] = []

    def record(self, reason: str, note: str, type: str = ev.NORMAL,
               regarding: Any = None) -> None:
        self.recorded.append((reason, note, type))


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    """A sample of the fleet "" (the controller's own repository's), or a global one."""
    if not name.endswith("_errors_total"):
        labels = {"fleet": "", **labels}
    value = metrics.registry.get_sample_value(name, labels or None)
    return None if value is None else float(value)


def row(address: str, phase: Phase, current: str = "1.0.0", desired: str = "1.1.0",
        **fields: str) -> HostStatus:
    return HostStatus(address=address, node=None, current=current, desired=desired,
                      phase=phase, **fields)


def test_live_progress_is_on_metrics_while_hosts_are_worked_on() -> None:
    metrics, events = Metrics(), Events()
    progress = ControllerProgress(Progress(metrics.fleet(""), events))  # type: ignore[arg-type]
    progress.start(3)
    assert events.recorded == [(ev.ROLLOUT_STARTED,
                                "rollout started: 3 host(s) to configure or upgrade",
                                ev.NORMAL)]
    assert sample(metrics, "syncer_hosts", phase="waiting") == 3
    assert (sample(metrics, "syncer_rollout_hosts_done"),
            sample(metrics, "syncer_rollout_hosts_total")) == (0, 3)

    progress.step("10.0.0.1", "drain")
    assert sample(metrics, "syncer_hosts", phase="drain") == 1
    assert sample(metrics, "syncer_hosts", phase="waiting") == 2
    progress.finished("10.0.0.1", True, "configured")
    progress.step("10.0.0.2", "stop-services")
    SSH_ERRORS.inc()  # a failed SSH command somewhere in the stage
    progress.finished("10.0.0.2", False, "failed at step verify: kubelet did not start")
    assert sample(metrics, "syncer_hosts", phase="drain") is None  # replaced as a whole
    assert sample(metrics, "syncer_hosts", phase="up-to-date") == 1
    assert sample(metrics, "syncer_hosts", phase="failed") == 1
    assert sample(metrics, "syncer_hosts", phase="waiting") == 1
    assert sample(metrics, "syncer_rollout_hosts_done") == 1
    assert sample(metrics, "syncer_ssh_errors_total") == 1
    progress.close()
    assert sample(metrics, "syncer_ssh_errors_total") == 1  # counted once


def test_round_outcome_gauges_and_events() -> None:
    metrics, events = Metrics(), Events()
    progress = Progress(metrics.fleet(""), events)  # type: ignore[arg-type]
    finished = NodeStageResult(
        rows=[row("a", Phase.UP_TO_DATE, "1.1.0"), row("b", Phase.UP_TO_DATE, "1.1.0"),
              HostStatus("c", "win-c", None, "", Phase.REMOVED)],
        rollout=RolloutResult(total=2))
    outcome = round_outcome(finished, progress)
    assert outcome.hosts == {"up-to-date": 2}
    assert outcome.rollout == (2, 2)
    assert not outcome.interrupted and outcome.failed is None
    assert events.recorded[-1] == (ev.ROLLOUT_FINISHED,
                                   "rollout finished: 2/2 host(s) at version 1.1.0", ev.NORMAL)

    halted = NodeStageResult(
        rows=[row("a", Phase.UP_TO_DATE, "1.1.0"), row("b", Phase.FAILED, step="verify"),
              row("c", Phase.WAITING, action="upgrade")],
        rollout=RolloutResult(total=2), halted="rollout halted: b failed at step verify")
    outcome = round_outcome(halted, progress)
    assert outcome.hosts == {"up-to-date": 1, "failed": 1, "waiting": 1}
    assert outcome.rollout == (1, 3)
    assert events.recorded[-1] == (ev.ROLLOUT_HALTED, "rollout halted: b failed at step verify",
                                   ev.WARNING)

    parked = NodeStageResult(rows=[row("a", Phase.INTERRUPTED, step="start")],
                             rollout=RolloutResult(total=1, interrupted=True))
    count = len(events.recorded)
    assert round_outcome(parked, progress).interrupted
    assert len(events.recorded) == count  # ShutdownParked is the loop's Event


def test_phase_labels() -> None:
    def label(phase: Phase, **fields: str) -> str:
        return row("a", phase, **fields).label

    assert label(Phase.FAILED, step="drain") == "failed"
    assert label(Phase.WAITING, action="upgrade") == "waiting"
    assert label(Phase.BLOCKED, detail="unreachable") == "blocked"
    assert label(Phase.ROLLED_BACK, step="verify") == "rolled-back"
    assert label(Phase.REMOVAL_FAILED, step="stop") == "removal-failed"
    assert label(Phase.UP_TO_DATE) == "up-to-date"
    assert label(Phase.RUNNING, step="drain", action="upgrade") == "upgrading"


def test_options_identity_and_key_file(tmp_path: Path) -> None:
    key = tmp_path / "ssh-privatekey"
    key.write_bytes(b"KEY")
    config = ControllerConfig(source=SourceSettings(repo="file:///x"), workdir=tmp_path / "w",
                              namespace="ops", ssh_private_key_file=key)
    files = CredentialFiles.from_config(config)
    options = stage_options(config, files)
    assert options.identity == rollout_identity(config) == "ops/syncer-leader"
    assert options.cache_dir == tmp_path / "w" / "payloads"
    assert options.private_key is not None and options.private_key() == b"KEY"
    key.write_bytes(b"ROTATED")
    assert options.private_key() == b"ROTATED"  # read at every round
    plain = ControllerConfig(source=SourceSettings(repo="file:///x"), workdir=tmp_path / "w")
    assert stage_options(plain, CredentialFiles.from_config(plain)).private_key is None

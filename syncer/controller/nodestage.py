"""The node stage inside ``syncer run``: its options, and its progress as metrics and Events.

:func:`syncer.reconcile.reconcile_once` runs the node stage (``run_node_stage``) after a
successful apply; the controller gives it what the one-shot command does not:

- **the park token**: the loop's :class:`threading.Event`, passed as the stage's
  ``shutdown``. No new host starts once it is set, a running host stops at its next safe
  point and keeps its slot in the rollout Lease, and the next leader resumes that host
  first;
- **the SSH key** from ``--ssh-private-key-file`` when given (else the stage reads Secret
  ``cloud-private-key``); either is read every round, so a rotation needs no restart;
- **a stable identity** for the rollout Lease (:func:`rollout_identity`): the same for every
  replica of one installation, so a new leader recognises the slot a killed leader left as
  an orphan of its own controller at once (not only after the slot goes stale);
- **progress** (:class:`ControllerProgress`, a
  :class:`~syncer.nodes.progress.ProgressReporter`): while hosts are being worked on it
  updates ``/metrics`` live — ``syncer_hosts{phase}`` (the step each running host is in,
  ``waiting``, ``up-to-date``, ``failed``), ``syncer_rollout_hosts_done`` / ``_total``
  (of this rollout), ``syncer_ssh_errors_total`` — records ``RolloutStarted``, logs one line
  per step, and beats the loop's heartbeat so a long rollout is not taken for a stuck one.

After the round, :func:`round_outcome` turns the :class:`~syncer.nodes.stage.NodeStageResult`
into the final gauges — every host by the phase ``syncer status`` shows, done / total over
all hosts — and the ``RolloutFinished`` or ``RolloutHalted`` Event.
"""

from __future__ import annotations

import functools
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from syncer.controller import credentials as cred
from syncer.controller import events as ev
from syncer.controller.config import ControllerConfig
from syncer.controller.credentials import CredentialFiles
from syncer.controller.loop import HostEntry, Progress
from syncer.nodes.downloads import FetchPolicy, parse_networks
from syncer.nodes.progress import LogProgress
from syncer.nodes.ssh import SSH_ERRORS
from syncer.nodes.stage import NodeStageOptions, NodeStageResult
from syncer.nodes.status import Phase, Tally

PAYLOAD_CACHE = "payloads"  # below --workdir
# The reason of a round that did nothing (no key, no fleet ConfigMap, DNS) unless the
# stage names a more precise one (WMCOActive).
NODE_STAGE_BLOCKED = "NodeStageBlocked"

# Live phases of hosts in a rollout besides the step a running host is in.
WAITING = Phase.WAITING.value
UP_TO_DATE = Phase.UP_TO_DATE.value
FAILED = Phase.FAILED.value


def rollout_identity(config: ControllerConfig) -> str:
    """The controller's name in the rollout Lease: one per installation, shared by its
    replicas (the leader Lease names the installation), unlike the per-pod identity."""
    return f"{config.effective_lease_namespace}/{config.lease_name}"


def stage_options(config: ControllerConfig, files: CredentialFiles | None = None
                  ) -> NodeStageOptions:
    """The node stage's options under ``syncer run`` (timeouts stay WMCO's defaults).

    With ``--ssh-private-key-file`` the key comes from that file, read through
    :class:`~syncer.controller.credentials.CredentialFiles` every round (a rotated Secret
    volume takes effect at the next round); otherwise from ``cloud-private-key``, which
    the stage also reads every round."""
    key_file: Callable[[], bytes | None] | None = None
    if files is not None and files.configured(cred.SSH_PRIVATE_KEY):
        key_file = functools.partial(files.get_bytes, cred.SSH_PRIVATE_KEY)
    return NodeStageOptions(
        identity=rollout_identity(config),
        cache_dir=config.workdir / PAYLOAD_CACHE,
        payloads=FetchPolicy(allow_networks=parse_networks(config.payload_allow_networks)),
        private_key=key_file,
    )


class ControllerProgress:
    """Rollout progress to ``/metrics``, Events, the log and the loop's heartbeat."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._log = LogProgress()
        self._lock = threading.Lock()
        self._steps: dict[str, str] = {}  # running host -> its current step
        self._done = 0
        self._failed = 0
        self._total = 0
        self._ssh_seen = SSH_ERRORS.value

    def start(self, total: int) -> None:
        with self._lock:
            self._total, self._done, self._failed = total, 0, 0
            self._steps.clear()
        self._log.start(total)
        if total:
            self._progress.event(ev.ROLLOUT_STARTED,
                                 f"rollout started: {total} host(s) to configure or upgrade")
        self._publish()

    def step(self, address: str, step: str) -> None:
        with self._lock:
            self._steps[address] = step
        self._log.step(address, step)
        self._publish()

    def finished(self, address: str, ok: bool, summary: str) -> None:
        with self._lock:
            self._steps.pop(address, None)
            if ok:
                self._done += 1
            else:
                self._failed += 1
        self._log.finished(address, ok, summary)
        self._publish()

    def close(self) -> None:
        self.flush()

    def flush(self) -> None:
        """Count SSH failures not yet counted (probes fail before any rollout starts)."""
        self._count_ssh_errors()

    def phases(self) -> dict[str, int]:
        """The rollout's hosts by live phase."""
        with self._lock:
            counts = Counter(self._steps.values())
            waiting = self._total - self._done - self._failed - len(self._steps)
            for phase, n in ((UP_TO_DATE, self._done), (FAILED, self._failed),
                             (WAITING, waiting)):
                if n > 0:
                    counts[phase] += n
            return dict(counts)

    def _publish(self) -> None:
        self._count_ssh_errors()
        with self._lock:
            done, total = self._done, self._total
        self._progress.hosts(self.phases())
        self._progress.rollout(done, total)

    def _count_ssh_errors(self) -> None:
        """Move new failures of the process-wide SSH error counter to the metric."""
        with self._lock:
            now = SSH_ERRORS.value
            new, self._ssh_seen = now - self._ssh_seen, now
        for _ in range(max(0, new)):
            self._progress.ssh_error()


@dataclass(frozen=True)
class RoundOutcome:
    hosts: Mapping[str, int]
    rollout: tuple[int, int]  # (done, total) over all hosts
    interrupted: bool  # the park token stopped the rollout; hosts keep their slots
    failed: str | None  # why the round did not bring every host along (halted/blocked)
    blocked_reason: str | None = None  # why the whole round did nothing (CamelCase)
    table: tuple[HostEntry, ...] = ()


def round_outcome(result: NodeStageResult, progress: Progress) -> RoundOutcome:
    """The final gauges of a node round, and its Event (finished or halted)."""
    hosts = [r for r in result.rows if r.wanted]
    counts = dict(Counter(r.label for r in hosts))
    done = Tally.of(hosts).done
    rollout = result.rollout
    interrupted = rollout is not None and rollout.interrupted
    failed = result.halted or result.blocked
    if failed and hosts:
        progress.event(ev.ROLLOUT_HALTED, failed, ev.WARNING)
    elif rollout is not None and rollout.total and not interrupted:
        version = hosts[0].desired if hosts else ""
        progress.event(
            ev.ROLLOUT_FINISHED,
            f"rollout finished: {done}/{len(hosts)} host(s) at version {version}",
        )
    table = tuple(HostEntry(r.node or r.address, r.label, r.current or "",
                            r.last_error or r.detail or "") for r in hosts)
    blocked = result.blocked_reason or (NODE_STAGE_BLOCKED if result.blocked else None)
    return RoundOutcome(counts, (done, len(hosts)), interrupted, failed, blocked, table)

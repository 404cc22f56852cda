"""The fault matrix: faults injected into real rollouts of the real node stage.

Every case upgrades a fleet of simulated hosts (a kubelet version bump) while one host —
the victim, first in line — meets a fault, and asserts what a user relies on:

- never more than ``maxUnavailable`` hosts out, counted from the hosts' own service
  control manager records (when each kubelet stopped, crashed, lost power, started), not
  from syncer's bookkeeping;
- the victim ends as the policy says (halted with its step and error on the Node, rolled
  back, blocked before anything happened, or finished after all);
- every other host that started finishes; the status ConfigMap says what happened;
- nothing is configured twice from scratch (no service created again, no staged payload
  sent again).

The controller itself is a fault too: a child process running the round is sent SIGTERM
or SIGKILL as the victim enters each step of its upgrade, and a new round (a new
controller) finishes the job. The table of every case and its outcome is printed at the
end of the run and kept in ``docs/fault-matrix.md``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from syncer import names
from syncer.nodes import configure
from syncer.nodes.slots import RolloutLock
from syncer.nodes.stage import NodeStageResult, run_node_stage
from syncer.nodes.status import Phase, read_status
from syncer.writeback.status.build import host_of
from syncer_lab.kube import ControlPlane
from syncer_lab.nodelab import SSH, NodeLab, entries, max_overlap, scope_selector
from syncer_lab.winhost import SimHost

pytestmark = pytest.mark.timeout(300)
MATRIX: list[tuple[str, str, str]] = []  # (fault, outcome, most hosts out), printed at the end
UPGRADE_STEPS = ("lock", "drain", "transfer", "stop-services", "replace", "files", "services",
                 "start", "join", "network", "verify", "annotate", "release")


def kubelet_outages(hosts: list[SimHost], since: float, until: float
                    ) -> dict[str, list[tuple[float, float]]]:
    """Per host, the spans its kubelet was out, from the host's own records."""
    spans: dict[str, list[tuple[float, float]]] = {}
    for host in hosts:
        out: float | None = None
        for when, service, what in list(host.scm.events):
            if service != "kubelet" or when < since:
                continue
            if what == "started" and out is not None:
                spans.setdefault(host.address, []).append((out, when))
                out = None
            elif what != "started" and out is None:
                out = when
        if out is not None:
            spans.setdefault(host.address, []).append((out, until))
    return spans


def most_out(hosts: list[SimHost], since: float) -> int:
    spans = [s for ss in kubelet_outages(hosts, since, time.time()).values() for s in ss]
    return max_overlap(spans) if spans else 0


@dataclass
class Round:
    result: NodeStageResult
    since: float
    hosts: list[SimHost]


def host_state(node_lab: NodeLab, host: SimHost) -> str:
    """What became of a host, read from its Node as a user would."""
    node = node_lab.node_of(host)
    if node is None:
        return "no node"
    ann = node["metadata"]["annotations"]
    if ann.get(names.ANNOTATION_FAILED_STEP):
        rolled = "rolled back" in ann.get(names.ANNOTATION_LAST_ERROR, "")
        return ("rolled back at " if rolled else "halted at ") + \
            str(ann[names.ANNOTATION_FAILED_STEP])
    if node["status"]["nodeInfo"]["kubeletVersion"] == "v1.31.0" and \
            ann.get(names.ANNOTATION_VERSION) == "1.1.0":
        return "upgraded"
    return "not upgraded"


def _fleet(node_lab: NodeLab, count: int, max_unavailable: int, on_failure: str = "halt"
           ) -> list[SimHost]:
    hosts = node_lab.add_hosts(count)
    node_lab.set_fleet("1.0.0", max_unavailable=max_unavailable, on_failure=on_failure)
    node_lab.write_instances()
    joined = node_lab.run()
    assert joined.ok, (joined.summary(), joined.rows)
    return sorted(hosts, key=lambda h: h.address)


def _upgrade(node_lab: NodeLab, hosts: list[SimHost], *, max_unavailable: int,
             on_failure: str = "halt", kubelet: str = "v1.31.0",
             **run: Any) -> Round:
    node_lab.set_fleet("1.1.0", kubelet=kubelet, max_unavailable=max_unavailable,
                       on_failure=on_failure)
    since = time.time()
    on_step = run.pop("on_step", None)
    return Round(run_node_stage(node_lab.api, node_lab.options(**run), on_step=on_step),
                 since, hosts)


def _created_once(host: SimHost) -> None:
    creates = [e for e in entries(host) if e.startswith("sc create")]
    assert len(creates) == len(set(creates)), creates  # each service created once


def _record(fault: str, outcome: str, out: int) -> None:
    MATRIX.append((fault, outcome, str(out)))


# --- faults on a host -------------------------------------------------------------------------
@dataclass(frozen=True)
class HostFault:
    name: str
    inject: Callable[[SimHost, NodeLab], None]
    victim: str  # what becomes of the victim
    # What becomes of the other two, in address order; None: each either finishes or,
    # the rollout having halted, never starts (which one depends on timing).
    others: tuple[str, ...] | None
    on_failure: str = "halt"
    kubelet: str = "v1.31.0"
    command_timeout: float | None = None
    touched: bool = True  # whether the victim's services were stopped at all


def _refuse(host: SimHost, _: NodeLab) -> None:
    host.faults.refuse_connections()


def _hang(host: SimHost, _: NodeLab) -> None:
    # A command with no wait of its own on the host (a stop or start waits up to the
    # service timeout, which its SSH timeout covers), with services already stopped.
    host.faults.slow_command(r"^move-file ", 30.0, times=1)


def _trickle(host: SimHost, _: NodeLab) -> None:
    host.faults.trickle_output(r"^move-file ", 0.2, times=1)


def _drop_upload(host: SimHost, _: NodeLab) -> None:
    host.faults.drop_after(4, during="upload", pattern="staging")


def _disk_full(host: SimHost, _: NodeLab) -> None:
    host.faults.fill_disk(0)


def _start_failure(host: SimHost, _: NodeLab) -> None:
    host.faults.fail_service_start("kube-proxy")


def _nothing(host: SimHost, _: NodeLab) -> None:
    pass


HOST_FAULTS = [
    HostFault("SSH refused", _refuse, "blocked (unreachable)", ("upgraded", "upgraded"),
              touched=False),
    HostFault("SSH hanging mid-command", _hang, "halted at replace", None,
              command_timeout=3.0),
    HostFault("SSH trickling mid-command", _trickle, "halted at replace", None,
              command_timeout=3.0),
    HostFault("upload dropped mid-file", _drop_upload, "upgraded", ("upgraded", "upgraded")),
    HostFault("disk full", _disk_full, "halted at transfer", ("upgraded", "not upgraded"),
              touched=False),
    # Its partner in the wave may finish before or after it fails (both start together),
    # so the third host may or may not have started; that none starts after the failure
    # is test_no_host_starts_once_one_has_failed.
    HostFault("service start failure", _start_failure, "halted at network", None),
    HostFault("new kubelet crashes, onFailure: rollback", _nothing, "rolled back at start",
              ("rolled back at start", "not upgraded"), on_failure="rollback",
              kubelet="vbroken"),
]


def test_no_host_starts_once_one_has_failed(
        node_lab: NodeLab, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rollout stops starting hosts the moment one fails, not once its failure is
    recorded: here recording it is slow (a loaded API server), and a host of the same
    wave that finishes meanwhile must not hand its slot to the next. The next host is
    held between being granted the slot and its first step until the victim has failed
    (the narrowest window: its run has begun, nothing on it is touched yet)."""
    victim, *others = _fleet(node_lab, 3, 2)
    victim.faults.fail_service_start("kube-proxy")
    record, run, network = (configure.HostRun._record_failure, configure.HostRun.run,
                            configure.HostRun._network)
    failed_at: list[float] = []
    locks: list[tuple[float, str]] = []
    started: list[str] = []
    third_running, victim_failed = threading.Event(), threading.Event()

    def slowly(self: configure.HostRun, outcome: Any) -> None:
        failed_at.append(time.monotonic())
        victim_failed.set()
        time.sleep(3.0)
        record(self, outcome)

    def held(self: configure.HostRun) -> Any:
        started.append(self.host.address)
        if len(started) > 2:  # the wave's next host: its slot is granted
            third_running.set()
            victim_failed.wait(60)
        return run(self)

    def late(self: configure.HostRun, restart: list[str]) -> None:
        if self.host.address == victim.address:
            third_running.wait(60)
        network(self, restart)

    monkeypatch.setattr(configure.HostRun, "_record_failure", slowly)
    monkeypatch.setattr(configure.HostRun, "run", held)
    monkeypatch.setattr(configure.HostRun, "_network", late)

    def on_step(address: str, step: str) -> None:
        if step == "lock":
            locks.append((time.monotonic(), address))

    done = _upgrade(node_lab, [victim, *others], max_unavailable=2, on_step=on_step)
    assert done.result.rollout is not None and done.result.rollout.halted is not None
    assert third_running.is_set(), started  # the window was open
    assert len(failed_at) == 1 and locks
    assert [a for t, a in locks if t > failed_at[0]] == [], (failed_at, locks)
    third = started[2]
    assert host_state(node_lab, next(h for h in others if h.address == third)) \
        == "not upgraded"
    assert third not in {h.address for h in RolloutLock(  # its slot was given back
        node_lab.api, node_lab.namespace, node_selector=scope_selector(node_lab.scope)
    ).holders()}


@pytest.mark.parametrize("fault", HOST_FAULTS, ids=[f.name for f in HOST_FAULTS])
def test_a_fault_on_one_host(node_lab: NodeLab, fault: HostFault) -> None:
    victim, *others = _fleet(node_lab, 3, 2, fault.on_failure)
    fault.inject(victim, node_lab)
    run: dict[str, Any] = {}
    if fault.command_timeout is not None:
        run["ssh"] = replace(SSH, command_timeout=fault.command_timeout)
    done = _upgrade(node_lab, [victim, *others], max_unavailable=2,
                    on_failure=fault.on_failure, kubelet=fault.kubelet, **run)
    result = done.result
    rows = {r.address: r for r in result.rows}
    state = (rows[victim.address].text if rows[victim.address].phase is Phase.BLOCKED
             else host_state(node_lab, victim))
    assert state == fault.victim, (result.summary(), result.rows)
    got = tuple(host_state(node_lab, h) for h in others)
    if fault.others is None:
        assert set(got) <= {"upgraded", "not upgraded"} and "upgraded" in got, got
        for host in others:  # one that did not finish was never touched
            if host_state(node_lab, host) == "not upgraded":
                assert not kubelet_outages([host], done.since, time.time())
    else:
        assert got == fault.others, result.rows
    out = most_out(done.hosts, done.since)
    assert out <= 2
    if not fault.touched:
        assert not kubelet_outages([victim], done.since, time.time())
    # What users read: the status ConfigMap in the cluster, and the host's entry in the
    # status branch in Git (built from the same round).
    status = read_status(node_lab.api, node_lab.namespace).hosts
    assert status[victim.address].phase == rows[victim.address].phase
    in_git = host_of(rows[victim.address])
    assert in_git.failed == (state != "upgraded"), in_git
    assert in_git.at_desired == (state == "upgraded"), in_git
    for host in done.hosts:
        _created_once(host)
    _record(fault.name, f"victim {state}; others {', '.join(got)}", out)


def test_a_host_rebooting_in_the_middle_of_a_step(node_lab: NodeLab) -> None:
    """The host goes down while its binaries are being replaced; the session reconnects
    when it is back, and every step being idempotent, the upgrade completes."""
    victim, *others = _fleet(node_lab, 2, 1)

    def on_step(address: str, step: str) -> None:
        if address == victim.address and step == "replace":
            victim.request_reboot()

    done = _upgrade(node_lab, [victim, *others], max_unavailable=1, on_step=on_step)
    assert done.result.ok, (done.result.summary(), done.result.rows)
    assert [host_state(node_lab, h) for h in done.hosts] == ["upgraded", "upgraded"]
    assert victim.reboots == 1
    out = most_out(done.hosts, done.since)
    assert out <= 1
    _record("host reboots mid-step (replace)", "victim upgraded after the reboot", out)


# --- the API server restarts -------------------------------------------------------------------
def test_the_api_server_restarting_mid_rollout(tmp_path: Path) -> None:
    """kube-apiserver goes away for a few seconds while hosts are out: the round fails or
    finishes what it can, and the next round completes the rollout, never with more
    than maxUnavailable out."""
    from syncer.cluster.client import KubeClient
    from syncer_lab.winhost import HostLab
    from syncer_lab.winhost.kubelet import Kubelets

    with ControlPlane() as cp:
        cp.start_csr_signer()
        cp.start_ovn_kubernetes()
        namespace = cp.create_namespace("apiserver-restart")
        kubelets = Kubelets(heartbeat_seconds=0.5, status_seconds=1.0, bootstrap_timeout=60)
        with cp.api_client() as kube, HostLab(tmp_path / "hosts", kubelets=kubelets,
                                              first_address="127.244.9.1") as lab:
            node_lab = NodeLab(KubeClient(kube), namespace, lab, tmp_path, "apirestart")
            hosts = _fleet(node_lab, 3, 1)
            restarted = False

            def on_step(address: str, step: str) -> None:
                nonlocal restarted
                if step == "start" and not restarted:
                    restarted = True
                    cp.restart_apiserver(down=2.0)

            first = _upgrade(node_lab, hosts, max_unavailable=1, on_step=on_step)
            assert restarted
            second = node_lab.run()
            assert second.ok, (second.summary(), second.rows)
            assert [host_state(node_lab, h) for h in hosts] == ["upgraded"] * 3
            out = most_out(hosts, first.since)
            assert out <= 1
            for host in hosts:
                _created_once(host)
            lab.stop()
    _record("API server restarts mid-rollout", "round ends; the next round completes", out)


# --- the controller is terminated or killed at each step -------------------------------------
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
@pytest.mark.parametrize("step", UPGRADE_STEPS)
def test_the_controller_stopped_at_each_step(node_lab: NodeLab, control_plane: ControlPlane,
                                             tmp_path: Path, step: str,
                                             sig: signal.Signals) -> None:
    victim, other = _fleet(node_lab, 2, 1)
    node_lab.set_fleet("1.1.0", kubelet="v1.31.0", max_unavailable=1)
    config = tmp_path / "child.json"
    # The victim waits at the step until the signal is sent, so the signal lands there even
    # when this process is slow to read the line (CI once saw a SIGKILL "at annotate" land
    # after the release).
    config.write_text(json.dumps(node_lab.child_config(control_plane.kubeconfig,
                                                       hold=(victim.address, step))))
    since = time.time()
    uploads_before = len(victim.uploads)
    child = subprocess.Popen([sys.executable, "-m", "syncer_lab.nodestage_child", str(config)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    assert child.stdin is not None and child.stdout is not None
    stopped_in = None
    for line in child.stdout:
        if line.startswith(f"STEP {victim.address} {step}"):
            os.kill(child.pid, sig)
            stopped_in = step
            break
    if sig is signal.SIGTERM:
        child.stdin.write("go\n")  # terminated, not killed: the round goes on to a safe point
    child.communicate(timeout=120)
    assert stopped_in == step, f"the victim never reached {step}"
    critical = UPGRADE_STEPS.index("stop-services") <= UPGRADE_STEPS.index(step) < \
        UPGRADE_STEPS.index("verify")
    if sig is signal.SIGTERM and critical:
        # A terminated controller never leaves a host with its services stopped.
        assert victim.scm.state("kubelet").name == "RUNNING"  # type: ignore[union-attr]
    # What the stop left: the victim still holding its rollout slot (interrupted, to be
    # resumed first), done and released (the stop landed after the release), or not yet
    # started (a terminated controller gives back a slot it has not used).
    holding = victim.address in {h.address for h in RolloutLock(
        node_lab.api, node_lab.namespace, node_selector=scope_selector(node_lab.scope)
    ).holders()}
    finished = not holding and host_state(node_lab, victim) == "upgraded"
    if sig is signal.SIGTERM and step == UPGRADE_STEPS[-1]:
        assert finished  # terminated as its last step began: that step finished
    if sig is signal.SIGKILL and UPGRADE_STEPS.index("lock") < UPGRADE_STEPS.index(step) < \
            UPGRADE_STEPS.index("release"):
        assert holding  # killed with a slot: nothing is given back
    order: list[str] = []
    resumed = run_node_stage(node_lab.api, node_lab.options(),  # a new controller
                             on_step=lambda address, _: order.append(address))
    assert resumed.ok, (resumed.summary(), resumed.rows)
    if finished:
        assert victim.address not in order  # never configured twice
    elif holding:
        assert order and order[0] == victim.address  # the interrupted host first
    done = Round(resumed, since, [victim, other])
    assert [host_state(node_lab, h) for h in done.hosts] == ["upgraded", "upgraded"]
    out = most_out(done.hosts, since)
    assert out <= 1
    for host in done.hosts:
        _created_once(host)
    # Nothing is sent twice: a payload staged before the stop is not sent again (at most
    # the one cut off mid-transfer is).
    sent = victim.uploads[uploads_before:]
    assert len(sent) - len(set(sent)) <= (step == "transfer"), sent
    if finished:
        outcome = "the victim finished before the exit; next controller did the other host"
    elif not holding:
        outcome = "the unused slot was given back; next controller did both hosts"
    elif sig is signal.SIGTERM and critical:
        outcome = "services ran on at exit; next controller resumed the host first"
    else:
        outcome = "next controller resumed the host first and finished"
    _record(f"controller {sig.name} at {step}", outcome, out)


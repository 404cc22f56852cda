"""End to end: two `syncer run` replicas (child processes, the real controller) against their
own test control plane, simulated Windows hosts and a local Git remote.

One story, in the order an operator lives it: the hosts join; a push plus its webhook is
applied at once (the poll interval is ten minutes); a version bump rolls out and the leader
is killed (SIGKILL) while a host is out — the other replica takes the Lease, resumes that
host first and finishes, never with more than ``maxUnavailable`` hosts out (by the hosts'
own service logs and by the ``upgrading`` labels); the SSH key is rotated in
``cloud-private-key`` and on the hosts, and the next reconcile connects with the new key,
without a restart; ``/metrics`` followed the rollout throughout.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import git
import pytest
from e2e_helpers import (
    WEBHOOK_SECRET,
    Observer,
    World,
    new_key,
    public_line,
    wait_for,
    write_secret_volume,
)

from syncer import names
from syncer.writeback.status.model import StatusReport
from syncer_lab import webhooks
from syncer_lab.demo import fleet
from syncer_lab.demo.observe import most_out_at_once, outages
from syncer_lab.kube import ControlPlane
from syncer_lab.syncerproc import SyncerProcess
from syncer_lab.winhost import SimHost

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

HOSTS = 4
MAX_UNAVAILABLE = 2


@pytest.fixture
def own_control_plane() -> Iterator[ControlPlane]:
    """A cluster of its own per test: the controller uses the default Windows Node
    selector, as in production, so no other test's Nodes may be there."""
    with ControlPlane() as cp:
        cp.start_csr_signer()
        cp.start_ovn_kubernetes()  # OpenShift's network objects and OVN-K's part
        yield cp


@pytest.fixture
def world(own_control_plane: ControlPlane, tmp_path: Path) -> Iterator[World]:
    w = World(own_control_plane, tmp_path, max_unavailable=MAX_UNAVAILABLE)
    try:
        yield w
    finally:
        logs = w.logs()
        w.close()
        print(logs)
    assert [c.summary for h in w.hosts for c in h.unexpected_commands] == []


def status_history(remote: Path) -> list[StatusReport]:
    """``status.yaml`` of every commit on the status branch, newest first."""
    repo = git.Repo(remote)
    return [StatusReport.from_yaml(repo.git.show(f"{sha}:status.yaml"))
            for sha in repo.git.rev_list(names.STATUS_BRANCH).split()]


def push_hook(world: World, target_url: str, before: str, after: str) -> None:
    delivery = webhooks.push_event("github", WEBHOOK_SECRET, repository="acme/fleet",
                                   branch="main", before=before, after=after)
    answer = webhooks.deliver(target_url, delivery)
    assert answer.status_code == 202, answer.text


def _two_replicas_and_joined_hosts(world: World
                                   ) -> tuple[str, SyncerProcess, SyncerProcess]:
    """A new SSH key, the hosts, the fleet seeded, replica-a leading and replica-b
    following, every host at the first release. (seeded revision, a, b)"""
    key = new_key()
    world.set_private_key(key)
    # Upgrades take a few seconds each (services linger), so a stop lands mid-upgrade.
    world.start_hosts(HOSTS, public_line(key), process_linger_seconds=1.5)
    first = world.seed()
    a = world.start_replica("replica-a")
    assert wait_for(a.is_leader, timeout=30), a.tail()
    b = world.start_replica("replica-b")
    v1 = world.release
    assert wait_for(lambda: world.all_at(v1.version, v1.components["kubelet"]),
                    timeout=180, every=0.5), world.logs()
    return first, a, b


def test_webhook_failover_key_rotation_and_metrics(world: World) -> None:
    # --- the hosts join (configured 2 at a time), every Node Ready at 1.0.0 --------------
    first, a, b = _two_replicas_and_joined_hosts(world)
    v1 = world.release
    assert world.applied_revision() == first
    assert not b.is_leader()

    # --- (a) a push and its webhook: applied at once, the poll interval is 10 minutes ----
    app = ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-settings\n"
           "  namespace: windows-apps\ndata:\n  greeting: hello\n")
    second = world.commit("Add app settings", {"workloads/app-settings.yaml": app})
    pushed = time.monotonic()
    push_hook(world, a.url, first, second)
    assert wait_for(lambda: world.applied_revision() == second, timeout=20), a.tail()
    assert time.monotonic() - pushed < 20  # far below the 10 minute interval
    settings = world.api.request("GET", "/api/v1/namespaces/windows-apps/configmaps/"
                                 "app-settings")
    assert settings["data"] == {"greeting": "hello"}

    # --- (b) a version bump; the leader dies while a host is out --------------------------
    v2 = fleet.bump(v1)
    since = time.time()
    bump = world.commit(f"Bump Windows node components to {v2.version}", world.files(v2))
    with Observer(world) as observer:
        observer.target = a
        # The webhook reaches the follower (a Service picks any replica): it is relayed.
        push_hook(world, b.url, second, bump)

        def host_out() -> bool:
            spans = {h.address: h for h in world.hosts}
            for host in spans.values():
                recent = [c for c in list(host.commands) if c.received_at >= since]
                stops = [c.received_at for c in recent if c.summary.startswith("stop-service")]
                if stops and not any(c.summary.startswith("start-service") and
                                     c.received_at > max(stops) for c in recent):
                    return True
            return False

        assert wait_for(host_out, timeout=60, every=0.05), a.tail()
        a.kill()  # SIGKILL: no park, no Lease release
        killed_at = time.time()
        orphans = world.slot_holders()
        assert orphans, "the killed leader held no slot"

        assert wait_for(b.is_leader, timeout=15), b.tail()
        observer.target = b
        assert wait_for(lambda: world.all_at(v2.version, v2.components["kubelet"]),
                        timeout=240, every=0.5), world.logs()
        assert wait_for(lambda: b.revision() == bump, timeout=30), b.tail()

    # The new leader resumed the interrupted hosts before it took any other host out.
    by_address = {h.address: h for h in world.hosts}
    resumed = max(min(c.received_at for c in by_address[o].commands if c.received_at > killed_at)
                  for o in orphans)
    for address, host in by_address.items():
        later_stops = [c.received_at for c in host.commands
                       if c.summary.startswith("stop-service") and c.received_at > killed_at]
        if address not in orphans:
            assert all(t > resumed for t in later_stops), (address, orphans)
    # Never more than maxUnavailable out: the hosts' own service logs and the labels.
    spans = outages(world.hosts, since)
    assert len(spans) == HOSTS
    assert most_out_at_once(spans) <= MAX_UNAVAILABLE, spans
    assert observer.most_upgrading <= MAX_UNAVAILABLE
    assert observer.most_upgrading >= 1  # the observer did see the rollout

    # The status branch recorded hosts as they changed phase during the rollout (one
    # commit per change of state), not only where they ended.
    phases = [{h.address: h.phase for h in report.hosts}
              for report in status_history(world.remote)]
    assert any(p.startswith("upgrading") for commit in phases for p in commit.values()), phases
    assert all(p == "up-to-date" for p in phases[0].values()), phases[0]

    # --- (d) /metrics followed the rollout ------------------------------------------------
    during = [m for m in observer.metrics if m["total"] and m["done"] is not None
              and m["done"] < m["total"]]
    assert during, observer.metrics[-5:]
    assert any(set(m["hosts"]) - {"up-to-date"} for m in during)  # hosts mid-rollout
    assert b.metric("syncer_hosts", phase="up-to-date") == HOSTS
    assert b.metric("syncer_rollout_hosts_done") == HOSTS
    assert b.metric("syncer_rollout_hosts_total") == HOSTS
    assert b.metric("syncer_last_applied_revision_info", revision=bump) == 1
    assert b.metric("syncer_leader") == 1
    assert world.events("RolloutStarted") and world.events("RolloutFinished")

    # --- (c) rotate the SSH key: the next reconcile uses it, no restart -------------------
    key_two = new_key()
    for host in world.hosts:  # what the user data / an operator does on each host
        host.set_authorized_keys([public_line(key_two)])
    world.set_private_key(key_two)
    errors_before = b.metric("syncer_ssh_errors_total")
    successes = b.metric("syncer_reconciles_total", result="success") or 0
    rotated = time.time()
    push_hook(world, b.url, bump, bump)  # any trigger; the key is read every round
    assert wait_for(lambda: (b.metric("syncer_reconciles_total", result="success") or 0)
                    > successes, timeout=60), b.tail()
    for host in world.hosts:  # every host ran a command: it accepted the new key only
        assert [c for c in host.commands if c.received_at > rotated], host.address
    assert b.metric("syncer_ssh_errors_total") == errors_before
    assert b.metric("syncer_hosts", phase="up-to-date") == HOSTS
    assert b.running() and b.proc.pid == b.pid  # the same process, never restarted


def test_a_rotated_ssh_key_file_is_used_without_a_restart(world: World) -> None:
    """`--ssh-private-key-file` (a mounted Secret) wins over cloud-private-key, and its
    rotation by the kubelet is used at the next reconcile."""
    key_one, key_two = new_key(), new_key()
    world.set_private_key(new_key())  # a key no host accepts: only the file can work
    world.start_hosts(2, public_line(key_one))
    volume = world.root / "ssh-key"
    write_secret_volume(volume, {"ssh-privatekey": key_one})
    head = world.seed()
    a = world.start_replica("replica-a", "--ssh-private-key-file",
                            str(volume / "ssh-privatekey"))
    v1 = world.release
    assert wait_for(lambda: world.all_at(v1.version, v1.components["kubelet"]),
                    timeout=120, every=0.5), world.logs()
    # The Nodes are Ready before the reconcile that configured them returns: let it
    # finish, or its success would pass for the one after the rotation below.
    assert wait_for(lambda: (a.metric("syncer_reconciles_total", result="success") or 0) >= 1,
                    timeout=60), a.tail()

    for host in world.hosts:
        host.set_authorized_keys([public_line(key_two)])
    write_secret_volume(volume, {"ssh-privatekey": key_two})
    rotated = time.time()
    successes = a.metric("syncer_reconciles_total", result="success") or 0
    errors_before = a.metric("syncer_ssh_errors_total")
    push_hook(world, a.url, head, head)
    assert wait_for(lambda: (a.metric("syncer_reconciles_total", result="success") or 0)
                    > successes, timeout=60), a.tail()
    for host in world.hosts:
        assert [c for c in host.commands if c.received_at > rotated], host.address
    assert a.metric("syncer_ssh_errors_total") == errors_before
    assert a.metric("syncer_hosts", phase="up-to-date") == 2
    assert "credential reloaded" in a.output() and "ssh-private-key" in a.output()
    assert a.running()


def test_terminated_leader_finishes_its_step_hands_over_and_git_down_changes_nothing(
        world: World) -> None:
    """SIGTERM to the leader mid-rollout (what `kubectl rollout restart` does): it lets
    the host it is on reach a safe point — its services run again — parks, releases the
    Lease, exits 0; the other replica takes over at once and finishes, never more than
    maxUnavailable out by the hosts' own records. Then the Git remote goes away: nothing
    is applied, and a host changed by hand is still put back from what was applied."""
    first, a, b = _two_replicas_and_joined_hosts(world)
    v1 = world.release

    v2 = fleet.bump(v1)
    since = time.time()
    bump = world.commit(f"Bump Windows node components to {v2.version}", world.files(v2))
    push_hook(world, a.url, first, bump)

    def kubelet_stopped() -> SimHost | None:
        for host in world.hosts:
            if host.scm.state("kubelet") is not None and host.scm.state("kubelet").name != \
                    "RUNNING" and any(t >= since for t, s, e in host.scm.events
                                      if s == "kubelet" and e == "stopped"):
                return host
        return None

    out = wait_for(kubelet_stopped, timeout=90, every=0.02)
    assert out is not None, a.tail()
    terminated = time.monotonic()
    assert a.stop() == 0  # SIGTERM
    assert out.scm.state("kubelet").name == "RUNNING"  # type: ignore[union-attr]
    assert 'result=parked' in a.output()
    assert wait_for(b.is_leader, timeout=10), b.tail()
    assert time.monotonic() - terminated < 15
    assert wait_for(lambda: world.all_at(v2.version, v2.components["kubelet"]),
                    timeout=240, every=0.5), world.logs()
    spans = outages(world.hosts, since)
    assert most_out_at_once(spans) <= MAX_UNAVAILABLE, spans

    # --- the Git remote is down ------------------------------------------------------------
    world.remote.rename(world.remote.with_name("gone.git"))
    victim = world.hosts[0]
    kubelet_exe = victim.drive / "k" / "kubelet.exe"
    good = kubelet_exe.read_bytes()
    kubelet_exe.write_bytes(b"kubelet v1.0.0 (replaced by hand)\n")
    failures = b.metric("syncer_reconciles_total", result="failed") or 0
    push_hook(world, b.url, bump, bump)  # any trigger: the fetch fails
    assert wait_for(lambda: (b.metric("syncer_reconciles_total", result="failed") or 0)
                    > failures, timeout=60), b.tail()
    assert wait_for(lambda: kubelet_exe.read_bytes() == good, timeout=60), b.tail()
    assert world.applied_revision() == bump  # nothing new applied

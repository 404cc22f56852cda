"""End-to-end: the node stage against the test control plane and
simulated Windows hosts. Each test asserts what a user would notice: Nodes, their
annotations and schedulability, services on the hosts, commands the hosts received."""

from __future__ import annotations

import base64
import json
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from syncer import names
from syncer.cli.main import cli
from syncer.cluster.client import ApiError, KubeClient
from syncer.nodes.slots import RolloutLock
from syncer.nodes.stage import NodeStageResult, run_node_stage
from syncer.nodes.status import read_status
from syncer.nodes.windows.keys import parse_private_key
from syncer.nodes.windows.layout import CNI_CONFIG, KUBE_PROXY_CONFIG
from syncer.reconcile import ReconcileOptions, reconcile_once
from syncer_lab.kube import ControlPlane
from syncer_lab.nodelab import NodeLab, downtime, entries, max_overlap, scope_selector
from syncer_lab.wmco import wmco_decrypt


def _join(node_lab: NodeLab, count: int, **fleet: object) -> None:
    node_lab.add_hosts(count)
    node_lab.set_fleet("1.0.0", **fleet)  # type: ignore[arg-type]
    node_lab.write_instances()
    result = node_lab.run()
    assert result.ok, (result.summary(), result.rows)


def _writes(node_lab: NodeLab) -> int:
    r = node_lab.api.requests
    return r["POST"] + r["PUT"] + r["PATCH"] + r["DELETE"]


def test_fresh_byoh_hosts_join_and_a_second_pass_changes_nothing(node_lab: NodeLab) -> None:
    hosts = node_lab.add_hosts(2)
    node_lab.set_fleet("1.0.0")
    node_lab.write_instances()

    result = node_lab.run()
    assert result.ok, (result.summary(), result.rows)
    nodes = node_lab.nodes()
    assert sorted(nodes) == sorted(h.name.lower() for h in hosts)
    for host in hosts:
        node = nodes[host.name.lower()]
        ann, labels = node["metadata"]["annotations"], node["metadata"]["labels"]
        assert ann[names.ANNOTATION_VERSION] == "1.0.0"
        assert ann[names.ANNOTATION_DESIRED_VERSION] == "1.0.0"
        assert ann[names.ANNOTATION_PUB_KEY_HASH]
        # Encrypted as WMCO encrypts it: WMCO's own Go library reads it back.
        assert "Administrator" not in ann[names.ANNOTATION_USERNAME]
        assert wmco_decrypt(ann[names.ANNOTATION_USERNAME], node_lab.key_pem) == "Administrator"
        # Offered RSA, ECDSA and Ed25519, syncer pinned what WMCO's Go client would: ECDSA.
        assert ann[names.ANNOTATION_SSH_HOST_KEY] == host.host_keys["ecdsa"].get_base64()
        assert ann[names.ANNOTATION_SSH_HOST_KEY_TYPE] == "ecdsa-sha2-nistp256"
        assert ann[names.ANNOTATION_SHELL] == "cmd"
        assert node["status"]["nodeInfo"]["kubeletVersion"] == "v1.30.4"
        assert labels[names.LABEL_BYOH] == "true"
        assert labels[names.LABEL_NODE_OS_ID] == "Windows"
        assert names.LABEL_WORKER_ROLE in labels
        assert names.LABEL_UPGRADING not in labels
        assert not node["spec"].get("unschedulable")
        assert {"key": "os", "value": "Windows", "effect": "NoSchedule"} in node["spec"]["taints"]
        kubelet = host.scm.get("kubelet")
        assert "--windows-priorityclass=ABOVE_NORMAL_PRIORITY_CLASS" in kubelet.binary_path
        assert kubelet.dependencies == ["containerd"]
        assert kubelet.description == "OpenShift managed (syncer) kubelet"
        assert kubelet.failure_actions.startswith("restart/")
        assert host.fs.is_file("C:\\k\\cni\\win-overlay.exe")
        assert host.fs.is_file("C:\\k\\containerd\\containerd.exe")  # bin/ stripped
        # A working pod network: hybrid-overlay made its network with the node's subnet,
        # kube-proxy proxies on it, and containerd reads the CNI configuration.
        running = node_lab.lab.programs.running(host)
        assert running.kube_proxy == "proxying" and running.hybrid_overlay == "ready"
        subnet = node["metadata"]["annotations"]["k8s.ovn.org/hybrid-overlay-node-subnet"]
        network = host.hns.network("OVNKubernetesHybridOverlayNetwork")
        assert network is not None and network.subnet == subnet
        assert host.fs.is_file("C:\\k\\cni\\config\\cni.conf")
    assert [r.text for r in result.rows] == ["up-to-date", "up-to-date"]

    # An up-to-date fleet: two commands per host (inventory and node facts), no cordon,
    # no upload, no cluster write.
    before = {h.name: len(h.commands) for h in hosts}
    writes = _writes(node_lab)
    again = node_lab.run()
    assert again.ok, again.summary()
    assert [r.text for r in again.rows] == ["up-to-date", "up-to-date"]
    for host in hosts:
        new = entries(host)[before[host.name]:]
        assert len(new) == 2 and new[0].startswith("inventory "), new
        assert new[1].startswith("node-facts "), new
    assert _writes(node_lab) == writes


def test_version_bump_respects_max_unavailable(node_lab: NodeLab) -> None:
    _join(node_lab, 4, max_unavailable=2)
    start = time.time()
    node_lab.set_fleet("1.1.0", kubelet="v1.31.0", max_unavailable=2)
    result = node_lab.run()
    assert result.ok, (result.summary(), result.rows)
    assert result.rollout is not None and result.rollout.done == 4
    intervals = []
    for host in node_lab.hosts:
        node = node_lab.node_of(host)
        assert node is not None
        assert node["status"]["nodeInfo"]["kubeletVersion"] == "v1.31.0"
        assert node["metadata"]["annotations"][names.ANNOTATION_VERSION] == "1.1.0"
        recent = [c for c in host.commands if c.received_at >= start]
        # Only the node tarball's kubelet, kube-proxy and kube-log-runner changed: three
        # uploads (verified by file-hash), the unchanged archives were not sent again.
        uploads = [c.summary for c in recent if c.summary.startswith("file-hash")]
        assert len(uploads) == 3, uploads
        # Directories in one command per step: staging (ahead of the slot), the managed
        # files' and the services' logs; none again for the payloads staged ahead.
        mkdirs = [c.summary for c in recent if c.summary.startswith("make-directory")]
        assert len(mkdirs) == 3, mkdirs
        # kube-proxy, hybrid-overlay-node and the kubelet stop in that order, each until
        # STOPPED (the host waits: no query per poll), and then their processes' exits
        # are awaited together: all in one command.
        stops = [c for c in recent if c.summary.startswith("stop-service")]
        assert [c.summary for c in stops] == [
            "stop-services kube-proxy hybrid-overlay-node kubelet"], entries(host)
        assert stops[0].params["names"] == ["kube-proxy", "hybrid-overlay-node", "kubelet"]
        assert not [c for c in recent if c.summary.startswith("wait-process-exit")]
        summaries = [c.summary for c in recent]
        # node-facts runs in the probe only: the network step reads the network's subnet
        # and management IP with the VIP, and the digests of the two files it writes from
        # them, not every payload's; verify checks files and services only, so its
        # inventory runs alone and is the host's last command.
        facts = [s for s in summaries if s.startswith("node-facts ")]
        assert len(facts) == 1, entries(host)
        network = [c for c in recent if c.summary.startswith("inventory ")
                   and c.params["files"] == [CNI_CONFIG, KUBE_PROXY_CONFIG]]
        assert len(network) == 1, entries(host)
        assert summaries[-1].startswith("inventory "), entries(host)
        # Every start waits in its own command too.
        assert not [c for c in recent if c.summary.startswith("wait-service")], entries(host)
        assert not [c for c in recent if c.summary.startswith("sc query")], entries(host)
        span = downtime(host)
        assert span is not None
        intervals.append(span)
    assert max_overlap(intervals) == 2  # never more than maxUnavailable out at once


def test_a_finished_host_hands_its_slot_to_the_next_in_one_lease_write(
        node_lab: NodeLab, monkeypatch: pytest.MonkeyPatch) -> None:
    """At maxUnavailable 1, the slot goes from each host straight to the next: no Lease
    write leaves it free while hosts still wait, and one write per host moves it."""
    _join(node_lab, 3, max_unavailable=1)
    holder_sets: list[list[str]] = []
    send = node_lab.api.request

    def request(method: str, path: str, **kw: Any) -> Any:
        if method == "PUT" and path.endswith("/leases/" + names.ROLLOUT_LEASE):
            text = kw["body"]["metadata"]["annotations"][names.ANNOTATION_SLOT_HOLDERS]
            holder_sets.append(sorted(json.loads(text)))
        return send(method, path, **kw)

    monkeypatch.setattr(node_lab.api, "request", request)
    node_lab.set_fleet("1.1.0", kubelet="v1.31.0", max_unavailable=1)
    result = node_lab.run()
    assert result.ok, (result.summary(), result.rows)
    assert result.rollout is not None and result.rollout.max_concurrency == 1
    moves = [h for i, h in enumerate(holder_sets) if i == 0 or h != holder_sets[i - 1]]
    assert [len(h) for h in moves] == [1, 1, 1, 0], holder_sets
    assert sorted(h[0] for h in moves[:3]) == sorted(h.address for h in node_lab.hosts)


def test_status_follows_a_rollout_while_it_runs(node_lab: NodeLab) -> None:
    """`syncer status` and the status branch see hosts mid-rollout, not only the end."""
    _join(node_lab, 2)
    node_lab.set_fleet("1.1.0", kubelet="v1.31.0")
    seen: list[dict[str, str]] = []  # each host's phase in syncer-node-status, per step
    snapshots: list[dict[str, str]] = []  # what the controller's status commits get

    def on_step(address: str, step: str) -> None:
        if step == "replace":
            seen.append({a: r.text for a, r in read_status(node_lab.api,
                                                            node_lab.namespace).hosts.items()})

    undated: list[str] = []  # rows a status commit would show without their "since"

    def on_update(snapshot: NodeStageResult) -> None:
        snapshots.append({r.address: r.text for r in snapshot.rows})
        undated.extend(r.address for r in snapshot.rows if not r.since)

    result = run_node_stage(node_lab.api, node_lab.options(on_update=on_update),
                            on_step=on_step)
    assert not undated
    assert result.ok, (result.summary(), result.rows)
    # While a host replaced its binaries, status said so (the step before it, by then).
    assert seen and all(
        any(p.startswith("upgrading: ") for p in phases.values()) for phases in seen
    ), seen
    # Snapshots as hosts start and finish (at most one per status write, so at most one
    # per change of state), a host mid-upgrade among them, both up to date in the last.
    assert 2 <= len(snapshots) <= 4, snapshots
    assert any(p.startswith("upgrading: ") for s in snapshots for p in s.values()), snapshots
    assert [sorted(s.values()) for s in snapshots][-1] == ["up-to-date", "up-to-date"]


class SlowStatusWrites(KubeClient):
    """The test control plane, with every write of ``syncer-node-status`` taking a second
    longer (a busy API server, a large ConfigMap)."""

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        if method != "GET" and names.NODE_STATUS_CONFIGMAP in path:
            time.sleep(1.0)
        return super().request(method, path, **kwargs)


def test_hosts_do_not_wait_for_status_writes(node_lab: NodeLab) -> None:
    """Each step a host enters is reported, but a slow status write never holds a host up:
    with writes taking a second, a host's upgrade (15 steps) still takes about as long as
    without, and the status at the end is complete."""
    _join(node_lab, 2, max_unavailable=2)
    node_lab.set_fleet("1.1.0", kubelet="v1.31.0", max_unavailable=2)
    spans: dict[str, list[float]] = {}

    def on_step(address: str, step: str) -> None:
        spans.setdefault(address, []).append(time.monotonic())

    slow = SlowStatusWrites(node_lab.api.api_client)
    result = run_node_stage(slow, node_lab.options(), on_step=on_step)
    assert result.ok, (result.summary(), result.rows)
    for address, times in spans.items():
        assert len(times) >= 12
        assert times[-1] - times[0] < 6.0, (address, times[-1] - times[0])
    final = read_status(node_lab.api, node_lab.namespace)
    assert sorted(r.text for r in final.hosts.values()) == ["up-to-date", "up-to-date"]


def test_a_slow_status_push_gets_the_newest_snapshot_not_one_per_host_change(
    node_lab: NodeLab,
) -> None:
    """The status branch hears of the rollout once per push at most: while one push (here
    a second long) runs, hosts starting and finishing are gathered into the next snapshot,
    not queued one commit each, and the last snapshot has every host's end."""
    hosts = 4
    _join(node_lab, hosts, max_unavailable=hosts)
    node_lab.set_fleet("1.1.0", kubelet="v1.31.0", max_unavailable=hosts)
    snapshots: list[list[str]] = []

    def on_update(snapshot: NodeStageResult) -> None:
        snapshots.append(sorted(r.text for r in snapshot.rows))
        time.sleep(1.0)

    result = run_node_stage(node_lab.api, node_lab.options(on_update=on_update))
    assert result.ok, (result.summary(), result.rows)
    assert 2 <= len(snapshots) < 2 * hosts, snapshots  # one per start and finish: 8
    assert snapshots[-1] == ["up-to-date"] * hosts


def test_controller_restart_mid_rollout_resumes_first(node_lab: NodeLab) -> None:
    _join(node_lab, 3)
    node_lab.set_fleet("1.1.0", kubelet="v1.31.0")
    shutdown = threading.Event()
    first: list[str] = []

    def on_step(address: str, step: str) -> None:
        if step == "transfer" and not first:
            first.append(address)
            shutdown.set()

    interrupted = run_node_stage(node_lab.api, node_lab.options(), shutdown=shutdown,
                                 on_step=on_step)
    assert interrupted.rollout is not None and interrupted.rollout.interrupted
    lock = RolloutLock(node_lab.api, node_lab.namespace, identity="syncer",
                       node_selector=scope_selector(node_lab.scope))
    assert [h.address for h in lock.holders()] == first  # the slot outlives the process
    node = node_lab.node_of(node_lab.host(first[0]))
    assert node is not None and node["metadata"]["labels"].get(names.LABEL_UPGRADING) == "true"

    resumed = node_lab.run()  # a new controller process (new incarnation)
    assert resumed.ok, (resumed.summary(), resumed.rows)
    starts = {h.address: downtime(h) for h in node_lab.hosts}
    assert min(starts, key=lambda a: starts[a][0]) == first[0]  # type: ignore[index]
    assert max_overlap([s for s in starts.values() if s]) == 1
    assert lock.holders() == []
    for host in node_lab.hosts:
        n = node_lab.node_of(host)
        assert n is not None and n["status"]["nodeInfo"]["kubeletVersion"] == "v1.31.0"
        assert not n["spec"].get("unschedulable")


def test_bad_payload_checksum_touches_no_host(node_lab: NodeLab) -> None:
    _join(node_lab, 2)
    before = {h.name: len(h.commands) for h in node_lab.hosts}
    # A bad archive: the hosts are probed and planned, none is touched.
    node_lab.set_fleet("1.1.0", versions={"containerd": "v1.1.0"}, corrupt="containerd")
    result = node_lab.run()
    assert not result.ok
    assert result.halted is not None
    assert "payload containerd: sha256 mismatch: the bytes at file:" in result.halted
    for host in node_lab.hosts:
        assert [e.split(" ")[0] for e in entries(host)[before[host.name]:]] == [
            "inventory", "node-facts"]
        before[host.name] = len(host.commands)
    # A bad node tarball: what its members are cannot even be known, so no host is
    # probed at all.
    node_lab.set_fleet("1.1.0", kubelet="v1.31.0", corrupt="kubelet")
    result = node_lab.run()
    assert result.blocked is not None
    assert "payload kubelet: sha256 mismatch: the bytes at file:" in result.blocked
    for host in node_lab.hosts:
        assert entries(host)[before[host.name]:] == []
        node = node_lab.node_of(host)
        assert node is not None and not node["spec"].get("unschedulable")
        assert names.LABEL_UPGRADING not in node["metadata"]["labels"]


def test_failed_host_halts_the_rollout_and_stays_cordoned(node_lab: NodeLab) -> None:
    _join(node_lab, 3)
    node_lab.set_fleet("1.1.0", kubelet="vbroken")  # a kubelet that crashes at start
    result = node_lab.run()
    assert not result.ok
    assert result.halted is not None and result.halted.startswith("rollout halted: ")
    first, *others = sorted(node_lab.hosts, key=lambda h: h.address)
    assert first.address in result.halted
    node = node_lab.node_of(first)
    assert node is not None
    assert node["spec"].get("unschedulable") is True
    ann = node["metadata"]["annotations"]
    assert ann[names.ANNOTATION_FAILED_STEP] in ("start", "verify")
    assert ann[names.ANNOTATION_PHASE] == names.PHASE_FAILED
    assert "kubelet" in ann[names.ANNOTATION_LAST_ERROR]
    for host in others:  # never touched: the failed host holds the only slot
        assert not any(e.startswith("stop-service") for e in entries(host))
    # The next round does not start another host either, and says why.
    again = node_lab.run()
    assert again.halted is not None and "failed at" in again.halted
    for host in others:
        assert not any(e.startswith("stop-service") for e in entries(host))


def test_an_upgrade_writes_the_node_three_times_and_shows_the_step_that_lasts(
        node_lab: NodeLab, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lock writes the Node once (upgrading, desired version and cordon together), annotate
    once (the configured record, uncordoned, upgrading dropped: "configured"); of the
    other steps only one that lasts is written, behind the host, with the moment it
    began: here the kubelet's start, made to take two seconds."""
    _join(node_lab, 1)
    [host] = node_lab.hosts
    host.faults.slow_command(r"^start-service kubelet$", 2.0)
    patches: list[dict[str, Any]] = []
    request = node_lab.api.request

    def recording(method: str, path: str, **kw: Any) -> Any:
        if method == "PATCH" and path.startswith("/api/v1/nodes/"):
            patches.append(kw.get("body") or {})
        return request(method, path, **kw)

    monkeypatch.setattr(node_lab.api, "request", recording)
    seen: list[tuple[str, float]] = []
    began: dict[str, float] = {}

    def on_step(address: str, step: str) -> None:
        began[step] = time.time()
        if step == "join":  # the start is over: what does the Node say?
            node = node_lab.node_of(host)
            assert node is not None
            ann = node["metadata"]["annotations"]
            since = datetime.strptime(ann[names.ANNOTATION_SINCE], "%Y-%m-%dT%H:%M:%S%z")
            seen.append((ann[names.ANNOTATION_PHASE], since.timestamp()))

    node_lab.set_fleet("1.1.0", kubelet="v1.31.0")
    result = run_node_stage(node_lab.api, node_lab.options(), on_step=on_step)
    assert result.ok, (result.summary(), result.rows)
    phases = [p.get("metadata", {}).get("annotations", {}).get(names.ANNOTATION_PHASE)
              for p in patches]
    assert phases == ["lock", "start", names.PHASE_CONFIGURED], patches
    [(phase, since)] = seen
    assert phase == "start" and int(began["start"]) <= since <= began["start"] + 1
    assert patches[0]["spec"] == {"unschedulable": True}
    assert patches[0]["metadata"]["labels"] == {names.LABEL_UPGRADING: "true"}
    assert patches[0]["metadata"]["annotations"][names.ANNOTATION_DESIRED_VERSION] == "1.1.0"
    assert patches[-1]["spec"] == {"unschedulable": False}
    assert patches[-1]["metadata"]["labels"][names.LABEL_UPGRADING] is None
    assert patches[-1]["metadata"]["annotations"][names.ANNOTATION_VERSION] == "1.1.0"
    node = node_lab.node_of(host)
    assert node is not None
    assert node["metadata"]["annotations"][names.ANNOTATION_PHASE] == names.PHASE_CONFIGURED
    assert names.LABEL_UPGRADING not in node["metadata"]["labels"]
    assert not node["spec"].get("unschedulable")


def test_rollback_policy_restores_the_previous_version(node_lab: NodeLab) -> None:
    _join(node_lab, 2, on_failure="rollback")
    node_lab.set_fleet("1.1.0", kubelet="vbroken", on_failure="rollback")
    result = node_lab.run()
    assert result.halted is not None
    first = sorted(node_lab.hosts, key=lambda h: h.address)[0]
    node = node_lab.node_of(first)
    assert node is not None
    ann = node["metadata"]["annotations"]
    assert "rolled back" in ann[names.ANNOTATION_LAST_ERROR]
    assert ann[names.ANNOTATION_VERSION] == "1.0.0"
    assert not node["spec"].get("unschedulable")
    assert names.LABEL_UPGRADING not in node["metadata"]["labels"]
    assert first.fs.read_bytes("C:\\k\\kubelet.exe").startswith(b"kubelet v1.30.4")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        node = node_lab.node_of(first)
        assert node is not None
        ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
        if ready and ready[0]["status"] == "True":
            break
        time.sleep(0.2)
    assert node["status"]["nodeInfo"]["kubeletVersion"] == "v1.30.4"
    assert ready and ready[0]["status"] == "True"


def test_dropped_connection_mid_upload_recovers(node_lab: NodeLab) -> None:
    _join(node_lab, 1)
    host = node_lab.hosts[0]
    host.faults.drop_after(4, during="upload", pattern=r"staging")
    node_lab.set_fleet("1.1.0", kubelet="v1.31.0")
    result = node_lab.run()
    assert result.ok, (result.summary(), result.rows)
    assert result.ssh_errors >= 1
    node = node_lab.node_of(host)
    assert node is not None and node["status"]["nodeInfo"]["kubeletVersion"] == "v1.31.0"


def test_changed_host_key_stops_that_host_only(node_lab: NodeLab) -> None:
    _join(node_lab, 2)
    changed, other = sorted(node_lab.hosts, key=lambda h: h.address)
    changed.faults.rotate_host_key()
    seen = len(changed.commands)
    node_lab.set_fleet("1.1.0", kubelet="v1.31.0")
    result = node_lab.run()
    rows = {r.address: r for r in result.rows}
    assert rows[changed.address].text == "blocked (host-key)"
    assert f"host key for {changed.address} changed" in (rows[changed.address].last_error or "")
    assert rows[other.address].text == "up-to-date"
    assert entries(changed)[seen:] == []  # not a single command reached it
    n = node_lab.node_of(other)
    assert n is not None and n["status"]["nodeInfo"]["kubeletVersion"] == "v1.31.0"
    # Nothing was overwritten: the pin is still the old key.
    pinned = node_lab.node_of(changed)
    assert pinned is not None
    assert (pinned["metadata"]["annotations"][names.ANNOTATION_SSH_HOST_KEY]
            != changed.host_key.get_base64())


def test_removal_deconfigures_and_dns_failure_removes_nothing(node_lab: NodeLab) -> None:
    _join(node_lab, 2)
    keep, gone = sorted(node_lab.hosts, key=lambda h: h.address)

    # A BYOH name that does not resolve blocks the round: nothing is removed.
    node_lab.write_instances([keep], extra={"win-missing.example.invalid":
                                            "username=Administrator"})
    blocked = node_lab.run()
    assert blocked.blocked is not None and "win-missing.example.invalid" in blocked.blocked
    assert node_lab.node_of(gone) is not None
    assert gone.scm.exists("kubelet")

    node_lab.write_instances([keep])
    result = node_lab.run()
    assert result.ok, (result.summary(), result.rows, result.removals)
    assert [r.node_name for r in result.removals] == [gone.name.lower()]
    assert node_lab.node_of(gone) is None
    for service in ("kubelet", "containerd", "kube-proxy", "hybrid-overlay-node"):
        assert not gone.scm.exists(service)
    assert not gone.fs.exists("C:\\k")
    assert not gone.fs.exists("C:\\var\\lib\\cni")
    assert node_lab.node_of(keep) is not None


def test_reboot_requested_by_annotation(node_lab: NodeLab) -> None:
    _join(node_lab, 1)
    host = node_lab.hosts[0]
    name = host.name.lower()
    node_lab.api.request(
        "PATCH", f"/api/v1/nodes/{name}",
        body={"metadata": {"annotations": {names.ANNOTATION_REBOOT_REQUIRED: "true"}}},
        content_type="application/merge-patch+json",
    )
    result = node_lab.run()
    assert result.ok, (result.summary(), result.rows)
    assert host.reboots == 1
    node = node_lab.node_of(host)
    assert node is not None
    assert names.ANNOTATION_REBOOT_REQUIRED not in node["metadata"]["annotations"]
    assert not node["spec"].get("unschedulable")


def test_no_ssh_client_leaks(node_lab: NodeLab) -> None:
    import paramiko

    _join(node_lab, 2)
    node_lab.run()
    clients = [t for t in threading.enumerate()
               if isinstance(t, paramiko.Transport) and not t.server_mode and t.is_alive()]
    assert clients == []


def test_sync_once_runs_the_node_stage_and_status_shows_it(node_lab: NodeLab, tmp_path: Path,
                                                           control_plane: ControlPlane) -> None:
    """A fleet directory applied by reconcile_once (what `syncer sync --once` runs): the
    Fleet and BYOHHosts render the ConfigMaps, then the node stage configures the host;
    `syncer status` prints its row."""
    [host] = node_lab.add_hosts(1)
    components = []
    for name, version in (("kubelet", "v1.30.4"), ("kube-log-runner", "v1.30.4"),
                          ("kube-proxy", "v1.30.4"), ("containerd", "v1.0.0"),
                          ("cni", "v1.0.0"), ("hybrid-overlay-node", "v1.0.0"),
                          ("hns", "v1.0.0")):
        p = node_lab.payload(name, version)
        member = f", path: {p['path']}" if "path" in p else ""
        components.append(f"    {name}: {{version: {version}, url: \"{p['url']}\", "
                          f"sha256: {p['sha256']}{member}}}")
    listed = "\n".join(components)
    fleet = tmp_path / "fleet"
    fleet.mkdir()
    (fleet / "fleet.yaml").write_text(f"""\
apiVersion: syncer.io/v1alpha1
kind: Fleet
metadata:
  name: lab
spec:
  platform: none
  namespace: {node_lab.namespace}
  version: "3.0.0"
  components:
{listed}
  rollout: {{maxUnavailable: 1, drainTimeout: 20s}}
  nodes: {{sshPort: {node_lab.lab.port}}}
""")
    (fleet / "hosts.yaml").write_text(f"""\
apiVersion: syncer.io/v1alpha1
kind: BYOHHosts
metadata:
  name: lab
spec:
  hosts:
    - address: {host.address}
      username: Administrator
      labels: {{syncer-test: {node_lab.scope}}}
""")
    options = ReconcileOptions(inventory_namespace=node_lab.namespace, nodes=node_lab.options())
    result = reconcile_once(fleet, node_lab.api, options)
    assert result.ok, (result.errors, result.nodes and result.nodes.rows)
    assert result.nodes is not None and [r.text for r in result.nodes.rows] == ["up-to-date"]
    node = node_lab.node_of(host)
    assert node is not None
    assert node["metadata"]["annotations"][names.ANNOTATION_VERSION] == "3.0.0"

    out = CliRunner().invoke(cli, ["status", "--kubeconfig", str(control_plane.kubeconfig),
                                   "-n", node_lab.namespace])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert lines[0].split() == ["ADDRESS", "NODE", "VERSION", "PHASE", "SINCE", "LAST", "ERROR"]
    assert lines[1].split()[:4] == [host.address, host.name.lower(), "3.0.0", "up-to-date"]
    assert "1/1 hosts at the committed version" in out.output

    # The next revision is invalid, and meanwhile someone replaced kubelet.exe on the host
    # by hand. Nothing of the revision is applied, but the host still converges to what
    # the last good revision applied: the node stage does not wait for a valid commit.
    (fleet / "hosts.yaml").write_text("apiVersion: syncer.io/v1alpha1\nkind: BYOHHosts\n")
    kubelet_exe = host.drive / "k" / "kubelet.exe"
    kubelet_exe.write_bytes(b"kubelet v1.29.0 (replaced by hand)\n")
    rejected = reconcile_once(fleet, node_lab.api, options)
    assert not rejected.ok and rejected.stage == "validate", rejected.errors
    assert rejected.nodes is not None, "the node stage did not run on the last good state"
    assert [r.text for r in rejected.nodes.rows] == ["up-to-date"], rejected.nodes.rows
    assert kubelet_exe.read_bytes() == b"kubelet v1.30.4\n"  # the tarball's member again


def test_paused_rollout_only_plans(node_lab: NodeLab) -> None:
    _join(node_lab, 1)
    host = node_lab.hosts[0]
    seen = len(host.commands)
    node_lab.set_fleet("1.1.0", kubelet="v1.31.0", paused=True)
    result = node_lab.run()
    assert result.paused
    assert [r.text for r in result.rows] == ["paused: would upgrade"]
    assert [e.split(" ")[0] for e in entries(host)[seen:]] == ["inventory", "node-facts"]
    node = node_lab.node_of(host)
    assert node is not None and node["status"]["nodeInfo"]["kubeletVersion"] == "v1.30.4"


def test_each_round_maintains_windows_user_data(node_lab: NodeLab) -> None:
    """Windows MachineSets reference `windows-user-data`: every round keeps it in step with
    `cloud-private-key` (before any host exists, and after a key rotation), unless the
    Fleet leaves it to WMCO."""
    secrets = f"/api/v1/namespaces/{node_lab.namespace}/secrets"

    def user_data() -> str | None:
        try:
            secret = node_lab.api.request("GET", f"{secrets}/{names.USER_DATA_SECRET}")
        except ApiError as err:
            assert err.not_found
            return None
        return base64.b64decode(secret["data"][names.USER_DATA_SECRET_KEY]).decode()

    node_lab.set_fleet("1.0.0")  # no hosts yet
    node_lab.run()
    script = user_data()
    assert script is not None and node_lab.key_line in script
    assert "<powershell>" in script and "administrators_authorized_keys" in script

    rotated = Ed25519PrivateKey.generate().private_bytes(
        Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption())
    body = node_lab.api.request("GET", f"{secrets}/{names.PRIVATE_KEY_SECRET}")
    body["data"] = {names.PRIVATE_KEY_SECRET_KEY: base64.b64encode(rotated).decode()}
    node_lab.api.request("PUT", f"{secrets}/{names.PRIVATE_KEY_SECRET}", body=body)
    node_lab.run()
    script = user_data()
    assert script is not None and parse_private_key(rotated).public_key in script
    assert node_lab.key_line not in script

    # nodes.userData: wmco: WMCO owns the Secret; syncer neither writes nor recreates it.
    path = f"/api/v1/namespaces/{node_lab.namespace}/configmaps/{names.FLEET_CONFIGMAP}"
    fleet_cm = node_lab.api.request("GET", path)
    policy = json.loads(fleet_cm["data"]["nodes.json"])
    policy["nodes"]["userData"] = "wmco"
    fleet_cm["data"]["nodes.json"] = json.dumps(policy)
    node_lab.api.request("PUT", path, body=fleet_cm)
    node_lab.api.request("DELETE", f"{secrets}/{names.USER_DATA_SECRET}")
    node_lab.run()
    assert user_data() is None

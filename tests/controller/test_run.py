"""`syncer run` end to end, as subprocesses against the test control plane.

What a user of the Deployment relies on: SIGTERM exits 0 and releases the Lease; a
leader killed or terminated mid-rollout is replaced and the rollout finishes without two
hosts out at once; a push plus a webhook applies the new revision at once; rotated
credential files are used without a restart; /metrics shows all of it.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from controller_helpers import SecretVolume, SyncerRun, wait_for

from syncer import names
from syncer.cluster.client import ApiError, KubeClient
from syncer.controller.leader import lease_path
from syncer_lab.gitrepos import WorkRepo, make_bare
from syncer_lab.kube import ControlPlane

SECRET = b"webhook-secret-one"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# Short election timings so failover tests take seconds, not minutes.
FAST = ["--lease-duration", "3s", "--renew-deadline", "2s", "--retry-period", "200ms"]


def base_args(cp: ControlPlane, namespace: str, workdir: Path, *extra: str) -> list[str]:
    return ["--kubeconfig", str(cp.kubeconfig), "--namespace", namespace,
            "--workdir", str(workdir), "--interval", "10m", "--control-poll-interval", "300ms",
            "--log-format", "json", *FAST, *extra]


def holder(kube: Any, namespace: str) -> str | None:
    try:
        spec = KubeClient(kube).request("GET", lease_path(namespace, names.LEADER_LEASE))["spec"]
    except ApiError:
        return None
    return spec.get("holderIdentity")


def rollout_state(kube: Any, namespace: str) -> dict[str, Any]:
    try:
        cm = KubeClient(kube).request(
            "GET", f"/api/v1/namespaces/{namespace}/configmaps/scripted-rollout")
    except ApiError:
        return {"done": [], "in_progress": None, "log": []}
    state: dict[str, Any] = json.loads(cm["data"]["state"])
    return state


def assert_never_two_hosts_out(log: list[list[Any]]) -> None:
    """Steps (start..end per host) never overlap; a host left in progress by a killed
    leader is the next one finished."""
    out: set[str] = set()
    for _who, host, what, _when in log:
        if what == "start":
            assert out <= {host}, f"{host} started while {out} still out"
            out = {host}
        else:
            out.discard(host)


@pytest.fixture
def scripted(control_plane: ControlPlane, namespace: str, tmp_path: Path,
             syncer_run: Callable[..., SyncerRun]) -> Callable[..., SyncerRun]:
    def start(name: str, factory: str = "rollout", env: dict[str, str] | None = None,
              extra: tuple[str, ...] = (), wait: bool = True) -> SyncerRun:
        args = base_args(control_plane, namespace, tmp_path / f"work-{name}",
                         "--repo", "file:///not-used", "--reconciler",
                         f"scripted_reconciler:{factory}", *extra)
        return syncer_run(name, args, env=env, wait=wait)
    return start


def test_sigterm_exits_0_and_releases_the_lease(
    scripted: Callable[..., SyncerRun], kube: Any, namespace: str
) -> None:
    proc = scripted("replica-a", env={"SCRIPTED_HOSTS": "1", "SCRIPTED_STEP_SECONDS": "0.1"})
    assert wait_for(proc.is_leader, timeout=20)
    assert wait_for(lambda: proc.metric("syncer_reconciles_total", result="success") == 1)
    assert (holder(kube, namespace) or "").startswith("replica-a_")
    assert proc.terminate() == 0
    assert holder(kube, namespace) is None  # released, not left to expire
    out = proc.output()
    assert '"msg": "lease released"' in out and '"clean": true' in out


def start_pair(
    scripted: Callable[..., SyncerRun], env: dict[str, str]
) -> tuple[SyncerRun, SyncerRun]:
    """Two replicas started together; returns (leader, follower)."""
    a = scripted("replica-a", env=env, wait=False)
    b = scripted("replica-b", env=env, wait=False)
    assert wait_for(lambda: a.healthy() and b.healthy(), timeout=30)
    leader = wait_for(lambda: next((p for p in (a, b) if p.is_leader()), None), timeout=20)
    assert leader is not None
    follower = b if leader is a else a
    # the follower is ready too, serves metrics, and does not reconcile
    assert follower.metric("syncer_leader") == 0.0
    return leader, follower


def in_progress_with_work_left(kube: Any, namespace: str, total: int) -> str | None:
    state = rollout_state(kube, namespace)
    if state["in_progress"] and len(state["done"]) <= total - 2:
        return str(state["in_progress"])
    return None


def test_leader_killed_mid_rollout_other_replica_finishes(
    scripted: Callable[..., SyncerRun], kube: Any, namespace: str
) -> None:
    env = {"SCRIPTED_HOSTS": "5", "SCRIPTED_STEP_SECONDS": "1.5"}
    leader, follower = start_pair(scripted, env)
    current = wait_for(lambda: in_progress_with_work_left(kube, namespace, 5), timeout=30)
    assert current
    leader.kill()  # SIGKILL in the middle of a host step: no park, no release
    assert wait_for(follower.is_leader, timeout=15)
    assert wait_for(lambda: len(rollout_state(kube, namespace)["done"]) == 5, timeout=40)
    state = rollout_state(kube, namespace)
    assert state["done"] == [f"127.0.1.{i}" for i in range(1, 6)]
    assert_never_two_hosts_out(state["log"])
    # the new leader resumed the interrupted host first instead of starting another
    new_steps = [host for who, host, what, _ in state["log"]
                 if who.startswith(follower.name) and what == "start"]
    assert new_steps[0] == current
    assert wait_for(lambda: follower.metric("syncer_rollout_hosts_done") == 5.0)
    assert follower.metric("syncer_rollout_hosts_total") == 5.0
    assert follower.metric("syncer_hosts", phase="up-to-date") == 5.0
    assert follower.metric("syncer_reconciles_total", result="success") == 1.0


def test_leader_terminated_mid_rollout_parks_and_hands_over(
    scripted: Callable[..., SyncerRun], kube: Any, namespace: str
) -> None:
    env = {"SCRIPTED_HOSTS": "5", "SCRIPTED_STEP_SECONDS": "1.5"}
    leader, follower = start_pair(scripted, env)
    current = wait_for(lambda: in_progress_with_work_left(kube, namespace, 5), timeout=30)
    assert current
    started = time.monotonic()
    assert leader.terminate() == 0  # finishes the current host, parks, releases the Lease
    parked_after = time.monotonic() - started
    assert parked_after < 10
    # released: the follower takes over at its next retry, sooner than the 3 s lease
    assert wait_for(follower.is_leader, timeout=10)
    assert time.monotonic() - started - parked_after < 2.5
    assert wait_for(lambda: len(rollout_state(kube, namespace)["done"]) == 5, timeout=40)
    log = rollout_state(kube, namespace)["log"]
    assert_never_two_hosts_out(log)
    # the old leader finished the host it was on, then stopped; the new one went on
    old = [entry for entry in log if entry[0].startswith(leader.name)]
    new = [entry for entry in log if entry[0].startswith(follower.name)]
    assert old[-1][1:3] == [current, "end"]
    assert new[0][1] != current and new[0][3] >= old[-1][3]
    assert '"result": "parked"' in leader.output()


def test_rotated_credentials_are_used_without_restart(
    scripted: Callable[..., SyncerRun], kube: Any, namespace: str, tmp_path: Path
) -> None:
    ssh = SecretVolume(tmp_path / "secrets" / "ssh")
    ssh.write({"private-key.pem": "KEY-ONE"})
    hook = SecretVolume(tmp_path / "secrets" / "webhook")
    hook.write({"secret": SECRET.decode()})
    proc = scripted("replica-a", factory="keyprint", extra=(
        "--ssh-private-key-file", str(ssh.root / "private-key.pem"),
        "--webhook-secret-file", str(hook.root / "secret")))
    assert wait_for(proc.is_leader, timeout=20)

    def fingerprint() -> str | None:
        try:
            cm = KubeClient(kube).request(
                "GET", f"/api/v1/namespaces/{namespace}/configmaps/scripted-keyprint")
        except ApiError:
            return None
        return str(cm["data"]["fingerprint"])

    first = wait_for(fingerprint)
    assert first
    ssh.write({"private-key.pem": "KEY-TWO"})  # the kubelet's ..data swap
    response = proc.webhook({"ref": "refs/heads/main", "after": "1" * 40}, SECRET)
    assert response.status_code == 202
    assert wait_for(lambda: fingerprint() not in (None, first))
    # the webhook secret rotates too: the old one is refused from then on, the new accepted
    hook.write({"secret": "webhook-secret-two"})
    assert wait_for(lambda: proc.webhook({"ref": "refs/heads/main"}, SECRET).status_code == 403)
    assert proc.webhook({"ref": "refs/heads/main"}, b"webhook-secret-two").status_code == 202
    assert proc.proc.poll() is None  # same process throughout
    out = proc.output()
    assert '"credential": "ssh-private-key"' in out and "KEY-TWO" not in out


def test_push_and_webhook_apply_the_new_revision_at_once(
    control_plane: ControlPlane, kube: Any, namespace: str, tmp_path: Path,
    syncer_run: Callable[..., SyncerRun]
) -> None:
    k = KubeClient(kube)
    wmco = names.WMCO_NAMESPACE
    try:
        k.request("POST", "/api/v1/namespaces", body={"apiVersion": "v1", "kind": "Namespace",
                                                      "metadata": {"name": wmco}})
    except ApiError as err:
        assert err.conflict
    remote = make_bare(tmp_path / "fleet.git")
    author = WorkRepo(tmp_path / "author", f"file://{remote}")
    shutil.copytree(EXAMPLES / "byoh", author.path / "fleet")
    author.commit("Fleet lab")
    author.push("main")
    first = author.head()
    hook = SecretVolume(tmp_path / "webhook")
    hook.write({"secret": SECRET.decode()})
    args = base_args(control_plane, namespace, tmp_path / "work",
                     "--repo", f"file://{remote}", "--path", "fleet",
                     "--webhook-secret-file", str(hook.root / "secret"))
    proc = syncer_run("replica-a", args)
    assert wait_for(lambda: proc.revision() == first, timeout=60), proc.output()[-3000:]

    hosts = (author.path / "fleet/hosts/lab.yaml").read_text()
    author.commit("Add host 127.0.1.4", {"fleet/hosts/lab.yaml": hosts + (
        "    - address: 127.0.1.4\n      username: Administrator\n")})
    author.push("main")
    second = author.head()
    pushed = time.monotonic()
    response = proc.webhook({"ref": "refs/heads/main", "after": second}, SECRET)
    assert response.status_code == 202, response.text
    # the interval is 10 minutes: only the webhook can explain a reconcile this soon
    assert wait_for(lambda: proc.revision() == second, timeout=30)
    assert time.monotonic() - pushed < 30
    instances = k.request("GET", f"/api/v1/namespaces/{wmco}/configmaps/{names.BYOH_CONFIGMAP}")
    assert instances["data"]["127.0.1.4"] == "username=Administrator"
    assert proc.metric("syncer_reconciles_total", result="success") == 2.0
    assert proc.metric("syncer_webhooks_total", code="202", provider="github") == 1.0
    assert (proc.metric("syncer_objects", result="created") or 0) + (
        proc.metric("syncer_objects", result="configured") or 0) >= 1
    events = k.request("GET", f"/apis/events.k8s.io/v1/namespaces/{namespace}/events")["items"]
    notes = [e["note"] for e in events if e["reason"] == "RevisionApplied"]
    assert f"Applied revision: main@sha1:{second}" in notes
    assert proc.terminate() == 0

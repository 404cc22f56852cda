"""`syncer run` end to end, as subprocesses against the test control plane.

What a user of the Deployment relies on: SIGTERM exits 0 and releases the Lease; a push
plus a webhook applies the new revision at once; a rotated webhook secret is used without
a restart; /metrics shows all of it. (Leaders killed or terminated mid-rollout, with real
hosts, are in tests/e2e/test_controller_e2e.py.)
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def fleet_remote(tmp_path: Path, kube: Any) -> tuple[Path, WorkRepo]:
    """A Git remote with ``examples/byoh`` under ``fleet/`` (WMCO's namespace created)."""
    try:
        KubeClient(kube).request("POST", "/api/v1/namespaces", body={
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": names.WMCO_NAMESPACE}})
    except ApiError as err:
        assert err.conflict
    remote = make_bare(tmp_path / "fleet.git")
    author = WorkRepo(tmp_path / "author", f"file://{remote}")
    shutil.copytree(EXAMPLES / "byoh", author.path / "fleet")
    author.commit("Fleet lab")
    author.push("main")
    return remote, author


def test_sigterm_exits_0_and_releases_the_lease(
    control_plane: ControlPlane, kube: Any, namespace: str, tmp_path: Path,
    syncer_run: Callable[..., SyncerRun]
) -> None:
    remote, author = fleet_remote(tmp_path, kube)
    proc = syncer_run("replica-a", base_args(control_plane, namespace, tmp_path / "work",
                                             "--repo", f"file://{remote}", "--path", "fleet"))
    assert wait_for(proc.is_leader, timeout=20)
    assert wait_for(lambda: proc.revision() == author.head(), timeout=60), proc.output()[-2000:]
    assert (holder(kube, namespace) or "").startswith("replica-a_")
    assert proc.terminate() == 0
    assert holder(kube, namespace) is None  # released, not left to expire
    out = proc.output()
    assert '"msg": "lease released"' in out and '"clean": true' in out


def test_a_rotated_webhook_secret_is_used_without_restart(
    control_plane: ControlPlane, kube: Any, namespace: str, tmp_path: Path,
    syncer_run: Callable[..., SyncerRun]
) -> None:
    """The secret file is a mounted Secret: when the kubelet swaps it, the old secret is
    refused and the new one accepted, in the same process. (The SSH key file's rotation
    is end to end in tests/e2e.)"""
    remote, _ = fleet_remote(tmp_path, kube)
    hook = SecretVolume(tmp_path / "secrets" / "webhook")
    hook.write({"secret": SECRET.decode()})
    proc = syncer_run("replica-a", base_args(
        control_plane, namespace, tmp_path / "work", "--repo", f"file://{remote}", "--path",
        "fleet", "--webhook-secret-file", str(hook.root / "secret")))
    assert wait_for(proc.is_leader, timeout=20)
    assert proc.webhook({"ref": "refs/heads/main"}, SECRET).status_code == 202
    hook.write({"secret": "webhook-secret-two"})  # the kubelet's ..data swap
    assert wait_for(lambda: proc.webhook({"ref": "refs/heads/main"}, SECRET).status_code == 403)
    assert proc.webhook({"ref": "refs/heads/main"}, b"webhook-secret-two").status_code == 202
    assert proc.proc.poll() is None  # same process throughout
    assert "webhook-secret-two" not in proc.output()


def test_push_and_webhook_apply_the_new_revision_at_once(
    control_plane: ControlPlane, kube: Any, namespace: str, tmp_path: Path,
    syncer_run: Callable[..., SyncerRun]
) -> None:
    k = KubeClient(kube)
    wmco = names.WMCO_NAMESPACE
    remote, author = fleet_remote(tmp_path, kube)
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

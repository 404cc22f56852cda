"""`syncer run --verify head` in the cluster: a signed revision is applied; an unsigned push
on top is rejected (nothing applied, the last signed revision stays, the status branch
and the log say why), and a signed fix is applied again."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from controller_helpers import SyncerRun, wait_for
from test_run_writeback import FAST, fleet_files

from syncer.cluster.client import KubeClient, connect
from syncer_lab.gitrepos import SshKey, WorkRepo, make_bare, write_allowed_signers
from syncer_lab.kube import ControlPlane


def git(bare: Path, *args: str) -> str:
    return subprocess.run(["git", "--git-dir", str(bare), *args], capture_output=True,
                          text=True, check=False).stdout


def app_value(api: KubeClient, namespace: str) -> str | None:
    cm = api.request("GET", f"/api/v1/namespaces/{namespace}/configmaps/app")
    return str(cm["data"]["value"])


def test_run_verify_head_rejects_an_unsigned_push(
    control_plane: ControlPlane, namespace: str, tmp_path: Path,
    syncer_run: Callable[..., SyncerRun], ssh_signing_key: SshKey,
) -> None:
    kube_client = connect(str(control_plane.kubeconfig), None)
    remote = make_bare(tmp_path / "fleet.git")
    author = WorkRepo(tmp_path / "author", f"file://{remote}")
    signed = author.commit("Fleet", fleet_files(namespace, "1"), sign=ssh_signing_key)
    author.push("main")
    signers = write_allowed_signers(tmp_path / "allowed_signers", [ssh_signing_key])
    proc = syncer_run("replica-a", [
        "--kubeconfig", str(control_plane.kubeconfig), "--namespace", namespace,
        "--workdir", str(tmp_path / "work"), "--interval", "1s",
        "--control-poll-interval", "300ms", "--log-format", "json", *FAST,
        "--repo", f"file://{remote}", "--path", "fleet",
        "--verify", "head", "--allowed-signers", str(signers),
    ])
    assert wait_for(lambda: proc.revision() == signed, timeout=60), proc.output()[-3000:]
    assert app_value(kube_client, namespace) == "1"

    unsigned = author.commit("Unsigned value 2", fleet_files(namespace, "2"))
    author.push("main")
    status = lambda: git(remote, "log", "--format=%s", "syncer/status")  # noqa: E731
    assert wait_for(lambda: f"Rejected {unsigned[:7]}" in status(), timeout=30), (
        status(), proc.output()[-3000:])
    assert wait_for(lambda: f"commit {unsigned[:7]} is not signed" in proc.output(), timeout=10)
    assert proc.revision() == signed
    assert app_value(kube_client, namespace) == "1"  # nothing of the unsigned commit applied

    fix = author.commit("Signed value 3", fleet_files(namespace, "3"), sign=ssh_signing_key)
    author.push("main")
    assert wait_for(lambda: proc.revision() == fix, timeout=30), proc.output()[-3000:]
    assert app_value(kube_client, namespace) == "3"
    assert proc.terminate() == 0
    kube_client.close()

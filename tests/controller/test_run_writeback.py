"""`syncer run` writes back after each reconcile: a status commit and a note for the applied
revision, and a preview on a pull request as soon as its webhook arrives."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from controller_helpers import SecretVolume, SyncerRun, wait_for

from syncer_lab.forge import ForgeSimulator
from syncer_lab.gitrepos import WorkRepo, make_bare
from syncer_lab.kube import ControlPlane

SECRET = b"webhook-secret-wb"
FAST = ["--lease-duration", "3s", "--renew-deadline", "2s", "--retry-period", "200ms"]


def fleet_files(namespace: str, value: str) -> dict[str, str]:
    return {
        "fleet/fleet.yaml": (
            "apiVersion: syncer.io/v1alpha1\nkind: Fleet\n"
            f"metadata:\n  name: {namespace}\n"
            f"spec:\n  platform: none\n  namespace: {namespace}\n  version: \"1.0.0\"\n"
            "  components:\n"
            "    kubelet:\n      version: v1.30.4\n"
            "      url: https://artifacts.example.com/kubelet.exe\n"
            "      sha256: 1db51f6f55c9ad4721a316393bc8ef061984cb558bda84f8dd10925bb1ffe37e\n"
            "    containerd:\n      version: v1.7.20\n"
            "      url: https://artifacts.example.com/containerd.tar.gz\n"
            "      sha256: babc204f1d1f9fe16c974577f976843603c7122471b88bd85318befda4b2ce53\n"
            "    kube-log-runner:\n      version: v1.30.4\n"
            "      url: https://artifacts.example.com/kube-log-runner.exe\n"
            "      sha256: 7b1d7c9bbf2b4bd1e4a6d3a8c1a6a7e0f9e2c3b4d5e6f7a8091a2b3c4d5e6f70\n"
            "    cni:\n      version: v1.5.1\n"
            "      url: https://artifacts.example.com/cni-plugins.tar.gz\n"
            "      sha256: ce4230da0cb3d1b01d2d8517ed274a3ab6a304e316497598d7765c98a937240c\n"
        ),
        "fleet/app.yaml": (f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\n"
                           f"  namespace: {namespace}\ndata:\n  value: '{value}'\n"),
    }


def git(bare: Path, *args: str) -> str:
    return subprocess.run(["git", "--git-dir", str(bare), *args], capture_output=True,
                          text=True, check=False).stdout


def test_status_note_and_a_preview_on_the_pull_request_webhook(
    control_plane: ControlPlane, namespace: str, tmp_path: Path,
    syncer_run: Callable[..., SyncerRun],
) -> None:
    remote = make_bare(tmp_path / "fleet.git")
    author = WorkRepo(tmp_path / "author", f"file://{remote}")
    first = author.commit("Fleet", fleet_files(namespace, "1"))
    author.push("main")
    hook = SecretVolume(tmp_path / "webhook")
    hook.write({"secret": SECRET.decode()})
    with ForgeSimulator("github") as sim:
        forge_token = SecretVolume(tmp_path / "forge")
        forge_token.write({"token": sim.token})
        proc = syncer_run("replica-a", [
            "--kubeconfig", str(control_plane.kubeconfig), "--namespace", namespace,
            "--workdir", str(tmp_path / "work"), "--interval", "10m",
            "--control-poll-interval", "300ms", "--log-format", "json", *FAST,
            "--repo", f"file://{remote}", "--path", "fleet",
            "--webhook-secret-file", str(hook.root / "secret"),
            "--forge", "github", "--forge-url", sim.api_url, "--forge-repo", sim.repository,
            "--forge-token-file", str(forge_token.root / "token"),
        ])
        assert wait_for(lambda: proc.revision() == first, timeout=60), proc.output()[-3000:]
        assert wait_for(lambda: git(remote, "log", "--format=%s", "syncer/status"), timeout=10)
        assert git(remote, "log", "--format=%s", "syncer/status").splitlines() == [
            f"Applied {first[:7]}: 2 objects"]
        note = git(remote, "notes", "--ref=syncer", "show", first)
        assert "outcome: Applied" in note and "controller: replica-a_" in note

        pr_head = author.commit("Value 2", fleet_files(namespace, "2"))
        author.git("push", "-q", "origin", "HEAD:refs/pull/4/head")
        sim.add_pull_request(4, pr_head, head_ref="value-2")
        response = proc.webhook({"number": 4, "pull_request": {
            "base": {"ref": "main"}, "head": {"sha": pr_head}}}, SECRET, event="pull_request")
        assert response.status_code == 202, response.text
        # the interval is 10 minutes: only the webhook explains a comment this soon
        assert wait_for(lambda: sim.comments_on(4), timeout=30), proc.output()[-3000:]
        (comment,) = sim.comments_on(4)
        assert "**0 to create, 1 to update, 0 to prune**" in comment.body
        assert wait_for(lambda: sim.statuses_of(pr_head, "syncer/preview")
                        and sim.statuses_of(pr_head, "syncer/preview")[-1].state == "success")
        assert proc.metric("syncer_writeback_pending") == 0.0
        assert proc.metric("syncer_forge_errors_total") == 0.0
        # the reconcile for the webhook changed no state: still one status commit
        assert len(git(remote, "log", "--format=%s", "syncer/status").splitlines()) == 1
        assert proc.terminate() == 0
        sim.assert_clean()
    assert sim.token not in proc.output()


def test_the_forge_and_its_token_from_a_windowsfleet(
    control_plane: ControlPlane, namespace: str, tmp_path: Path,
    syncer_run: Callable[..., SyncerRun],
) -> None:
    """spec.forge (provider, URL, repository, a token Secret) instead of the flags: open
    pull requests get their preview, and the token stays out of the log."""
    cp = control_plane
    crd = Path(__file__).resolve().parents[2] / "manifests/base/crd/windowsfleets.yaml"
    cp.kubectl("apply", "--server-side", "-f", str(crd))
    cp.kubectl("wait", "--for=condition=Established", "--timeout=60s",
               "crd/windowsfleets.syncer.io")
    remote = make_bare(tmp_path / "fleet.git")
    author = WorkRepo(tmp_path / "author", f"file://{remote}")
    author.commit("Fleet", fleet_files(namespace, "1"))
    author.push("main")
    pr_head = author.commit("Value 2", fleet_files(namespace, "2"))
    author.git("push", "-q", "origin", "HEAD:refs/pull/7/head")
    with ForgeSimulator("github") as sim:
        sim.add_pull_request(7, pr_head, head_ref="value-2")
        cp.kubectl("create", "secret", "generic", "-n", namespace, "forge",
                   f"--from-literal=token={sim.token}")
        cp.kubectl("apply", "-f", "-", input=json.dumps({
            "apiVersion": "syncer.io/v1alpha1", "kind": "WindowsFleet",
            "metadata": {"name": "previewed", "namespace": namespace},
            "spec": {"url": f"file://{remote}", "path": "fleet", "interval": "10m",
                     "forge": {"provider": "github", "url": sim.api_url,
                               "repository": sim.repository,
                               "secretRef": {"name": "forge"}}}}))
        proc = syncer_run("replica-a", [
            "--kubeconfig", str(cp.kubeconfig), "--namespace", namespace,
            "--workdir", str(tmp_path / "work"), "--control-poll-interval", "300ms",
            "--log-format", "json", *FAST, "--fleet-object", "previewed"])
        assert wait_for(lambda: sim.comments_on(7), timeout=60), proc.output()[-3000:]
        (comment,) = sim.comments_on(7)
        assert "**0 to create, 1 to update, 0 to prune**" in comment.body
        assert proc.terminate() == 0
        sim.assert_clean()
    assert sim.token not in proc.output()

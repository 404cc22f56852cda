"""Helpers of the write-back tests: a fleet repository in Git, Windows Nodes, the CLI."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from syncer import names
from syncer.cli.main import cli
from syncer.cluster.client import KubeClient
from syncer_lab.gitrepos import WorkRepo, run
from syncer_lab.kube import ControlPlane

BRANCH = "syncer/status"
# Where each forge keeps a pull request's head in the target repository.
PR_REFS = {
    "github": "refs/pull/{}/head",
    "gitea": "refs/pull/{}/head",
    "gitlab": "refs/merge-requests/{}/head",
}
COMPONENTS = {
    "1.0.0": ("v1.30.4", "1db51f6f55c9ad4721a316393bc8ef061984cb558bda84f8dd10925bb1ffe37e"),
    "1.1.0": ("v1.31.1", "2db51f6f55c9ad4721a316393bc8ef061984cb558bda84f8dd10925bb1ffe37e"),
}


def git(bare: Path, *args: str) -> str:
    return run("git", "--git-dir", str(bare), *args)


def subjects(bare: Path, ref: str = BRANCH) -> list[str]:
    """Commit subjects on ``ref`` of a bare repository, oldest first."""
    return git(bare, "log", "--reverse", "--format=%s", ref).splitlines()


def note(bare: Path, sha: str) -> str:
    return git(bare, "notes", "--ref=syncer", "show", sha)


def notes_commits(bare: Path) -> int:
    status = run("git", "--git-dir", str(bare), "for-each-ref", "refs/notes/syncer")
    if not status.strip():
        return 0
    return len(git(bare, "rev-list", "refs/notes/syncer").split())


@dataclass
class FleetRepo:
    """A fleet repository (fleet under ``fleet/``) named after the test's namespace."""

    bare: Path
    author: WorkRepo
    namespace: str
    hosts: list[str] = field(default_factory=list)

    def files(self, version: str = "1.0.0", value: str = "1", *, extra: bool = True,
              hosts: list[str] | None = None) -> dict[str, str]:
        kubelet, sha = COMPONENTS[version]
        fleet = (
            "apiVersion: syncer.io/v1alpha1\nkind: Fleet\n"
            f"metadata:\n  name: {self.namespace}\n"
            f"spec:\n  platform: none\n  namespace: {self.namespace}\n"
            f'  version: "{version}"\n'
            "  components:\n"
            f"    kubelet:\n      version: {kubelet}\n"
            "      url: https://artifacts.example.com/kubelet.exe\n"
            f"      sha256: {sha}\n"
            "    containerd:\n      version: v1.7.20\n"
            "      url: https://artifacts.example.com/containerd.tar.gz\n"
            "      sha256: babc204f1d1f9fe16c974577f976843603c7122471b88bd85318befda4b2ce53\n"
            "    kube-log-runner:\n      version: v1.30.4\n"
            "      url: https://artifacts.example.com/kube-log-runner.exe\n"
            "      sha256: 7b1d7c9bbf2b4bd1e4a6d3a8c1a6a7e0f9e2c3b4d5e6f7a8091a2b3c4d5e6f70\n"
            "    cni:\n      version: v1.5.1\n"
            "      url: https://artifacts.example.com/cni-plugins.tar.gz\n"
            "      sha256: ce4230da0cb3d1b01d2d8517ed274a3ab6a304e316497598d7765c98a937240c\n"
        )
        out = {"fleet/fleet.yaml": fleet, "fleet/app.yaml": self.configmap("app", value)}
        host_list = self.hosts if hosts is None else hosts
        if host_list:
            out["fleet/hosts/lab.yaml"] = byoh(host_list)
        if extra:
            out["fleet/extra.yaml"] = self.configmap("extra", "x")
        return out

    def configmap(self, name: str, value: str) -> str:
        return (f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n"
                f"  namespace: {self.namespace}\ndata:\n  value: '{value}'\n")

    def commit(self, message: str, files: dict[str, str], *, remove: tuple[str, ...] = ()
               ) -> str:
        if remove:
            self.author.remove(*remove)
        return self.author.commit(message, files)

    def push_main(self, message: str, **kwargs: Any) -> str:
        remove = kwargs.pop("remove", ())
        sha = self.commit(message, self.files(**kwargs), remove=remove)
        self.author.push("main")
        return sha

    def push_pull_request(self, ref: str, message: str, files: dict[str, str],
                          remove: tuple[str, ...] = ()) -> str:
        """Commit on a PR branch (off main's head) and push it to the forge's PR ref."""
        self.author.git("checkout", "-q", "-B", "pr", "origin/main")
        sha = self.commit(message, files, remove=remove)
        self.author.git("push", "-q", "--force", "origin", f"HEAD:{ref}")
        self.author.git("checkout", "-q", "main")
        return sha


def byoh(addresses: list[str]) -> str:
    lines = ["apiVersion: syncer.io/v1alpha1", "kind: BYOHHosts", "metadata:", "  name: lab",
             "spec:", "  hosts:"]
    for address in addresses:
        lines += [f"    - address: {address}", "      username: Administrator"]
    return "\n".join(lines) + "\n"


@contextmanager
def windows_node(kc: KubeClient, name: str, scope: str, address: str, version: str
                 ) -> Iterator[str]:
    """A configured BYOH Windows Node as the node stage leaves it (no kubelet), labelled
    ``syncer-test=<scope>``; deleted when the block ends, so the node stage of later
    tests on the same control plane never finds it."""
    annotations = {names.ANNOTATION_VERSION: version, names.ANNOTATION_ADDRESS: address}
    labels = {names.LABEL_OS: "windows", names.LABEL_BYOH: "true", "syncer-test": scope}
    body = {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "annotations": annotations, "labels": labels},
        "status": {"addresses": [{"type": "InternalIP", "address": address}]},
    }
    kc.request("POST", "/api/v1/nodes", body=body)
    try:
        yield name
    finally:
        kc.request("DELETE", f"/api/v1/nodes/{name}")


def set_node_version(kc: KubeClient, name: str, version: str) -> None:
    kc.request("PATCH", f"/api/v1/nodes/{name}",
               body={"metadata": {"annotations": {names.ANNOTATION_VERSION: version}}},
               content_type="application/merge-patch+json")


def sync(cp: ControlPlane, namespace: str, repo: str, workdir: Path, *extra: str,
         env: dict[str, str] | None = None) -> Result:
    """``syncer sync --once`` of ``repo`` (fleet under ``fleet/``), nodes off."""
    args = ["sync", "--once", "--repo", repo, "--path", "fleet", "--workdir", str(workdir),
            "--kubeconfig", str(cp.kubeconfig), "--inventory-namespace", namespace,
            "--no-nodes", *extra]
    return CliRunner().invoke(cli, args, env=env, catch_exceptions=False)

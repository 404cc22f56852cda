"""Reconciling from real Git remotes (file://), and the ``plan`` / ``sync`` commands."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from clusterhelpers import FleetDir

from syncer.cli.main import cli
from syncer.cluster.client import KubeClient, Resource
from syncer.cluster.inventory import InventoryStore
from syncer.reconcile import ReconcileOptions
from syncer.source import GitSource, SourceConfig, VerifyConfig
from syncer_lab.gitrepos import SshKey, WorkRepo, make_bare, write_allowed_signers
from syncer_lab.kube import ControlPlane

CM = Resource("", "v1", "ConfigMap", "configmaps", True)


def _value(kc: KubeClient, namespace: str) -> str | None:
    live = kc.get(CM, namespace, "app")
    return None if live is None else str(live["data"]["value"])


def _push(repo: WorkRepo, fleet: FleetDir, value: str, sign: SshKey | None = None) -> str:
    sha = repo.commit(f"value {value}", {
        "fleet/fleet.yaml": fleet.fleet_yaml(),
        "fleet/app.yaml": fleet.configmap("app", {"value": value}),
    }, sign=sign)
    repo.push("main")
    return sha


@pytest.fixture
def git_repo(tmp_path: Path) -> tuple[Path, WorkRepo]:
    bare = make_bare(tmp_path / "remote.git")
    return bare, WorkRepo(tmp_path / "author", f"file://{bare}")


def test_git_revision_applied_then_unsigned_commit_rejected(
    git_repo: tuple[Path, WorkRepo], fleet: FleetDir, sync: Any, kc: KubeClient,
    options: ReconcileOptions, ssh_signing_key: SshKey, tmp_path: Path,
) -> None:
    bare, repo = git_repo
    signers = write_allowed_signers(tmp_path / "allowed_signers", [ssh_signing_key])
    source = GitSource(SourceConfig(
        url=f"file://{bare}", ref="main", path="fleet", workdir=tmp_path / "work",
        verify=VerifyConfig(mode="head", allowed_signers_file=signers),
    ))
    signed = _push(repo, fleet, "1", sign=ssh_signing_key)
    result = sync(source)
    assert result.ok, result.errors
    assert result.revision == signed and result.summary().startswith(f"Applied {signed}")
    assert _value(kc, fleet.namespace) == "1"

    unsigned = _push(repo, fleet, "2")
    rejected = sync(source)
    assert not rejected.ok and rejected.stage == "source"
    assert "not signed" in rejected.errors[0]
    assert _value(kc, fleet.namespace) == "1"
    inventory = InventoryStore(kc, options.inventory_namespace).load()
    assert inventory.last_applied_revision == signed
    assert inventory.last_attempted_revision == unsigned
    assert "not signed" in inventory.last_error
    assert source.last_good is not None and source.last_good.sha == signed


def test_unreachable_remote_keeps_the_last_state(
    git_repo: tuple[Path, WorkRepo], fleet: FleetDir, sync: Any, kc: KubeClient,
    options: ReconcileOptions, tmp_path: Path,
) -> None:
    bare, repo = git_repo
    source = GitSource(SourceConfig(url=f"file://{bare}", ref="main", path="fleet",
                                    workdir=tmp_path / "work"))
    first = _push(repo, fleet, "1")
    assert sync(source).ok
    # A resync of the same head re-applies nothing but still reconciles (drift check).
    again = sync(source)
    assert again.ok and again.revision == first

    _push(repo, fleet, "2")
    shutil.move(bare, tmp_path / "gone.git")  # the remote disappears
    result = sync(source)
    assert not result.ok and result.stage == "source"
    assert "unreachable" in result.errors[0] or "does not appear" in result.errors[0]
    assert _value(kc, fleet.namespace) == "1"
    inventory = InventoryStore(kc, options.inventory_namespace).load()
    assert inventory.last_applied_revision == first
    assert inventory.last_error == result.errors[0]


# --- the commands ----------------------------------------------------------------------


def _run(*args: str, env: dict[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def _cluster_args(cp: ControlPlane, namespace: str) -> list[str]:
    return ["--kubeconfig", str(cp.kubeconfig), "--inventory-namespace", namespace]


def test_plan_and_sync_commands(
    fleet: FleetDir, control_plane: ControlPlane, namespace: str
) -> None:
    fleet.write("app.yaml", fleet.configmap("app", {"value": "1"}))
    args = [str(fleet.root), *_cluster_args(control_plane, namespace)]
    plan = _run("plan", *args)
    assert plan.exit_code == 0, plan.output
    assert "create  ConfigMap" in plan.output and f"{fleet.root}/app.yaml:1" in plan.output
    assert "Plan: 2 to create, 0 to update, 0 to prune, 0 unchanged." in plan.output
    assert _run("plan", *args, "--exit-code").exit_code == 3

    synced = _run("sync", "--once", *args)
    assert synced.exit_code == 0, synced.output
    assert "objects (2 created, 0 updated, 0 unchanged), 0 pruned" in synced.output
    assert _run("plan", *args, "--exit-code").exit_code == 0

    fleet.write("app.yaml", fleet.configmap("app", {"value": "2"}))
    plan = _run("plan", *args, "--exit-code")
    assert plan.exit_code == 3
    assert '~ /data/value: "1" -> "2"' in plan.output
    doc = json.loads(_run("plan", *args, "-o", "json").stdout)
    [update] = [o for o in doc["objects"] if o["action"] == "update"]
    assert update["patch"] == [{"op": "replace", "path": "/data/value", "value": "2"}]
    assert update["source"] == f"{fleet.root}/app.yaml:1"
    assert "1 updated" in _run("sync", "--once", *args).output


def test_plan_without_a_cluster_is_offline(fleet: FleetDir, tmp_path: Path) -> None:
    fleet.write("app.yaml", fleet.configmap("app", {"value": "1"}))
    env = {"KUBECONFIG": None, "HOME": str(tmp_path), "KUBERNETES_SERVICE_HOST": None}
    result = _run("plan", str(fleet.root), env=env)
    assert result.exit_code == 0, result.output
    assert "Plan (no cluster configured): 2 objects would be created." in result.output
    assert f"create  ConfigMap  {fleet.namespace}  app" in result.output


def test_plan_names_problems_like_validate(fleet: FleetDir) -> None:
    """`syncer plan PATH` prints a problem exactly as `syncer validate PATH` does: as
    PATH/file:line, so an editor or a CI log can jump to it; nothing is asked of a
    cluster."""
    fleet.write("app.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_Name\n")
    planned = _run("plan", str(fleet.root), "--kubeconfig", "/nonexistent")
    validated = _run("validate", str(fleet.root))
    assert planned.exit_code == validated.exit_code == 1
    assert planned.output == validated.output
    assert f"{fleet.root}/app.yaml:4: " in planned.output


def test_secret_values_are_not_printed(
    fleet: FleetDir, control_plane: ControlPlane, namespace: str
) -> None:
    secret = ("apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n"
              f"  namespace: {fleet.namespace}\nstringData:\n  password: {{}}\n")
    fleet.write("secret.yaml", secret.format("hunter2"))
    args = [str(fleet.root), *_cluster_args(control_plane, namespace)]
    assert _run("sync", "--once", *args).exit_code == 0
    fleet.write("secret.yaml", secret.format("correct-horse"))
    for output in ("table", "json"):
        plan = _run("plan", *args, "-o", output)
        assert "update" in plan.output
        assert "hunter2" not in plan.output and "correct-horse" not in plan.output
        assert "aHVudGVyMg" not in plan.output  # nor base64 of it


def test_user_mistakes_are_one_line_without_traceback(
    fleet: FleetDir, tmp_path: Path, control_plane: ControlPlane, namespace: str
) -> None:
    missing = _run("sync", "--once", str(fleet.root), "--kubeconfig", str(tmp_path / "nope"))
    assert missing.exit_code == 1
    assert missing.output.strip() == f"syncer: kubeconfig {tmp_path / 'nope'}: no such file"

    broken = tmp_path / "broken.kubeconfig"
    broken.write_text("apiVersion: v1\nclusters: [\n")
    result = _run("plan", str(fleet.root), "--kubeconfig", str(broken))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.splitlines()[-1].startswith(f"syncer: kubeconfig {broken}: cannot be read")

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = tmp_path / "dead.kubeconfig"
    dead.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters: [{{name: c, cluster: {{server: 'https://127.0.0.1:{port}'}}}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\n"
    )
    for command in (["sync", "--once"], ["plan"]):
        result = _run(*command, str(fleet.root), "--kubeconfig", str(dead))
        assert result.exit_code == 1, result.output
        assert "Traceback" not in result.output
        assert f"cannot reach https://127.0.0.1:{port}" in result.output
        assert "Connection refused" in result.output

    fleet.write("bad.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n")
    invalid = _run("plan", str(fleet.root), *_cluster_args(control_plane, namespace))
    assert invalid.exit_code == 1
    assert invalid.output.splitlines()[-1].startswith(f"{fleet.root}/bad.yaml:")

    assert _run("sync", str(fleet.root)).exit_code == 2  # --once is required


def test_plan_shows_component_changes_as_a_table_and_text_as_a_diff(
    fleet: FleetDir, control_plane: ControlPlane, namespace: str
) -> None:
    """What a reviewer reads: which components change and whether their payload does,
    and a changed script as a unified diff, with nothing cut."""
    script = "\n".join(f"Write-Host step {i}" for i in range(1, 7)) + "\n"
    fleet.write("app.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: script\n"
                f"  namespace: {fleet.namespace}\ndata:\n  run.ps1: |\n"
                + "".join(f"    {line}\n" for line in script.splitlines()))
    args = [str(fleet.root), *_cluster_args(control_plane, namespace), "--no-nodes"]
    assert _run("sync", "--once", *args).exit_code == 0
    bumped = fleet.fleet_yaml().replace(
        "version: v1.30.4\n      url: https://artifacts.example.com/kubelet.exe\n"
        "      sha256: 1db5", "version: v1.30.5\n      url: https://artifacts.example.com/"
        "kubelet-v1.30.5.exe\n      sha256: 2db5").replace(
        "https://artifacts.example.com/cni-plugins.tar.gz",
        "https://mirror.example.com/cni-plugins.tar.gz")
    fleet.write("fleet.yaml", bumped)
    fleet.write("app.yaml", (fleet.root / "app.yaml").read_text().replace(
        "Write-Host step 4", "Write-Host step four"))
    plan = _run("plan", *args[:-1])
    assert plan.exit_code == 0, plan.output
    lines = [line.strip() for line in plan.output.splitlines()]
    table = lines[lines.index("components:") + 1:][:3]
    assert [row.split() for row in table] == [
        ["COMPONENT", "VERSION", "PAYLOAD"],
        ["cni", "v1.5.1", "changed"],  # same version from another mirror
        ["kubelet", "v1.30.4", "->", "v1.30.5", "changed"],
    ]
    assert "~ /data/run.ps1:" in lines
    assert "-Write-Host step 4" in lines and "+Write-Host step four" in lines
    # The components document (JSON text) changes as a diff too, nothing cut.
    start = lines.index("~ /data/components.json:")
    diff = lines[start + 1:start + 40]
    assert any(line.startswith("+") and "kubelet-v1.30.5.exe" in line for line in diff)
    assert not any(line.endswith("...") for line in lines)
    as_yaml = _run("plan", *args[:-1], "-o", "yaml")
    assert "op: replace" in as_yaml.stdout and "path: /data/components.json" in as_yaml.stdout

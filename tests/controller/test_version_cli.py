"""`syncer version` (the CLI's and the leading controller's), `syncer completion`, and
KUBECONFIG with several paths, as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import yaml
from click.testing import CliRunner
from controller_helpers import SyncerRun, wait_for
from test_run import base_args, fleet_remote

from syncer import __version__
from syncer.cli.main import cli
from syncer_lab.kube import ControlPlane


def test_version_of_the_cli_and_of_the_leading_controller(
    control_plane: ControlPlane, kube: object, namespace: str, tmp_path: Path,
    syncer_run: Callable[..., SyncerRun],
) -> None:
    # KUBECONFIG with a missing file first: kubectl's rule, the existing ones merged.
    env = {"KUBECONFIG": os.pathsep.join([str(tmp_path / "missing"),
                                          str(control_plane.kubeconfig)])}
    runner = CliRunner()
    before = runner.invoke(cli, ["version", "-n", namespace], env=env)
    assert before.exit_code == 0, before.output
    assert before.stdout.splitlines() == [
        f"syncer {__version__}",
        f"controller: no controller has run in namespace {namespace} (no Lease syncer-leader)"]

    remote, _ = fleet_remote(tmp_path, kube)
    proc = syncer_run("replica-a", base_args(control_plane, namespace, tmp_path / "work",
                                             "--repo", f"file://{remote}", "--path", "fleet"))
    assert wait_for(proc.is_leader, timeout=20)
    text = runner.invoke(cli, ["version", "-n", namespace], env=env)
    assert text.exit_code == 0, text.output
    assert text.stdout.splitlines()[1].startswith(
        f"controller {__version__} (leader replica-a_")
    doc = json.loads(runner.invoke(cli, ["version", "-n", namespace, "-o", "json"],
                                   env=env).stdout)
    assert doc["client"] == __version__ and doc["controller"]["version"] == __version__
    assert yaml.safe_load(runner.invoke(cli, ["version", "-n", namespace, "-o", "yaml"],
                                        env=env).stdout) == doc
    # The controller commands read the same KUBECONFIG list.
    requested = runner.invoke(cli, ["reconcile", "-n", namespace], env=env)
    assert requested.exit_code == 0, requested.output
    assert proc.terminate() == 0


def test_version_without_a_cluster_still_prints_the_client(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["version"], env={"KUBECONFIG": str(tmp_path / "none"),
                                                       "HOME": str(tmp_path)})
    assert result.exit_code == 1
    assert result.stdout == f"syncer {__version__}\n"
    assert "no cluster configured" in result.stderr
    client = CliRunner().invoke(cli, ["version", "--client"])
    assert client.exit_code == 0 and client.stdout == f"syncer {__version__}\n"


def test_completion_scripts_complete_commands_and_options() -> None:
    for shell in ("bash", "zsh", "fish"):
        script = CliRunner().invoke(cli, ["completion", shell])
        assert script.exit_code == 0 and "_SYNCER_COMPLETE" in script.stdout, shell
    # What bash asks when a user types `syncer ver<TAB>` and `syncer history --li<TAB>`.
    env = {**os.environ, "_SYNCER_COMPLETE": "bash_complete"}
    for words, cword, wanted in (("syncer ver", "1", "plain,version"),
                                 ("syncer history --li", "2", "plain,--limit")):
        done = subprocess.run([sys.executable, "-m", "syncer"], capture_output=True, text=True,
                              env={**env, "COMP_WORDS": words, "COMP_CWORD": cword},
                              timeout=60, check=False)
        assert wanted in done.stdout.splitlines(), (words, done.stdout, done.stderr)

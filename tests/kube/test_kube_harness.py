"""The test control plane itself: version, kubeconfig, CRDs, start-up time, no leaks."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from kubernetes import client, config

from syncer_lab.binaries import KUBE_VERSION, BinariesMissing, kube_binaries
from syncer_lab.kube import ControlPlane

REPO = Path(__file__).resolve().parents[2]


def test_version_is_the_pinned_release(kube: client.ApiClient) -> None:
    info = client.VersionApi(kube).get_code()
    assert info.git_version == KUBE_VERSION
    assert (info.major, info.minor) == ("1", KUBE_VERSION.split(".")[1])


def test_pinned_version_matches_the_go_module() -> None:
    gomod = (REPO / "tools/kube/go.mod").read_text()
    assert re.search(
        rf"^\s*(require\s+)?k8s\.io/kubernetes {re.escape(KUBE_VERSION)}$", gomod, re.M
    )


def test_kubectl_of_the_same_version_uses_the_kubeconfig(control_plane: ControlPlane) -> None:
    out = control_plane.kubectl("version", "-o", "json").stdout
    assert f'"gitVersion": "{KUBE_VERSION}"' in out.replace('":"', '": "')
    assert (
        "openshift-machine-api" in control_plane.kubectl("get", "namespaces", "-o", "name").stdout
    )


def test_the_python_client_loads_the_kubeconfig(control_plane: ControlPlane) -> None:
    api = config.new_client_from_config(config_file=str(control_plane.kubeconfig))
    with api:
        review = client.AuthenticationV1Api(api).create_self_subject_review({})
    assert review.status.user_info.username == "admin"
    assert "system:masters" in review.status.user_info.groups


def test_machine_api_crds_are_established(kube: client.ApiClient) -> None:
    ext = client.ApiextensionsV1Api(kube)
    for name in ("machinesets.machine.openshift.io", "machines.machine.openshift.io"):
        crd = ext.read_custom_resource_definition(name)
        assert {c.type: c.status for c in crd.status.conditions}["Established"] == "True"


def test_startup_is_measured(control_plane: ControlPlane) -> None:
    assert control_plane.startup_seconds is not None
    # The target is < 10 s on a warm cache; fail only on something pathological.
    assert control_plane.startup_seconds < 60


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it has exited all the same.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _wait_dead(pids: list[int], timeout: float = 15) -> list[int]:
    deadline = time.monotonic() + timeout
    while (alive := [p for p in pids if _alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive


def test_an_exception_inside_the_context_leaves_nothing_behind() -> None:
    cp = ControlPlane(install_crds=False, namespaces=())
    with pytest.raises(RuntimeError, match="test failed"), cp:
        pids, workdir = cp.pids(), cp.workdir
        assert len(pids) == 2 and all(_alive(p) for p in pids)
        raise RuntimeError("test failed")
    assert _wait_dead(pids, timeout=0.1) == []
    assert not workdir.exists()


# The owner takes Ctrl-C as a terminal's foreground program does, also when the tests run
# as a background job of a non-interactive shell, which starts them with SIGINT ignored
# (and an ignored signal stays ignored across exec).
_OWNER = textwrap.dedent(
    """
    import signal, sys, time
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from syncer_lab.kube import ControlPlane
    cp = ControlPlane(install_crds=False, namespaces=()).start()
    print(" ".join(map(str, cp.pids())), cp.workdir, flush=True)
    time.sleep(600)
    """
)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL, signal.SIGINT])
def test_children_die_with_their_owner(sig: signal.Signals) -> None:
    """SIGTERM/SIGINT run stop(); even SIGKILL of the owner kills etcd and the API server."""
    owner = subprocess.Popen(
        [sys.executable, "-c", _OWNER], stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    try:
        assert owner.stdout is not None
        *pid_words, workdir_text = owner.stdout.readline().split()
        pids, workdir = [int(p) for p in pid_words], Path(workdir_text)
        assert len(pids) == 2 and all(_alive(p) for p in pids)
        owner.send_signal(sig)
        owner.wait(30)
        assert _wait_dead(pids) == [], f"orphans after {sig.name}"
        if sig != signal.SIGKILL:
            assert not workdir.exists()
        else:  # nothing ran in the owner; the next start sweeps its temp dir
            assert workdir.exists()
            with ControlPlane(install_crds=False, namespaces=()):
                assert not workdir.exists()
    finally:
        owner.kill()
        owner.wait()


def test_missing_binaries_say_how_to_get_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SYNCER_KUBE_BIN_DIR", str(tmp_path))
    with pytest.raises(BinariesMissing, match="make setup") as err:
        kube_binaries()
    assert "kube-apiserver, kubectl, etcd" in str(err.value)

"""The WindowsFleet resource: its CRD on the test control plane, and `syncer run
--fleet-object` following it, as a user sees it through kubectl (get, wait, describe,
annotate)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from controller_helpers import SyncerRun, wait_for
from test_run import base_args, fleet_remote

from syncer import names
from syncer.cluster.client import KubeClient
from syncer_lab.gitrepos import SshKey, WorkRepo, write_allowed_signers
from syncer_lab.gitserver import SshGitServer
from syncer_lab.kube import ControlPlane

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "manifests" / "base" / "crd" / "windowsfleets.yaml"


@pytest.fixture(scope="module")
def crd(control_plane: ControlPlane) -> None:
    control_plane.kubectl("apply", "--server-side", "-f", str(CRD))
    control_plane.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                          "crd/windowsfleets.syncer.io")


def fleet_yaml(name: str, namespace: str, **spec: Any) -> str:
    return json.dumps({"apiVersion": "syncer.io/v1alpha1", "kind": "WindowsFleet",
                       "metadata": {"name": name, "namespace": namespace}, "spec": spec})


def example_fleet(namespace: str) -> str:
    """examples/byoh's fleet.yaml with its objects in ``namespace``."""
    return (ROOT / "examples/byoh/fleet.yaml").read_text().replace(
        "\nspec:\n", f"\nspec:\n  namespace: {namespace}\n", 1)


def get(cp: ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    out = cp.kubectl("get", "-n", namespace, "windowsfleet", name, "-o", "json").stdout
    doc: dict[str, Any] = json.loads(out)
    return doc


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c["type"] == type_:
            return dict(c)
    return {}


@pytest.mark.parametrize(("spec", "complaint"), [
    ({"path": "fleet"}, 'spec.url: Required value'),
    ({"url": "ftp://example.com/fleet.git"}, "spec.url: Invalid value"),
    ({"url": "https://example.com/f.git", "interval": "5 minutes"},
     "spec.interval: Invalid value"),
    ({"url": "https://example.com/f.git", "suspend": "yes"}, "spec.suspend: Invalid value"),
    ({"url": "https://example.com/f.git", "repo": "x"}, 'unknown field "spec.repo"'),
])
def test_the_api_server_refuses_a_bad_spec_with_the_field_named(
    control_plane: ControlPlane, crd: None, namespace: str, spec: dict[str, Any],
    complaint: str,
) -> None:
    result = control_plane.kubectl("apply", "-f", "-", check=False,
                                   input=fleet_yaml("bad", namespace, **spec))
    assert result.returncode != 0
    assert complaint in result.stderr, result.stderr


def test_defaults_and_printer_columns(control_plane: ControlPlane, crd: None,
                                      namespace: str) -> None:
    control_plane.kubectl("apply", "-f", "-",
                          input=fleet_yaml("f", namespace, url="https://example.com/f.git"))
    spec = get(control_plane, namespace, "f")["spec"]
    assert spec == {"url": "https://example.com/f.git", "ref": {"branch": "main"},
                    "interval": "1m", "suspend": False}
    table = control_plane.kubectl("get", "-n", namespace, "wfleet").stdout
    assert table.split("\n")[0].split() == ["NAME", "REVISION", "READY", "HOSTS", "STATUS",
                                            "AGE"]
    wide = control_plane.kubectl("get", "-n", namespace, "windowsfleets", "-o", "wide").stdout
    assert "https://example.com/f.git" in wide


def test_syncer_run_follows_the_object_and_reports_through_kubectl(
    control_plane: ControlPlane, crd: None, kube: Any, namespace: str, tmp_path: Path,
    syncer_run: Callable[..., SyncerRun],
) -> None:
    cp = control_plane
    remote, author = fleet_remote(tmp_path, kube)
    # No hosts yet: the revision alone decides Ready. The fleet's namespace is the test's
    # (hosts and a WMCO Deployment other tests leave in WMCO's do not count).
    (author.path / "fleet/hosts/lab.yaml").unlink()
    fleet = example_fleet(namespace)
    author.commit("No hosts yet", {"fleet/fleet.yaml": fleet})
    author.push("main")
    first = author.head()
    cp.kubectl("apply", "-f", "-", input=fleet_yaml(
        "windows", namespace, url=f"file://{remote}", path="fleet", interval="10m"))
    args = base_args(cp, namespace, tmp_path / "work", "--fleet-object", "windows")
    args.remove("--interval")
    args.remove("10m")  # the object's interval is the one used
    proc = syncer_run("replica-a", args)

    # kubectl wait, as a pipeline after `kubectl apply` would.
    waited = cp.kubectl("wait", "-n", namespace, "--for=condition=Ready", "--timeout=60s",
                        "windowsfleet/windows", check=False)
    assert waited.returncode == 0, waited.stderr + proc.tail(40)
    obj = get(cp, namespace, "windows")
    status = obj["status"]
    assert status["lastAppliedRevision"] == status["lastAttemptedRevision"] == first
    assert status["observedGeneration"] == obj["metadata"]["generation"]
    assert status["hosts"]["total"] == 0 and status["hostsSummary"] == "0/0"
    ready = condition(obj, "Ready")
    assert ready["reason"] == "ReconciliationSucceeded"
    assert ready["message"] == f"Applied revision: main@sha1:{first}"
    assert not condition(obj, "Reconciling") and not condition(obj, "Stalled")
    row = cp.kubectl("get", "-n", namespace, "wfleet", "windows").stdout.split("\n")[1].split()
    assert row[:4] == ["windows", first, "True", "0/0"]
    # The Events regard the object: `kubectl describe` tells the story.
    described = wait_for(lambda: "RevisionApplied" in (d := cp.kubectl(
        "describe", "-n", namespace, "windowsfleet", "windows").stdout) and d, timeout=10)
    assert described and f"Applied revision: main@sha1:{first}" in described

    # A revision that does not validate: not Ready, Stalled (only a new commit helps),
    # the last good revision stays applied. "Reconcile now" through the annotation.
    author.commit("Broken", {"fleet/fleet.yaml": "spec: [\n"})
    author.push("main")
    broken = author.head()
    cp.kubectl("annotate", "-n", namespace, "--overwrite", "windowsfleet/windows",
               f"{names.ANNOTATION_REQUESTED_AT}=first")
    assert wait_for(lambda: get(cp, namespace, "windows")["status"].get(
        "lastHandledReconcileAt") == "first", timeout=30), proc.tail(40)
    obj = get(cp, namespace, "windows")
    assert obj["status"]["lastAttemptedRevision"] == broken
    assert obj["status"]["lastAppliedRevision"] == first
    assert condition(obj, "Ready")["status"] == "False"
    stalled = condition(obj, "Stalled")
    assert stalled["status"] == "True" and stalled["reason"] == "ValidationFailed"
    assert "fleet.yaml" in stalled["message"]
    assert condition(obj, "Ready")["lastTransitionTime"] >= ready["lastTransitionTime"]

    # Suspended: a request stays pending, nothing is applied, the Event says why.
    cp.kubectl("patch", "-n", namespace, "windowsfleet/windows", "--type=merge",
               "-p", '{"spec": {"suspend": true}}')
    assert wait_for(lambda: "Suspended" in cp.kubectl(
        "describe", "-n", namespace, "windowsfleet", "windows").stdout, timeout=15)
    cp.kubectl("annotate", "-n", namespace, "--overwrite", "windowsfleet/windows",
               f"{names.ANNOTATION_REQUESTED_AT}=while-suspended")
    time.sleep(2)  # a few control polls (300 ms each)
    status = get(cp, namespace, "windows")["status"]
    assert status["lastHandledReconcileAt"] == "first"
    assert status["lastAttemptedRevision"] == broken

    # A spec edit (resume, another branch) is used from the next reconcile on;
    # observedGeneration follows. Hosts nobody answers on: the revision applies, the
    # fleet is not Ready.
    author.commit("Fixed, with hosts", {
        "fleet/fleet.yaml": fleet,
        "fleet/hosts/lab.yaml": (ROOT / "examples/byoh/hosts/lab.yaml").read_text()
        .replace("127.0.1.", "127.0.250.")})
    author.push("release")
    fixed = author.head()
    cp.kubectl("patch", "-n", namespace, "windowsfleet/windows", "--type=merge",
               "-p", '{"spec": {"suspend": false, "ref": {"branch": "release"}}}')
    cp.kubectl("annotate", "-n", namespace, "--overwrite", "windowsfleet/windows",
               f"{names.ANNOTATION_REQUESTED_AT}=second")

    def settled() -> dict[str, Any] | None:
        o = get(cp, namespace, "windows")
        return o if o["status"].get("lastHandledReconcileAt") == "second" else None

    obj = wait_for(settled, timeout=60)
    assert obj, proc.tail(60)
    status = obj["status"]
    assert obj["metadata"]["generation"] == 3 and status["observedGeneration"] == 3
    assert status["lastAppliedRevision"] == fixed
    assert status["hosts"]["total"] == 3 and status["hosts"]["upToDate"] == 0
    assert status["hostsSummary"] == "0/3"
    assert {h["name"] for h in status["hostTable"]} == {"127.0.250.1", "127.0.250.2",
                                                         "127.0.250.3"}
    ready = condition(obj, "Ready")
    assert ready["status"] == "False" and ready["reason"] == "NodeStageBlocked"
    assert ready["message"].count("cloud-private-key: not found") == 1
    assert status["hosts"]["blocked"] == 3
    assert {h["phase"] for h in status["hostTable"]} == {"blocked"}
    assert condition(obj, "Reconciling")["reason"] == "ProgressingWithRetry"
    assert not condition(obj, "Stalled")

    # WMCO takes the nodes: Stalled, reason WMCOActive.
    k = KubeClient(kube)
    deployments = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    labels = {"name": "windows-machine-config-operator"}
    k.request("POST", deployments, body={
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "windows-machine-config-operator"},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": "manager", "image": "registry.example/wmco"}]}}}})
    try:
        cp.kubectl("annotate", "-n", namespace, "--overwrite", "windowsfleet/windows",
                   f"{names.ANNOTATION_REQUESTED_AT}=third")
        obj = wait_for(lambda: (o := get(cp, namespace, "windows"))["status"].get(
            "lastHandledReconcileAt") == "third" and o, timeout=60)
        assert obj, proc.tail(30)
        stalled = condition(obj, "Stalled")
        assert stalled["status"] == "True" and stalled["reason"] == "WMCOActive"
        assert "WMCO is active" in stalled["message"]
        assert condition(obj, "Ready")["reason"] == "WMCOActive"
        assert not condition(obj, "Reconciling")
        assert {h["phase"] for h in obj["status"]["hostTable"]} == {"blocked"}
    finally:
        k.request("DELETE", f"{deployments}/windows-machine-config-operator")
    assert proc.terminate() == 0


def test_a_missing_object_is_reported_and_picked_up_when_created(
    control_plane: ControlPlane, crd: None, kube: Any, namespace: str, tmp_path: Path,
    syncer_run: Callable[..., SyncerRun],
) -> None:
    cp = control_plane
    remote, author = fleet_remote(tmp_path, kube)
    (author.path / "fleet/hosts/lab.yaml").unlink()
    author.commit("No hosts")
    author.push("main")
    proc = syncer_run("replica-a", base_args(cp, namespace, tmp_path / "work",
                                             "--fleet-object", "later"))
    assert wait_for(lambda: "WindowsFleet later: 404 Not Found" in proc.output(),
                    timeout=30), proc.tail(20)
    cp.kubectl("apply", "-f", "-", input=fleet_yaml(
        "later", namespace, url=f"file://{remote}", path="fleet"))
    cp.kubectl("annotate", "-n", namespace, "windowsfleet/later",
               f"{names.ANNOTATION_REQUESTED_AT}=now")
    # (Ready also depends on hosts other tests left in WMCO's namespace: wait for the
    # revision instead.)
    waited = cp.kubectl("wait", "-n", namespace, "--timeout=60s", "windowsfleet/later",
                        f"--for=jsonpath={{.status.lastAppliedRevision}}={author.head()}",
                        check=False)
    assert waited.returncode == 0, waited.stderr + proc.tail(40)
    assert proc.terminate() == 0


def test_every_windowsfleet_of_the_namespace_gets_its_own_loop(
    control_plane: ControlPlane, crd: None, kube: Any, namespace: str, tmp_path: Path,
    syncer_run: Callable[..., SyncerRun],
) -> None:
    """--fleet-object '*': objects are picked up when created, each reconciled on its own
    (its own inventory, status and revision), and dropped when deleted."""
    cp = control_plane
    heads = {}
    for name in ("east", "west"):
        fleet_namespace = f"{namespace}-{name}"
        cp.kubectl("create", "namespace", fleet_namespace)
        remote, author = fleet_remote(tmp_path / name, kube)
        (author.path / "fleet/hosts/lab.yaml").unlink()
        fleet = example_fleet(fleet_namespace)
        heads[name] = author.commit(f"Fleet {name}", {"fleet/fleet.yaml": fleet})
        author.push("main")
        (tmp_path / f"{name}.url").write_text(f"file://{remote}")
    proc = syncer_run("replica-a", base_args(cp, namespace, tmp_path / "work",
                                             "--fleet-object", "*"))
    for name in ("east", "west"):  # the second one while the controller already runs
        cp.kubectl("apply", "-f", "-", input=fleet_yaml(
            name, namespace, url=(tmp_path / f"{name}.url").read_text(), path="fleet"))
        waited = cp.kubectl("wait", "-n", namespace, "--timeout=60s", f"windowsfleet/{name}",
                            f"--for=jsonpath={{.status.lastAppliedRevision}}={heads[name]}",
                            check=False)
        assert waited.returncode == 0, waited.stderr + proc.tail(30)
        assert condition(get(cp, namespace, name), "Ready")["status"] == "True"
    k = KubeClient(kube)
    for name in ("east", "west"):
        inventory = k.request("GET", f"/api/v1/namespaces/{namespace}/configmaps/"
                                     f"{names.INVENTORY_CONFIGMAP}-{name}")
        assert heads[name] in json.dumps(inventory)
        # each fleet's objects are in its own namespace
        k.request("GET", f"/api/v1/namespaces/{namespace}-{name}/configmaps/"
                         f"{names.FLEET_CONFIGMAP}")
        # and its own series on /metrics, under its name
        assert proc.metric("syncer_last_applied_revision_info", fleet=name,
                           revision=heads[name]) == 1

    cp.kubectl("delete", "-n", namespace, "windowsfleet/west")
    assert wait_for(lambda: "stopping its loop" in proc.output(), timeout=15), proc.tail(20)
    cp.kubectl("annotate", "-n", namespace, "--overwrite", "windowsfleet/east",
               f"{names.ANNOTATION_REQUESTED_AT}=after-delete")
    waited = cp.kubectl("wait", "-n", namespace, "--timeout=60s", "windowsfleet/east",
                        "--for=jsonpath={.status.lastHandledReconcileAt}=after-delete",
                        check=False)
    assert waited.returncode == 0, waited.stderr + proc.tail(30)
    assert wait_for(lambda: proc.metric("syncer_reconciles_total", fleet="west") is None,
                    timeout=15)  # the deleted fleet's series went with its loop
    assert (proc.metric("syncer_reconciles_total", fleet="east", result="success") or 0) >= 2
    assert proc.terminate() == 0


def test_credentials_and_signers_come_from_the_secrets_the_object_names(
    control_plane: ControlPlane, crd: None, namespace: str, tmp_path: Path,
    syncer_run: Callable[..., SyncerRun], ssh_remote: tuple[str, WorkRepo],
    ssh_git_server: SshGitServer, ssh_signing_key: SshKey, untrusted_ssh_key: SshKey,
) -> None:
    """spec.secretRef (an ssh:// remote's key and known_hosts) and spec.verify.secretRef
    (allowed signers) instead of flags; a missing Secret is named in the status."""
    cp = control_plane
    url, author = ssh_remote
    fleet = example_fleet(namespace)
    signed = author.commit("Signed fleet", {"fleet/fleet.yaml": fleet}, sign=ssh_signing_key)
    author.push("main")
    cp.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "syncer.io/v1alpha1", "kind": "WindowsFleet",
        "metadata": {"name": "signed", "namespace": namespace},
        "spec": {"url": url, "path": "fleet", "secretRef": {"name": "git-creds"},
                 "verify": {"mode": "head", "secretRef": {"name": "signers"}}}}))
    proc = syncer_run("replica-a", base_args(cp, namespace, tmp_path / "work",
                                             "--fleet-object", "signed"))
    waited = cp.kubectl("wait", "-n", namespace, "--timeout=30s", "windowsfleet/signed",
                        "--for=jsonpath={.status.conditions[?(@.type==\"Ready\")].reason}"
                        "=CredentialsNotFound", check=False)
    assert waited.returncode == 0, waited.stderr + proc.tail(20)
    message = condition(get(cp, namespace, "signed"), "Ready")["message"]
    assert f"spec.secretRef: Secret {namespace}/git-creds not found" in message

    key = ssh_git_server.client_key.private
    cp.kubectl("create", "secret", "generic", "-n", namespace, "git-creds",
               f"--from-file=identity={key}",
               f"--from-file=known_hosts={ssh_git_server.known_hosts}")
    signers = write_allowed_signers(tmp_path / "allowed_signers", [ssh_signing_key])
    cp.kubectl("create", "secret", "generic", "-n", namespace, "signers",
               f"--from-file=allowed_signers={signers}")
    cp.kubectl("annotate", "-n", namespace, "--overwrite", "windowsfleet/signed",
               f"{names.ANNOTATION_REQUESTED_AT}=with-secrets")
    waited = cp.kubectl("wait", "-n", namespace, "--timeout=60s", "windowsfleet/signed",
                        f"--for=jsonpath={{.status.lastAppliedRevision}}={signed}",
                        check=False)
    assert waited.returncode == 0, waited.stderr + proc.tail(30)

    # A commit signed by a key the Secret does not trust is not applied.
    untrusted = author.commit("Not trusted", {"fleet/fleet.yaml": fleet.replace(
        'version: "1.0.0"', 'version: "1.0.1"')}, sign=untrusted_ssh_key)
    author.push("main")
    cp.kubectl("annotate", "-n", namespace, "--overwrite", "windowsfleet/signed",
               f"{names.ANNOTATION_REQUESTED_AT}=untrusted")
    obj = wait_for(lambda: (o := get(cp, namespace, "signed"))["status"].get(
        "lastHandledReconcileAt") == "untrusted" and o, timeout=60)
    assert obj, proc.tail(30)
    assert obj["status"]["lastAppliedRevision"] == signed
    ready = condition(obj, "Ready")
    assert ready["status"] == "False" and untrusted[:7] in ready["message"], ready
    assert key.read_text().strip() not in proc.output()
    assert proc.terminate() == 0

"""Suspend/resume/reconcile-now through syncer-control, and Kubernetes Events."""

from __future__ import annotations

import threading
from typing import Any

from click.testing import CliRunner

from syncer import names
from syncer.cli.main import cli
from syncer.cluster.client import MERGE_PATCH, KubeClient
from syncer.controller import events as ev
from syncer.controller.control import Control
from syncer.controller.events import EventRecorder
from syncer_lab.kube import ControlPlane


def syncer(control_plane: ControlPlane, namespace: str, *args: str) -> Any:
    return CliRunner().invoke(
        cli, [*args, "--kubeconfig", str(control_plane.kubeconfig), "-n", namespace],
        catch_exceptions=False,
    )


def configmap(kube: Any, namespace: str) -> dict[str, Any]:
    result: dict[str, Any] = KubeClient(kube).request(
        "GET", f"/api/v1/namespaces/{namespace}/configmaps/{names.CONTROL_CONFIGMAP}")
    return result


def test_suspend_resume_commands(control_plane: ControlPlane, kube: Any, namespace: str) -> None:
    control = Control(KubeClient(kube), namespace)
    assert not control.read().suspended  # no ConfigMap yet: not suspended
    result = syncer(control_plane, namespace, "suspend")
    assert result.exit_code == 0, result.output
    assert configmap(kube, namespace)["data"] == {"suspend": "true"}
    assert control.read().suspended
    result = syncer(control_plane, namespace, "resume")
    assert result.exit_code == 0, result.output
    assert not control.read().suspended


def test_operator_edits_are_kept(kube: Any, namespace: str) -> None:
    k = KubeClient(kube)
    k.request("POST", f"/api/v1/namespaces/{namespace}/configmaps", body={
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": names.CONTROL_CONFIGMAP, "annotations": {"team": "windows"}},
        "data": {"suspend": "yes", "note": "paused for the maintenance window"},
    })
    control = Control(k, namespace)
    assert control.read().suspended  # "yes" counts
    control.request_reconcile("2026-01-01T00:00:00.000000Z")
    cm = configmap(kube, namespace)
    assert cm["data"]["note"] == "paused for the maintenance window"
    assert cm["metadata"]["annotations"]["team"] == "windows"
    k.request("PATCH", control.path, body={"data": {"suspend": "maybe"}},
              content_type=MERGE_PATCH)
    state = control.read()
    assert state.suspended and state.invalid_suspend == "maybe"  # unclear: stay stopped


def test_reconcile_now_and_wait(control_plane: ControlPlane, kube: Any, namespace: str) -> None:
    control = Control(KubeClient(kube), namespace)

    def controller() -> None:  # a stand-in leader: handles whatever is requested
        for _ in range(100):
            state = control.read()
            if state.pending_request and state.requested_at:
                control.mark_handled(state.requested_at)
                return
            threading.Event().wait(0.05)

    leader = threading.Thread(target=controller)
    leader.start()
    result = syncer(control_plane, namespace, "reconcile", "--wait", "--timeout", "10s")
    leader.join()
    assert result.exit_code == 0, result.output
    assert "reconcile requested at" in result.output and "reconcile done" in result.output
    state = control.read()
    assert state.requested_at == state.handled_at and not state.pending_request


def test_reconcile_wait_times_out_without_controller(
    control_plane: ControlPlane, namespace: str
) -> None:
    result = syncer(control_plane, namespace, "reconcile", "--wait", "--timeout", "1s")
    assert result.exit_code == 1
    assert "did not handle the request within 1s" in result.output


def test_events_are_recorded_and_deduplicated(kube: Any, namespace: str) -> None:
    k = KubeClient(kube)
    recorder = EventRecorder(k, namespace, "replica-a")
    regarding = {"apiVersion": "v1", "kind": "ConfigMap", "name": "syncer-inventory",
                 "namespace": namespace}
    first = recorder.record(ev.REVISION_APPLIED, "Applied revision: main@sha1:abc",
                            regarding=regarding)
    assert first is not None
    assert recorder.record(ev.REVISION_APPLIED, "Applied revision: main@sha1:abc",
                           regarding=regarding) is None
    recorder.record(ev.VALIDATION_FAILED, "fleet.yaml:3: unknown field", ev.WARNING,
                    regarding=regarding)
    listed = k.request("GET", f"/apis/events.k8s.io/v1/namespaces/{namespace}/events")["items"]
    got = sorted((e["reason"], e["type"], e["regarding"]["name"], e["reportingController"])
                 for e in listed)
    assert got == [
        (ev.REVISION_APPLIED, "Normal", "syncer-inventory", ev.REPORTING_CONTROLLER),
        (ev.VALIDATION_FAILED, "Warning", "syncer-inventory", ev.REPORTING_CONTROLLER),
    ]


def test_event_failures_never_raise(control_plane: ControlPlane, namespace: str) -> None:
    nobody = control_plane.service_account_client(namespace, "nobody")
    recorder = EventRecorder(KubeClient(nobody), namespace, "replica-a")
    assert recorder.record(ev.ROLLOUT_STARTED, "3 hosts") is None  # 403, logged

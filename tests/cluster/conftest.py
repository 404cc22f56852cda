"""Fixtures for the apply engine's cluster tests.

Each test gets its own fleet (named after its namespace, so the label selector and the
cluster-scoped RuntimeClass names never collide with another test's) and its own
inventory ConfigMap (in its namespace). ``kc`` is a :class:`KubeClient` whose every HTTP
request (method, path) is recorded where it is sent, so a test can prove which requests
a reconcile sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clusterhelpers import FleetDir, Recorder

from syncer.cluster.client import KubeClient
from syncer.reconcile import ReconcileOptions, ReconcileResult, reconcile_once
from syncer_lab.kube import ControlPlane


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def kc(control_plane: ControlPlane, recorder: Recorder) -> Iterator[KubeClient]:
    client = KubeClient(control_plane.api_client())
    send = client._send

    def recording_send(method: str, path: str, *args: Any) -> Any:
        recorder.calls.append((method, path))
        return send(method, path, *args)

    client._send = recording_send  # type: ignore[method-assign]
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def fleet(tmp_path: Path, namespace: str) -> FleetDir:
    """A fleet named after the test's namespace, with its ConfigMaps in that namespace."""
    fd = FleetDir(tmp_path / "fleet", namespace, namespace)
    fd.write("fleet.yaml", fd.fleet_yaml())
    return fd


@pytest.fixture
def options(namespace: str) -> ReconcileOptions:
    return ReconcileOptions(inventory_namespace=namespace)


@pytest.fixture
def sync(kc: KubeClient, options: ReconcileOptions, recorder: Recorder) -> Any:
    """``sync(source, **option overrides) -> ReconcileResult`` with a fresh request log."""

    def run(source: Any, **overrides: Any) -> ReconcileResult:
        recorder.clear()
        opts = ReconcileOptions(**{**options.__dict__, **overrides})
        return reconcile_once(source, kc, opts)

    return run

"""pytest fixtures for the test control plane (registered in ``tests/conftest.py``).

- ``control_plane`` (session): one :class:`~syncer_lab.kube.ControlPlane` per test
  session (per worker process under pytest-xdist, since each worker is its own session),
  with the CSR signer stand-in running. Its start-up time is printed on the terminal
  (``control plane ready in X.Xs``) and stored in ``control_plane.startup_seconds``.
- ``kube``: an admin ``kubernetes.client.ApiClient``, closed after the test.
- ``namespace``: a fresh namespace per test, named after the test, with its ``default``
  ServiceAccount. Namespaces are never deleted: without kube-controller-manager they would
  stay ``Terminating`` forever anyway; they disappear with the control plane.

If the binaries are missing the fixture fails (not skips) with the instruction to run
``make setup``, so a machine without them cannot pass the suite by skipping it.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

import pytest
from kubernetes import client

from syncer_lab.binaries import BinariesMissing
from syncer_lab.kube import ControlPlane


def _say(config: pytest.Config, line: str) -> None:
    """Print on the terminal even while pytest captures output."""
    capture = config.pluginmanager.get_plugin("capturemanager")
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        if reporter is not None:
            reporter.write_line(line)
        else:
            print(line, file=sys.stderr)


@pytest.fixture(scope="session")
def control_plane(request: pytest.FixtureRequest) -> Iterator[ControlPlane]:
    """One running control plane for the whole test session."""
    try:
        cp = ControlPlane()
    except BinariesMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    cp.start()
    _say(
        request.config,
        f"\ncontrol plane ready in {cp.startup_seconds:.1f}s "
        f"(kube-apiserver {cp.version} at {cp.server}, kubeconfig {cp.kubeconfig})",
    )
    cp.start_csr_signer()
    try:
        yield cp
    finally:
        cp.stop()


@pytest.fixture
def kube(control_plane: ControlPlane) -> Iterator[client.ApiClient]:
    """An ApiClient authenticated as the cluster admin."""
    with control_plane.api_client() as api:
        yield api


@pytest.fixture
def namespace(control_plane: ControlPlane, request: pytest.FixtureRequest) -> str:
    """A fresh namespace (with a ``default`` ServiceAccount) for this test."""
    return control_plane.create_namespace(request.node.name, labels={"syncer.io/test": "true"})

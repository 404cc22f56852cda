"""Fixtures for the node-stage tests: a KubeClient on the test control plane, and a
per-test label token that scopes cluster-wide objects (Nodes) to the test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client
from nodehelpers import unique

from syncer.cluster.client import KubeClient


@pytest.fixture
def api(kube: client.ApiClient) -> Iterator[KubeClient]:
    """A :class:`KubeClient` on the test control plane, as the admin."""
    yield KubeClient(kube)


@pytest.fixture
def scope(api: KubeClient) -> Iterator[str]:
    """A label value unique to this test (label Nodes ``syncer-test=<scope>``). The Nodes
    carrying it are deleted afterwards: Nodes are cluster-wide and the control plane is
    shared by the session, so a leftover Windows Node would look like a removed host to
    any later test that runs the node stage."""
    token = unique("t")
    yield token
    api.request("DELETE", "/api/v1/nodes", query=[("labelSelector", f"syncer-test={token}")])


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The fault matrix (tests/nodes/test_fault_matrix.py), when its cases ran."""
    import sys

    matrix = sys.modules.get("test_fault_matrix")
    rows = getattr(matrix, "MATRIX", [])
    if not rows:
        return
    width = max(len(r[0]) for r in rows)
    terminalreporter.write_sep("=", "fault matrix (docs/fault-matrix.md)")
    terminalreporter.write_line(f"{'fault'.ljust(width)}  most out  outcome")
    for fault, outcome, out in rows:
        terminalreporter.write_line(f"{fault.ljust(width)}  {out.rjust(8)}  {outcome}")

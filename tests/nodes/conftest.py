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
def scope() -> str:
    """A label value unique to this test (label Nodes ``syncer-test=<scope>``)."""
    return unique("t")

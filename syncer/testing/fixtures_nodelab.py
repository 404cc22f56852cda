"""pytest fixture ``node_lab`` (registered in ``tests/conftest.py``): a
:class:`~syncer.testing.nodelab.NodeLab` on the session's control plane, in the test's
namespace, with its own :class:`~syncer.testing.winhost.HostLab` whose simulated kubelets
register Nodes. After the test, every host is stopped and the test fails if any host
received a command outside the vocabulary."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from syncer.cluster.client import KubeClient
from syncer.testing.nodelab import NodeLab
from syncer.testing.winhost import HostLab
from syncer.testing.winhost.kubelet import Kubelets

_scopes = itertools.count(1)


@pytest.fixture
def node_lab(kube: client.ApiClient, namespace: str, tmp_path: Path) -> Iterator[NodeLab]:
    kubelets = Kubelets(heartbeat_seconds=0.5, status_seconds=1.0, bootstrap_timeout=60.0)
    with HostLab(tmp_path / "hosts", kubelets=kubelets) as lab:
        nl = NodeLab(KubeClient(kube), namespace, lab, tmp_path, f"nl{next(_scopes)}")
        yield nl
        assert nl.unexpected() == []

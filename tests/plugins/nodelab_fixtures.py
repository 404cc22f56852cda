"""pytest fixture ``node_lab`` (registered in ``tests/conftest.py``): a
:class:`~syncer_lab.nodelab.NodeLab` on the session's control plane, in the test's
namespace, with OVN-Kubernetes' stand-in and the OpenShift cluster objects it
describes, and its own :class:`~syncer_lab.winhost.HostLab` whose simulated kubelets
register Nodes, on addresses of a random ``127.X.Y.0/24``. After the test, every host is
stopped and the test fails if any host received a command outside the vocabulary."""

from __future__ import annotations

import contextlib
import itertools
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from syncer.cluster.client import ApiError, KubeClient
from syncer_lab.kube import ControlPlane
from syncer_lab.nodelab import NodeLab
from syncer_lab.winhost import HostLab
from syncer_lab.winhost.kubelet import Kubelets

_scopes = itertools.count(1)


@pytest.fixture
def node_lab(control_plane: ControlPlane, kube: client.ApiClient, namespace: str,
             tmp_path: Path) -> Iterator[NodeLab]:
    control_plane.start_ovn_kubernetes()  # the cluster's network objects and OVN-K's part
    kubelets = Kubelets(heartbeat_seconds=0.5, status_seconds=1.0, bootstrap_timeout=60.0)
    # A random /24 of 127.0.0.0/8: a rebooting host's address is free while it is down,
    # and labs of other test processes (which start at 127.0.1.1) must not take it.
    first = f"127.{random.randint(20, 250)}.{random.randint(1, 250)}.1"
    with HostLab(tmp_path / "hosts", kubelets=kubelets, first_address=first) as lab:
        nl = NodeLab(KubeClient(kube), namespace, lab, tmp_path, f"nl{next(_scopes)}")
        try:
            yield nl
            assert nl.unexpected() == []
        finally:
            # Nodes are cluster-wide: leave none behind for other tests' node stages.
            lab.stop()
            for name in [*nl.nodes(), *nl.extra_nodes]:
                with contextlib.suppress(ApiError):
                    nl.api.request("DELETE", f"/api/v1/nodes/{name}")

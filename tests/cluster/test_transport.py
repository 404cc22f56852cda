"""The direct transport under KubeClient, against the real API server."""

from __future__ import annotations

import socket

import pytest

from syncer.cluster.client import ApiError, KubeClient, Resource
from syncer_lab.kube import ControlPlane

NS = Resource("", "v1", "Namespace", "namespaces", False)


def test_stock_client_goes_direct_and_survives_a_closed_connection(
    control_plane: ControlPlane,
) -> None:
    client = KubeClient(control_plane.api_client())
    try:
        assert client._direct is not None
        assert client.get(NS, "", "default") is not None
        conn = client._direct._local.conn
        conn.sock.shutdown(socket.SHUT_RDWR)  # as if the server closed the idle connection
        assert client.get(NS, "", "kube-system") is not None
        assert client._direct._local.conn is not conn
    finally:
        client.close()


def test_a_wrapped_client_keeps_its_rest_layer(control_plane: ControlPlane) -> None:
    # The harness's impersonating client adds headers in its REST layer: it must be used.
    client = KubeClient(control_plane.impersonate("nobody", []))
    try:
        assert client._direct is None
        with pytest.raises(ApiError) as err:
            client.get(NS, "", "default")
        assert err.value.status == 403  # acting as "nobody", not as the admin
    finally:
        client.close()

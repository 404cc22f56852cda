"""Host-key pins read once per round, not once per connection.

:class:`RoundHostKeyStore` is a :class:`~syncer.nodes.hostkeys.HostKeyStore` whose lookups
use the Nodes the round already read (:func:`~syncer.nodes.inputs.read_node_inputs`) and
read the ``windows-ssh-host-keys`` ConfigMap once, instead of one GET per SSH connection.
The rules are unchanged (Git pin, then the Node's, then the ConfigMap's); writes go to
the cluster as before and drop the cached ConfigMap (and the written Node), and a Node
that did not exist when the round began (a host that just joined) is read live. This is
what keeps a no-change pass over many hosts at about one SSH round trip per host.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from syncer.cluster.client import KubeClient
from syncer.nodes.annotations import NodeRecord
from syncer.nodes.hostkeys import HostKey, HostKeyStore


class RoundHostKeyStore(HostKeyStore):
    def __init__(self, api: KubeClient, namespace: str, nodes: Mapping[str, NodeRecord]):
        super().__init__(api, namespace)
        self._nodes = dict(nodes)
        self._lock = threading.Lock()
        self._cm: dict[str, str] | None = None

    def _node(self, name: str) -> NodeRecord | None:
        with self._lock:
            node = self._nodes.get(name)
        return node if node is not None else super()._node(name)

    def _configmap_data(self) -> dict[str, str]:
        with self._lock:
            if self._cm is None:
                self._cm = super()._configmap_data()
            return dict(self._cm)

    def _invalidate(self, node_name: str | None = None) -> None:
        with self._lock:
            self._cm = None
            if node_name:
                self._nodes.pop(node_name, None)

    def pin(self, address: str, key: HostKey, node_name: str | None = None) -> str:
        self._invalidate(node_name)
        try:
            return super().pin(address, key, node_name)
        finally:
            self._invalidate(node_name)

    def move_to_node(self, address: str, node_name: str) -> bool:
        self._invalidate(node_name)
        try:
            return super().move_to_node(address, node_name)
        finally:
            self._invalidate(node_name)

    def forget(self, address: str) -> None:
        self._invalidate()
        try:
            super().forget(address)
        finally:
            self._invalidate()

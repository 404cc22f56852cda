"""The OVN-Kubernetes stand-in follows Nodes as an informer does, across a relist."""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client

from syncer_lab.ovnk import NODE_SUBNET, OVNKubernetes


class _Lines:
    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.lines = [json.dumps(e).encode() + b"\n" for e in events]

    def __iter__(self) -> Any:
        return iter(self.lines)

    def close(self) -> None:
        pass

    def release_conn(self) -> None:
        pass


class _Listed:
    def __init__(self, doc: dict[str, Any]) -> None:
        self.data = json.dumps(doc).encode()


def _node(name: str, subnet: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": "1",
                         "annotations": {NODE_SUBNET: subnet}}}


def test_a_node_deleted_while_the_watch_was_gone_frees_its_subnet() -> None:
    ovnk = OVNKubernetes(client.ApiClient(), retry=0)
    lists = [
        {"metadata": {"resourceVersion": "1"},
         "items": [_node("a", "10.132.0.0/23"), _node("b", "10.132.2.0/23")]},
        # b was deleted while no watch was open: the relist no longer has it.
        {"metadata": {"resourceVersion": "9"}, "items": [_node("a", "10.132.0.0/23")]},
    ]
    watches = [
        [{"type": "ERROR", "object": {"code": 410, "reason": "Expired"}}],  # 410 Gone
        [],
    ]

    def list_fn(*, watch: bool = False, **kw: Any) -> Any:
        if not watch:
            return _Listed(lists.pop(0))
        if len(watches) == 1:
            ovnk._stop.set()  # the second watch: enough
        return _Lines(watches.pop(0))

    ovnk._follow(list_fn, ovnk._node, {})
    assert lists == [] and watches == []
    assert ovnk._subnets == {"a": "10.132.0.0/23"}

"""Node annotations and labels: WMCO's names, syncer's record, touching only our keys."""

from __future__ import annotations

from typing import Any

import pytest
from nodehelpers import create_node, set_upgrading, unique, unique_ip

from syncer import names
from syncer.cluster.client import KubeClient
from syncer.nodes import annotations
from syncer.nodes.annotations import (
    ComponentRecord,
    ConfiguredRecord,
    clear_failure,
    mark_configured,
    mark_deconfigured,
    read_node,
    record_failure,
    set_phase,
)


def test_configured_record_round_trips_and_keeps_foreign_keys(api: KubeClient, scope: str) -> None:
    name, ip = unique("ann"), unique_ip()
    create_node(
        api,
        name,
        ip=ip,
        labels={"syncer-test": scope, "team": "a"},
        annotations={"user/note": "keep"},
    )
    record_failure(api, name, "drain", "PDB web blocked")
    node = mark_configured(
        api,
        name,
        ConfiguredRecord(
            version="v7",
            pub_key_hash="ab" * 32,
            username="Administrator",
            address=ip,
            components={"kubelet": ComponentRecord("v1.34.4", "cd" * 32)},
            byoh=True,
        ),
    )
    assert node.version == "v7" and node.desired_version == "v7"
    assert node.pub_key_hash == "ab" * 32 and node.username == "Administrator"
    assert node.byoh and node.address == ip and node.configured
    assert node.components == {"kubelet": ComponentRecord("v1.34.4", "cd" * 32)}
    assert node.phase == "configured" and not node.failed and node.last_error is None
    assert node.annotations["user/note"] == "keep" and node.labels["team"] == "a"
    # A write answers with the metadata only: the API server left out the status.
    assert node.kubelet_version == "" and not node.ready and not node.addresses

    again = read_node(api, name)
    assert again is not None and again.components == node.components
    assert again.internal_ip == ip and again.ready and again.kubelet_version == "v1.34.4"


def test_upgrading_label_and_failure_record(api: KubeClient, scope: str) -> None:
    name = unique("ann")
    create_node(api, name, labels={"syncer-test": scope})
    assert set_upgrading(api, name, True).upgrading
    node = record_failure(api, name, "verify", "x" * 10_000)
    assert node.failed_step == "verify" and node.phase == "failed" and node.since
    assert (
        node.last_error is not None
        and len(node.last_error) <= 4000
        and node.last_error.endswith("(truncated)")
    )
    assert not set_upgrading(api, name, False).upgrading
    node = clear_failure(api, name)
    assert not node.failed and node.last_error is None
    assert set_phase(api, name, "transfer").phase == "transfer"


def test_deconfigured_removes_version(api: KubeClient, scope: str) -> None:
    name = unique("ann")
    create_node(
        api, name, labels={"syncer-test": scope}, annotations={names.ANNOTATION_VERSION: "v1"}
    )
    node = mark_deconfigured(api, name)
    assert node.version is None and node.phase == "deconfigured"
    assert read_node(api, "no-such-node") is None


def test_windows_nodes_are_read_a_page_at_a_time(
    api: KubeClient, scope: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Node LIST follows the API server's continue tokens: every Node comes back, with
    its status, however many pages the list takes, and no page holds more than NODE_PAGE
    (METADATA_PAGE for the metadata-only list)."""
    monkeypatch.setattr(annotations, "NODE_PAGE", 2)
    monkeypatch.setattr(annotations, "METADATA_PAGE", 3)
    made = sorted(unique("page") for _ in range(5))
    for name in made:
        create_node(api, name, ip=unique_ip(), labels={"syncer-test": scope})
    pages: list[int] = []
    request = api.request

    def counting(method: str, path: str, **kw: Any) -> Any:
        answer = request(method, path, **kw)
        if method == "GET" and path == "/api/v1/nodes":
            pages.append(len(answer.get("items") or []))
        return answer

    monkeypatch.setattr(api, "request", counting)
    nodes = annotations.list_windows_nodes(api, f"syncer-test={scope}")
    assert [n.name for n in nodes] == made
    assert all(n.ready and n.internal_ip for n in nodes)
    assert pages == [2, 2, 1]
    meta = annotations.list_windows_nodes(api, f"syncer-test={scope}", metadata_only=True)
    assert [n.name for n in meta] == made and not any(n.ready for n in meta)
    assert pages == [2, 2, 1, 3, 2]

"""Server-side apply: field ownership, conflicts between managers, force."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

APPLY = "application/apply-patch+yaml"


def _apply_cm(
    kube: client.ApiClient, namespace: str, manager: str, data: dict[str, str], force: bool = False
) -> Any:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "fleet"}, "data": data}
    return client.CoreV1Api(kube).patch_namespaced_config_map(
        "fleet", namespace, body, field_manager=manager, force=force, _content_type=APPLY
    )


def test_conflict_between_field_managers(kube: client.ApiClient, namespace: str) -> None:
    _apply_cm(kube, namespace, "syncer", {"version": "1", "fleet": "prod"})
    with pytest.raises(ApiException) as err:
        _apply_cm(kube, namespace, "kubectl", {"version": "2"})
    assert err.value.status == 409
    status = json.loads(err.value.body)
    assert status["reason"] == "Conflict"
    assert 'conflict with "syncer"' in status["message"]
    assert ".data.version" in status["message"]

    cm = _apply_cm(kube, namespace, "kubectl", {"version": "2"}, force=True)
    assert cm.data == {"version": "2", "fleet": "prod"}
    owners = {
        m.manager: json.dumps(m.fields_v1)
        for m in cm.metadata.managed_fields
        if m.operation == "Apply"
    }
    assert "f:version" in owners["kubectl"] and "f:version" not in owners["syncer"]
    assert "f:fleet" in owners["syncer"]


def test_apply_removes_fields_the_manager_stopped_applying(
    kube: client.ApiClient, namespace: str
) -> None:
    _apply_cm(kube, namespace, "syncer", {"a": "1", "b": "2"})
    cm = _apply_cm(kube, namespace, "syncer", {"a": "1"})
    assert cm.data == {"a": "1"}


def test_same_apply_twice_is_a_no_op(kube: client.ApiClient, namespace: str) -> None:
    first = _apply_cm(kube, namespace, "syncer", {"a": "1"})
    second = _apply_cm(kube, namespace, "syncer", {"a": "1"})
    assert first.metadata.resource_version == second.metadata.resource_version

"""Rendering a validated fleet to Kubernetes objects.

``render(model)`` is a pure function of the model: the same fleet gives the same list,
in the same order, with the same key order, every time (the apply engine, golden tests
and PR previews depend on it). Objects are plain JSON-compatible dicts with their keys
sorted recursively, sorted by (API group, kind, namespace, name).

What each kind becomes:

- the Fleet -> ConfigMap ``syncer-fleet`` in the fleet namespace, read by the node stage:
  ``fleet``, ``version``, ``components.json``, ``nodes.json`` (platform, rollout and node
  policy, camelCase, defaults filled in), ``hosts.json`` (BYOH extras WMCO does not know:
  address -> ``{"hostKey", "labels"}``, only hosts that have any);
- all BYOHHosts together -> ConfigMap ``windows-instances`` (``<address>:
  username=<user>``, exactly WMCO's format, nothing else);
- WindowsMachineSet -> ``machine.openshift.io/v1beta1`` MachineSet as in the product
  documentation's example for the platform, with the ``providerSpec`` override applied as
  a JSON merge patch (RFC 7386: mappings merge, ``null`` deletes, anything else replaces);
- WindowsRuntimeClass -> ``node.k8s.io/v1`` RuntimeClass for the Windows build;
- pass-through objects -> as written.

Every object carries ``app.kubernetes.io/managed-by: syncer`` and ``syncer.io/fleet``;
user labels are kept.
"""

from __future__ import annotations

from typing import Any

from syncer import names
from syncer.desired import (
    ComponentVersion,
    DesiredState,
    HostExtras,
    NodePolicy,
    RolloutPolicy,
)
from syncer.fleet import platforms
from syncer.fleet.model import Fleet, FleetModel, RawObject, WindowsMachineSet, WindowsRuntimeClass
from syncer.fleet.passthrough import api_group


def render(model: FleetModel) -> list[dict[str, Any]]:
    """Every object the fleet renders to, sorted, with sorted keys."""
    fleet = model.fleet
    objects: list[dict[str, Any]] = [fleet_configmap(model)]
    if model.byoh_sources:
        objects.append(windows_instances(model))
    objects.extend(machine_set(fleet, ms) for ms in model.machine_sets)
    objects.extend(runtime_class(fleet, rc) for rc in model.runtime_classes)
    objects.extend(pass_through(fleet, obj) for obj in model.objects)
    result: list[dict[str, Any]] = [_sorted(obj) for obj in objects]
    result.sort(key=sort_key)
    return result


def sort_key(obj: dict[str, Any]) -> tuple[str, str, str, str, str]:
    api_version = obj.get("apiVersion", "")
    meta = obj.get("metadata", {})
    return (
        api_group(api_version),
        obj.get("kind", ""),
        meta.get("namespace") or "",
        meta.get("name", ""),
        api_version,
    )


def fleet_labels(fleet: Fleet, extra: dict[str, str] | None = None) -> dict[str, str]:
    labels = dict(extra or {})
    labels[names.LABEL_MANAGED_BY] = names.MANAGED_BY_VALUE
    labels[names.LABEL_FLEET] = fleet.name
    return labels


def _metadata(
    fleet: Fleet,
    name: str,
    namespace: str | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": fleet_labels(fleet, labels)}
    if namespace:
        meta["namespace"] = namespace
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta



def fleet_configmap(model: FleetModel) -> dict[str, Any]:
    """``syncer-fleet``: the desired state the node stage reads back (:mod:`syncer.desired`)."""
    fleet = model.fleet
    state = DesiredState(
        fleet=fleet.name,
        version=fleet.version,
        components={name: ComponentVersion(name, c.version, c.url, c.sha256, c.path)
                    for name, c in fleet.components.items()},
        rollout=RolloutPolicy(
            max_unavailable=fleet.rollout.max_unavailable,
            drain_timeout=fleet.rollout.drain_timeout,
            on_failure=fleet.rollout.on_failure,
            paused=fleet.rollout.paused,
        ),
        nodes=NodePolicy(
            ssh_port=fleet.nodes.ssh_port,
            host_key_policy=fleet.nodes.host_key_policy,
            user_data=fleet.nodes.user_data,
            api_server=fleet.nodes.api_server,
            platform=fleet.platform,
            service_network=fleet.nodes.service_network,
            cluster_dns=fleet.nodes.cluster_dns,
            vxlan_port=fleet.nodes.vxlan_port,
        ),
        extras={host.address: HostExtras(host.host_key, dict(host.labels))
                for host in model.byoh_hosts},
    )
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(fleet, names.FLEET_CONFIGMAP, fleet.namespace),
        "data": state.to_data(),
    }


def windows_instances(model: FleetModel) -> dict[str, Any]:
    fleet = model.fleet
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(fleet, names.BYOH_CONFIGMAP, fleet.namespace),
        "data": {h.address: f"username={h.username}" for h in model.byoh_hosts},
    }


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch of ``patch`` onto ``target`` (neither is modified)."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def machine_set(fleet: Fleet, ms: WindowsMachineSet) -> dict[str, Any]:
    infra = fleet.infrastructure_id or ""
    spec = platforms.PLATFORMS[fleet.platform]
    provider = merge_patch(
        spec.provider_spec(infra, ms.windows_server, ms.fields), ms.provider_spec
    )
    cluster = {names.LABEL_CLUSTER_API_CLUSTER: infra}
    labels = {**ms.labels, **cluster}
    return {
        "apiVersion": names.MACHINE_API_VERSION,
        "kind": "MachineSet",
        "metadata": _metadata(fleet, ms.name, names.MACHINE_API_NAMESPACE, labels, ms.annotations),
        "spec": {
            "replicas": ms.replicas,
            "selector": {"matchLabels": {**cluster, names.LABEL_CLUSTER_API_MACHINESET: ms.name}},
            "template": {
                "metadata": {
                    "labels": {
                        **cluster,
                        names.LABEL_CLUSTER_API_MACHINE_ROLE: "worker",
                        names.LABEL_CLUSTER_API_MACHINE_TYPE: "worker",
                        names.LABEL_CLUSTER_API_MACHINESET: ms.name,
                        names.LABEL_OS_ID: "Windows",
                    }
                },
                "spec": {
                    "metadata": {"labels": {**ms.node_labels, names.LABEL_WORKER_ROLE: ""}},
                    "providerSpec": {"value": provider},
                },
            },
        },
    }


def runtime_class(fleet: Fleet, rc: WindowsRuntimeClass) -> dict[str, Any]:
    return {
        "apiVersion": "node.k8s.io/v1",
        "kind": "RuntimeClass",
        "metadata": _metadata(fleet, rc.name, None, rc.labels, rc.annotations),
        "handler": names.RUNTIME_HANDLER,
        "scheduling": {
            "nodeSelector": {names.LABEL_OS: "windows", names.LABEL_WINDOWS_BUILD: rc.build},
            "tolerations": [
                {
                    "effect": "NoSchedule",
                    "key": names.WINDOWS_TAINT_KEY,
                    "operator": "Equal",
                    "value": names.WINDOWS_TAINT_VALUE,
                }
            ],
        },
    }


def pass_through(fleet: Fleet, obj: RawObject) -> dict[str, Any]:
    body = dict(obj.body)
    meta = dict(body.get("metadata") or {})
    meta["labels"] = fleet_labels(fleet, meta.get("labels") or {})
    body["metadata"] = meta
    return body


def _sorted(value: Any) -> Any:
    """A deep copy of ``value`` with every mapping's keys in sorted order."""
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value

"""The desired state of the Windows hosts: the contract of the ``syncer-fleet`` ConfigMap.

The renderer (:func:`syncer.fleet.rendering.fleet_configmap`) writes it from a validated
Fleet; the node stage (:func:`syncer.nodes.inputs.read_node_inputs`) reads it back from
the cluster, so hosts keep converging when Git is unreachable or when another tool
applies the manifests. Both sides use the types here, so the layout is written once:

==================  ===================================================================
``fleet``           the Fleet's name
``version``         the fleet version (WMCO's ``version`` annotation on each Node)
``components.json`` ``{name: {version, url, sha256, path?}}``
``nodes.json``      ``{platform, rollout: {maxUnavailable, drainTimeout, onFailure,
                    paused}, nodes: {sshPort, hostKeyPolicy, userData, apiServer?,
                    serviceNetwork?, clusterDNS?, hybridOverlayVXLANPort?}}``
``hosts.json``      ``{address: {hostKey?, labels?}}``: what Git says about BYOH hosts
                    beyond WMCO's ``windows-instances``
==================  ===================================================================

:meth:`DesiredState.to_data` writes exactly that; :meth:`DesiredState.from_data` is
lenient (a hand-edited ConfigMap gives problems and defaults, never an exception), since
the node stage must keep running on what the cluster holds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from syncer import durations, names
from syncer.problems import Problem


class Platform(StrEnum):
    AWS = "aws"
    AZURE = "azure"
    GCP = "gcp"
    VSPHERE = "vsphere"
    NUTANIX = "nutanix"
    NONE = "none"


class OnFailure(StrEnum):
    HALT = "halt"  # leave the failed host cordoned for an operator, stop the rollout
    ROLLBACK = "rollback"  # bring the failed host back to its previous components


class HostKeyPolicy(StrEnum):
    TOFU = "tofu"  # trust on first use, then pinned in the cluster
    PINNED = "pinned"  # every BYOH host must carry hostKey in Git


class UserDataMode(StrEnum):
    SYNCER = "syncer"  # syncer maintains the windows-user-data Secret
    WMCO = "wmco"  # WMCO (or the user) maintains it


DEFAULT_DRAIN_TIMEOUT = "10m"
_E = TypeVar("_E", bound=StrEnum)


@dataclass(frozen=True)
class ComponentVersion:
    name: str
    version: str
    url: str
    sha256: str  # lowercase hex, of the payload at url
    path: str | None = None  # the file inside a .tar.gz payload


@dataclass(frozen=True)
class RolloutPolicy:
    max_unavailable: int = 1
    drain_timeout: str = DEFAULT_DRAIN_TIMEOUT  # Go-style duration, as written in Git
    on_failure: OnFailure = OnFailure.HALT
    paused: bool = False

    @property
    def drain_seconds(self) -> float:
        return durations.seconds_or(self.drain_timeout, 600.0)


@dataclass(frozen=True)
class NodePolicy:
    ssh_port: int = 22
    host_key_policy: HostKeyPolicy = HostKeyPolicy.TOFU
    user_data: UserDataMode = UserDataMode.SYNCER
    api_server: str | None = None
    platform: Platform | None = None
    # Overrides of what the cluster's OpenShift objects say (needed where there are none).
    service_network: str | None = None
    cluster_dns: str | None = None
    vxlan_port: int | None = None


@dataclass(frozen=True)
class HostExtras:
    """What Git says about a BYOH host beyond ``windows-instances``."""

    host_key: str | None = None  # OpenSSH "<type> <base64> [comment]" line
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class DesiredState:
    """The ``syncer-fleet`` ConfigMap's data, typed."""

    fleet: str
    version: str
    components: Mapping[str, ComponentVersion] = field(default_factory=dict, hash=False)
    rollout: RolloutPolicy = field(default_factory=RolloutPolicy)
    nodes: NodePolicy = field(default_factory=NodePolicy)
    extras: Mapping[str, HostExtras] = field(default_factory=dict, hash=False)

    @property
    def kubelet_version(self) -> str | None:
        kubelet = self.components.get("kubelet")
        return kubelet.version if kubelet else None

    def to_data(self) -> dict[str, str]:
        """The ConfigMap's ``data`` (JSON documents with sorted keys: byte-stable)."""
        node_policy: dict[str, Any] = {
            "hostKeyPolicy": self.nodes.host_key_policy.value,
            "sshPort": self.nodes.ssh_port,
            "userData": self.nodes.user_data.value,
        }
        for key, value in (("apiServer", self.nodes.api_server),
                           ("serviceNetwork", self.nodes.service_network),
                           ("clusterDNS", self.nodes.cluster_dns),
                           ("hybridOverlayVXLANPort", self.nodes.vxlan_port)):
            if value:
                node_policy[key] = value
        hosts: dict[str, Any] = {}
        for address, extra in self.extras.items():
            doc: dict[str, Any] = {}
            if extra.host_key:
                doc["hostKey"] = extra.host_key
            if extra.labels:
                doc["labels"] = dict(extra.labels)
            if doc:
                hosts[address] = doc
        rollout = self.rollout
        return {
            "fleet": self.fleet,
            "version": self.version,
            "components.json": _json({
                name: {"sha256": c.sha256, "url": c.url, "version": c.version,
                       **({"path": c.path} if c.path else {})}
                for name, c in self.components.items()
            }),
            "nodes.json": _json({
                "platform": (self.nodes.platform or Platform.NONE).value,
                "rollout": {
                    "drainTimeout": rollout.drain_timeout,
                    "maxUnavailable": rollout.max_unavailable,
                    "onFailure": rollout.on_failure.value,
                    "paused": rollout.paused,
                },
                "nodes": node_policy,
            }),
            "hosts.json": _json(hosts),
        }

    @classmethod
    def from_data(
        cls,
        data: Mapping[str, str],
        where: str = names.FLEET_CONFIGMAP,
        problems: list[Problem] | None = None,
    ) -> DesiredState:
        """Parse the ConfigMap's ``data``; what is wrong goes to ``problems``."""
        problems = problems if problems is not None else []

        def load(key: str) -> dict[str, Any]:
            text = data.get(key)
            if not text:
                return {}
            try:
                doc = json.loads(text)
            except ValueError as err:
                problems.append(Problem(where, 0, f"{key}: not valid JSON: {err}"))
                return {}
            if not isinstance(doc, dict):
                problems.append(Problem(where, 0, f"{key}: must be a JSON object"))
                return {}
            return doc

        def section(doc: dict[str, Any], key: str) -> dict[str, Any]:
            value = doc.get(key, {})
            if not isinstance(value, dict):
                problems.append(Problem(where, 0, f"nodes.json: {key}: must be a JSON object"))
                return {}
            return value

        def choice(enum: type[_E], value: Any, default: _E, what: str) -> _E:
            if value in (None, ""):
                return default
            try:
                return enum(str(value).lower())
            except ValueError:
                problems.append(Problem(where, 0, f"nodes.json: {what}: unknown value {value!r}"))
                return default

        components: dict[str, ComponentVersion] = {}
        for name, spec in load("components.json").items():
            if not isinstance(spec, dict) or not isinstance(spec.get("version"), str):
                problems.append(Problem(where, 0, f"components.json: {name}: needs a version"))
                continue
            components[name] = ComponentVersion(
                name, spec["version"], str(spec.get("url", "")),
                str(spec.get("sha256", "")).lower(), str(spec["path"]) if spec.get("path")
                else None,
            )

        policy = load("nodes.json")
        rollout_doc, nodes_doc = section(policy, "rollout"), section(policy, "nodes")
        drain = rollout_doc.get("drainTimeout")
        rollout = RolloutPolicy(
            max_unavailable=max(1, _int(rollout_doc.get("maxUnavailable"), 1)),
            drain_timeout=str(drain) if drain not in (None, "") else DEFAULT_DRAIN_TIMEOUT,
            on_failure=choice(OnFailure, rollout_doc.get("onFailure"), OnFailure.HALT,
                              "rollout.onFailure"),
            paused=bool(rollout_doc.get("paused", False)),
        )
        platform = policy.get("platform")
        node_policy = NodePolicy(
            ssh_port=_int(nodes_doc.get("sshPort"), 22),
            host_key_policy=choice(HostKeyPolicy, nodes_doc.get("hostKeyPolicy"),
                                   HostKeyPolicy.TOFU, "nodes.hostKeyPolicy"),
            user_data=choice(UserDataMode, nodes_doc.get("userData"), UserDataMode.SYNCER,
                             "nodes.userData"),
            api_server=str(nodes_doc["apiServer"]) if nodes_doc.get("apiServer") else None,
            service_network=str(nodes_doc["serviceNetwork"])
            if nodes_doc.get("serviceNetwork") else None,
            cluster_dns=str(nodes_doc["clusterDNS"]) if nodes_doc.get("clusterDNS") else None,
            vxlan_port=_int(nodes_doc.get("hybridOverlayVXLANPort"), 0) or None,
            platform=choice(Platform, platform, Platform.NONE, "platform") if platform else None,
        )

        extras: dict[str, HostExtras] = {}
        for address, extra in load("hosts.json").items():
            if not isinstance(extra, dict):
                problems.append(Problem(where, 0, f"hosts.json: {address}: must be an object"))
                continue
            labels = extra.get("labels") or {}
            extras[address] = HostExtras(
                host_key=str(extra["hostKey"]) if extra.get("hostKey") else None,
                labels=({str(k): str(v) for k, v in labels.items()}
                        if isinstance(labels, dict) else {}),
            )
        return cls(
            fleet=str(data.get("fleet", "")),
            version=str(data.get("version", "")),
            components=components,
            rollout=rollout,
            nodes=node_policy,
            extras=extras,
        )


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True) + "\n"


def _int(value: Any, default: int) -> int:
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return default

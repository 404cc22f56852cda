"""Read the node stage's inputs from the cluster (never from Git).

Like WMCO, the node stage works from what is *applied*, so it also works when another
tool applies the manifests. One call, :func:`read_node_inputs`, reads:

- the Fleet ConfigMap ``syncer-fleet`` -> :class:`DesiredState` (fleet version, component
  versions, rollout and node policy, BYOH extras from ``hosts.json``);
- the BYOH list ``windows-instances``: key = address (IPv4 or DNS name), value exactly
  ``username=<user>``. A malformed entry is reported as a :class:`~syncer.problems.Problem`
  and that host skipped — the stage never crashes on it, and never treats a skipped
  host's Node as removed (a typo must not deconfigure a node);
- Machines labelled ``machine.openshift.io/os-id=Windows`` (skipping
  ``windowsmachineconfig.openshift.io/ignore=true``, Machines being deleted, and Machines
  without an InternalIP yet); SSH user ``Administrator``, ``capi`` on Azure;
- Windows Nodes (``kubernetes.io/os=windows``) with their annotations;
- the private key (Secret ``cloud-private-key``, ``private-key.pem``).

BYOH addresses are resolved with :mod:`syncer.nodes.resolving`. If any fails to resolve,
:attr:`NodeInputs.blocked` says why and :attr:`NodeInputs.removed` is empty: the round
must configure and remove nothing (WMCO's rule).

Everything on a Node, annotations and status addresses alike, can be written by the
kubelet of that Node, so a Node's own word never decides which host syncer connects to
or what it removes. What syncer trusts is its own record: ``configured``, the address ->
Node pairs of the hosts it worked on (the rows of ``syncer-node-status``, which only
syncer writes). A host's Node is, in order: the Node syncer recorded for its address, the
Machine's ``status.nodeRef``, then — for a host syncer has no record of yet, such as a
WMCO node being adopted — a Node not recorded for another address whose
``syncer.io/address`` annotation or status address equals the host's address or resolved
IP. A Node is *removed* when syncer recorded configuring it, no current host maps to it,
and — for a Machine node (no ``byoh=true`` label) — no Windows Machine (ignored ones
included) maps to it; deconfiguring connects to the address syncer recorded, never to
one the Node reports. A configured-looking Node syncer has no record of is left alone.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import quote

from syncer import names
from syncer.cluster import configmaps
from syncer.cluster.client import ApiError, KubeClient, Resource
from syncer.desired import (
    ComponentVersion,
    DesiredState,
    HostExtras,
    HostKeyPolicy,
    NodePolicy,
    OnFailure,
    Platform,
    RolloutPolicy,
    UserDataMode,
)
from syncer.nodes import usernames
from syncer.nodes.annotations import WINDOWS_NODES, NodeRecord, list_windows_nodes
from syncer.nodes.resolving import Resolution, Resolver, is_ipv4, is_ipv6, resolve_all, resolve_ipv4
from syncer.nodes.windows.keys import PrivateKey, PrivateKeyError, parse_private_key
from syncer.problems import Problem

_SECRETS = Resource("", "v1", "Secret", "secrets", True)

MACHINE_USER = "Administrator"
AZURE_MACHINE_USER = "capi"

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_HOSTNAME_RE = re.compile(rf"{_LABEL}(\.{_LABEL})*", re.IGNORECASE)
# "username=<user>": no '=', no control characters, no whitespace at either end.
_USER_EDGE = r"[^=\s\x00-\x1f\x7f]"
_USER_MID = r"[^=\x00-\x1f\x7f]"
_USERNAME_RE = re.compile(rf"username=(?P<user>{_USER_EDGE}(?:{_USER_MID}*{_USER_EDGE})?)")


class HostKind(StrEnum):
    BYOH = "byoh"
    MACHINE = "machine"


# --- hosts ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Host:
    """One Windows host to configure."""

    address: str  # windows-instances key (IPv4 or DNS name) or the Machine's InternalIP
    username: str
    kind: HostKind
    ip: str | None = None  # resolved IPv4 (None only when resolution failed)
    machine_name: str | None = None
    node_name: str | None = None  # existing Node, if any
    pinned_host_key: str | None = None  # from Git (hosts.json), OpenSSH line
    labels: Mapping[str, str] = field(default_factory=dict, hash=False, compare=True)

    @property
    def connect_address(self) -> str:
        """Where to open SSH: the resolved IPv4, else the address as written."""
        return self.ip or self.address


@dataclass(frozen=True)
class RemovedHost:
    """A Node syncer or WMCO configured whose host is no longer wanted."""

    node_name: str
    address: str | None  # best known address to reach it for cleanup
    kind: HostKind
    username: str | None  # from the Node's ``username`` annotation, decrypted
    reason: str
    username_problem: str | None = None  # why the user name is unknown


@dataclass(frozen=True)
class NodeInputs:
    desired: DesiredState | None  # None when the Fleet ConfigMap is missing
    hosts: list[Host]
    removed: list[RemovedHost]
    nodes: dict[str, NodeRecord]  # every Windows Node, by name
    private_key: PrivateKey | None
    resolution: Resolution
    problems: list[Problem] = field(default_factory=list)
    # Machines that will become hosts once provisioned (no InternalIP yet), by name.
    waiting_machines: list[str] = field(default_factory=list)

    @property
    def blocked(self) -> str | None:
        """Why this round must configure and remove nothing, or None."""
        if not self.resolution.ok:
            return self.resolution.reason
        return None


# --- reading ----------------------------------------------------------------------------


def read_node_inputs(
    api: KubeClient,
    namespace: str = names.WMCO_NAMESPACE,
    *,
    machine_namespace: str = names.MACHINE_API_NAMESPACE,
    resolver: Resolver = resolve_ipv4,
    node_selector: str = WINDOWS_NODES,
    configured: Mapping[str, str] | None = None,
) -> NodeInputs:
    """Read everything the node stage needs (see the module docstring).

    ``node_selector`` narrows the Nodes considered (default: every Windows Node).
    ``configured`` is syncer's own record, address -> Node name (see the module
    docstring). ``namespace`` is the fleet (WMCO) namespace holding ``syncer-fleet``,
    ``windows-instances`` and ``cloud-private-key``. API errors other than "not found"
    propagate (the caller retries the round); user mistakes become ``problems``.
    """
    problems: list[Problem] = []
    desired = read_desired_state(api, namespace, problems)
    byoh_entries, protected = read_byoh_entries(api, namespace, problems)
    resolution = resolve_all([address for address, _ in byoh_entries], resolver)
    machines = list_windows_machines(api, machine_namespace)
    nodes = {n.name: n for n in list_windows_nodes(api, node_selector)}
    private_key = read_private_key(api, namespace, problems)
    registry = Registry(dict(configured or {}), nodes)

    policy = desired.nodes if desired else NodePolicy()
    extras = desired.extras if desired else {}
    hosts: list[Host] = []
    first_of: dict[str, str] = {}  # resolved IP -> the first entry listing it
    for address, username in byoh_entries:
        ip = resolution.ips.get(address)
        if ip is not None and ip in first_of:
            # The same machine listed twice (a name and its IP): configuring it as two
            # hosts would run two flows on one machine at once.
            problems.append(Problem(
                f"ConfigMap {namespace}/{names.BYOH_CONFIGMAP}", 0,
                f"{address}: the same host as {first_of[ip]} ({ip}); host skipped"))
            continue
        if ip is not None:
            first_of[ip] = address
        extra = extras.get(address, HostExtras())
        hosts.append(
            Host(
                address=address,
                username=username,
                kind=HostKind.BYOH,
                ip=ip,
                node_name=registry.match(address, ip, byoh=True),
                pinned_host_key=extra.host_key,
                labels=dict(extra.labels),
            )
        )

    waiting: list[str] = []
    machine_nodes: set[str] = set()
    for machine in machines:
        node_name = machine.node_ref or registry.match(machine.address, machine.address,
                                                       byoh=False)
        if node_name:
            machine_nodes.add(node_name)
        if machine.ignored or machine.deleting:
            continue
        if not machine.address:
            waiting.append(machine.name)
            continue
        platform = machine.platform or policy.platform  # the Machine knows best
        hosts.append(
            Host(
                address=machine.address,
                username=AZURE_MACHINE_USER if platform is Platform.AZURE else MACHINE_USER,
                kind=HostKind.MACHINE,
                ip=machine.address,
                machine_name=machine.name,
                node_name=node_name,
            )
        )
    hosts.sort(key=lambda h: (h.kind != HostKind.BYOH, h.address))

    removed: list[RemovedHost] = []
    if resolution.ok:
        removed = _removed_nodes(registry, hosts, protected, machine_nodes, private_key,
                                 policy.platform)
    return NodeInputs(
        desired=desired,
        hosts=hosts,
        removed=removed,
        nodes=nodes,
        private_key=private_key,
        resolution=resolution,
        problems=problems,
        waiting_machines=sorted(waiting),
    )


@dataclass(frozen=True)
class Registry:
    """Syncer's record of which Node it configured at which address, and the Nodes."""

    addresses: dict[str, str]  # address -> Node name, as syncer recorded it
    nodes: Mapping[str, NodeRecord]

    @property
    def recorded_address(self) -> dict[str, str]:
        """Node name -> the address syncer recorded for it."""
        return {node: address for address, node in self.addresses.items()}

    def match(self, address: str | None, ip: str | None, *, byoh: bool) -> str | None:
        """The Node of a host (see the module docstring)."""
        if not address:
            return None
        recorded = self.addresses.get(address)
        if recorded is not None and recorded in self.nodes:
            return recorded
        elsewhere = self.recorded_address
        candidates = [n for n in self.nodes.values()
                      if elsewhere.get(n.name, address) == address]
        for node in candidates:
            if node.address == address:
                return node.name
        for node in candidates:
            if node.address is not None:
                continue  # syncer configured this Node from another address
            if not byoh and node.byoh:
                continue  # a BYOH Node is never a Machine's
            if node.has_address(address) or (ip is not None and node.has_address(ip)):
                return node.name
        return None


def removed_username(node: NodeRecord, key: PrivateKey | None) -> tuple[str | None, str | None]:
    """(user name, why it is unknown) from a Node's ``username`` annotation: WMCO's (and
    syncer's) encrypted value, or plain text as syncer's first version wrote it."""
    value = node.username
    if not value:
        return None, "the Node has no username annotation"
    if _USERNAME_RE.fullmatch(f"username={value}") and usernames.MARKER not in value \
            and len(value) <= 64:
        return value, None  # written in the clear
    if key is None:
        return None, "the username annotation is encrypted and no private key is available"
    try:
        return usernames.unseal(value, key.secret), None
    except usernames.UsernameError as err:
        return None, f"the username annotation: {err}"


def _removed_nodes(
    registry: Registry,
    hosts: list[Host],
    protected: set[str],
    machine_nodes: set[str],
    key: PrivateKey | None = None,
    platform: Platform | None = None,
) -> list[RemovedHost]:
    wanted = {h.node_name for h in hosts if h.node_name}
    recorded = registry.recorded_address
    out: list[RemovedHost] = []
    for node in registry.nodes.values():
        address = recorded.get(node.name)
        if address is None or not node.configured or node.name in wanted:
            continue  # only what syncer recorded configuring, at the address it recorded
        # A malformed entry (reported, skipped) still protects its Node from removal.
        if address in protected or (node.address and node.address in protected) or any(
            node.has_address(a) for a in protected
        ):
            continue
        username, why = removed_username(node, key)
        if node.byoh:
            out.append(
                RemovedHost(
                    node.name,
                    address,
                    HostKind.BYOH,
                    username,
                    f"{address} is no longer listed in {names.BYOH_CONFIGMAP}",
                    why,
                )
            )
        elif node.name not in machine_nodes:
            default = AZURE_MACHINE_USER if platform is Platform.AZURE else MACHINE_USER
            out.append(
                RemovedHost(
                    node.name,
                    address,
                    HostKind.MACHINE,
                    username or default,
                    f"no Windows Machine maps to Node {node.name} any more",
                )
            )
    return sorted(out, key=lambda r: r.node_name)


# --- the Fleet ConfigMap ----------------------------------------------------------------


def read_desired_state(
    api: KubeClient, namespace: str, problems: list[Problem] | None = None
) -> DesiredState | None:
    """Parse ``syncer-fleet``; None when it does not exist. Bad JSON -> problems."""
    data = configmaps.read_data(api, namespace, names.FLEET_CONFIGMAP)
    if data is None:
        return None
    return parse_desired_state(data, f"ConfigMap {namespace}/{names.FLEET_CONFIGMAP}", problems)


def parse_desired_state(
    data: Mapping[str, str],
    where: str = names.FLEET_CONFIGMAP,
    problems: list[Problem] | None = None,
) -> DesiredState:
    """Parse the Fleet ConfigMap's ``data`` (:mod:`syncer.desired`)."""
    return DesiredState.from_data(data, where, problems)


def _int(value: Any, default: int) -> int:
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return default


# --- windows-instances ------------------------------------------------------------------


def read_byoh_entries(
    api: KubeClient, namespace: str, problems: list[Problem] | None = None
) -> tuple[list[tuple[str, str]], set[str]]:
    """(valid (address, username) pairs, every listed address including malformed ones).

    A missing ConfigMap means no BYOH hosts (WMCO: deleting it deconfigures them all).
    """
    data = configmaps.read_data(api, namespace, names.BYOH_CONFIGMAP)
    if data is None:
        return [], set()
    return parse_byoh_entries(data, f"ConfigMap {namespace}/{names.BYOH_CONFIGMAP}", problems)


def parse_byoh_entries(
    data: Mapping[str, str],
    where: str = names.BYOH_CONFIGMAP,
    problems: list[Problem] | None = None,
) -> tuple[list[tuple[str, str]], set[str]]:
    """Strictly parse ``windows-instances`` data; each bad entry is one problem."""
    problems = problems if problems is not None else []
    valid: list[tuple[str, str]] = []
    listed: set[str] = set()
    for address in sorted(data):
        value = data[address]
        listed.add(address)
        why = check_address(address)
        if why is None:
            match = _USERNAME_RE.fullmatch(value if isinstance(value, str) else "")
            if match is None:
                why = f"value must be exactly 'username=<user>', got {value!r}"
        if why is not None:
            problems.append(Problem(where, 0, f"{address}: {why}; host skipped"))
            continue
        assert match is not None
        valid.append((address, match.group("user")))
    return valid, listed


def check_address(address: str) -> str | None:
    """None if ``address`` is an IPv4 literal or DNS name WMCO accepts, else why not."""
    if is_ipv4(address):
        return None
    if is_ipv6(address):
        return "IPv6 addresses are not supported"
    if len(address) > 253 or not _HOSTNAME_RE.fullmatch(address):
        return "not an IPv4 address or DNS name"
    if re.fullmatch(r"[0-9.]+", address):
        return "not a valid IPv4 address"
    return None


# --- Machines ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MachineInfo:
    name: str
    address: str | None  # InternalIP
    node_ref: str | None
    ignored: bool
    deleting: bool
    platform: Platform | None  # from the providerSpec kind/apiVersion


def list_windows_machines(api: KubeClient, namespace: str) -> list[MachineInfo]:
    """Windows Machines in ``namespace``; [] when the Machine API is not installed."""
    path = f"/apis/{names.MACHINE_API_VERSION}/namespaces/{quote(namespace)}/machines"
    try:
        doc = api.request("GET", path, query=[("labelSelector", f"{names.LABEL_OS_ID}=Windows")])
    except ApiError as err:
        if err.not_found:
            return []
        raise
    return sorted((machine_info(m) for m in doc.get("items") or []), key=lambda m: m.name)


def machine_info(machine: Mapping[str, Any]) -> MachineInfo:
    meta = machine.get("metadata") or {}
    status = machine.get("status") or {}
    address = next(
        (
            str(a.get("address"))
            for a in status.get("addresses") or []
            if a.get("type") == "InternalIP" and is_ipv4(str(a.get("address", "")))
        ),
        None,
    )
    return MachineInfo(
        name=str(meta.get("name", "")),
        address=address,
        node_ref=(status.get("nodeRef") or {}).get("name"),
        ignored=(meta.get("labels") or {}).get(names.LABEL_IGNORE) == "true",
        deleting=bool(meta.get("deletionTimestamp")),
        platform=machine_platform(machine),
    )


def machine_platform(machine: Mapping[str, Any]) -> Platform | None:
    """The platform a Machine's providerSpec names (``AzureMachineProviderSpec`` -> azure)."""
    value = (((machine.get("spec") or {}).get("providerSpec") or {}).get("value")) or {}
    text = f"{value.get('kind', '')} {value.get('apiVersion', '')}".lower()
    for platform in (Platform.AZURE, Platform.AWS, Platform.GCP, Platform.VSPHERE,
                     Platform.NUTANIX):
        if platform.value in text:
            return platform
    return None


# --- the private key --------------------------------------------------------------------


def read_private_key(
    api: KubeClient, namespace: str, problems: list[Problem] | None = None
) -> PrivateKey | None:
    """The key from ``cloud-private-key``; None (and a problem) if missing or unusable."""
    problems = problems if problems is not None else []
    where = f"Secret {namespace}/{names.PRIVATE_KEY_SECRET}"
    secret = api.get(_SECRETS, namespace, names.PRIVATE_KEY_SECRET)
    if secret is None:
        problems.append(Problem(where, 0, "not found: hosts cannot be reached over SSH"))
        return None
    encoded = (secret.get("data") or {}).get(names.PRIVATE_KEY_SECRET_KEY)
    if not encoded:
        problems.append(Problem(where, 0, f"has no key {names.PRIVATE_KEY_SECRET_KEY!r}"))
        return None
    try:
        return parse_private_key(base64.b64decode(encoded))
    except (PrivateKeyError, ValueError) as err:
        problems.append(Problem(where, 0, f"{names.PRIVATE_KEY_SECRET_KEY}: {err}"))
        return None


__all__ = [
    "ComponentVersion",
    "DesiredState",
    "Host",
    "HostExtras",
    "HostKeyPolicy",
    "HostKind",
    "MachineInfo",
    "NodeInputs",
    "NodePolicy",
    "OnFailure",
    "RemovedHost",
    "RolloutPolicy",
    "UserDataMode",
    "check_address",
    "parse_byoh_entries",
    "parse_desired_state",
    "read_byoh_entries",
    "read_desired_state",
    "read_node_inputs",
    "read_private_key",
]

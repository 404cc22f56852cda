"""SSH host key trust: pinned in Git, or trust on first use pinned in the cluster.

syncer never uses paramiko's ``AutoAddPolicy``. Every connection goes through
:class:`PinningPolicy`, which asks :func:`decide` what to do with the key the server
presented:

1. **Pinned in Git** (``hostKey`` of the host in ``BYOHHosts``, carried in ``hosts.json``):
   the presented key must equal it. Always wins over anything pinned in the cluster.
2. ``hostKeyPolicy: pinned`` and nothing in Git: reject (the Fleet demands Git pins).
3. **Pinned in the cluster** (WMCO's places): the Node annotations
   ``windowsmachineconfig.openshift.io/ssh-host-key`` (base64 of the key blob) and
   ``…/ssh-host-key-type`` once the host has a Node; before that, key = address in the
   ConfigMap ``windows-ssh-host-keys`` in the fleet namespace (value: the base64 blob).
   The presented key must equal it.
4. Nothing pinned anywhere: trust on first use. The key is accepted for this connection
   and :meth:`HostKeyStore.pin` records it once the connection authenticated
   (:meth:`PinningPolicy.persist`), like WMCO (a host that fails auth pins nothing).

Which of a host's keys is compared matters: Windows OpenSSH offers RSA, ECDSA and
Ed25519 host keys, and the client's preference picks one. With a pin, syncer offers only
the pinned key's type (:meth:`PinningPolicy.key_types`); without one it prefers what
WMCO's Go client prefers (``golang.org/x/crypto/ssh`` ``defaultHostKeyAlgos``: ECDSA,
then RSA, then Ed25519), so a host that WMCO pinned, or one pinned in Git from any line
of ``ssh-keyscan``, is compared with the key of the same type.

A mismatch raises :class:`HostKeyMismatch` (a ``paramiko.SSHException``) whose message
names both SHA256 fingerprints and what to delete to re-trust the host. The host stays
stopped until an operator acts; nothing is overwritten automatically. Operator
procedure (docs/node-configuration.md, "Host keys"): verify the new key out of band, then
either update ``hostKey`` in Git, or delete the pin — remove both annotations from the Node
(``kubectl annotate node N <prefix>ssh-host-key- <prefix>ssh-host-key-type-``)
or ``kubectl -n NS patch configmap windows-ssh-host-keys --type=json -p
'[{"op":"remove","path":"/data/ADDRESS"}]'`` — and the next round re-pins on first use.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from syncer import names
from syncer.cluster import configmaps
from syncer.cluster.client import KubeClient
from syncer.nodes.annotations import NodeRecord, read_node, set_ssh_host_key
from syncer.nodes.windows.sshlib import paramiko

# Host key algorithms in the order golang.org/x/crypto/ssh prefers them (common.go
# defaultHostKeyAlgos, certificates and DSA left out), and those of each key type.
GO_ORDER = (
    "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
    "rsa-sha2-256", "rsa-sha2-512", "ssh-ed25519",
)
ALGORITHMS = {
    "ssh-rsa": ("rsa-sha2-256", "rsa-sha2-512"),
    "ecdsa-sha2-nistp256": ("ecdsa-sha2-nistp256",),
    "ecdsa-sha2-nistp384": ("ecdsa-sha2-nistp384",),
    "ecdsa-sha2-nistp521": ("ecdsa-sha2-nistp521",),
    "ssh-ed25519": ("ssh-ed25519",),
}


class Decision(StrEnum):
    ACCEPT = "accept"  # matches the pin
    PIN = "pin"  # nothing pinned: trust on first use, record it after authentication
    REJECT = "reject"  # changed or not allowed: stop this host


@dataclass(frozen=True)
class HostKey:
    """A public host key: type and the base64 of its SSH wire blob."""

    key_type: str
    blob: str  # base64, as in the ssh-host-key annotation

    @classmethod
    def from_pkey(cls, key: paramiko.PKey) -> HostKey:
        return cls(key.get_name(), key.get_base64())

    @classmethod
    def parse(cls, text: str) -> HostKey:
        """From an OpenSSH line ``<type> <base64> [comment]`` (``ssh-keyscan`` output,
        optionally with a leading host field). Raises ValueError."""
        parts = text.split()
        if len(parts) >= 3 and not parts[0].startswith(("ssh-", "ecdsa-", "sk-")):
            parts = parts[1:]  # known_hosts line: "<host> <type> <base64>"
        if len(parts) < 2:
            raise ValueError(f"not an OpenSSH public key line: {text!r}")
        return cls.from_blob(parts[1], parts[0])

    @classmethod
    def from_blob(cls, blob: str, key_type: str = "") -> HostKey:
        """From the base64 wire blob; the type is read from the blob itself."""
        try:
            raw = base64.b64decode(blob, validate=True)
        except (binascii.Error, ValueError) as err:
            raise ValueError(f"host key is not valid base64: {err}") from None
        if len(raw) < 4:
            raise ValueError("host key blob is too short")
        size = int.from_bytes(raw[:4], "big")
        embedded = raw[4 : 4 + size].decode("ascii", "replace")
        if key_type and key_type != embedded:
            raise ValueError(f"host key type {key_type} does not match its blob ({embedded})")
        return cls(embedded, base64.b64encode(raw).decode("ascii"))

    @property
    def fingerprint(self) -> str:
        """OpenSSH's ``SHA256:…`` fingerprint (unpadded base64 of the blob's sha256)."""
        digest = hashlib.sha256(base64.b64decode(self.blob)).digest()
        return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")

    @property
    def line(self) -> str:
        return f"{self.key_type} {self.blob}"


@dataclass(frozen=True)
class Pin:
    """Where a host key is pinned and how to remove that pin."""

    key: HostKey
    source: str  # "git" | "node" | "configmap"
    where: str  # human-readable location
    undo: str  # what an operator does to re-trust the host


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    message: str
    presented: HostKey
    pin: Pin | None = None


class HostKeyMismatch(paramiko.SSHException):
    """The host presented a key other than the pinned one (or none may be trusted)."""

    def __init__(self, verdict: Verdict) -> None:
        self.verdict = verdict
        super().__init__(verdict.message)


def decide(address: str, presented: HostKey, pin: Pin | None, *, policy: str = "tofu") -> Verdict:
    """Accept, pin now (first use) or reject the key ``presented`` by ``address``."""
    if pin is None:
        if policy == "pinned":
            return Verdict(
                Decision.REJECT,
                f"no host key is pinned in Git for {address} and the Fleet's "
                f"hostKeyPolicy is 'pinned': add hostKey to this host in BYOHHosts "
                f"(presented {presented.fingerprint})",
                presented,
            )
        return Verdict(
            Decision.PIN,
            f"trusting host key {presented.fingerprint} of {address} on first use",
            presented,
        )
    if pin.key.key_type == presented.key_type and pin.key.blob == presented.blob:
        return Verdict(Decision.ACCEPT, f"host key of {address} matches the pin", presented, pin)
    return Verdict(
        Decision.REJECT,
        f"host key for {address} changed: pinned {pin.key.fingerprint} ({pin.where}), "
        f"presented {presented.fingerprint}; verify the host, then {pin.undo} to re-trust",
        presented,
        pin,
    )


class HostKeyStore:
    """Reads and writes cluster pins (Node annotations, ConfigMap ``windows-ssh-host-keys``)."""

    def __init__(self, api: KubeClient, namespace: str) -> None:
        self.api = api
        self.namespace = namespace

    def lookup(
        self, address: str, node_name: str | None = None, git_key: str | None = None
    ) -> Pin | None:
        """The pin that applies to a host: Git, then its Node, then the ConfigMap.
        Raises ValueError when a stored pin cannot be parsed (treat as a mismatch)."""
        if git_key:
            return Pin(
                HostKey.parse(git_key),
                "git",
                "hostKey in the fleet repository",
                "update hostKey of this host in the fleet repository",
            )
        if node_name:
            node = self._node(node_name)
            if node is not None and node.ssh_host_key is not None:
                key_type, blob = node.ssh_host_key
                return Pin(
                    HostKey.from_blob(blob, key_type),
                    "node",
                    f"annotation {names.ANNOTATION_SSH_HOST_KEY} on Node {node_name}",
                    f"kubectl annotate node {node_name} {names.ANNOTATION_SSH_HOST_KEY}- "
                    f"{names.ANNOTATION_SSH_HOST_KEY_TYPE}-",
                )
        stored = self._configmap_data().get(address)
        if stored:
            return Pin(
                HostKey.from_blob(stored),
                "configmap",
                f"ConfigMap {self.namespace}/{names.SSH_HOST_KEYS_CONFIGMAP} key {address}",
                f"kubectl -n {self.namespace} patch configmap "
                f"{names.SSH_HOST_KEYS_CONFIGMAP} --type=json "
                f'-p \'[{{"op":"remove","path":"/data/{address}"}}]\'',
            )
        return None

    def check(
        self,
        address: str,
        presented: paramiko.PKey | HostKey,
        *,
        node_name: str | None = None,
        git_key: str | None = None,
        policy: str = "tofu",
    ) -> Verdict:
        """:func:`decide` against the pin that applies to this host."""
        key = presented if isinstance(presented, HostKey) else HostKey.from_pkey(presented)
        try:
            pin = self.lookup(address, node_name, git_key)
        except ValueError as err:
            return Verdict(
                Decision.REJECT,
                f"the host key pinned for {address} cannot be read ({err}); fix or delete "
                f"the pin (presented {key.fingerprint})",
                key,
            )
        return decide(address, key, pin, policy=policy)

    def pin(self, address: str, key: HostKey, node_name: str | None = None) -> str:
        """Record a first-use key: on the Node if it exists (and drop the ConfigMap
        entry), else in the ConfigMap. Returns where it was written."""
        if node_name and read_node(self.api, node_name) is not None:
            set_ssh_host_key(self.api, node_name, key.key_type, key.blob)
            self.forget(address)
            return f"Node {node_name}"
        configmaps.patch_data(
            self.api, self.namespace, names.SSH_HOST_KEYS_CONFIGMAP, {address: key.blob}
        )
        return f"ConfigMap {self.namespace}/{names.SSH_HOST_KEYS_CONFIGMAP}"

    def move_to_node(self, address: str, node_name: str) -> bool:
        """Once a host's Node exists: move its ConfigMap pin onto the Node (WMCO does the
        same). True if a pin was moved. A pin already on the Node is kept."""
        blob = self._configmap_data().get(address)
        if not blob:
            return False
        node = read_node(self.api, node_name)
        if node is None:
            return False
        if node.ssh_host_key is None:
            key = HostKey.from_blob(blob)
            set_ssh_host_key(self.api, node_name, key.key_type, key.blob)
        self.forget(address)
        return True

    def forget(self, address: str) -> None:
        """Drop the ConfigMap pin of ``address`` (after deconfiguring a host, so a reused
        address is not blocked by a stale key)."""
        if address in self._configmap_data():
            configmaps.patch_data(
                self.api, self.namespace, names.SSH_HOST_KEYS_CONFIGMAP, {address: None}
            )

    def _node(self, name: str) -> NodeRecord | None:
        """The Node whose pin :meth:`lookup` consults."""
        return read_node(self.api, name)

    def _configmap_data(self) -> dict[str, str]:
        return configmaps.read_data(self.api, self.namespace, names.SSH_HOST_KEYS_CONFIGMAP) or {}


class PinningPolicy(paramiko.MissingHostKeyPolicy):
    """The paramiko policy for one host. Use with a client that has no known host keys
    loaded, so paramiko consults it on every connection::

        policy = PinningPolicy(store, host.address, node_name=..., git_key=..., policy=...)
        client.set_missing_host_key_policy(policy)
        client.connect(...)          # raises HostKeyMismatch on a changed key
        policy.persist()             # after authentication: pin a first-use key
    """

    def __init__(
        self,
        store: HostKeyStore,
        address: str,
        *,
        node_name: str | None = None,
        git_key: str | None = None,
        policy: str = "tofu",
    ) -> None:
        self.store = store
        self.address = address
        self.node_name = node_name
        self.git_key = git_key
        self.policy = policy
        self.verdict: Verdict | None = None

    def key_types(self) -> tuple[str, ...]:
        """The host key algorithms to offer, most preferred first: the pinned key's
        type alone, else Go's order (see the module docstring)."""
        if self.verdict is not None and self.verdict.decision is Decision.PIN:
            return ALGORITHMS.get(self.verdict.presented.key_type, GO_ORDER)
        try:
            pin = self.store.lookup(self.address, self.node_name, self.git_key)
        except ValueError:
            return GO_ORDER  # an unreadable pin is reported when the key is checked
        if pin is None:
            return GO_ORDER
        return ALGORITHMS.get(pin.key.key_type, GO_ORDER)

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        presented = HostKey.from_pkey(key)
        if self.verdict is not None and self.verdict.decision is Decision.PIN:
            # Reconnect within one session: the first-use key must not change either.
            if self.verdict.presented != presented:
                self.verdict = decide(
                    self.address,
                    presented,
                    Pin(self.verdict.presented, "session", "seen earlier in this session", "retry"),
                )
                raise HostKeyMismatch(self.verdict)
            return
        self.verdict = self.store.check(
            self.address,
            presented,
            node_name=self.node_name,
            git_key=self.git_key,
            policy=self.policy,
        )
        if self.verdict.decision is Decision.REJECT:
            raise HostKeyMismatch(self.verdict)

    def persist(self) -> str | None:
        """Pin a first-use key (call after authentication). Returns where, or None."""
        if self.verdict is None or self.verdict.decision is not Decision.PIN:
            return None
        where = self.store.pin(self.address, self.verdict.presented, self.node_name)
        self.verdict = Verdict(
            Decision.ACCEPT, f"pinned in {where}", self.verdict.presented, self.verdict.pin
        )
        return where


class RoundHostKeyStore(HostKeyStore):
    """Host-key pins read once per round, not once per connection.

    Lookups use the Nodes the round already read
    (:func:`~syncer.nodes.inputs.read_node_inputs`) and read the ``windows-ssh-host-keys``
    ConfigMap once, instead of one GET per SSH connection. The rules are unchanged (Git
    pin, then the Node's, then the ConfigMap's); writes go to the cluster as before and
    drop the cached ConfigMap (and the written Node), and a Node that did not exist when
    the round began (a host that just joined) is read live. This is what keeps a no-change
    pass over many hosts at about one SSH round trip per host.
    """

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
        """As :meth:`HostKeyStore.move_to_node`; a host the round's read of the ConfigMap
        has no pin for (read again after every pin this round wrote) has nothing to move,
        and that costs no request: every upgraded host's join asks."""
        if address not in self._configmap_data():
            return False
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

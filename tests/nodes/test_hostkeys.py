"""SSH host key trust: Git pins, trust on first use pinned in the cluster, changed keys
stop the host. Exercised with a real SSH handshake (paramiko server on loopback)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import paramiko
import pytest
from nodehelpers import create_node, unique, unique_ip

from syncer import names
from syncer.cluster.client import KubeClient
from syncer.nodes.hostkeys import (
    Decision,
    HostKey,
    HostKeyMismatch,
    HostKeyStore,
    Pin,
    PinningPolicy,
    RoundHostKeyStore,
    decide,
)


def test_fingerprint_matches_openssh_and_paramiko() -> None:
    pkey = paramiko.RSAKey.generate(2048)
    host_key = HostKey.from_pkey(pkey)
    assert host_key.fingerprint == pkey.fingerprint
    assert HostKey.parse(f"10.0.0.1 {host_key.line} comment") == host_key
    assert HostKey.parse(host_key.line + " root@win") == host_key


def test_decide() -> None:
    a = HostKey.from_pkey(paramiko.RSAKey.generate(1024))
    b = HostKey.from_pkey(paramiko.RSAKey.generate(1024))
    pin = Pin(a, "node", "annotation on Node n1", "kubectl annotate node n1 ...")
    assert decide("10.1.42.1", a, pin).decision is Decision.ACCEPT
    assert decide("10.1.42.1", a, None).decision is Decision.PIN
    refused = decide("10.1.42.1", b, pin)
    assert refused.decision is Decision.REJECT
    assert refused.message.startswith(
        f"host key for 10.1.42.1 changed: pinned {a.fingerprint} (annotation on Node n1), "
        f"presented {b.fingerprint}; verify the host, then kubectl annotate node n1 ..."
    )
    strict = decide("10.1.42.1", a, None, policy="pinned")
    assert strict.decision is Decision.REJECT and "hostKeyPolicy is 'pinned'" in strict.message


# --- a real SSH server ---------------------------------------------------------------


class _Server(paramiko.ServerInterface):
    def __init__(self, client_key: paramiko.PKey) -> None:
        self.client_key = client_key

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        if key.get_base64() == self.client_key.get_base64():
            return paramiko.AUTH_SUCCESSFUL
        return paramiko.AUTH_FAILED


@contextmanager
def ssh_server(host_key: paramiko.PKey, client_key: paramiko.PKey) -> Iterator[int]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    stop = threading.Event()
    transports: list[paramiko.Transport] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            t = paramiko.Transport(conn)
            t.add_server_key(host_key)
            transports.append(t)
            with suppress(paramiko.SSHException, EOFError, OSError):
                t.start_server(server=_Server(client_key))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        stop.set()
        # close() alone leaves a thread blocked in accept() holding the port open for the
        # rest of the session (Linux keeps the socket listening for the blocked call):
        # shutdown() wakes it, and the thread must be gone before the next test.
        with suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        thread.join(10)
        for t in transports:
            t.close()
        assert not thread.is_alive(), "the test SSH server's accept thread did not stop"


def _connect(port: int, policy: PinningPolicy, client_key: paramiko.PKey) -> None:
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(policy)
    try:
        client.connect(
            "127.0.0.1",
            port=port,
            username="Administrator",
            pkey=client_key,
            allow_agent=False,
            look_for_keys=False,
            timeout=10,
        )
        policy.persist()
    finally:
        client.close()


def test_trust_on_first_use_then_pinned_then_changed_key_stops(
    api: KubeClient, namespace: str
) -> None:
    client_key = paramiko.RSAKey.generate(2048)
    first, second = paramiko.RSAKey.generate(2048), paramiko.RSAKey.generate(2048)
    store = HostKeyStore(api, namespace)
    address = unique_ip()

    with ssh_server(first, client_key) as port:
        policy = PinningPolicy(store, address)
        _connect(port, policy, client_key)  # first use: pinned in the ConfigMap
        cm = api.request(
            "GET", f"/api/v1/namespaces/{namespace}/configmaps/{names.SSH_HOST_KEYS_CONFIGMAP}"
        )
        assert cm["data"] == {address: first.get_base64()}
        _connect(port, PinningPolicy(store, address), client_key)  # same key: accepted

    with ssh_server(second, client_key) as port, pytest.raises(HostKeyMismatch) as caught:
        _connect(port, PinningPolicy(store, address), client_key)
    message = str(caught.value)
    assert (
        f"host key for {address} changed: pinned {HostKey.from_pkey(first).fingerprint}" in message
    )
    assert f"presented {HostKey.from_pkey(second).fingerprint}" in message
    assert (
        f"patch configmap {names.SSH_HOST_KEYS_CONFIGMAP}" in message
        and f"/data/{address}" in message
    )
    # nothing was overwritten: the old pin stays until an operator acts
    cm = api.request(
        "GET", f"/api/v1/namespaces/{namespace}/configmaps/{names.SSH_HOST_KEYS_CONFIGMAP}"
    )
    assert cm["data"] == {address: first.get_base64()}


def test_failed_authentication_pins_nothing(api: KubeClient, namespace: str) -> None:
    host = paramiko.RSAKey.generate(2048)
    store = HostKeyStore(api, namespace)
    with (
        ssh_server(host, paramiko.RSAKey.generate(2048)) as port,
        pytest.raises(paramiko.AuthenticationException),
    ):
        _connect(port, PinningPolicy(store, "10.9.0.1"), paramiko.RSAKey.generate(2048))
    assert store.lookup("10.9.0.1") is None


def test_pin_moves_to_node_and_node_pin_is_enforced(
    api: KubeClient, namespace: str, scope: str
) -> None:
    store = HostKeyStore(api, namespace)
    address, node = unique_ip(), unique("hk")
    key = HostKey.from_pkey(paramiko.RSAKey.generate(1024))
    store.pin(address, key)
    create_node(api, node, ip=address, labels={"syncer-test": scope})
    assert store.move_to_node(address, node)
    live = api.request("GET", f"/api/v1/nodes/{node}")["metadata"]["annotations"]
    assert live[names.ANNOTATION_SSH_HOST_KEY] == key.blob
    assert live[names.ANNOTATION_SSH_HOST_KEY_TYPE] == "ssh-rsa"
    assert store._configmap_data().get(address) is None
    other = HostKey.from_pkey(paramiko.RSAKey.generate(1024))
    verdict = store.check(address, other, node_name=node)
    assert verdict.decision is Decision.REJECT
    assert f"kubectl annotate node {node} {names.ANNOTATION_SSH_HOST_KEY}-" in verdict.message
    assert store.check(address, key, node_name=node).decision is Decision.ACCEPT


def test_git_pin_wins_over_cluster_pin(api: KubeClient, namespace: str) -> None:
    store = HostKeyStore(api, namespace)
    git_key = HostKey.from_pkey(paramiko.RSAKey.generate(1024))
    tofu_key = HostKey.from_pkey(paramiko.RSAKey.generate(1024))
    store.pin("10.9.0.2", tofu_key)
    verdict = store.check("10.9.0.2", tofu_key, git_key=git_key.line + " win@lab")
    assert (
        verdict.decision is Decision.REJECT
        and "hostKey of this host in the fleet repository" in verdict.message
    )
    assert store.check("10.9.0.2", git_key, git_key=git_key.line).decision is Decision.ACCEPT


def test_a_round_moves_a_pin_to_its_node_without_rereading_for_hosts_without_one(
    api: KubeClient, namespace: str, scope: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An upgrade's join asks to move the host's ConfigMap pin onto its Node; for a host
    pinned on its Node long ago there is none, and the round's read of the ConfigMap
    (which holds every pin this round wrote) says so without another GET. A pin this
    round made is still moved."""
    new, node = unique_ip(), unique("hk")
    create_node(api, node, ip=new, labels={"syncer-test": scope})
    store = RoundHostKeyStore(api, namespace, {})
    key = HostKey.from_pkey(paramiko.RSAKey.generate(1024))
    store.pin(new, key)  # a first-use pin made by this round, before its Node existed
    assert store.lookup(unique_ip()) is None  # the round reads the ConfigMap
    calls: list[tuple[str, str]] = []
    request = api.request

    def counting(method: str, path: str, **kw: object) -> object:
        calls.append((method, path))
        return request(method, path, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(api, "request", counting)
    assert not store.move_to_node(unique_ip(), node)
    assert calls == []
    assert store.move_to_node(new, node)
    live = request("GET", f"/api/v1/nodes/{node}")["metadata"]["annotations"]
    assert live[names.ANNOTATION_SSH_HOST_KEY] == key.blob

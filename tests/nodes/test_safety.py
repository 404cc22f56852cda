"""The node stage's safety promises, through the real node stage and real SSH handshakes.

Host keys (docs/node-configuration.md): a pin from Git for every key type, ``hostKeyPolicy:
pinned`` refusing a host without one, a pin that does not match, a pin that cannot be read
(refused, never re-trusted), a first-use key that changes within one session. A shutdown
asked for while a host's services are stopped waits until they run again. Hosts whose
default shell is PowerShell go through join, upgrade and removal. A BYOH host that cannot
be reached when it is removed keeps its Node and says why.
"""

from __future__ import annotations

import threading

import paramiko
import pytest

from syncer import names
from syncer.cluster import configmaps
from syncer.nodes.hostkeys import HostKey, HostKeyMismatch, HostKeyStore, PinningPolicy
from syncer.nodes.ssh import HostSession
from syncer.nodes.status import Phase
from syncer_lab.nodelab import SSH, NodeLab, entries
from syncer_lab.winhost import key_line

KEY_TYPES = ("rsa", "ecdsa", "ed25519")


# --- host keys ---------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KEY_TYPES)
def test_a_git_pin_of_each_key_type_under_the_pinned_policy(node_lab: NodeLab, kind: str
                                                            ) -> None:
    [host] = node_lab.add_hosts(1)
    node_lab.extras[host.address]["hostKey"] = key_line(host.host_keys[kind]) + " win@lab"
    node_lab.set_fleet("1.0.0", host_key_policy="pinned")
    node_lab.write_instances()
    result = node_lab.run()
    assert result.ok, (result.summary(), result.rows)
    # The Git pin is what was compared: nothing was pinned in the cluster on first use.
    assert configmaps.read_data(node_lab.api, node_lab.namespace,
                                names.SSH_HOST_KEYS_CONFIGMAP) in (None, {})


def test_the_pinned_policy_refuses_a_host_without_a_git_pin(node_lab: NodeLab) -> None:
    pinned, unpinned = node_lab.add_hosts(2)
    node_lab.extras[pinned.address]["hostKey"] = key_line(pinned.host_keys["ecdsa"])
    node_lab.set_fleet("1.0.0", host_key_policy="pinned")
    node_lab.write_instances()
    result = node_lab.run()
    rows = {r.address: r for r in result.rows}
    assert rows[pinned.address].phase is Phase.UP_TO_DATE
    assert rows[unpinned.address].text == "blocked (host-key)"
    assert "hostKeyPolicy is 'pinned'" in (rows[unpinned.address].last_error or "")
    assert entries(unpinned) == []  # not a single command reached it


def test_a_git_pin_that_does_not_match_stops_that_host(node_lab: NodeLab) -> None:
    host, other = node_lab.add_hosts(2)
    node_lab.extras[host.address]["hostKey"] = key_line(other.host_keys["rsa"])
    node_lab.set_fleet("1.0.0")
    node_lab.write_instances([host])
    result = node_lab.run()
    assert [r.text for r in result.rows] == ["blocked (host-key)"]
    assert "hostKey of this host in the fleet repository" in (result.rows[0].last_error or "")
    assert entries(host) == []


def test_an_unreadable_pin_is_refused_and_never_re_trusted(node_lab: NodeLab) -> None:
    [host] = node_lab.add_hosts(1)
    node_lab.set_fleet("1.0.0")
    configmaps.patch_data(node_lab.api, node_lab.namespace, names.SSH_HOST_KEYS_CONFIGMAP,
                          {host.address: "not base64 at all!"})
    node_lab.write_instances()
    for _ in range(2):
        result = node_lab.run()
        assert [r.text for r in result.rows] == ["blocked (host-key)"]
        assert "cannot be read" in (result.rows[0].last_error or "")
    assert entries(host) == []
    stored = configmaps.read_data(node_lab.api, node_lab.namespace,
                                  names.SSH_HOST_KEYS_CONFIGMAP) or {}
    assert stored[host.address] == "not base64 at all!"  # nothing overwrote it


def test_a_key_that_changes_within_a_session_is_refused(node_lab: NodeLab) -> None:
    """Pinned on first use, then the host presents another key on a reconnect of the same
    session (after the pin was written, and before: authentication failed first)."""
    [host] = node_lab.add_hosts(1)
    store = HostKeyStore(node_lab.api, node_lab.namespace)
    session = HostSession(host.address, "Administrator", node_lab.key,
                          PinningPolicy(store, host.address), SSH)
    session.connect()
    session.close()
    host.faults.rotate_host_key()
    with pytest.raises(HostKeyMismatch):
        session.connect()

    [fresh] = node_lab.add_hosts(1)
    policy = PinningPolicy(HostKeyStore(node_lab.api, node_lab.namespace), fresh.address)
    stranger = paramiko.Ed25519Key.generate() if hasattr(paramiko.Ed25519Key, "generate") \
        else paramiko.ECDSAKey.generate()
    refused = HostSession(fresh.address, "Administrator", stranger, policy, SSH)
    with pytest.raises(Exception, match="cannot authenticate"):
        refused.connect()  # the key was seen (first use), nothing pinned: auth failed
    fresh.faults.rotate_host_key()
    again = HostSession(fresh.address, "Administrator", node_lab.key, policy, SSH)
    with pytest.raises(HostKeyMismatch):
        again.connect()
    assert HostKey.from_pkey(fresh.host_key).line  # the host is fine; syncer is careful


# --- shutdown while a host's services are stopped ---------------------------------------------
def test_a_shutdown_waits_until_the_services_run_again(node_lab: NodeLab) -> None:
    [host] = node_lab.add_hosts(1)
    node_lab.set_fleet("1.0.0")
    node_lab.write_instances()
    assert node_lab.run().ok
    node_lab.set_fleet("1.1.0", kubelet="v1.31.0")
    shutdown = threading.Event()
    steps: list[str] = []

    def on_step(address: str, step: str) -> None:
        steps.append(step)
        if step == "stop-services":
            shutdown.set()

    from syncer.nodes.stage import run_node_stage

    result = run_node_stage(node_lab.api, node_lab.options(), shutdown=shutdown,
                            on_step=on_step)
    assert result.rollout is not None and result.rollout.interrupted
    outcome = result.rollout.outcomes[host.address]
    assert outcome.phase is Phase.INTERRUPTED and outcome.step == "annotate"
    assert steps[-1] == "verify"  # nothing after it started
    for service in ("containerd", "kubelet", "hybrid-overlay-node", "kube-proxy"):
        assert host.scm.state(service).name == "RUNNING", service  # type: ignore[union-attr]
    assert node_lab.run().ok  # the next controller finishes the host


# --- PowerShell as the default shell ------------------------------------------------------------
def test_powershell_default_shell_hosts_join_upgrade_and_leave(node_lab: NodeLab) -> None:
    hosts = node_lab.add_hosts(2, default_shell="powershell")
    node_lab.set_fleet("1.0.0")
    node_lab.write_instances()
    result = node_lab.run()
    assert result.ok, (result.summary(), result.rows)
    for host in hosts:
        node = node_lab.node_of(host)
        assert node is not None
        assert node["metadata"]["annotations"][names.ANNOTATION_SHELL] == "powershell"
    node_lab.set_fleet("1.1.0", kubelet="v1.31.0")
    result = node_lab.run()
    assert result.ok, (result.summary(), result.rows)
    node_lab.write_instances(hosts[:1])
    result = node_lab.run()
    assert result.ok and [r.ok for r in result.removals] == [True]
    assert not hosts[1].fs.exists("C:\\k")


# --- removal of a host that cannot be reached ---------------------------------------------------
def test_an_unreachable_byoh_host_keeps_its_node_until_it_can_be_cleaned(
        node_lab: NodeLab) -> None:
    keep, gone = node_lab.add_hosts(2)
    node_lab.set_fleet("1.0.0")
    node_lab.write_instances()
    assert node_lab.run().ok
    gone.faults.refuse_connections()
    node_lab.write_instances([keep])
    result = node_lab.run()
    [removal] = result.removals
    assert not removal.ok and removal.step == "cleanup"
    node = node_lab.node_of(gone)
    assert node is not None and node["spec"].get("unschedulable") is True
    assert "deconfigure: cleanup" in node["metadata"]["annotations"][
        names.ANNOTATION_LAST_ERROR]
    gone.faults.accept_connections()
    result = node_lab.run()
    assert [r.ok for r in result.removals] == [True]
    assert node_lab.node_of(gone) is None and not gone.fs.exists("C:\\k")

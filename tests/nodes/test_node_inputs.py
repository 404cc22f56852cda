"""read_node_inputs against the real API server: BYOH list, Machines, Nodes, the key,
the DNS rule and removal detection."""

from __future__ import annotations

import json

from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import ed25519
from nodehelpers import (
    create_configmap,
    create_machine,
    create_node,
    create_secret,
    scope_selector,
    unique,
    unique_ip,
)

from syncer import names
from syncer.cluster.client import KubeClient
from syncer.nodes.inputs import HostKind, read_node_inputs


def _resolver(table: dict[str, str]):  # type: ignore[no-untyped-def]
    def resolve(name: str) -> list[str]:
        if name in table:
            return [table[name]]
        raise OSError(f"Name or service not known: {name}")

    return resolve


def _fleet_configmap(
    api: KubeClient, namespace: str, platform: str = "none", **nodes: object
) -> None:
    create_configmap(
        api,
        namespace,
        names.FLEET_CONFIGMAP,
        {
            "fleet": "lab",
            "version": "v7",
            "components.json": json.dumps(
                {"kubelet": {"version": "v1.34.4", "url": "u", "sha256": "0" * 64}}
            ),
            "nodes.json": json.dumps(
                {"platform": platform, "rollout": {"maxUnavailable": 1}, "nodes": nodes}
            ),
            "hosts.json": json.dumps(
                {"10.250.0.1": {"hostKey": "ssh-ed25519 AAAAC3Nz", "labels": {"zone": "a"}}}
            ),
        },
    )


def test_hosts_from_byoh_list_and_machines(api: KubeClient, namespace: str, scope: str) -> None:
    byoh_ip, dns_ip, m1_ip, m2_ip = unique_ip(), unique_ip(), unique_ip(), unique_ip()
    _fleet_configmap(api, namespace)
    create_configmap(
        api,
        namespace,
        names.BYOH_CONFIGMAP,
        {
            byoh_ip: "username=Administrator",
            "win-dns.lab.test": "username=core",
            "10.250.0.1": "username=x",
        },
    )
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.OpenSSH, ser.NoEncryption())
    create_secret(api, namespace, names.PRIVATE_KEY_SECRET, {names.PRIVATE_KEY_SECRET_KEY: pem})
    node_name = unique("byoh-node")
    create_node(api, node_name, ip=byoh_ip, labels={"syncer-test": scope})
    m_node = unique("machine-node")
    create_node(api, m_node, ip=m1_ip, labels={"syncer-test": scope})
    create_machine(api, namespace, "win-aws", ip=m1_ip, node_ref=m_node)
    create_machine(api, namespace, "win-azure", ip=m2_ip, provider_kind="AzureMachineProviderSpec")
    create_machine(
        api, namespace, "win-ignored", ip=unique_ip(), labels={names.LABEL_IGNORE: "true"}
    )
    create_machine(api, namespace, "win-pending", ip=None)

    inputs = read_node_inputs(
        api,
        namespace,
        machine_namespace=namespace,
        resolver=_resolver({"win-dns.lab.test": dns_ip}),
        node_selector=scope_selector(scope),
    )

    assert inputs.blocked is None and inputs.problems == []
    assert inputs.desired is not None and inputs.desired.version == "v7"
    assert inputs.private_key is not None
    pub = key.public_key().public_bytes(ser.Encoding.OpenSSH, ser.PublicFormat.OpenSSH).decode()
    assert inputs.private_key.public_key == pub
    by_address = {h.address: h for h in inputs.hosts}
    byoh = by_address[byoh_ip]
    assert (byoh.kind, byoh.username, byoh.node_name) == (HostKind.BYOH, "Administrator", node_name)
    dns = by_address["win-dns.lab.test"]
    assert (dns.ip, dns.username, dns.node_name, dns.connect_address) == (
        dns_ip,
        "core",
        None,
        dns_ip,
    )
    pinned = by_address["10.250.0.1"]
    assert pinned.pinned_host_key == "ssh-ed25519 AAAAC3Nz" and dict(pinned.labels) == {"zone": "a"}
    aws = by_address[m1_ip]
    assert (aws.kind, aws.username, aws.machine_name, aws.node_name) == (
        HostKind.MACHINE,
        "Administrator",
        "win-aws",
        m_node,
    )
    assert by_address[m2_ip].username == "capi"  # Azure, from the providerSpec
    assert "win-ignored" not in {h.machine_name for h in inputs.hosts}
    assert inputs.waiting_machines == ["win-pending"]
    assert inputs.removed == []


def test_platform_from_fleet_policy_makes_machine_user_capi(
    api: KubeClient, namespace: str, scope: str
) -> None:
    """A Machine whose providerSpec does not name its platform: the Fleet's decides."""
    _fleet_configmap(api, namespace, platform="azure")
    create_machine(api, namespace, "win-1", ip=unique_ip(), provider_kind="ProviderSpec")
    inputs = read_node_inputs(
        api, namespace, machine_namespace=namespace, node_selector=scope_selector(scope)
    )
    assert [h.username for h in inputs.hosts] == ["capi"]


def test_malformed_entry_is_reported_skipped_and_never_removed(
    api: KubeClient, namespace: str, scope: str
) -> None:
    good, bad = unique_ip(), unique_ip()
    create_configmap(
        api, namespace, names.BYOH_CONFIGMAP, {good: "username=a", bad: "Administrator"}
    )
    bad_node = unique("bad")
    create_node(
        api,
        bad_node,
        ip=bad,
        labels={"syncer-test": scope, names.LABEL_BYOH: "true"},
        annotations={names.ANNOTATION_VERSION: "v6"},
    )
    inputs = read_node_inputs(
        api, namespace, machine_namespace=namespace, node_selector=scope_selector(scope)
    )
    assert [h.address for h in inputs.hosts] == [good]
    assert any(bad in str(p) and "username=<user>" in str(p) for p in inputs.problems)
    assert inputs.removed == []  # a typo must not deconfigure the node


def test_removed_byoh_and_machine_nodes(api: KubeClient, namespace: str, scope: str) -> None:
    kept, gone_ip, machine_ip = unique_ip(), unique_ip(), unique_ip()
    create_configmap(api, namespace, names.BYOH_CONFIGMAP, {kept: "username=a"})
    labels = {"syncer-test": scope, names.LABEL_BYOH: "true"}
    kept_node, gone_node, machine_node, foreign = (
        unique(n) for n in ("kept", "gone", "mach", "foreign")
    )
    create_node(
        api, kept_node, ip=kept, labels=labels, annotations={names.ANNOTATION_VERSION: "v6"}
    )
    create_node(
        api,
        gone_node,
        ip=gone_ip,
        labels=labels,
        annotations={names.ANNOTATION_VERSION: "v6", names.ANNOTATION_USERNAME: "core"},
    )
    create_node(
        api,
        machine_node,
        ip=machine_ip,
        labels={"syncer-test": scope},
        annotations={names.ANNOTATION_ADDRESS: machine_ip},
    )
    create_node(api, foreign, ip=unique_ip(), labels={"syncer-test": scope})  # never configured

    inputs = read_node_inputs(
        api, namespace, machine_namespace=namespace, node_selector=scope_selector(scope),
        configured={kept: kept_node, gone_ip: gone_node, machine_ip: machine_node},
    )

    removed = {r.node_name: r for r in inputs.removed}
    assert set(removed) == {gone_node, machine_node}
    assert removed[gone_node].kind == HostKind.BYOH
    assert removed[gone_node].address == gone_ip and removed[gone_node].username == "core"
    assert "no longer listed" in removed[gone_node].reason
    assert removed[machine_node].kind == HostKind.MACHINE
    assert "no Windows Machine" in removed[machine_node].reason


def test_what_a_node_writes_on_itself_decides_nothing(
    api: KubeClient, namespace: str, scope: str
) -> None:
    """A kubelet can write every annotation and status address of its own Node. One that
    claims a host syncer configured (its address marker, WMCO's version and username)
    neither takes that host over nor gets it deconfigured; a Node syncer configured that
    now reports another address is removed at the address syncer recorded."""
    victim_ip, gone_ip, elsewhere = unique_ip(), unique_ip(), unique_ip()
    create_configmap(api, namespace, names.BYOH_CONFIGMAP, {victim_ip: "username=a"})
    labels = {"syncer-test": scope, names.LABEL_BYOH: "true"}
    victim, impostor, gone = unique("victim"), unique("linux-worker"), unique("gone")
    create_node(api, victim, ip=victim_ip, labels=labels,
                annotations={names.ANNOTATION_ADDRESS: victim_ip, names.ANNOTATION_VERSION: "v6"})
    claim = {names.ANNOTATION_ADDRESS: victim_ip, names.ANNOTATION_VERSION: "v6",
             names.ANNOTATION_USERNAME: "Administrator"}
    create_node(api, impostor, ip=victim_ip, labels=labels, annotations=claim)
    create_node(api, gone, ip=elsewhere, labels=labels,
                annotations={names.ANNOTATION_ADDRESS: elsewhere, names.ANNOTATION_VERSION: "v6"})
    inputs = read_node_inputs(api, namespace, machine_namespace=namespace,
                              node_selector=scope_selector(scope),
                              configured={victim_ip: victim, gone_ip: gone})
    assert [(h.address, h.node_name) for h in inputs.hosts] == [(victim_ip, victim)]
    assert [(r.node_name, r.address) for r in inputs.removed] == [(gone, gone_ip)]


def test_dns_failure_blocks_the_round_and_removes_nothing(
    api: KubeClient, namespace: str, scope: str
) -> None:
    gone_ip = unique_ip()
    create_configmap(api, namespace, names.BYOH_CONFIGMAP, {"win-x.lab.test": "username=a"})
    gone = unique("gone")
    create_node(
        api,
        gone,
        ip=gone_ip,
        labels={"syncer-test": scope, names.LABEL_BYOH: "true"},
        annotations={names.ANNOTATION_VERSION: "v6"},
    )
    inputs = read_node_inputs(
        api,
        namespace,
        machine_namespace=namespace,
        resolver=_resolver({}),
        node_selector=scope_selector(scope),
    )
    assert inputs.blocked is not None
    assert (
        "win-x.lab.test" in inputs.blocked and "no host is configured or removed" in inputs.blocked
    )
    assert inputs.removed == []


def test_deleting_windows_instances_removes_every_byoh_node(
    api: KubeClient, namespace: str, scope: str
) -> None:
    node, ip = unique("orphan"), unique_ip()
    create_node(
        api,
        node,
        ip=ip,
        labels={"syncer-test": scope, names.LABEL_BYOH: "true"},
        annotations={names.ANNOTATION_VERSION: "v6"},
    )
    inputs = read_node_inputs(
        api, namespace, machine_namespace=namespace, node_selector=scope_selector(scope),
        configured={ip: node},
    )
    assert [r.node_name for r in inputs.removed] == [node]
    assert any("not found" in str(p) for p in inputs.problems)  # no cloud-private-key
    assert inputs.desired is None


def test_removed_hosts_user_names_are_decrypted_as_wmco_wrote_them(
    api: KubeClient, namespace: str, scope: str
) -> None:
    """WMCO encrypts the username annotation with the private key; without decrypting it
    a removed host cannot be logged in to. A name that cannot be read says so, and the
    removal stops before the drain (deconfigure)."""
    from syncer_lab.wmco import wmco_encrypt

    key = ed25519.Ed25519PrivateKey.generate().private_bytes(
        ser.Encoding.PEM, ser.PrivateFormat.OpenSSH, ser.NoEncryption())
    create_secret(api, namespace, names.PRIVATE_KEY_SECRET, {names.PRIVATE_KEY_SECRET_KEY: key})
    labels = {"syncer-test": scope, names.LABEL_BYOH: "true"}
    sealed, garbled = unique("sealed"), unique("garbled")
    configured = {}
    for name, value in ((sealed, wmco_encrypt("Administrator", key)),
                        (garbled, "wx4ECQMI<wmcoMarker>=AAAA")):
        configured[unique_ip()] = name
        create_node(api, name, ip=list(configured)[-1], labels=labels, annotations={
            names.ANNOTATION_VERSION: "10.19.0", names.ANNOTATION_USERNAME: value})
    inputs = read_node_inputs(api, namespace, machine_namespace=namespace,
                              node_selector=scope_selector(scope), configured=configured)
    removed = {r.node_name: r for r in inputs.removed}
    assert removed[sealed].username == "Administrator"
    assert removed[garbled].username is None
    assert "username annotation" in (removed[garbled].username_problem or "")

"""BYOH kubelet CSR approval with WMCO's rules, against real CSRs in the API server."""

from __future__ import annotations

import base64
import ipaddress
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from nodehelpers import create_node, unique, unique_ip

from syncer.cluster.client import KubeClient
from syncer.nodes.csr import (
    CLIENT_SIGNER,
    SERVING_SIGNER,
    NameMatcher,
    approve_byoh_csrs,
    bootstrapper_user,
    evaluate,
    list_csrs,
    serving_approved,
)
from syncer_lab.kube import ControlPlane

CLIENT = ["digital signature", "client auth"]
SERVING = ["digital signature", "key encipherment", "server auth"]


def csr_pem(
    cn: str,
    org: str = "system:nodes",
    *,
    dns: tuple[str, ...] = (),
    ips: tuple[str, ...] = (),
    rsa_key: bool = False,
) -> bytes:
    key = (
        rsa.generate_private_key(65537, 2048)
        if rsa_key
        else ec.generate_private_key(ec.SECP256R1())
    )
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                x509.NameAttribute(NameOID.COMMON_NAME, cn),
            ]
        )
    )
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns] + [
        x509.IPAddress(ipaddress.ip_address(i)) for i in ips
    ]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def create_csr(api: KubeClient, pem: bytes, signer: str, usages: list[str]) -> str:
    name = unique("csr")
    body = {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": {"request": base64.b64encode(pem).decode(), "signerName": signer, "usages": usages},
    }
    api.request("POST", "/apis/certificates.k8s.io/v1/certificatesigningrequests", body=body)
    return name


def conditions(api: KubeClient, name: str) -> list[dict[str, str]]:
    csr = api.request("GET", f"/apis/certificates.k8s.io/v1/certificatesigningrequests/{name}")
    return list((csr.get("status") or {}).get("conditions") or [])


def ptr(table: dict[str, str]):  # type: ignore[no-untyped-def]
    def reverse(address: str) -> list[str]:
        if address in table:
            return [table[address]]
        raise OSError("host not found")

    return reverse


def node_with_serving_csr(control_plane: ControlPlane, api: KubeClient,
                          scope: str) -> tuple[str, str, str]:
    """A Node of the test's scope and the serving CSR its kubelet files for the Node's IP,
    as the node itself: (IP, Node name, CSR name)."""
    ip, node = unique_ip(), unique("win")
    create_node(api, node, ip=ip, labels={"syncer-test": scope})
    as_node = KubeClient(control_plane.impersonate(
        f"system:node:{node}", ["system:nodes", "system:authenticated"]))
    try:
        return ip, node, create_csr(as_node, csr_pem(f"system:node:{node}", ips=(ip,)),
                                    SERVING_SIGNER, SERVING)
    finally:
        as_node.close()


def test_client_csr_matched_by_reverse_dns_is_approved(api: KubeClient) -> None:
    ip, node = unique_ip(), unique("win")
    name = create_csr(
        api,
        csr_pem(f"system:node:{node}", rsa_key=True),
        CLIENT_SIGNER,
        ["digital signature", "key encipherment", "client auth"],
    )
    decisions = approve_byoh_csrs(api, [ip], reverse=ptr({ip: f"{node}.lab.example.com."}))
    mine = [d for d in decisions if d.name == name]
    assert len(mine) == 1 and mine[0].approved and mine[0].address == ip
    assert "reverse DNS" in mine[0].reason
    [cond] = conditions(api, name)
    assert (cond["type"], cond["status"], cond["reason"]) == ("Approved", "True", "SyncerApprove")
    assert "syncer" in cond["message"] and ip in cond["message"]


def test_reverse_dns_failure_falls_back_to_ssh_hostname(api: KubeClient) -> None:
    ip, node = unique_ip(), unique("win")
    name = create_csr(api, csr_pem(f"system:node:{node}"), CLIENT_SIGNER, CLIENT)
    decisions = approve_byoh_csrs(api, [ip], {ip: node.upper()}, reverse=ptr({}))
    [mine] = [d for d in decisions if d.name == name]
    assert mine.approved and "read over SSH" in mine.reason
    assert conditions(api, name)[0]["type"] == "Approved"


def test_unknown_names_and_bad_contents_are_left_alone(api: KubeClient) -> None:
    ip, node = unique_ip(), unique("win")
    reverse = ptr({ip: node})
    stranger = create_csr(api, csr_pem("system:node:linux-worker-1"), CLIENT_SIGNER, CLIENT)
    wrong_org = create_csr(
        api, csr_pem(f"system:node:{node}", org="system:masters"), CLIENT_SIGNER, CLIENT
    )
    with_san = create_csr(api, csr_pem(f"system:node:{node}", dns=(node,)), CLIENT_SIGNER, CLIENT)
    wrong_usage = create_csr(
        api,
        csr_pem(f"system:node:{node}"),
        CLIENT_SIGNER,
        ["digital signature", "client auth", "server auth"],
    )
    decisions = {d.name: d for d in approve_byoh_csrs(api, [ip], reverse=reverse)}
    assert "matches no BYOH host" in decisions[stranger].reason
    assert "subject O must be exactly system:nodes" in decisions[wrong_org].reason
    assert "no SANs" in decisions[with_san].reason
    assert "usages" in decisions[wrong_usage].reason
    for name in (stranger, wrong_org, with_san, wrong_usage):
        assert not decisions[name].approved
        assert conditions(api, name) == []  # never denied: left for other approvers


def test_client_csr_for_existing_node_is_left_alone(api: KubeClient, scope: str) -> None:
    ip, node = unique_ip(), unique("win")
    create_node(api, node, ip=ip, labels={"syncer-test": scope})
    name = create_csr(api, csr_pem(f"system:node:{node}"), CLIENT_SIGNER, CLIENT)
    [mine] = [d for d in approve_byoh_csrs(api, [ip], reverse=ptr({ip: node})) if d.name == name]
    assert not mine.approved and "already exists" in mine.reason


def test_non_rfc1123_name_is_refused(api: KubeClient) -> None:
    ip = unique_ip()
    name = create_csr(api, csr_pem("system:node:WIN_BOX"), CLIENT_SIGNER, CLIENT)
    [mine] = [
        d for d in approve_byoh_csrs(api, [ip], {ip: "WIN_BOX"}, reverse=ptr({})) if d.name == name
    ]
    assert not mine.approved and "NodeNameValidationFailed" in mine.reason


def test_serving_csr_needs_the_node_and_its_addresses(
    control_plane: ControlPlane, api: KubeClient, scope: str
) -> None:
    ip, node = unique_ip(), unique("win")
    create_node(api, node, ip=ip, labels={"syncer-test": scope})
    as_node = KubeClient(
        control_plane.impersonate(f"system:node:{node}", ["system:nodes", "system:authenticated"])
    )
    try:
        good = create_csr(
            as_node, csr_pem(f"system:node:{node}", dns=(node,), ips=(ip,)), SERVING_SIGNER, SERVING
        )
        stray = create_csr(
            as_node, csr_pem(f"system:node:{node}", ips=("10.99.99.99",)), SERVING_SIGNER, SERVING
        )
    finally:
        as_node.close()
    by_admin = create_csr(api, csr_pem(f"system:node:{node}", ips=(ip,)), SERVING_SIGNER, SERVING)
    decisions = {d.name: d for d in approve_byoh_csrs(api, [ip], reverse=ptr({ip: node}))}
    assert decisions[good].approved and decisions[good].kind == "serving"
    assert not decisions[stray].approved and "10.99.99.99" in decisions[stray].reason
    assert not decisions[by_admin].approved and "not the node" in decisions[by_admin].reason


def test_a_hosts_approval_reads_its_own_node_only(
    control_plane: ControlPlane, api: KubeClient, scope: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hosts waiting for their serving certificates each decide the pending CSRs: a CSR
    of another host is left without reading the cluster, and the host's own reads its
    Node by name — never a LIST of every Node of the cluster."""
    (ip, node, mine), (other_ip, other_node, theirs) = (
        node_with_serving_csr(control_plane, api, scope) for _ in range(2))
    reads: list[str] = []
    request = api.request

    def recording(method: str, path: str, **kw: Any) -> Any:
        if method == "GET" and path.startswith("/api/v1/nodes"):
            reads.append(path)
        return request(method, path, **kw)

    monkeypatch.setattr(api, "request", recording)
    names_by_ip = {ip: node, other_ip: other_node}
    decisions = {d.name: d for d in approve_byoh_csrs(api, [ip], reverse=ptr(names_by_ip))}
    assert decisions[mine].approved
    assert not decisions[theirs].approved
    assert "matches no BYOH host" in decisions[theirs].reason
    assert reads == [f"/api/v1/nodes/{node}"]


def test_serving_csrs_are_listed_by_their_signer(
    control_plane: ControlPlane, api: KubeClient, scope: str
) -> None:
    """A host whose Node exists waits only for its serving certificate: the API server
    selects those (``spec.signerName``), and the client CSRs every join left behind are
    not read again at each poll."""
    client = create_csr(api, csr_pem(f"system:node:{unique('win')}"), CLIENT_SIGNER, CLIENT)
    _, _, serving = node_with_serving_csr(control_plane, api, scope)
    listed = {c["metadata"]["name"] for c in list_csrs(api, SERVING_SIGNER)}
    assert serving in listed and client not in listed
    assert {client, serving} <= {c["metadata"]["name"] for c in list_csrs(api)}


def test_a_decided_csr_is_listed_without_its_request_and_certificate(
    control_plane: ControlPlane, api: KubeClient, scope: str
) -> None:
    """Every poll of a joining host lists every CSR earlier joins left behind: a decided
    one is kept as its signer, requester and conditions — enough to tell a host its
    serving certificate was approved — and a pending one whole, for its approval."""
    ip, node, serving = node_with_serving_csr(control_plane, api, scope)
    decisions = approve_byoh_csrs(api, [ip], reverse=ptr({ip: node}))
    assert [d.name for d in decisions if d.approved] == [serving]
    pem = csr_pem(f"system:node:{unique('win')}")
    pending = create_csr(api, pem, CLIENT_SIGNER, CLIENT)

    listed = {c["metadata"]["name"]: c for c in list_csrs(api)}
    assert listed[pending]["spec"]["request"] == base64.b64encode(pem).decode()
    assert listed[pending]["metadata"]["resourceVersion"]
    decided = listed[serving]
    assert "request" not in decided["spec"] and "certificate" not in decided["status"]
    assert "managedFields" not in decided["metadata"]
    assert decided["spec"]["username"] == f"system:node:{node}"
    assert serving_approved(listed.values(), node)
    approvable = {c["metadata"]["name"] for c in list_csrs(api, pending_only=True)}
    assert pending in approvable and serving not in approvable
    assert serving_approved(list_csrs(api, SERVING_SIGNER), node)
    again = approve_byoh_csrs(api, [ip], reverse=ptr({ip: node}),
                              listed=list_csrs(api, SERVING_SIGNER))
    assert serving not in {d.name for d in again} and not any(d.approved for d in again)


def test_evaluate_ignores_other_signers_and_decided_csrs() -> None:
    pem = base64.b64encode(csr_pem("system:node:a")).decode()
    matcher = NameMatcher(["10.0.0.1"], {"10.0.0.1": "a"}, reverse=ptr({}))
    other = {
        "metadata": {"name": "x"},
        "spec": {"signerName": "example.com/x", "request": pem, "usages": CLIENT},
    }
    assert evaluate(other, matcher, {}).kind is None
    done = {
        "metadata": {"name": "y"},
        "spec": {"signerName": CLIENT_SIGNER, "request": pem, "usages": CLIENT},
        "status": {"conditions": [{"type": "Denied", "status": "True"}]},
    }
    assert evaluate(done, matcher, {}).reason == "not pending"
    fresh = {
        "metadata": {"name": "z"},
        "spec": {"signerName": CLIENT_SIGNER, "request": pem, "usages": CLIENT},
    }
    assert evaluate(fresh, matcher, {}).approved
    # exact match, not WMCO's substring test: "a" must not match host "ab"
    assert not evaluate(
        fresh, NameMatcher(["10.0.0.1"], {"10.0.0.1": "ab"}, reverse=ptr({})), {}
    ).approved


def test_client_csrs_only_from_syncers_bootstrap_identity() -> None:
    """Anyone allowed to create CSRs (another host's still-valid bootstrap token, a user)
    could race a joining host for its node name; only syncer's bootstrapper is heard."""
    pem = base64.b64encode(csr_pem("system:node:a")).decode()
    matcher = NameMatcher(["10.0.0.1"], {"10.0.0.1": "a"}, reverse=ptr({}))
    bootstrapper = bootstrapper_user("openshift-windows-machine-config-operator")
    groups = ["system:serviceaccounts", "system:authenticated"]

    def csr(username: str) -> dict[str, object]:
        return {"metadata": {"name": "c"}, "spec": {
            "signerName": CLIENT_SIGNER, "request": pem, "usages": CLIENT,
            "username": username, "groups": groups}}

    assert evaluate(csr(bootstrapper), matcher, {}, bootstrapper=bootstrapper).approved
    other = evaluate(csr("system:serviceaccount:default:builder"), matcher, {},
                     bootstrapper=bootstrapper)
    assert not other.approved
    assert "not syncer's node bootstrapper" in other.reason

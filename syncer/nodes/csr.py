"""Approve the kubelet CSRs of BYOH hosts, with WMCO's rules.

A BYOH host has no Machine, so the cluster's machine approver ignores its kubelet's
certificate requests; syncer approves them, like WMCO does, and only them:

- only **pending** CSRs (no Approved/Denied condition) are considered;
- **client** CSRs: signer ``kubernetes.io/kube-apiserver-client-kubelet``, subject
  ``CN=system:node:<name>``, ``O=system:nodes`` (exactly), no SANs at all (DNS, IP,
  e-mail, URI), usages exactly what the kubelet asks for (``digital signature``,
  ``client auth`` and, for RSA keys, ``key encipherment``), **no Node of that name
  exists yet** (a client CSR for an existing node is a node re-bootstrapping as someone
  else, or an attack), and filed by syncer's node bootstrapper
  (``system:serviceaccount:<fleet namespace>:syncer-node-bootstrapper``, the credential
  of the bootstrap kubeconfig syncer writes): anyone else allowed to create CSRs cannot
  get a ``system:node:<listed host>`` certificate this way;
- **serving** CSRs: signer ``kubernetes.io/kubelet-serving``, ``CN=system:node:<name>``,
  ``O=system:nodes``, requested by ``system:node:<name>`` itself (groups include
  ``system:nodes`` and ``system:authenticated``), usages ``digital signature``,
  ``server auth`` (and ``key encipherment``), the Node exists and every SAN (DNS name or IP)
  is one of that Node's ``status.addresses``;
- the node name must belong to a BYOH host: it equals (case-insensitively, either the
  whole name or its first label) a reverse-DNS name of one of the listed addresses, or —
  when the reverse lookup fails or does not match — the host name read over SSH (the
  caller passes ``address -> hostname``). WMCO falls back the same way; a reverse-DNS
  failure never aborts approval (a WMCO bug not to repeat). Unlike WMCO's substring test,
  the comparison is exact, so ``win`` does not match ``win-2``;
- then the name must be an RFC 1123 subdomain (WMCO's ``NodeNameValidationFailed``).

Approval goes through the ``approval`` subresource with reason ``SyncerApprove`` and a
message naming syncer and the host. Nothing is ever denied: a CSR syncer does not
recognise is left for the cluster's other approvers. Machine-backed hosts belong to the
cluster machine approver; callers pass only BYOH addresses unless told otherwise.
"""

from __future__ import annotations

import base64
import ipaddress
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from syncer import names
from syncer.cluster.client import ApiError, KubeClient, Resource
from syncer.nodes.annotations import NODES
from syncer.nodes.resolving import ReverseResolver, reverse_lookup

CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
SERVING_SIGNER = "kubernetes.io/kubelet-serving"
NODE_PREFIX = "system:node:"
NODES_GROUP = "system:nodes"
AUTHENTICATED_GROUP = "system:authenticated"
APPROVE_REASON = "SyncerApprove"
CSRS = Resource("certificates.k8s.io", "v1", "CertificateSigningRequest",
                "certificatesigningrequests", False)

CLIENT_USAGES = (
    frozenset({"digital signature", "key encipherment", "client auth"}),
    frozenset({"digital signature", "client auth"}),  # kubelet with a non-RSA key
)
SERVING_USAGES = (
    frozenset({"digital signature", "key encipherment", "server auth"}),
    frozenset({"digital signature", "server auth"}),
)

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_SUBDOMAIN_RE = re.compile(rf"{_LABEL}(\.{_LABEL})*")


def is_rfc1123_subdomain(name: str) -> bool:
    return len(name) <= 253 and bool(_SUBDOMAIN_RE.fullmatch(name))


@dataclass(frozen=True)
class CsrDecision:
    """What syncer made of one CSR."""

    name: str
    node_name: str | None
    kind: str | None  # "client" | "serving" | None (not a kubelet CSR)
    approved: bool
    reason: str  # why it was approved, or why syncer left it alone
    address: str | None = None  # the BYOH address it was matched to


@dataclass(frozen=True)
class ParsedRequest:
    common_name: str
    organizations: tuple[str, ...]
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    other_sans: int  # e-mail and URI SANs (never allowed)


def parse_request(pem: bytes) -> ParsedRequest:
    """Parse a PEM ``CERTIFICATE REQUEST``. Raises ValueError."""
    if b"-----BEGIN CERTIFICATE REQUEST-----" not in pem:
        raise ValueError("PEM block type must be CERTIFICATE REQUEST")
    req = x509.load_pem_x509_csr(pem)
    cns = req.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    orgs = req.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    dns: list[str] = []
    ips: list[str] = []
    other = 0
    try:
        san = req.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    if san is not None:
        dns = [str(v) for v in san.get_values_for_type(x509.DNSName)]
        ips = [str(v) for v in san.get_values_for_type(x509.IPAddress)]
        other = len(list(san)) - len(dns) - len(ips)  # e-mail, URI, other names
    return ParsedRequest(
        common_name=str(cns[0].value) if cns else "",
        organizations=tuple(str(o.value) for o in orgs),
        dns_names=tuple(dns),
        ip_addresses=tuple(ips),
        other_sans=other,
    )


def _pending(csr: Mapping[str, Any]) -> bool:
    conditions = (csr.get("status") or {}).get("conditions") or []
    return not any(c.get("type") in ("Approved", "Denied") for c in conditions)


class NameMatcher:
    """Matches a node name to a BYOH address: reverse DNS first, then the SSH host name.

    Reverse lookups are done once per address and cached for the matcher's life (one
    approval round)."""

    def __init__(
        self,
        addresses: Iterable[str],
        ssh_hostnames: Mapping[str, str] | None = None,
        reverse: ReverseResolver = reverse_lookup,
    ) -> None:
        self.addresses = list(addresses)
        self.ssh_hostnames = dict(ssh_hostnames or {})
        self.reverse = reverse
        self._ptr: dict[str, list[str] | None] = {}

    def _reverse_names(self, address: str) -> list[str] | None:
        if address not in self._ptr:
            try:
                ipaddress.IPv4Address(address)
            except ValueError:
                self._ptr[address] = [address]  # a DNS name is matched directly (WMCO)
            else:
                try:
                    self._ptr[address] = list(self.reverse(address))
                except (OSError, UnicodeError):
                    self._ptr[address] = None  # lookup error: fall back to the SSH name
        return self._ptr[address]

    def match(self, node_name: str) -> tuple[str, str] | None:
        """(address, how) of the host this node name belongs to, or None."""
        for address in self.addresses:
            ptr = self._reverse_names(address)
            if ptr and any(_same_host(node_name, n) for n in ptr):
                return address, f"reverse DNS of {address}"
        for address in self.addresses:
            hostname = self.ssh_hostnames.get(address)
            if hostname and _same_host(node_name, hostname):
                return address, f"host name of {address} read over SSH"
        return None


def _same_host(node_name: str, host: str) -> bool:
    node = node_name.lower().rstrip(".")
    full = host.lower().rstrip(".")
    return node == full or node == full.split(".", 1)[0]


def bootstrapper_user(namespace: str) -> str:
    """The user name of the bootstrap credential syncer hands new hosts."""
    return f"system:serviceaccount:{namespace}:{names.NODE_BOOTSTRAPPER_SERVICE_ACCOUNT}"


def evaluate(
    csr: Mapping[str, Any],
    matcher: NameMatcher,
    nodes: Mapping[str, Mapping[str, Any]],
    bootstrapper: str | None = None,
) -> CsrDecision:
    """Decide one CSR (pure: no API calls). ``nodes`` maps name -> Node (JSON);
    ``bootstrapper``: the only requester whose client CSRs are approved (None: any)."""
    name = str((csr.get("metadata") or {}).get("name", ""))
    spec = csr.get("spec") or {}
    signer = spec.get("signerName")

    def leave(reason: str, node: str | None = None, kind: str | None = None) -> CsrDecision:
        return CsrDecision(name, node, kind, False, reason)

    if signer == CLIENT_SIGNER:
        kind = "client"
    elif signer == SERVING_SIGNER:
        kind = "serving"
    else:
        return leave(f"signer {signer} is not a kubelet signer")
    if not _pending(csr):
        return leave("not pending", kind=kind)
    try:
        req = parse_request(base64.b64decode(spec.get("request") or ""))
    except ValueError as err:
        return leave(f"unreadable request: {err}", kind=kind)
    if not req.common_name.startswith(NODE_PREFIX) or req.common_name == NODE_PREFIX:
        return leave(f"subject CN {req.common_name!r} is not system:node:<name>", kind=kind)
    node_name = req.common_name[len(NODE_PREFIX) :]
    if req.organizations != (NODES_GROUP,):
        return leave(f"subject O must be exactly {NODES_GROUP}", node_name, kind)
    # Whose it is before what the cluster says about it: the hosts of a round poll the
    # pending CSRs together, and another host's CSR costs no Node read.
    found = matcher.match(node_name)
    if found is None:
        return leave(f"{node_name} matches no BYOH host", node_name, kind)
    usages = frozenset(spec.get("usages") or [])
    groups = set(spec.get("groups") or [])
    node = nodes.get(node_name)

    if kind == "client":
        if req.dns_names or req.ip_addresses or req.other_sans:
            return leave("a kubelet client CSR must carry no SANs", node_name, kind)
        if usages not in CLIENT_USAGES:
            return leave(f"usages {sorted(usages)} are not a kubelet client's", node_name, kind)
        if node is not None:
            return leave(f"Node {node_name} already exists", node_name, kind)
        if bootstrapper is not None and spec.get("username") != bootstrapper:
            return leave(f"requested by {spec.get('username')}, not syncer's node bootstrapper",
                         node_name, kind)
    else:
        if req.other_sans:
            return leave("e-mail/URI SANs are not allowed", node_name, kind)
        if usages not in SERVING_USAGES:
            return leave(f"usages {sorted(usages)} are not a kubelet's serving", node_name, kind)
        if spec.get("username") != req.common_name:
            return leave(f"requested by {spec.get('username')}, not the node", node_name, kind)
        if not {NODES_GROUP, AUTHENTICATED_GROUP} <= groups:
            return leave("requester lacks system:nodes/system:authenticated", node_name, kind)
        if node is None:
            return leave(f"Node {node_name} does not exist", node_name, kind)
        node_addresses = {
            str(a.get("address", "")).lower()
            for a in ((node.get("status") or {}).get("addresses") or [])
        }
        strays = [
            san for san in (*req.dns_names, *req.ip_addresses) if san.lower() not in node_addresses
        ]
        if strays:
            return leave(f"SANs {strays} are not addresses of Node {node_name}", node_name, kind)

    address, how = found
    if not is_rfc1123_subdomain(node_name):
        return leave(
            f"node name {node_name} does not comply with RFC 1123 (NodeNameValidationFailed)",
            node_name,
            kind,
        )
    return CsrDecision(name, node_name, kind, True, f"{kind} CSR of {node_name} ({how})", address)


def approve_byoh_csrs(
    api: KubeClient,
    addresses: Iterable[str],
    ssh_hostnames: Mapping[str, str] | None = None,
    *,
    reverse: ReverseResolver = reverse_lookup,
    bootstrapper: str | None = None,
    listed: list[dict[str, Any]] | None = None,
) -> list[CsrDecision]:
    """Approve every pending kubelet CSR that belongs to one of ``addresses`` (BYOH hosts).

    ``ssh_hostnames`` maps address -> host name read over SSH (the fallback); ``listed``:
    the CSRs as :func:`list_csrs` read them (read here if not given). The Node a CSR
    names is read only for a CSR of one of ``addresses``, by name. Returns one decision
    per kubelet CSR seen (approved or left alone, with why)."""
    csrs = [c for c in (list_csrs(api) if listed is None else listed) if _pending(c)]
    if not csrs:
        return []
    nodes = NodesByName(api)
    matcher = NameMatcher(addresses, ssh_hostnames, reverse)
    decisions: list[CsrDecision] = []
    for csr in sorted(csrs, key=lambda c: str(c["metadata"]["name"])):
        decision = evaluate(csr, matcher, nodes, bootstrapper)
        if decision.kind is None:
            continue
        if decision.approved:
            decision = _approve(api, csr, decision)
        decisions.append(decision)
    return decisions


class NodesByName(Mapping[str, Mapping[str, Any]]):
    """The cluster's Nodes, each read by name the first time it is asked for (one GET,
    404 for none): a CSR concerns one Node, and listing every Node of a cluster for it,
    at every poll of every host waiting for its serving certificate, was most of what
    a rollout's node stage decoded."""

    def __init__(self, api: KubeClient) -> None:
        self.api = api
        self._read: dict[str, dict[str, Any] | None] = {}

    def __getitem__(self, name: str) -> Mapping[str, Any]:
        if name not in self._read:
            self._read[name] = self.api.get(NODES, "", name)
        node = self._read[name]
        if node is None:
            raise KeyError(name)
        return node

    def __iter__(self) -> Iterator[str]:  # the Nodes read so far
        return (name for name, node in self._read.items() if node is not None)

    def __len__(self) -> int:
        return sum(node is not None for node in self._read.values())


def list_csrs(api: KubeClient, signer: str | None = None, *,
              pending_only: bool = False) -> list[dict[str, Any]]:
    """Every CertificateSigningRequest of the cluster, or every one for ``signer`` (the
    API server selects on ``spec.signerName``); ``pending_only``: only those no one has
    decided yet, all an approval reads. One LIST, a page at a time: a cluster of hundreds
    of Nodes holds hundreds of them, so a caller that needs them twice reads them once.

    A pending CSR is kept whole (its approval writes it back). Of a decided one only what
    :func:`serving_approved` reads is kept (:func:`_decided`): its request, its
    certificate and its managed fields are most of its bytes, and while hosts join every
    poll lists every CSR the joins before them left behind (1,500 after 500 joins: 6.3
    MiB kept whole)."""
    listed = api.list(CSRS, field_selector=f"spec.signerName={signer}" if signer else "")
    if pending_only:
        return [c for c in listed if _pending(c)]
    return [c if _pending(c) else _decided(c) for c in listed]


def _decided(csr: Mapping[str, Any]) -> dict[str, Any]:
    """A decided CSR as :func:`serving_approved` and :func:`evaluate` read it: name,
    signer, requester, the types of its conditions."""
    spec = csr.get("spec") or {}
    return {
        "metadata": {"name": (csr.get("metadata") or {}).get("name", "")},
        "spec": {"signerName": spec.get("signerName"), "username": spec.get("username")},
        "status": {"conditions": [{"type": c.get("type")}
                                  for c in (csr.get("status") or {}).get("conditions") or []]},
    }


def serving_approved(csrs: Iterable[Mapping[str, Any]], node_name: str) -> bool:
    """Whether the kubelet of ``node_name`` has an approved serving CSR among ``csrs``."""
    for csr in csrs:
        spec = csr.get("spec") or {}
        conditions = (csr.get("status") or {}).get("conditions") or []
        if (spec.get("signerName") == SERVING_SIGNER
                and spec.get("username") == NODE_PREFIX + node_name
                and any(c.get("type") == "Approved" for c in conditions)):
            return True
    return False


def _approve(api: KubeClient, csr: dict[str, Any], decision: CsrDecision) -> CsrDecision:
    path = CSRS.path(name=decision.name)
    condition = {
        "type": "Approved",
        "status": "True",
        "reason": APPROVE_REASON,
        "message": f"Approved by syncer for BYOH host {decision.address}: {decision.reason}",
    }
    for _ in range(3):
        status = dict(csr.get("status") or {})
        status["conditions"] = [*(status.get("conditions") or []), condition]
        body = {**csr, "status": status}
        try:
            api.request("PUT", f"{path}/approval", body=body)
            return decision
        except ApiError as err:
            if err.status != 409:
                return replace(decision, approved=False, reason=f"approval failed: {err}")
        fresh: dict[str, Any] = api.request("GET", path)
        if not _pending(fresh):
            return replace(decision, approved=False, reason="decided by someone else meanwhile")
        csr = fresh
    return replace(decision, approved=False, reason="approval kept conflicting")

"""Stand-in for the cluster side of OVN-Kubernetes' hybrid networking (test control plane).

A real OpenShift cluster runs ovnkube-cluster-manager and its CSR approver; the test
control plane runs neither, so :class:`OVNKubernetes` does the two things Windows nodes
depend on, from ovn-kubernetes' own code:

- **Node subnets**: every Windows Node (``kubernetes.io/os=windows``) without one gets
  ``k8s.ovn.org/hybrid-overlay-node-subnet``, the next ``/hostPrefix`` of the hybrid
  cluster network (``go-controller/pkg/clustermanager/node/node_allocator.go``
  ``hybridOverlayNodeEnsureSubnet``). The network is the one ``network.operator`` names
  (``spec.defaultNetwork.ovnKubernetesConfig.hybridOverlayConfig``), as the cluster
  network operator passes it on.
- **Per-node certificates of ovnkube-node and hybrid-overlay**: a CSR whose CN starts
  with ``system:ovn-node:`` is approved when the acceptance rules of
  ``go-controller/pkg/csrapprover/approver.go`` hold (requester ``system:node:<n>`` or
  ``system:ovn-node:<n>`` with ``<n>`` a DNS subdomain; usages exactly digital signature
  and client auth; groups within system:nodes, system:ovn-nodes, system:authenticated;
  CN ``system:ovn-node:<n>``; O ``[system:ovn-nodes]``; ``expirationSeconds`` set and at
  most a year) and denied otherwise, with the approver's messages. The CSR signer
  stand-in (:mod:`syncer_lab.csr_signer`) issues the certificate.
- **What those certificates may do**: the cluster network operator binds the group
  ``system:ovn-nodes`` to a ClusterRole that reads Nodes and patches them
  (``bindata/network/ovn-kubernetes/common/001-rbac.yaml``, node identity; which node
  fields a node may change is the ovnkube-identity webhook's business, which the
  simulated hybrid-overlay applies itself). :meth:`OVNKubernetes.start` creates both.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import logging
import re
import threading
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID
from kubernetes import client
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)

NODE_SUBNET = "k8s.ovn.org/hybrid-overlay-node-subnet"
NAME_PREFIX = "system:ovn-node"
CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client"
ORGANIZATIONS = ["system:ovn-nodes"]
GROUPS = {"system:nodes", "system:ovn-nodes", "system:authenticated"}
USER_PREFIXES = {"system:node", NAME_PREFIX}
USAGES = {"digital signature", "client auth"}
MAX_SECONDS = 365 * 24 * 3600
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class OVNKubernetes:
    """Allocates hybrid overlay node subnets and approves ovn-node CSRs, in a thread."""

    def __init__(self, api: client.ApiClient, *, hybrid_cidr: str = "10.132.0.0/14",
                 host_prefix: int = 23, poll: float = 0.2) -> None:
        self._api = api
        self._core = client.CoreV1Api(api)
        self._certs = client.CertificatesV1Api(api)
        self.hybrid_cidr = ipaddress.ip_network(hybrid_cidr)
        self.host_prefix = host_prefix
        self.poll = poll
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.allocated: dict[str, str] = {}  # node -> subnet
        self.approved: list[str] = []
        self.denied: dict[str, str] = {}

    def start(self) -> OVNKubernetes:
        self._rbac()
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="ovnk-standin", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.poll):
            try:
                self._subnets()
                self._csrs()
            except Exception:  # the API server may be stopping; keep trying
                log.debug("ovnk stand-in: round failed", exc_info=True)

    def _rbac(self) -> None:
        rbac = client.RbacAuthorizationV1Api(self._api)
        name = "openshift-ovn-kubernetes-node-limited"
        role: Any = {"metadata": {"name": name}, "rules": [
            {"apiGroups": [""], "resources": ["nodes"],
             "verbs": ["get", "list", "watch", "patch", "update"]},
            {"apiGroups": [""], "resources": ["nodes/status"], "verbs": ["patch", "update"]},
        ]}
        binding: Any = {"metadata": {"name": name}, "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                          "name": "system:ovn-nodes"}]}
        for create, body in ((rbac.create_cluster_role, role),
                             (rbac.create_cluster_role_binding, binding)):
            try:
                create(body)
            except ApiException as err:
                if err.status != 409:
                    raise

    # --- node subnets --------------------------------------------------------------------
    @staticmethod
    def _items(listed: Any) -> list[dict[str, Any]]:
        """The items of a LIST read with ``_preload_content=False``, as plain JSON. The
        real controllers follow watches; this stand-in polls, and decoding every Node and
        CSR into the client's models five times a second took a third as much CPU as the
        node stage it serves, in the benchmark's own process."""
        items: list[dict[str, Any]] = json.loads(listed.data).get("items") or []
        return items

    def _subnets(self) -> None:
        nodes = self._items(self._core.list_node(label_selector="kubernetes.io/os=windows",
                                                 _preload_content=False))
        annotations = {n["metadata"]["name"]: n["metadata"].get("annotations") or {}
                       for n in nodes}
        taken = {str(ipaddress.ip_network(a[NODE_SUBNET]))
                 for a in annotations.values() if a.get(NODE_SUBNET)}
        for name, ann in annotations.items():
            if ann.get(NODE_SUBNET):
                continue
            subnet = next(str(s) for s in self.hybrid_cidr.subnets(new_prefix=self.host_prefix)
                          if str(s) not in taken)
            self._core.patch_node(name, {"metadata": {"annotations": {NODE_SUBNET: subnet}}})
            taken.add(subnet)
            self.allocated[name] = subnet

    # --- CSR approval --------------------------------------------------------------------
    def _csrs(self) -> None:
        listing = self._items(self._certs.list_certificate_signing_request(
            _preload_content=False))
        for csr in listing:
            status = csr.get("status") or {}
            decided = {c.get("type") for c in status.get("conditions") or []}
            if status.get("certificate") or decided & {"Approved", "Denied"}:
                continue
            try:
                request = x509.load_pem_x509_csr(base64.b64decode(csr["spec"]["request"]))
            except ValueError:
                continue
            cns = request.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            cn = str(cns[0].value) if cns else ""
            prefix, _, _ = cn.rpartition(":")
            signer = csr["spec"].get("signerName")
            if not cn.startswith(NAME_PREFIX + ":") or signer != CLIENT_SIGNER:
                continue  # not ours: the approver ignores other names and signers
            problem = self._reject(csr, request, cn, prefix)
            self._decide(csr, problem)

    def _reject(self, csr: dict[str, Any], request: x509.CertificateSigningRequest, cn: str,
                prefix: str) -> str | None:
        name, spec = csr["metadata"]["name"], csr["spec"]
        username = spec.get("username")
        user_prefix, _, node = (username or "").rpartition(":")
        if user_prefix not in USER_PREFIXES:
            return f"CSR {name!r} was created by an unexpected user: {username!r}"
        if not _DNS_SUBDOMAIN.match(node):
            return f"extracted node name {node!r} is not a valid DNS subdomain"
        usages, groups = spec.get("usages"), spec.get("groups")
        if set(usages or []) != USAGES:
            return f"CSR {name!r} was created with unexpected usages: {usages}"
        if not set(groups or []) <= GROUPS:
            return f"CSR {name!r} was created by a user with unexpected groups: {groups}"
        if cn != f"{NAME_PREFIX}:{node}":
            return (f"expected the CSR's commonName to be {NAME_PREFIX}:{node!r}, "
                    f"but it is {cn!r}")
        orgs = [str(a.value) for a in
                request.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
        if orgs != ORGANIZATIONS:
            return (f"expected the CSR's organization to be {ORGANIZATIONS}, but it is {orgs}")
        seconds = spec.get("expirationSeconds")
        if seconds is None:
            return f"CSR {name!r} was created without specyfying the expirationSeconds"
        if seconds > MAX_SECONDS:
            return f"CSR {name!r} was created with invalid expirationSeconds value: {seconds}"
        return None

    def _decide(self, csr: dict[str, Any], problem: str | None) -> None:
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        condition = {
            "type": "Denied" if problem else "Approved", "status": "True",
            "reason": "CSRDenied" if problem else "AutoApproved",
            "message": problem or "Auto-approved CSR by ovnkube-csr-approver-controller",
            "lastUpdateTime": now,
        }
        name = csr["metadata"]["name"]
        body = {**csr, "status": dict(csr.get("status") or {})}
        body["status"]["conditions"] = [*(body["status"].get("conditions") or []), condition]
        try:
            self._certs.replace_certificate_signing_request_approval(name, body)  # type: ignore[arg-type]
        except ApiException as err:
            if err.status in (404, 409):
                return
            raise
        if problem:
            self.denied[name] = problem
        else:
            self.approved.append(name)

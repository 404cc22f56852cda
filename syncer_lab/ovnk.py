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

Like the real controllers' informers, it lists once and then follows a watch from that
``resourceVersion`` (listing again only when the watch expires, ``410 Gone``), reading
plain JSON: polling every Windows Node and CSR five times a second cost the benchmarks'
API server and process more CPU than the node stage they measure.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import logging
import re
import threading
from collections.abc import Callable
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
WATCH_SECONDS = 5  # server-side timeout of one watch request
# What a watch event does: (event type, the object as plain JSON).
Handler = Callable[[str, dict[str, Any]], None]
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class OVNKubernetes:
    """Allocates hybrid overlay node subnets and approves ovn-node CSRs, in a thread."""

    def __init__(self, api: client.ApiClient, *, hybrid_cidr: str = "10.132.0.0/14",
                 host_prefix: int = 23, retry: float = 0.2) -> None:
        self._api = api
        self._core = client.CoreV1Api(api)
        self._certs = client.CertificatesV1Api(api)
        self.hybrid_cidr = ipaddress.ip_network(hybrid_cidr)
        self.host_prefix = host_prefix
        self.retry = retry  # after a failed list or watch
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._subnets: dict[str, str] = {}  # Windows Node -> its hybrid overlay subnet
        self.allocated: dict[str, str] = {}  # node -> subnet
        self.approved: list[str] = []
        self.denied: dict[str, str] = {}

    def start(self) -> OVNKubernetes:
        self._rbac()
        if not any(t.is_alive() for t in self._threads):
            self._stop.clear()
            self._threads = [
                threading.Thread(target=self._follow, name=f"ovnk-standin-{what}", daemon=True,
                                 args=(list_fn, handle, selector))
                for what, list_fn, handle, selector in (
                    ("nodes", self._core.list_node, self._node,
                     {"label_selector": "kubernetes.io/os=windows"}),
                    ("csrs", self._certs.list_certificate_signing_request, self._csr, {}),
                )
            ]
            for thread in self._threads:
                thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        self._threads = []

    def _follow(self, list_fn: Any, handle: Handler, selector: dict[str, str]) -> None:
        """List, hand every object to ``handle``, then follow the watch from the list's
        ``resourceVersion`` (short server-side timeouts, so :meth:`stop` is prompt); list
        again after an expired watch or an error. As an informer's relist does, an object
        known before that the new list lacks (deleted meanwhile) is handed on as DELETED."""
        known: set[str] = set()

        def track(kind: str, obj: dict[str, Any]) -> None:
            name = obj["metadata"]["name"]
            if kind == "DELETED":
                known.discard(name)
            else:
                known.add(name)
            handle(kind, obj)

        while not self._stop.is_set():
            try:
                listed = json.loads(list_fn(_preload_content=False, **selector).data)
                items = listed.get("items") or []
                for name in known - {item["metadata"]["name"] for item in items}:
                    track("DELETED", {"metadata": {"name": name}})
                for item in items:
                    track("ADDED", item)
                version = listed["metadata"]["resourceVersion"]
                while not self._stop.is_set() and version is not None:
                    version = self._watch(list_fn, track, selector, version)
            except Exception:  # the API server may be stopping; keep trying
                log.debug("ovnk stand-in: list or watch failed", exc_info=True)
            self._stop.wait(self.retry)

    def _watch(self, list_fn: Any, handle: Handler, selector: dict[str, str],
               version: str) -> str | None:
        """One watch request; the resourceVersion to go on from, None to list again."""
        response = list_fn(watch=True, resource_version=version, timeout_seconds=WATCH_SECONDS,
                           _preload_content=False, **selector)
        try:
            for line in response:  # one JSON event per line
                if not line.strip():
                    continue
                event = json.loads(line)
                if event["type"] == "ERROR":  # 410 Gone: the version is too old
                    return None
                version = event["object"]["metadata"]["resourceVersion"]
                handle(event["type"], event["object"])
                if self._stop.is_set():
                    break
        finally:
            response.close()
            response.release_conn()
        return version

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
    def _node(self, kind: str, node: dict[str, Any]) -> None:
        name = node["metadata"]["name"]
        if kind == "DELETED":
            self._subnets.pop(name, None)
            return
        subnet = (node["metadata"].get("annotations") or {}).get(NODE_SUBNET)
        if subnet:
            self._subnets[name] = str(ipaddress.ip_network(subnet))
            return
        if name in self._subnets:
            return  # allocated here; the watch has not shown the annotation yet
        taken = set(self._subnets.values())
        subnet = next(str(s) for s in self.hybrid_cidr.subnets(new_prefix=self.host_prefix)
                      if str(s) not in taken)
        self._core.patch_node(name, {"metadata": {"annotations": {NODE_SUBNET: subnet}}})
        self._subnets[name] = self.allocated[name] = subnet

    # --- CSR approval --------------------------------------------------------------------
    def _csr(self, kind: str, csr: dict[str, Any]) -> None:
        if kind == "DELETED":
            return
        status = csr.get("status") or {}
        decided = {c.get("type") for c in status.get("conditions") or []}
        if status.get("certificate") or decided & {"Approved", "Denied"}:
            return
        try:
            request = x509.load_pem_x509_csr(base64.b64decode(csr["spec"]["request"]))
        except ValueError:
            return
        cns = request.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        cn = str(cns[0].value) if cns else ""
        prefix, _, _ = cn.rpartition(":")
        signer = csr["spec"].get("signerName")
        if not cn.startswith(NAME_PREFIX + ":") or signer != CLIENT_SIGNER:
            return  # not ours: the approver ignores other names and signers
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

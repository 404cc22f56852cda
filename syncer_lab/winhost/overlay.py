"""The simulated hybrid-overlay: the Windows side of OVN-Kubernetes' hybrid networking.

Started by :class:`~syncer_lab.winhost.programs.Programs` once its flags parsed (and the
base network exists), a :class:`HybridOverlays` worker does what ``hybrid-overlay-node``
does next (ovn-kubernetes ``go-controller/hybrid-overlay/cmd/hybrid-overlay-node``):

1. **Credentials.** With ``--bootstrap-kubeconfig`` (WMCO's way, and syncer's): a per-node
   client certificate, requested with the bootstrap kubeconfig's identity as a CSR for
   signer ``kubernetes.io/kube-apiserver-client`` with CN ``system:ovn-node:<node>``,
   O ``system:ovn-nodes``, usages digital signature + client auth and an
   ``expirationSeconds`` of ``--cert-duration``, written to
   ``<cert-dir>\\\\ovnkube-client-current.pem`` (``pkg/util/kube.go``
   ``StartNodeCertificateManager``). The cluster's OVN-Kubernetes approves it
   (:mod:`syncer_lab.ovnk`). With only ``--k8s-kubeconfig``: that kubeconfig's identity
   (the kubelet's, in syncer's first version).
2. **Its network.** Once its Node carries ``k8s.ovn.org/hybrid-overlay-node-subnet`` (set
   by the cluster), the overlay network ``OVNKubernetesHybridOverlayNetwork`` with that
   subnet and the ``--hybrid-overlay-vxlan-port`` (``ho_node_windows.go`` ``initSelf``).
3. **Its Node's distributed-router MAC** annotation
   (``k8s.ovn.org/hybrid-overlay-distributed-router-gateway-mac``). On OpenShift the
   ovnkube-identity admission webhook lets only ``system:ovn-node:<node>`` identities set
   it (``pkg/ovnwebhook/nodeadmission.go``: "user %q is not allowed to set the following
   annotations on node"); with the kubelet's identity it is refused and the cluster never
   learns how to reach the node's pods. The test control plane has no such webhook, so
   the worker applies its rule before writing, with the webhook's message.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from io import StringIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from ruamel.yaml import YAML

from syncer_lab.pki import csr_object
from syncer_lab.winhost import hns
from syncer_lab.winhost.service_manager import State

if TYPE_CHECKING:
    from kubernetes import client as k8s

    from syncer_lab.winhost.host import SimHost
    from syncer_lab.winhost.programs import Launch, Programs

log = logging.getLogger(__name__)

SERVICE = "hybrid-overlay-node"
NODE_SUBNET = "k8s.ovn.org/hybrid-overlay-node-subnet"
DR_MAC = "k8s.ovn.org/hybrid-overlay-distributed-router-gateway-mac"
CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client"
CERT_FILE = "ovnkube-client-current.pem"


def _duration(text: str) -> int:
    """Seconds of a Go duration as hybrid-overlay takes ``--cert-duration`` (``24h``)."""
    from syncer.durations import parse_flag

    return int(parse_flag(text or "10m"))


class HybridOverlays:
    """The hybrid-overlay workers of a lab's hosts."""

    def __init__(self, programs: Programs, *, poll: float = 0.2, timeout: float = 600.0) -> None:
        self.programs = programs
        self.poll = poll
        self.timeout = timeout
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="winhost-overlay")
        self._stop = threading.Event()
        self.identities: dict[str, str] = {}  # host name -> the identity it runs with
        self.errors: dict[str, str] = {}  # host name -> what went wrong last

    def launch(self, launch: Launch, flags: dict[str, str]) -> None:
        if self._stop.is_set():
            return
        with contextlib.suppress(RuntimeError):  # the pool is shut down
            self._pool.submit(self._run, launch, flags)

    def stop(self) -> None:
        self._stop.set()
        self._pool.shutdown(wait=True, cancel_futures=True)

    # --- the worker ----------------------------------------------------------------------
    def _alive(self, host: SimHost) -> bool:
        return (not self._stop.is_set() and host.up
                and host.scm.state(SERVICE) in (State.START_PENDING, State.RUNNING))

    def _run(self, launch: Launch, flags: dict[str, str]) -> None:
        host = launch.host
        running = self.programs.running(host)
        try:
            api, identity = self._credentials(host, flags)
        except Exception as err:
            # hybrid-overlay-node exits when it has no credentials (its kubeconfig is
            # the kubelet's, written by the kubelet's TLS bootstrap): the service stops.
            self.errors[host.name] = f"credentials: {err}"
            running.hybrid_overlay = self.errors[host.name]
            if host.up and host.scm.state(SERVICE) in (State.START_PENDING, State.RUNNING):
                host.scm.crash(SERVICE, 1)
            return
        self.identities[host.name] = identity
        from kubernetes import client

        core = client.CoreV1Api(api)
        node_name = flags["node"]
        deadline = time.monotonic() + self.timeout
        try:
            while self._alive(host) and time.monotonic() < deadline:
                try:
                    node: Any = core.read_node(node_name)
                except client.exceptions.ApiException as err:
                    self.errors[host.name] = f"node {node_name}: {err.reason}"
                    time.sleep(self.poll)
                    continue
                subnet = (node.metadata.annotations or {}).get(NODE_SUBNET)
                if not subnet:
                    running.hybrid_overlay = "waiting for the node subnet"
                    time.sleep(self.poll)
                    continue
                port = int(flags.get("hybrid-overlay-vxlan-port") or hns.DEFAULT_VXLAN_PORT)
                network = host.hns.ensure_network(hns.OVERLAY_NETWORK, subnet, port)
                mac = "00-15-5D-" + network.id.replace("-", "")[:6].upper()
                self._annotate(core, host, node, identity, mac)
                running.hybrid_overlay = "ready"
                return
        finally:
            closer: Any = api.close  # untyped in the client
            closer()

    def _annotate(self, core: Any, host: SimHost, node: Any, identity: str, mac: str) -> None:
        if (node.metadata.annotations or {}).get(DR_MAC) == mac:
            return
        if identity != f"system:ovn-node:{node.metadata.name}":
            error = (f"user {identity!r} is not allowed to set the following annotations on "
                     f"node: {node.metadata.name!r}: [{DR_MAC}]")
            self.errors[host.name] = f"Failed to set DRMAC annotation on node: {error}"
            log.info("%s: %s", host.name, self.errors[host.name])
            return
        core.patch_node(node.metadata.name, {"metadata": {"annotations": {DR_MAC: mac}}})

    # --- credentials ---------------------------------------------------------------------
    def _kubeconfig(self, host: SimHost, path: str) -> dict[str, Any]:
        doc: dict[str, Any] = YAML(typ="safe").load(
            StringIO(host.fs.read_bytes(path).decode("utf-8-sig")))
        for section, keys in (("clusters", ("certificate-authority",)),
                              ("users", ("client-certificate", "client-key", "tokenFile"))):
            for item in doc.get(section) or []:
                inner = item.get(section[:-1]) or {}
                for key in keys:
                    if isinstance(inner.get(key), str):
                        inner[key] = str(host.fs.resolve(inner[key]))
        return doc

    @staticmethod
    def _client(doc: dict[str, Any]) -> k8s.ApiClient:
        from kubernetes import config

        new_client: Any = config.new_client_from_config_dict
        api: k8s.ApiClient = new_client(doc)
        return api

    def _credentials(self, host: SimHost, flags: dict[str, str]) -> tuple[k8s.ApiClient, str]:
        bootstrap = flags.get("bootstrap-kubeconfig")
        if not bootstrap:
            path = flags.get("k8s-kubeconfig") or ""
            doc = self._kubeconfig(host, path)
            return self._client(doc), self._identity(host, doc)
        cert_dir = flags.get("cert-dir") or ""
        pem_path = f"{cert_dir}\\{CERT_FILE}"
        doc = self._kubeconfig(host, bootstrap)
        if not host.fs.is_file(pem_path):
            self._request_certificate(host, doc, flags, pem_path)
        cluster = (doc.get("clusters") or [{}])[0]
        if flags.get("k8s-apiserver"):
            cluster.setdefault("cluster", {})["server"] = flags["k8s-apiserver"]
        real = str(host.fs.resolve(pem_path))
        own = {
            "apiVersion": "v1", "kind": "Config", "clusters": [cluster],
            "users": [{"name": "ovn-node", "user": {"client-certificate": real,
                                                    "client-key": real}}],
            "contexts": [{"name": "ovn-node", "context": {
                "cluster": cluster.get("name", "cluster"), "user": "ovn-node"}}],
            "current-context": "ovn-node",
        }
        return self._client(own), self._identity(host, own)

    @staticmethod
    def _identity(host: SimHost, doc: dict[str, Any]) -> str:
        """The user name the API server sees for a client certificate kubeconfig."""
        user = (doc.get("users") or [{}])[0].get("user") or {}
        path = user.get("client-certificate")
        if not path:
            return "(token)"
        data = Path(path).read_bytes()
        cert = x509.load_pem_x509_certificates(data)[0]
        cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return str(cn[0].value) if cn else ""

    def _request_certificate(self, host: SimHost, boot: dict[str, Any], flags: dict[str, str],
                             pem_path: str) -> None:
        from kubernetes import client

        name = f"csr-{secrets.token_hex(5)}"
        key, body = csr_object(name, f"system:ovn-node:{flags['node']}", "system:ovn-nodes",
                               CLIENT_SIGNER, ["digital signature", "client auth"],
                               expiration_seconds=_duration(flags.get("cert-duration", "")))
        with self._client(boot) as api:
            certs = client.CertificatesV1Api(api)
            certs.create_certificate_signing_request(body)
            deadline = time.monotonic() + self.timeout
            while time.monotonic() < deadline and self._alive(host):
                obj: Any = certs.read_certificate_signing_request(name)
                conditions = (obj.status.conditions or []) if obj.status else []
                if any(c.type in ("Denied", "Failed") for c in conditions):
                    raise RuntimeError(f"CSR {name} was denied or failed")
                if obj.status and obj.status.certificate:
                    cert = base64.b64decode(obj.status.certificate)
                    key_pem = key.private_bytes(serialization.Encoding.PEM,
                                                serialization.PrivateFormat.TraditionalOpenSSL,
                                                serialization.NoEncryption())
                    host.fs.make_directory(pem_path.rsplit("\\", 1)[0])
                    host.fs.write_bytes(pem_path, cert + key_pem)
                    return
                time.sleep(self.poll)
        raise RuntimeError(f"no certificate for CSR {name}")

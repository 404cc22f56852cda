"""Machine-API simulator: Windows MachineSets become Machines backed by simulated hosts.

The test control plane has the ``machine.openshift.io`` CRDs but no machine controllers.
:class:`MachineAPISimulator` plays the MachineSet controller, the cloud actuator and the
nodelink controller for Windows MachineSets only (template label
``machine.openshift.io/os-id: Windows``), by polling (``interval``) or one
:meth:`reconcile_once` at a time in tests:

- keeps ``spec.replicas`` Machines per MachineSet, named ``<machineset>-<5 chars>``, with
  the template's labels, annotations and spec, an ownerReference (controller) to the
  MachineSet and the finalizer ``machine.machine.openshift.io``; scaling down deletes
  Machines annotated ``machine.openshift.io/delete-machine`` first, then the newest;
  Machines whose MachineSet is gone are deleted (the garbage collector's job);
- "boots an instance" for each new Machine: a :class:`SimHost` in the
  :class:`HostLab`, named like the Machine, whose ``administrators_authorized_keys``
  holds the public half of Secret ``cloud-private-key`` (key ``private-key.pem``) in
  the WMCO namespace, as the ``windows-user-data`` script installs it; the user is
  ``Administrator`` (``capi`` on Azure). Without that Secret the Machine stays
  ``Provisioning``;
- sets ``spec.providerID`` (the Machine API has no ``status.providerID``; the kubelet of
  the host reports the same value in ``Node.spec.providerID``) in the platform's format (from the
  providerSpec kind: ``aws:///<zone>/i-<17 hex>``, ``azure:///subscriptions/…``,
  ``gce://<project>/<zone>/<name>``, ``vsphere://<uuid>``, ``nutanix://<uuid>``, else
  ``sim:///<address>/<name>``), ``status.addresses`` (InternalIP = the host's loopback
  address, InternalDNS and Hostname = the Machine name; on AWS the instance's private DNS
  name, which is also what its metadata service reports as ``local-hostname``) and
  ``status.phase``
  Provisioning → Provisioned → Running (once a Node with that providerID or InternalIP
  exists; then also ``status.nodeRef``);
- an instance's Windows host name is what its image gives it: the Machine name, except
  on vSphere and Nutanix, where a clone of a sysprepped template boots with a generated
  ``WIN-…`` name (WMCO renames those hosts to the Machine name,
  ``controllers/windowsmachine_controller.go``);
- when a Machine is deleted: the host is powered off and removed, the Node deleted, the
  finalizer removed;
- writes MachineSet ``status`` (replicas, fullyLabeledReplicas, readyReplicas,
  availableReplicas, observedGeneration) through the status subresource.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import secrets
import threading
import uuid
from collections.abc import Callable
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from syncer import names
from syncer_lab.winhost.host import SimHost
from syncer_lab.winhost.lab import HostLab

log = logging.getLogger(__name__)

GROUP = names.MACHINE_API_GROUP
VERSION = "v1beta1"
FINALIZER = "machine.machine.openshift.io"
DELETE_ANNOTATION = "machine.openshift.io/delete-machine"
MERGE_PATCH = "application/merge-patch+json"
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def _suffix() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(5))


def platform_of(machine_spec: dict[str, Any]) -> str:
    kind = str(((machine_spec.get("providerSpec") or {}).get("value") or {}).get("kind", ""))
    for prefix, platform in (("AWS", "aws"), ("Azure", "azure"), ("GCP", "gcp"),
                             ("VSphere", "vsphere"), ("Nutanix", "nutanix")):
        if kind.startswith(prefix):
            return platform
    return "none"


def provider_id(platform: str, name: str, address: str, spec: dict[str, Any]) -> str:
    value = (spec.get("providerSpec") or {}).get("value") or {}
    if platform == "aws":
        zone = (value.get("placement") or {}).get("availabilityZone") or "us-east-1a"
        return f"aws:///{zone}/i-0{secrets.token_hex(8)}"
    if platform == "azure":
        group = value.get("resourceGroup") or "sim-rg"
        return (f"azure:///subscriptions/{uuid.uuid4()}/resourceGroups/{group}/providers/"
                f"Microsoft.Compute/virtualMachines/{name}")
    if platform == "gcp":
        return f"gce://{value.get('projectID') or 'sim-project'}/" \
               f"{value.get('zone') or 'us-central1-a'}/{name}"
    if platform in ("vsphere", "nutanix"):
        return f"{platform}://{uuid.uuid4()}"
    return f"sim:///{address}/{name}"


class MachineAPISimulator:
    def __init__(self, api: client.ApiClient, lab: HostLab, *, interval: float = 1.0,
                 namespace: str = names.MACHINE_API_NAMESPACE,
                 wmco_namespace: str = names.WMCO_NAMESPACE,
                 on_host: Callable[[SimHost], None] | None = None) -> None:
        self.api = api
        self.lab = lab
        self.interval = interval
        self.namespace = namespace
        self.wmco_namespace = wmco_namespace
        self.on_host = on_host
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.hosts: dict[str, SimHost] = {}  # Machine name -> host
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._own_api = False

    @classmethod
    def from_kubeconfig(cls, path: str, lab: HostLab, **kwargs: Any) -> MachineAPISimulator:
        from kubernetes import config

        new_client: Any = config.new_client_from_config
        sim = cls(new_client(config_file=path), lab, **kwargs)
        sim._own_api = True
        return sim

    # --- loop ------------------------------------------------------------------------------
    def start(self) -> MachineAPISimulator:
        self._thread = threading.Thread(target=self._loop, name="machine-api-sim", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        if self._own_api:
            closer: Any = self.api.close
            closer()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.reconcile_once()
            except Exception as err:
                log.warning("machine-API simulator pass failed: %s", err)
                self.errors.append(str(err))
            self._stop.wait(self.interval)

    # --- one pass --------------------------------------------------------------------------
    def _list(self, plural: str) -> list[dict[str, Any]]:
        result: Any = self.custom.list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, plural)
        items: list[dict[str, Any]] = result.get("items", [])
        return items

    def reconcile_once(self) -> None:
        machinesets = self._list("machinesets")
        by_uid = {ms["metadata"]["uid"]: ms for ms in machinesets}
        machines = self._list("machines")
        nodes = self._nodes()
        for ms in machinesets:
            if self._is_windows(ms):
                self._scale(ms, [m for m in machines if self._owner(m) == ms["metadata"]["uid"]])
        machines = self._list("machines")
        for machine in machines:
            windows = (machine["metadata"].get("labels") or {}).get(names.LABEL_OS_ID) == "Windows"
            owner = self._owner(machine)
            if machine["metadata"].get("deletionTimestamp"):
                if windows:
                    self._finish_deletion(machine, nodes)
            elif owner is not None and owner not in by_uid:
                self._delete_machine(machine)  # garbage collection of an orphan
            elif windows:
                self._provision(machine, nodes)
        live = {m["metadata"]["name"] for m in machines}
        for name in [n for n in self.hosts if n not in live]:
            self._remove_host(name)
        for ms in machinesets:
            if self._is_windows(ms):
                self._update_status(ms, nodes)

    @staticmethod
    def _is_windows(ms: dict[str, Any]) -> bool:
        labels = (((ms.get("spec") or {}).get("template") or {}).get("metadata") or {}).get(
            "labels") or {}
        return labels.get(names.LABEL_OS_ID) == "Windows"

    @staticmethod
    def _owner(machine: dict[str, Any]) -> str | None:
        for ref in machine["metadata"].get("ownerReferences") or []:
            if ref.get("kind") == "MachineSet" and ref.get("controller"):
                return str(ref["uid"])
        return None

    def _nodes(self) -> list[Any]:
        return list(self.core.list_node().items)

    # --- MachineSet controller -------------------------------------------------------------
    def _scale(self, ms: dict[str, Any], owned: list[dict[str, Any]]) -> None:
        active = [m for m in owned if not m["metadata"].get("deletionTimestamp")]
        want = int((ms.get("spec") or {}).get("replicas") or 0)
        for _ in range(want - len(active)):
            self._create_machine(ms)
        if len(active) > want:
            def created(m: dict[str, Any]) -> str:
                return str(m["metadata"]["creationTimestamp"])

            def marked(m: dict[str, Any]) -> bool:
                return DELETE_ANNOTATION in (m["metadata"].get("annotations") or {})

            # Marked ones first (oldest first), then the newest unmarked.
            doomed = sorted(filter(marked, active), key=created) + sorted(
                (m for m in active if not marked(m)), key=created, reverse=True)
            for machine in doomed[: len(active) - want]:
                self._delete_machine(machine)

    def _create_machine(self, ms: dict[str, Any]) -> None:
        template = (ms.get("spec") or {}).get("template") or {}
        meta = template.get("metadata") or {}
        name = f"{ms['metadata']['name']}-{_suffix()}"
        body: Any = {
            "apiVersion": names.MACHINE_API_VERSION,
            "kind": "Machine",
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "labels": dict(meta.get("labels") or {}),
                "annotations": dict(meta.get("annotations") or {}),
                "finalizers": [FINALIZER],
                "ownerReferences": [{
                    "apiVersion": names.MACHINE_API_VERSION, "kind": "MachineSet",
                    "name": ms["metadata"]["name"], "uid": ms["metadata"]["uid"],
                    "controller": True, "blockOwnerDeletion": True,
                }],
            },
            "spec": dict(template.get("spec") or {}),
        }
        if not body["metadata"]["annotations"]:
            del body["metadata"]["annotations"]
        self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, "machines",
                                                    body)
        log.info("machine-API simulator: created Machine %s", name)

    def _delete_machine(self, machine: dict[str, Any]) -> None:
        with contextlib.suppress(ApiException):
            self.custom.delete_namespaced_custom_object(
                GROUP, VERSION, self.namespace, "machines", machine["metadata"]["name"])

    # --- actuator ----------------------------------------------------------------------------
    def _public_key(self) -> str | None:
        from syncer.nodes.windows.keys import parse_private_key

        try:
            secret = self.core.read_namespaced_secret(names.PRIVATE_KEY_SECRET,
                                                      self.wmco_namespace)
        except ApiException as err:
            if err.status == 404:
                return None
            raise
        data = (secret.data or {}).get(names.PRIVATE_KEY_SECRET_KEY)
        if not data:
            return None
        key = parse_private_key(base64.b64decode(data))
        return str(key.public_key)

    def _provision(self, machine: dict[str, Any], nodes: list[Any]) -> None:
        name = machine["metadata"]["name"]
        spec = machine.get("spec") or {}
        status = machine.get("status") or {}
        host = self.hosts.get(name)
        if host is None:
            public = self._public_key()
            if public is None:
                self._patch_status(name, {"phase": "Provisioning"}, status)
                return
            platform = platform_of(spec)
            users = ("Administrator", "capi") if platform == "azure" else ("Administrator",)
            host = self.lab.add_host(name, authorized_keys=[public], users=users)
            if platform in ("vsphere", "nutanix"):
                host.computer_name = "WIN-" + secrets.token_hex(6).upper()[:11]
            if platform == "aws":
                host.cloud_hostname = "ip-" + host.address.replace(".", "-") + ".ec2.internal"
            host.provider_id = spec.get("providerID") or provider_id(
                platform, name, host.address, spec)
            self.hosts[name] = host
            if self.on_host is not None:
                self.on_host(host)
            if spec.get("providerID") != host.provider_id:
                self.custom.patch_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, "machines", name,
                    {"spec": {"providerID": host.provider_id}}, _content_type=MERGE_PATCH)
        dns = host.cloud_hostname or name
        wanted: dict[str, Any] = {
            "addresses": [
                {"type": "InternalIP", "address": host.address},
                {"type": "InternalDNS", "address": dns},
                {"type": "Hostname", "address": name},
            ],
            "phase": "Provisioned",
        }
        node = self._node_for(host, nodes)
        if node is not None:
            wanted["phase"] = "Running"
            wanted["nodeRef"] = {"kind": "Node", "name": node.metadata.name,
                                 "uid": node.metadata.uid}
        self._patch_status(name, wanted, status)

    def _patch_status(self, name: str, wanted: dict[str, Any], current: dict[str, Any]) -> None:
        if all(current.get(k) == v for k, v in wanted.items()):
            return
        self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, self.namespace, "machines", name, {"status": wanted},
            _content_type=MERGE_PATCH)

    @staticmethod
    def _node_for(host: SimHost, nodes: list[Any]) -> Any:
        for node in nodes:
            if host.provider_id and (node.spec and node.spec.provider_id == host.provider_id):
                return node
        # The nodelink controller falls back to the InternalIP; loopback addresses are
        # reused by later simulated hosts, so the Node must also carry the host's name.
        for node in nodes:
            addresses = (node.status.addresses or []) if node.status else []
            if node.metadata.name == host.name.lower() and any(
                a.type == "InternalIP" and a.address == host.address for a in addresses
            ):
                return node
        return None

    def _finish_deletion(self, machine: dict[str, Any], nodes: list[Any]) -> None:
        name = machine["metadata"]["name"]
        host = self.hosts.get(name)
        if host is not None:
            node = self._node_for(host, nodes)
            self._remove_host(name)
            if node is not None:
                with contextlib.suppress(ApiException):
                    self.core.delete_node(node.metadata.name)
        finalizers = [f for f in machine["metadata"].get("finalizers") or [] if f != FINALIZER]
        with contextlib.suppress(ApiException):
            self.custom.patch_namespaced_custom_object(
                GROUP, VERSION, self.namespace, "machines", name,
                {"metadata": {"finalizers": finalizers or None}}, _content_type=MERGE_PATCH)

    def _remove_host(self, name: str) -> None:
        host = self.hosts.pop(name, None)
        if host is not None:
            self.lab.remove_host(host.name)
            log.info("machine-API simulator: instance of Machine %s deleted", name)

    # --- MachineSet status -----------------------------------------------------------------
    def _update_status(self, ms: dict[str, Any], nodes: list[Any]) -> None:
        owned = [m for m in self._list("machines")
                 if self._owner(m) == ms["metadata"]["uid"]
                 and not m["metadata"].get("deletionTimestamp")]
        ready = 0
        for machine in owned:
            host = self.hosts.get(machine["metadata"]["name"])
            node = self._node_for(host, nodes) if host else None
            conditions = (node.status.conditions or []) if node is not None and node.status else []
            if any(c.type == "Ready" and c.status == "True" for c in conditions):
                ready += 1
        wanted = {
            "replicas": len(owned),
            "fullyLabeledReplicas": len(owned),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": ms["metadata"].get("generation", 1),
        }
        current = ms.get("status") or {}
        if all(current.get(k) == v for k, v in wanted.items()):
            return
        self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, self.namespace, "machinesets", ms["metadata"]["name"],
            {"status": wanted}, _content_type=MERGE_PATCH)


__all__ = ["MachineAPISimulator", "platform_of", "provider_id"]

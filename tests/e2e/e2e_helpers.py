"""Helpers for the end-to-end tests: a whole installation on one machine, and observers.

:class:`World` is what an operator has: a cluster (its own test control plane, so the
controller sees exactly its own Windows Nodes, with the default selector, as in
production), WMCO's namespace with ``cloud-private-key``, simulated Windows hosts, a Git
remote with the fleet (``examples/byoh`` made runnable, :mod:`syncer_lab.demo.fleet`), and
``syncer run`` replicas as child processes.

:class:`Observer` samples, every 100 ms while a rollout runs, what a user would watch:
Nodes labelled ``upgrading`` and the leader's ``/metrics``.

A module with a unique name (not conftest) so the test module can import it.
"""

from __future__ import annotations

import base64
import json
import os
import random
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from syncer import names
from syncer.cluster.client import ApiError, KubeClient
from syncer.nodes.annotations import NodeRecord, list_windows_nodes
from syncer.nodes.windows.keys import parse_private_key
from syncer_lab.demo import fleet
from syncer_lab.gitrepos import WorkRepo, make_bare
from syncer_lab.kube import ControlPlane
from syncer_lab.payloadserver import PayloadServer
from syncer_lab.syncerproc import SyncerProcess
from syncer_lab.winhost import HostLab, SimHost
from syncer_lab.winhost.kubelet import Kubelets

WEBHOOK_SECRET = b"e2e-webhook-secret"
FAST_ELECTION = ["--lease-duration", "3s", "--renew-deadline", "2s", "--retry-period", "200ms"]


def wait_for(predicate: Callable[[], Any], timeout: float, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(every)


def write_secret_volume(root: Path, data: dict[str, bytes]) -> None:
    """Write ``data`` into ``root`` the way the kubelet updates a Secret volume
    (AtomicWriter): files in a new timestamped directory, ``..data`` switched to it by an
    atomic rename, each key a symlink ``key -> ..data/key``."""
    root.mkdir(parents=True, exist_ok=True)
    stamp = f"..{time.time_ns()}"
    (root / stamp).mkdir()
    for key, value in data.items():
        (root / stamp / key).write_bytes(value)
        (root / stamp / key).chmod(0o440)
    link = root / "..data"
    old = os.readlink(link) if link.is_symlink() else None
    os.symlink(stamp, root / "..data_tmp")
    os.rename(root / "..data_tmp", link)
    for key in data:
        if not (root / key).is_symlink():
            os.symlink(f"..data/{key}", root / key)
    if old:
        shutil.rmtree(root / old)


def new_key() -> bytes:
    return ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption())


def public_line(pem: bytes) -> str:
    return parse_private_key(pem).public_key


@dataclass
class World:
    control_plane: ControlPlane
    root: Path
    api: KubeClient = field(init=False)
    lab: HostLab = field(init=False)
    hosts: list[SimHost] = field(default_factory=list)
    author: WorkRepo = field(init=False)
    remote: Path = field(init=False)
    replicas: list[SyncerProcess] = field(default_factory=list)
    release: fleet.Release = field(default_factory=fleet.example_release)
    max_unavailable: int = 1

    def __post_init__(self) -> None:
        self.api = KubeClient(self.control_plane.api_client())
        for namespace in (names.WMCO_NAMESPACE, names.SYSTEM_NAMESPACE):
            self._post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                              "metadata": {"name": namespace}})
        self.webhook_secret = self.root / "webhook-secret"
        self.webhook_secret.write_bytes(WEBHOOK_SECRET)
        self.payload_server = PayloadServer(self.root / "payloads")

    def _post(self, collection: str, body: dict[str, Any]) -> None:
        try:
            self.api.request("POST", collection, body=body)
        except ApiError as err:
            if err.status != 409:
                raise

    # --- the SSH key, as an operator manages it ------------------------------------------
    def set_private_key(self, pem: bytes) -> None:
        """Create or replace Secret ``cloud-private-key`` (``private-key.pem``)."""
        path = f"/api/v1/namespaces/{names.WMCO_NAMESPACE}/secrets"
        body = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": names.PRIVATE_KEY_SECRET,
                             "namespace": names.WMCO_NAMESPACE},
                "data": {names.PRIVATE_KEY_SECRET_KEY: base64.b64encode(pem).decode()}}
        try:
            self.api.request("PUT", f"{path}/{names.PRIVATE_KEY_SECRET}", body=body)
        except ApiError as err:
            if not err.not_found:
                raise
            self.api.request("POST", path, body=body)

    # --- hosts ------------------------------------------------------------------------------
    def start_hosts(self, count: int, authorized_key: str, **options: Any) -> None:
        kubelets = Kubelets(heartbeat_seconds=0.5, status_seconds=1.0, bootstrap_timeout=60.0)
        # A random /24 of 127.0.0.0/8, away from other labs (the demo's starts at 127.0.1.1).
        first = f"127.{random.randint(20, 250)}.{random.randint(1, 250)}.1"
        self.lab = HostLab(self.root / "hosts", kubelets=kubelets, first_address=first).start()
        for i in range(count):
            self.hosts.append(self.lab.add_host(f"WIN-E2E-{i + 1}",
                                                authorized_keys=[authorized_key], **options))

    def nodes(self) -> dict[str, NodeRecord]:
        """Each host's Node, by host address."""
        found = {}
        for node in list_windows_nodes(self.api):
            address = node.annotations.get(names.ANNOTATION_ADDRESS)
            if address:
                found[address] = node
        return found

    def all_at(self, version: str, kubelet: str) -> bool:
        nodes = self.nodes()
        return len(nodes) == len(self.hosts) and all(
            n.version == version and n.kubelet_version == kubelet and n.ready
            and not n.upgrading for n in nodes.values())

    # --- Git ------------------------------------------------------------------------------
    def files(self, release: fleet.Release) -> dict[str, str]:
        payloads = fleet.write_payloads(self.payload_server, release)
        text = fleet.fleet_yaml(release, payloads, self.lab.port)
        text = text.replace("maxUnavailable: 1", f"maxUnavailable: {self.max_unavailable}")
        return {fleet.FLEET_FILE: text,
                fleet.HOSTS_FILE: fleet.hosts_yaml([h.address for h in self.hosts])}

    def seed(self) -> str:
        self.remote = make_bare(self.root / "fleet.git")
        self.author = WorkRepo(self.root / "author", self.remote.as_uri())
        shutil.copytree(fleet.example_dir(), self.author.path, dirs_exist_ok=True)
        sha = self.author.commit("Windows fleet", self.files(self.release))
        self.author.push("main")
        return sha

    def commit(self, message: str, files: dict[str, str]) -> str:
        sha = self.author.commit(message, files)
        self.author.push("main")
        return sha

    def applied_revision(self) -> str:
        path = (f"/api/v1/namespaces/{names.SYSTEM_NAMESPACE}/configmaps/"
                f"{names.INVENTORY_CONFIGMAP}")
        try:
            return str((self.api.request("GET", path).get("data") or {})
                       .get("lastAppliedRevision", ""))
        except ApiError:
            return ""

    # --- controllers -----------------------------------------------------------------------
    def start_replica(self, name: str, *extra: str) -> SyncerProcess:
        args = [
            "--repo", self.remote.as_uri(), "--kubeconfig", str(self.control_plane.kubeconfig),
            "--namespace", names.SYSTEM_NAMESPACE, "--workdir", str(self.root / name),
            "--interval", "10m", "--control-poll-interval", "300ms",
            "--webhook-secret-file", str(self.webhook_secret), *FAST_ELECTION,
            "--payload-allow-networks", "127.0.0.0/8", *extra,
        ]
        proc = SyncerProcess(name, args, self.root / f"{name}.log")
        self.replicas.append(proc)
        if not wait_for(lambda: proc.healthy() or not proc.running(), timeout=60):
            raise AssertionError(f"{name} did not become healthy:\n{proc.tail(50)}")
        assert proc.running(), proc.tail(50)
        return proc

    def leader(self) -> SyncerProcess | None:
        return next((p for p in self.replicas if p.running() and p.is_leader()), None)

    def slot_holders(self) -> set[str]:
        path = (f"/apis/coordination.k8s.io/v1/namespaces/{names.WMCO_NAMESPACE}/leases/"
                f"{names.ROLLOUT_LEASE}")
        lease = self.api.request("GET", path)
        return set(json.loads(lease["metadata"]["annotations"][names.ANNOTATION_SLOT_HOLDERS]))

    def events(self, reason: str) -> list[dict[str, Any]]:
        doc = self.api.request(
            "GET", f"/apis/events.k8s.io/v1/namespaces/{names.SYSTEM_NAMESPACE}/events")
        return [e for e in doc.get("items") or [] if e.get("reason") == reason]

    def close(self) -> None:
        for proc in self.replicas:
            proc.stop(timeout=30)
        if hasattr(self, "lab"):
            self.lab.stop()
        self.payload_server.stop()
        self.api.api_client.close()

    def logs(self) -> str:
        return "\n".join(f"----- {p.name} -----\n{p.tail(80)}" for p in self.replicas)


class Observer:
    """Samples Nodes labelled ``upgrading`` and a controller's metrics in a thread."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.most_upgrading = 0
        self.metrics: list[dict[str, Any]] = []
        self.target: SyncerProcess | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="e2e-observer", daemon=True)

    def __enter__(self) -> Observer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            try:
                upgrading = sum(1 for n in self.world.nodes().values() if n.upgrading)
            except ApiError:
                continue
            self.most_upgrading = max(self.most_upgrading, upgrading)
            target = self.target
            if target is not None and target.running():
                samples = target.metrics()
                if samples:
                    self.metrics.append({  # one scrape: a consistent moment
                        "hosts": target.family("syncer_hosts", "phase", samples),
                        "done": target.metric("syncer_rollout_hosts_done", samples),
                        "total": target.metric("syncer_rollout_hosts_total", samples),
                    })

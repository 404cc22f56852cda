"""The stage the demo plays on, set up like an operator would, and taken down completely.

:class:`DemoLab` starts, in this order, each registered for clean-up on one
:class:`contextlib.ExitStack` (so it unwinds in reverse on success, failure, Ctrl-C and
SIGTERM alike):

1. the test control plane (``syncer_lab.kube.ControlPlane``: kube-apiserver + etcd,
   with the CSR signer stand-in) — the "cluster";
2. WMCO's namespace and the Secret ``cloud-private-key`` holding a freshly generated
   Ed25519 private key, exactly as an operator creates it for WMCO
   (``oc create secret generic cloud-private-key --from-file=private-key.pem=…``);
3. a :class:`~syncer_lab.winhost.HostLab` of N simulated Windows Server 2022 hosts on
   127.0.1.x (SSH on port 22 as root), each authorising that key's public half, with
   simulated kubelets that register Nodes once syncer configures them;
4. a bare Git repository (the "remote") seeded from ``examples/byoh``
   (:mod:`syncer_lab.demo.fleet`), pushed by Alice's clone;
5. the forge simulator (GitHub, GitLab or Gitea API) for the PR comment and commit
   status, with the repository registered;
6. the real controller, ``syncer run``, as a child process
   (:class:`~syncer_lab.syncerproc.SyncerProcess`): webhook receiver, ``/metrics``,
   leader election, a short poll interval, the forge token and webhook secret as files.
   It uses the admin kubeconfig (``manifests/`` holds the least-privilege RBAC a real
   installation uses; the end-to-end tests prove it).

Everything lives in one temp directory (``/dev/shm`` when available, like the control
plane's), removed at the end unless ``keep_files``. Child processes cannot outlive the
demo: they run with ``PR_SET_PDEATHSIG`` and are stopped by the stack.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from syncer import names
from syncer.cluster.client import ApiError, KubeClient
from syncer.nodes.windows.keys import parse_private_key
from syncer.problems import UserError
from syncer_lab.demo import fleet
from syncer_lab.demo.ui import Narrator
from syncer_lab.forge import ForgeSimulator
from syncer_lab.gitrepos import WorkRepo, make_bare
from syncer_lab.payloadserver import PayloadServer
from syncer_lab.syncerproc import SyncerProcess
from syncer_lab.winhost import HostLab, SimHost
from syncer_lab.winhost.kubelet import Kubelets

REPOSITORY = "acme/windows-fleet"  # the repository's name on the simulated forge
WEBHOOK_SECRET = b"demo-webhook-secret"
HOST_PREFIX = "WIN-LAB-"
CONTROLLER = "syncer-demo"
FLEET_OBJECT = "fleet"  # the WindowsFleet syncer run follows (in syncer-system)


@dataclass(frozen=True)
class DemoOptions:
    hosts: int = 3
    forge: str = "github"
    interval: str = "15s"  # the controller's poll interval (webhooks do the fast path)
    keep_files: bool = False


class DemoLab:
    """Everything the story runs against (see the module docstring)."""

    def __init__(self, options: DemoOptions, ui: Narrator) -> None:
        self.options = options
        self.ui = ui
        self.stack = ExitStack()
        shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
        self.root = Path(tempfile.mkdtemp(prefix="syncer-demo-", dir=shm))
        self.stack.callback(self._remove_root)
        self.control_plane: Any = None
        self.api: KubeClient | None = None
        self.lab: HostLab | None = None
        self.hosts: list[SimHost] = []
        self.remote = self.root / "git" / "windows-fleet.git"
        self.author: WorkRepo | None = None
        self.forge: ForgeSimulator | None = None
        self.controller: SyncerProcess | None = None
        self.key_file = self.root / "ssh" / "id_ed25519"
        self.release = fleet.example_release()
        self.payloads: dict[str, dict[str, fleet.Payload]] = {}
        self.payload_server: PayloadServer | None = None

    # --- lifecycle --------------------------------------------------------------------------
    def __enter__(self) -> DemoLab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.stack.close()

    def _remove_root(self) -> None:
        if not self.options.keep_files:
            shutil.rmtree(self.root, ignore_errors=True)

    def _timed(self, what: str, start: Callable[[], str]) -> None:
        began = time.monotonic()
        detail = start()
        self.ui.ok(f"{what}: {detail} ({time.monotonic() - began:.1f}s)")

    def start(self) -> None:
        self._timed("cluster", self._start_cluster)
        self._timed("SSH key", self._create_key)
        self._timed("Windows hosts", self._start_hosts)
        self._timed("Git remote", self._seed_repository)
        self._timed(f"forge ({self.options.forge})", self._start_forge)
        self._timed("controller", self._start_controller)

    # --- the parts ---------------------------------------------------------------------------
    def _start_cluster(self) -> str:
        from syncer_lab.binaries import BinariesMissing
        from syncer_lab.kube import ControlPlane

        try:
            cp = ControlPlane()
        except BinariesMissing as err:
            raise UserError(f"{err} (make setup builds them)") from None
        self.stack.callback(cp.stop)
        cp.start()
        cp.start_csr_signer()
        cp.start_ovn_kubernetes()  # OpenShift's network objects and OVN-K's part
        self.control_plane = cp
        api_client = cp.api_client()
        self.stack.callback(api_client.close)
        self.api = KubeClient(api_client)
        for namespace in (names.WMCO_NAMESPACE, names.SYSTEM_NAMESPACE):
            self._create({"apiVersion": "v1", "kind": "Namespace",
                          "metadata": {"name": namespace}}, "/api/v1/namespaces")
        return f"kube-apiserver {cp.version} + etcd at {cp.server}"

    def _create(self, body: dict[str, Any], collection: str) -> None:
        assert self.api is not None
        try:
            self.api.request("POST", collection, body=body)
        except ApiError as err:
            if err.status != 409:
                raise

    def _create_key(self) -> str:
        pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption())
        self.key_file.parent.mkdir(mode=0o700, parents=True)
        self.key_file.write_bytes(pem)
        self.key_file.chmod(0o600)
        self._create({
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": names.PRIVATE_KEY_SECRET, "namespace": names.WMCO_NAMESPACE},
            "data": {names.PRIVATE_KEY_SECRET_KEY: base64.b64encode(pem).decode()},
        }, f"/api/v1/namespaces/{names.WMCO_NAMESPACE}/secrets")
        key = parse_private_key(pem)
        return (f"Secret {names.WMCO_NAMESPACE}/{names.PRIVATE_KEY_SECRET} "
                f"({key.key_type} {key.fingerprint})")

    @property
    def public_key(self) -> str:
        return parse_private_key(self.key_file.read_bytes()).public_key

    def _start_hosts(self) -> str:
        assert self.control_plane is not None
        lifecycle = self.control_plane.api_client()
        self.stack.callback(lifecycle.close)
        kubelets = Kubelets(heartbeat_seconds=2.0, status_seconds=5.0, lifecycle_api=lifecycle)
        lab = HostLab(self.root / "hosts", kubelets=kubelets)
        self.stack.callback(lab.stop)
        lab.start()
        self.lab = lab
        for i in range(self.options.hosts):
            self.hosts.append(lab.add_host(f"{HOST_PREFIX}{i + 1}",
                                           authorized_keys=[self.public_key]))
        where = ", ".join(h.address for h in self.hosts)
        return (f"{len(self.hosts)} simulated Windows Server 2022, SSH at {where} "
                f"port {lab.port}")

    def payloads_for(self, release: fleet.Release) -> dict[str, fleet.Payload]:
        if self.payload_server is None:
            self.payload_server = PayloadServer(self.root / "payloads")
            self.stack.callback(self.payload_server.stop)
        if release.version not in self.payloads:
            self.payloads[release.version] = fleet.write_payloads(self.payload_server,
                                                                  release)
        return self.payloads[release.version]

    def fleet_files(self, release: fleet.Release) -> dict[str, str]:
        """The two files of the repository that depend on the release and the lab."""
        assert self.lab is not None
        return {
            fleet.FLEET_FILE: fleet.fleet_yaml(release, self.payloads_for(release),
                                               self.lab.port),
            fleet.HOSTS_FILE: fleet.hosts_yaml([h.address for h in self.hosts]),
        }

    def _seed_repository(self) -> str:
        assert self.lab is not None
        make_bare(self.remote)
        author = WorkRepo(self.root / "git" / "alice", self.remote.as_uri())
        fleet.seed(author.path, self.release, self.payloads_for(self.release), self.lab.port,
                   [h.address for h in self.hosts])
        author.git("add", "-A")
        sha = author.commit(f"Windows fleet lab: {len(self.hosts)} BYOH hosts at "
                            f"{self.release.version}")
        author.push("main")
        self.author = author
        return f"{self.remote.as_uri()} main at {sha[:7]} (examples/byoh)"

    def _start_forge(self) -> str:
        sim = ForgeSimulator(self.options.forge, repository=REPOSITORY)  # type: ignore[arg-type]
        self.stack.callback(sim.stop)
        sim.start()
        self.forge = sim
        return f"{sim.api_url} repository {REPOSITORY}"

    def _start_controller(self) -> str:
        assert self.forge is not None and self.control_plane is not None
        secrets = self.root / "secrets"
        secrets.mkdir(mode=0o700)
        (secrets / "webhook-secret").write_bytes(WEBHOOK_SECRET)
        (secrets / "forge-token").write_text(self.forge.token)
        self._create_windowsfleet()
        args = [
            "--fleet-object", FLEET_OBJECT,
            "--kubeconfig", str(self.control_plane.kubeconfig),
            "--namespace", names.SYSTEM_NAMESPACE,
            "--workdir", str(self.root / "controller"),
            "--shutdown-grace", "30s",  # on Ctrl-C, the host step in progress may finish
            "--payload-allow-networks", "127.0.0.0/8",  # the payloads are served locally
            "--webhook-secret-file", str(secrets / "webhook-secret"),
            "--forge", self.options.forge, "--forge-url", self.forge.api_url,
            "--forge-repo", REPOSITORY, "--forge-token-file", str(secrets / "forge-token"),
        ]
        proc = SyncerProcess(CONTROLLER, args, self.root / "controller.log")
        self.stack.callback(proc.stop)
        self.controller = proc
        deadline = time.monotonic() + 60
        while not proc.healthy():
            if not proc.running():
                raise DemoFailed(f"syncer run exited with code {proc.proc.returncode}")
            if time.monotonic() > deadline:
                raise DemoFailed("syncer run did not answer /healthz within 60s")
            time.sleep(0.2)
        return (f"syncer run (pid {proc.pid}) serving webhooks at {proc.url}, /metrics at "
                f"{proc.probe_url}")

    def _create_windowsfleet(self) -> None:
        """The CRD and the WindowsFleet ``syncer run`` follows, as an installation has."""
        assert self.control_plane is not None
        cp = self.control_plane
        cp.kubectl("apply", "--server-side", "-f", str(fleet.crd_file()))
        cp.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                   f"crd/{names.FLEET_RESOURCE_PLURAL}.{names.FLEET_RESOURCE_GROUP}")
        cp.kubectl("create", "namespace", names.SYSTEM_NAMESPACE, check=False)
        cp.kubectl("apply", "-f", "-", input=json.dumps({
            "apiVersion": f"{names.FLEET_RESOURCE_GROUP}/{names.FLEET_RESOURCE_VERSION}",
            "kind": names.FLEET_RESOURCE_KIND,
            "metadata": {"name": FLEET_OBJECT, "namespace": names.SYSTEM_NAMESPACE},
            "spec": {"url": self.remote.as_uri(), "ref": {"branch": "main"},
                     "interval": self.options.interval}}))

    def kubectl_get_fleet(self) -> str:
        """``kubectl get windowsfleet``, as an operator would look."""
        assert self.control_plane is not None
        result = self.control_plane.kubectl(
            "get", "-n", names.SYSTEM_NAMESPACE, names.FLEET_RESOURCE_PLURAL)
        return str(result.stdout)

    # --- helpers for the story ------------------------------------------------------------------
    def applied_revision(self) -> str:
        """The revision the cluster has applied (the inventory's ``lastAppliedRevision``,
        recorded as soon as the objects are applied, before the hosts are changed)."""
        assert self.api is not None
        path = (f"/api/v1/namespaces/{names.SYSTEM_NAMESPACE}/configmaps/"
                f"{names.INVENTORY_CONFIGMAP}")
        try:
            data = self.api.request("GET", path).get("data") or {}
        except ApiError:
            return ""
        return str(data.get("lastAppliedRevision", ""))

    def controller_log(self, lines: int = 30) -> str:
        return self.controller.tail(lines) if self.controller is not None else ""

    def git(self, *args: str) -> str:
        from syncer_lab.gitrepos import run

        with contextlib.suppress(RuntimeError):
            return run("git", "--git-dir", str(self.remote), *args)
        return ""


class DemoFailed(Exception):
    """The story did not complete; the message says which step and why."""

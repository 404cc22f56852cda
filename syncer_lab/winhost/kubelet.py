"""The simulated kubelet: a Node in the test cluster for every host whose kubelet runs.

The kubelet process is started by :class:`~syncer_lab.winhost.programs.Programs` only
once the kubelet's own start-up code accepted its command line and config file
(node-check); :class:`Kubelets` then does what a Windows kubelet does, with the flags and
the *effective* KubeletConfiguration that code produced (``--kubeconfig``,
``--bootstrap-kubeconfig``, ``--cert-dir``, ``--node-ip``, ``--node-labels``,
``--hostname-override``; ``registerWithTaints``, ``providerID``, ``resolvConf``,
``serverTLSBootstrap``):

1. Its version is the first line of the executable it was given (payloads on simulated
   hosts are text files such as ``kubelet v1.30.4``). No version: the process crashes
   (service STOPPED, exit code 1067), like a binary that is not a kubelet.
2. Credentials: the kubeconfig on the host's drive (``C:\\k\\kubeconfig``; Windows paths
   inside it are read from the drive). If only the bootstrap kubeconfig exists, the TLS
   bootstrap: an ECDSA key, a CSR ``system:node:<name>`` / ``O=system:nodes`` for signer
   ``kubernetes.io/kube-apiserver-client-kubelet``, wait for approval and the
   certificate (the test control plane's CSR signer issues it), write
   ``<cert-dir>\\kubelet-client-current.pem`` and a kubeconfig that uses it.
3. Register Node ``<computer name lowercased>`` (or ``--hostname-override``) with the
   labels a kubelet sets itself (``kubernetes.io/os=windows``, ``kubernetes.io/arch``,
   ``kubernetes.io/hostname``, ``node.kubernetes.io/windows-build``) plus
   ``--node-labels``, taints from ``registerWithTaints``, ``spec.providerID``,
   InternalIP (``--node-ip`` or the host's address) and Hostname addresses, and
   ``nodeInfo``. An existing Node is taken over, as a real kubelet does. RBAC and
   NodeRestriction apply: the credentials must be the node's own.
4. ``serverTLSBootstrap``: a ``kubernetes.io/kubelet-serving`` CSR once the Node exists
   (SANs: the node's name and IP), unless ``<cert-dir>\\kubelet-server-current.pem``
   already holds a certificate that still serves: a restarted kubelet keeps its
   certificate and asks for none. The certificate is collected when issued and written
   to that file with its key.
5. Heartbeats, spread over the interval kubelet by kubelet: the Lease every
   ``heartbeat_seconds``; node status every ``status_seconds`` and at once when Ready
   changes. Ready needs containerd running and its pod network ready: a CNI config in
   containerd's ``conf_dir`` (else "NetworkReady=false ... cni plugin not initialized").
6. Pods bound to the node get a sandbox (a ``containerd-shim-runhcs-v1`` process that
   holds its executable, as on Windows) or, when the DNS config, HCS or CNI cannot make
   one, a ``FailedCreatePodSandBox`` Event with the reason (see
   :meth:`Kubelets._sandbox_problem`). Shims outlive containerd and the kubelet; they end
   when their pod is deleted (or the host reboots).
7. When the service stops (or the host goes down) the Node's conditions become
   ``Unknown``, what the node lifecycle controller of a real cluster shows shortly after;
   given ``lifecycle_api`` (admin credentials) the simulator also manages that
   controller's ``not-ready``/``unreachable`` taints.

All API calls use the official ``kubernetes`` client with the kubelet's own credentials.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from io import StringIO
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from ruamel.yaml import YAML

from syncer_lab.pki import csr_object
from syncer_lab.winhost.nodecheck import Verdict
from syncer_lab.winhost.service_manager import Service, State
from syncer_lab.winhost.win32 import Win32Error

if TYPE_CHECKING:
    from kubernetes import client as k8s

    from syncer_lab.winhost.host import SimHost
    from syncer_lab.winhost.programs import Launch, Programs

log = logging.getLogger(__name__)

KUBELET_SERVICE = "kubelet"
CONTAINERD_SERVICE = "containerd"
DEFAULT_KUBECONFIG = "C:\\k\\kubeconfig"
DEFAULT_CERT_DIR = "C:\\var\\lib\\kubelet\\pki"
CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
SERVING_SIGNER = "kubernetes.io/kubelet-serving"
SHIM_IMAGE = "C:\\k\\containerd\\containerd-shim-runhcs-v1.exe"
LEASE_NAMESPACE = "kube-node-lease"
ERROR_PROCESS_ABORTED = 1067
_STARTED = (State.START_PENDING, State.RUNNING)  # the kubelet's process runs
_VERSION = re.compile(r"^\s*\S+\s+(v?\d+\.\d+\.\d+\S*)")
_OS_IMAGES = {17763: "Windows Server 2019 Datacenter", 20348: "Windows Server 2022 Datacenter",
              26100: "Windows Server 2025 Datacenter"}


def payload_version(data: bytes) -> str | None:
    """``kubelet v1.30.4`` -> ``v1.30.4`` (first line of a simulated payload)."""
    first = data.split(b"\n", 1)[0].decode("utf-8", errors="replace")
    match = _VERSION.match(first)
    if not match:
        return None
    version = match.group(1)
    return version if version.startswith("v") else "v" + version


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _rfc3339(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class KubeletArgs:
    """What the kubelet's own start-up code made of its command line and config file
    (node-check's verdict): the flags given and the effective KubeletConfiguration."""

    kubeconfig: str = DEFAULT_KUBECONFIG
    bootstrap_kubeconfig: str | None = None
    cert_dir: str = DEFAULT_CERT_DIR
    node_ip: str | None = None
    node_labels: dict[str, str] = field(default_factory=dict)
    taints: list[dict[str, str]] = field(default_factory=list)
    hostname_override: str | None = None
    provider_id: str | None = None
    config: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_verdict(cls, verdict: Verdict) -> KubeletArgs:
        flags, config = verdict.flags, dict(verdict.config)
        args = cls(config=config)
        args.kubeconfig = flags.get("kubeconfig") or DEFAULT_KUBECONFIG
        args.bootstrap_kubeconfig = flags.get("bootstrap-kubeconfig") or None
        args.cert_dir = (flags.get("cert-dir") or DEFAULT_CERT_DIR).rstrip("\\")
        args.node_ip = flags.get("node-ip") or None
        args.hostname_override = flags.get("hostname-override") or None
        args.provider_id = config.get("providerID") or flags.get("provider-id") or None
        for pair in filter(None, (flags.get("node-labels") or "").split(",")):
            key, _, value = pair.partition("=")
            args.node_labels[key] = value
        for taint in config.get("registerWithTaints") or []:
            args.taints.append({k: str(v) for k, v in taint.items() if k != "timeAdded"})
        return args

    @property
    def resolv_conf(self) -> str:
        return str(self.config.get("resolvConf", "/etc/resolv.conf"))

    @property
    def server_tls_bootstrap(self) -> bool:
        return bool(self.config.get("serverTLSBootstrap"))


class KubeletCrash(Exception):
    """The kubelet process exits (its service goes STOPPED with exit code 1067)."""


@dataclass
class SimKubelet:
    host: SimHost
    version: str
    args: KubeletArgs
    node_name: str
    api: k8s.ApiClient | None = None
    registered: bool = False
    stopped: bool = False
    error: str | None = None
    last_status: float = 0.0
    started_at: dt.datetime = field(default_factory=_now)
    busy: threading.Lock = field(default_factory=threading.Lock)  # one API round at a time
    last_ready: tuple[str, str] | None = None  # the Ready (status, message) last posted
    serving_csr: str | None = None  # the kubelet-serving CSR it asked for
    serving_key: bytes | None = None  # the PEM key of that CSR
    serving_certificate: bytes | None = None
    pods: dict[str, SimPod] = field(default_factory=dict)  # pod UID -> what runs for it
    next_beat: float = 0.0  # time.monotonic() of its next heartbeat (0: not yet set)


@dataclass
class SimPod:
    """A pod bound to the node: its sandbox, or why it could not be made."""

    namespace: str
    name: str
    shim: int | None = None  # pid of its containerd-shim-runhcs-v1 process
    error: str | None = None
    ip: str | None = None


class Kubelets:
    """The simulated kubelets of one :class:`HostLab` (attach each host)."""

    def __init__(self, *, heartbeat_seconds: float = 5.0, status_seconds: float = 20.0,
                 bootstrap_timeout: float = 600.0,
                 lifecycle_api: k8s.ApiClient | None = None) -> None:
        self.heartbeat_seconds = heartbeat_seconds
        # With cluster-admin credentials, also do the node lifecycle controller's taint
        # work: remove node.kubernetes.io/not-ready (added at registration) once Ready,
        # add node.kubernetes.io/unreachable when the kubelet is gone.
        self.lifecycle_api = lifecycle_api
        self.status_seconds = status_seconds
        self.bootstrap_timeout = bootstrap_timeout
        self._lock = threading.Lock()
        self._running: dict[str, SimKubelet] = {}  # host name -> kubelet
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="winhost-kubelet")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._futures: set[Future[None]] = set()
        self._hooks: dict[str, Callable[[Service], None]] = {}
        self.programs: Programs | None = None  # set by the lab: the hosts' containerd configs

    # --- wiring ----------------------------------------------------------------------------
    def attach(self, host: SimHost) -> None:
        """Follow the host's kubelet: :class:`~syncer_lab.winhost.programs.Programs`
        starts it (:meth:`launch`); here only its service stopping is watched."""

        def on_stop(svc: Service) -> None:
            if svc.name.casefold() == KUBELET_SERVICE:
                self._submit(self._stopped, host)

        host.scm.on_stop.append(on_stop)
        self._hooks[host.name] = on_stop

    def detach(self, host: SimHost) -> None:
        hook = self._hooks.pop(host.name, None)
        if hook:
            host.scm.on_stop.remove(hook)
        with self._lock:
            kubelet = self._running.pop(host.name, None)
        if kubelet is not None:
            kubelet.stopped = True
            self._close(kubelet)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._heartbeat_loop,
                                            name="winhost-heartbeats", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            kubelets, self._running = list(self._running.values()), {}
        for kubelet in kubelets:
            self._close(kubelet)

    def get(self, host_name: str) -> SimKubelet | None:
        with self._lock:
            return self._running.get(host_name)

    def _submit(self, fn: Callable[..., None], *args: Any) -> None:
        if self._stop.is_set():
            return
        try:
            future = self._pool.submit(fn, *args)
        except RuntimeError:  # the pool is shut down
            return
        self._futures.add(future)
        future.add_done_callback(self._futures.discard)

    # --- start -----------------------------------------------------------------------------
    def launch(self, launch: Launch, verdict: Verdict) -> None:
        """The kubelet process started with a command line its own code accepted."""
        self._submit(self._start, launch, verdict)

    def _start(self, launch: Launch, verdict: Verdict) -> None:
        host = launch.host
        try:
            kubelet = self._launch(launch, verdict)
        except KubeletCrash as crash:
            self._crash(host, crash)
            return
        with self._lock:
            old = self._running.get(host.name)
            self._running[host.name] = kubelet
        if old is not None:
            old.stopped = True
            self._close(old)
        try:
            with kubelet.busy:
                self._register(kubelet)
                self._post_status(kubelet)
                self._renew_lease(kubelet)
                kubelet.next_beat = time.monotonic() + self.heartbeat_seconds
                kubelet.registered = True
                if kubelet.args.server_tls_bootstrap and not self._has_serving_certificate(
                        kubelet):
                    self._request_serving_certificate(kubelet)
        except KubeletCrash as crash:
            kubelet.error = str(crash)
            self._crash(host, crash)
        except Exception as err:
            kubelet.error = f"{type(err).__name__}: {err}"
            log.warning("%s: kubelet registration failed: %s", host.name, kubelet.error)
        if host.scm.state(KUBELET_SERVICE) not in _STARTED:  # stopped while we registered
            self._stopped(host)

    @staticmethod
    def _crash(host: SimHost, crash: KubeletCrash) -> None:
        log.warning("%s: kubelet exits: %s", host.name, crash)
        host.scm.crash(KUBELET_SERVICE, ERROR_PROCESS_ABORTED)

    def _launch(self, launch: Launch, verdict: Verdict) -> SimKubelet:
        host = launch.host
        try:
            binary = host.fs.read_bytes(launch.image)
        except Win32Error as err:
            raise KubeletCrash(f"cannot read {launch.image}: {err.text}") from err
        version = payload_version(binary)
        if version is None:
            raise KubeletCrash(f"{launch.image} does not state a kubelet version")
        args = KubeletArgs.from_verdict(verdict)
        name = (args.hostname_override or host.computer_name).lower()
        kubelet = SimKubelet(host, version, args, name)
        kubelet.api = self._credentials(kubelet)
        return kubelet

    # --- credentials -----------------------------------------------------------------------
    def _load_kubeconfig(self, host: SimHost, path: str) -> dict[str, Any]:
        doc = YAML(typ="safe").load(StringIO(host.fs.read_bytes(path).decode("utf-8-sig")))
        if not isinstance(doc, dict):
            raise KubeletCrash(f"{path} is not a kubeconfig")
        # Windows paths inside the kubeconfig name files on the host's drive.
        for section, keys in (("clusters", ("certificate-authority",)),
                              ("users", ("client-certificate", "client-key", "tokenFile"))):
            for item in doc.get(section) or []:
                inner = item.get(section[:-1]) or {}
                for key in keys:
                    if isinstance(inner.get(key), str):
                        inner[key] = str(host.fs.resolve(inner[key]))
        return doc

    def _client_from(self, doc: dict[str, Any]) -> k8s.ApiClient:
        from kubernetes import config

        new_client: Any = config.new_client_from_config_dict  # untyped in the client
        api: k8s.ApiClient = new_client(doc)
        return api

    def _credentials(self, kubelet: SimKubelet) -> k8s.ApiClient:
        host, args = kubelet.host, kubelet.args
        if host.fs.is_file(args.kubeconfig):
            return self._client_from(self._load_kubeconfig(host, args.kubeconfig))
        if args.bootstrap_kubeconfig and host.fs.is_file(args.bootstrap_kubeconfig):
            return self._bootstrap(kubelet)
        raise KubeletCrash(f"neither {args.kubeconfig} nor a bootstrap kubeconfig exists")

    def _bootstrap(self, kubelet: SimKubelet) -> k8s.ApiClient:
        from kubernetes import client

        host, args = kubelet.host, kubelet.args
        assert args.bootstrap_kubeconfig is not None
        boot = self._load_kubeconfig(host, args.bootstrap_kubeconfig)
        name = f"node-csr-{secrets.token_hex(8)}"
        key, body = csr_object(name, f"system:node:{kubelet.node_name}", "system:nodes",
                               CLIENT_SIGNER, ["digital signature", "client auth"])
        with self._client_from(boot) as api:
            certs = client.CertificatesV1Api(api)
            certs.create_certificate_signing_request(body)
            deadline = time.monotonic() + self.bootstrap_timeout
            cert_pem = b""
            while time.monotonic() < deadline:
                if self._stop.is_set() or not host.up or kubelet.stopped or (
                    host.scm.state(KUBELET_SERVICE) not in _STARTED
                ):
                    raise KubeletCrash("stopped while waiting for the client certificate")
                obj = certs.read_certificate_signing_request(name)
                conditions = obj.status.conditions or [] if obj.status else []
                if any(c.type in ("Denied", "Failed") for c in conditions):
                    raise KubeletCrash(f"CSR {name} was denied or failed")
                if obj.status and obj.status.certificate:
                    cert_pem = base64.b64decode(obj.status.certificate)
                    break
                time.sleep(0.3)
            else:
                raise KubeletCrash(f"no certificate for CSR {name}")
        key_pem = _key_pem(key)
        pem_path = args.cert_dir + "\\kubelet-client-current.pem"
        host.fs.make_directory(args.cert_dir)
        host.fs.write_bytes(pem_path, cert_pem + key_pem)
        cluster = (boot.get("clusters") or [{}])[0]
        original = YAML(typ="safe").load(
            StringIO(host.fs.read_bytes(args.bootstrap_kubeconfig).decode("utf-8-sig")))
        kubeconfig = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [(original.get("clusters") or [cluster])[0]],
            "users": [{"name": "default-auth", "user": {"client-certificate": pem_path,
                                                        "client-key": pem_path}}],
            "contexts": [{"name": "default-context", "context": {
                "cluster": cluster.get("name", "default-cluster"), "user": "default-auth"}}],
            "current-context": "default-context",
        }
        out = StringIO()
        YAML().dump(kubeconfig, out)
        host.fs.write_bytes(args.kubeconfig, out.getvalue().encode())
        return self._client_from(self._load_kubeconfig(host, args.kubeconfig))

    # --- the Node ----------------------------------------------------------------------------
    def _labels(self, kubelet: SimKubelet) -> dict[str, str]:
        parts = kubelet.host.os_build.split(".")
        labels = {
            "beta.kubernetes.io/arch": "amd64",
            "beta.kubernetes.io/os": "windows",
            "kubernetes.io/arch": "amd64",
            "kubernetes.io/hostname": kubelet.node_name,
            "kubernetes.io/os": "windows",
            "node.kubernetes.io/windows-build": ".".join(parts[:3]),
        }
        labels.update(kubelet.args.node_labels)
        return labels

    def _conditions(self, kubelet: SimKubelet, *, ready: bool | None) -> list[dict[str, Any]]:
        now = _rfc3339(_now())
        since = _rfc3339(kubelet.started_at)
        if ready is None:
            status, reason, message = "Unknown", "NodeStatusUnknown", \
                "Kubelet stopped posting node status."
        else:
            status, message = self._ready(kubelet)
            reason = "KubeletReady" if status == "True" else "KubeletNotReady"
        pressure = "Unknown" if ready is None else "False"
        conditions = [
            {"type": t, "status": pressure, "reason": f"KubeletHas{r}",
             "message": f"kubelet has {m}", "lastHeartbeatTime": now,
             "lastTransitionTime": since}
            for t, r, m in (("MemoryPressure", "SufficientMemory", "sufficient memory"),
                            ("DiskPressure", "NoDiskPressure", "no disk pressure"),
                            ("PIDPressure", "SufficientPID", "sufficient PID available"))
        ]
        conditions.append({"type": "Ready", "status": status, "reason": reason,
                           "message": message, "lastHeartbeatTime": now,
                           "lastTransitionTime": since})
        return conditions

    def _ready(self, kubelet: SimKubelet) -> tuple[str, str]:
        """The Ready condition (status, message): the container runtime must run and its
        network must be ready (pkg/kubelet/kubelet_node_status.go via the CRI status:
        containerd reports NetworkReady=false until a CNI config is loaded)."""
        if kubelet.host.scm.state(CONTAINERD_SERVICE) is not State.RUNNING:
            return "False", "container runtime is down: containerd service is not running"
        problem = self._network_problem(kubelet.host)
        if problem is not None:
            return "False", ("container runtime network not ready: NetworkReady=false "
                             f"reason:NetworkPluginNotReady message:Network plugin returns "
                             f"error: {problem}")
        return "True", "kubelet is posting ready status"

    def _cni_config(self, host: SimHost) -> tuple[dict[str, Any] | None, str, str]:
        """containerd's CNI config (the first in its conf_dir, as libcni sorts them), or
        None, with the conf_dir and bin_dir it reads."""
        if self.programs is None:
            return None, "", ""
        conf_dir, bin_dir = self.programs.cni_dirs(host)
        if not host.fs.is_dir(conf_dir):
            return None, conf_dir, bin_dir
        names = sorted(p.name for p in host.fs.resolve(conf_dir).iterdir()
                       if p.suffix in (".conf", ".conflist", ".json"))
        for name in names:
            try:
                doc = json.loads(host.fs.read_bytes(f"{conf_dir}\\{name}").decode("utf-8-sig"))
            except (ValueError, Win32Error):
                continue
            if isinstance(doc, dict):
                return doc, conf_dir, bin_dir
        return None, conf_dir, bin_dir

    def _network_problem(self, host: SimHost) -> str | None:
        config, conf_dir, _ = self._cni_config(host)
        if config is None:
            return f"cni config load failed: no network config found in {conf_dir}: " \
                   "cni plugin not initialized"
        return None

    def _sandbox_problem(self, kubelet: SimKubelet) -> str | None:
        """Why a pod sandbox cannot be made on this node (None: it can).

        - DNS first (kuberuntime's generatePodSandboxConfig -> GetPodDNS ->
          getHostDNSConfig, pkg/kubelet/network/dns/dns_windows.go): resolvConf must be
          "", "Host", or a file that exists;
        - HCS: without the Containers feature there is no compute service;
        - CNI (containerd's win-overlay plugin): the plugin binary must be in bin_dir and
          the HNS network the config names must exist.
        """
        host = kubelet.host
        resolv = kubelet.args.resolv_conf
        if resolv not in ("", "Host") and not host.fs.is_file(resolv):
            return (f'Unexpected resolver config value: "{resolv}". Expected "", "Host", '
                    "or a path to an existing resolv.conf file.")
        if not host.features.get("Containers"):
            return ("failed to create containerd task: hcs::CreateComputeSystem: The system "
                    "cannot find the file specified. (the Containers feature is not enabled)")
        config, conf_dir, bin_dir = self._cni_config(host)
        if config is None:
            return f"no network config found in {conf_dir}"
        plugin = str(config.get("type") or "")
        if not host.fs.is_file(f"{bin_dir}\\{plugin}.exe"):
            return f'failed to find plugin "{plugin}" in path [{bin_dir}]'
        network = host.hns.network(str(config.get("name") or ""))
        if network is None:
            return f"network {config.get('name')!r} not found"
        subnet = str((config.get("ipam") or {}).get("subnet") or "")
        if subnet != network.subnet:
            return f"ipam subnet {subnet!r} is not the network's subnet {network.subnet!r}"
        return None

    # --- pods ---------------------------------------------------------------------------------
    def _sync_pods(self, kubelet: SimKubelet) -> None:
        """Run the pods bound to this node: a sandbox (and a containerd shim holding
        ``containerd-shim-runhcs-v1.exe``) for each, or the reason it fails as an Event,
        as the kubelet's pod workers do; end the shims of pods that are gone."""
        from kubernetes import client

        core = client.CoreV1Api(kubelet.api)
        # A kubelet's pod source is a reflector over this selector
        # (pkg/kubelet/config/apiserver.go NewSourceApiserver); its LIST asks for
        # resourceVersion 0 (client-go tools/cache/reflector.go relistResourceVersion),
        # which the API server answers from its watch cache, not with a read from etcd.
        # Decoded as JSON, not into model objects: the LIST repeats every heartbeat here.
        answer: Any = core.list_pod_for_all_namespaces(
            field_selector=f"spec.nodeName={kubelet.node_name}", resource_version="0",
            _preload_content=False)
        seen = set()
        for pod in json.loads(_drain(answer))["items"]:
            meta = pod["metadata"]
            uid = meta["uid"]
            seen.add(uid)
            if meta.get("deletionTimestamp") is not None:
                continue
            known = kubelet.pods.get(uid)
            if known is not None and known.shim is not None:
                continue
            sim = known or SimPod(meta["namespace"], meta["name"])
            kubelet.pods[uid] = sim
            problem = self._sandbox_problem(kubelet)
            if problem is not None:
                if problem != sim.error:
                    sim.error = problem
                    self._event(core, pod, "FailedCreatePodSandBox",
                                f"Failed to create pod sandbox: {problem}")
                continue
            sim.error = None
            sim.shim = kubelet.host.scm.add_process(SHIM_IMAGE)
            sim.ip = self._pod_ip(kubelet, sim)
            now = _rfc3339(_now())
            core.patch_namespaced_pod_status(meta["name"], meta["namespace"], {
                "status": {"phase": "Running", "podIP": sim.ip, "hostIP":
                           kubelet.args.node_ip or kubelet.host.address,
                           "conditions": [{"type": "Ready", "status": "True",
                                           "lastTransitionTime": now}]}})
        for uid in [u for u in kubelet.pods if u not in seen]:
            gone = kubelet.pods.pop(uid)
            if gone.shim is not None:
                kubelet.host.scm.end_process(gone.shim, linger=0.2)

    def _pod_ip(self, kubelet: SimKubelet, pod: SimPod) -> str:
        config, _, _ = self._cni_config(kubelet.host)
        subnet = str(((config or {}).get("ipam") or {}).get("subnet") or "")
        try:
            network = ipaddress.ip_network(subnet)
        except ValueError:
            return ""
        used = {p.ip for p in kubelet.pods.values() if p.ip}
        for address in list(network.hosts())[3:]:  # .1 gateway, .2 VIP, .3 reserved
            if str(address) not in used:
                return str(address)
        return ""

    @staticmethod
    def _event(core: Any, pod: dict[str, Any], reason: str, message: str) -> None:
        from kubernetes.client.exceptions import ApiException

        now = _rfc3339(_now())
        meta = pod["metadata"]
        body: Any = {
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {"kind": "Pod", "name": meta["name"],
                               "namespace": meta["namespace"], "uid": meta["uid"],
                               "apiVersion": "v1"},
            "reason": reason, "message": message, "type": "Warning",
            "source": {"component": "kubelet"}, "firstTimestamp": now, "lastTimestamp": now,
            "count": 1,
        }
        try:
            core.create_namespaced_event(meta["namespace"], body)
        except ApiException as err:
            log.info("kubelet: cannot record event %s: %s", reason, err.reason)

    # --- the serving certificate ---------------------------------------------------------------
    @staticmethod
    def _serving_path(kubelet: SimKubelet) -> str:
        # pkg/kubelet/certificate/kubelet.go NewKubeletServerCertificateManager:
        # certificate.NewFileStore("kubelet-server", certDirectory, ...), whose current
        # pair is <prefix>-current.pem, certificate and key in one file
        # (client-go util/certificate/certificate_store.go).
        return kubelet.args.cert_dir + "\\kubelet-server-current.pem"

    def _has_serving_certificate(self, kubelet: SimKubelet) -> bool:
        """Whether the certificate store holds a serving certificate the certificate
        manager keeps at start (client-go util/certificate/certificate_manager.go:
        ``getCurrentCertificateOrBootstrap`` takes the current pair if not expired; no
        rotation before ``nextRotationDeadline``, 70-90 % of its lifetime — here the
        earliest, 70 % —, or while it lacks the template's CN, organisation, DNS name
        or IP, ``certSatisfiesTemplateLocked``)."""
        host, path = kubelet.host, self._serving_path(kubelet)
        if not host.fs.is_file(path):
            return False
        pem = host.fs.read_bytes(path)
        try:
            cert = x509.load_pem_x509_certificate(pem)
            sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except (ValueError, x509.ExtensionNotFound):
            return False
        begins, ends = cert.not_valid_before_utc, cert.not_valid_after_utc
        if _now() >= begins + (ends - begins) * 0.7:
            return False
        subject = cert.subject
        ip = ipaddress.ip_address(kubelet.args.node_ip or host.address)
        if ([a.value for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
                != [f"system:node:{kubelet.node_name}"]
                or "system:nodes" not in [
                    a.value for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
                or kubelet.node_name not in sans.get_values_for_type(x509.DNSName)
                or ip not in sans.get_values_for_type(x509.IPAddress)):
            return False
        kubelet.serving_certificate = pem
        return True

    def _request_serving_certificate(self, kubelet: SimKubelet) -> None:
        """serverTLSBootstrap: a kubelet-serving CSR once the Node exists
        (pkg/kubelet/certificate/kubelet.go NewKubeletServerCertificateManager: CN
        system:node:<name>, O system:nodes, the node's addresses as SANs)."""
        from kubernetes import client

        ip = kubelet.args.node_ip or kubelet.host.address
        name = f"csr-{secrets.token_hex(5)}"
        key, body = csr_object(
            name, f"system:node:{kubelet.node_name}", "system:nodes", SERVING_SIGNER,
            ["digital signature", "server auth"],
            sans=[x509.DNSName(kubelet.node_name), x509.IPAddress(ipaddress.ip_address(ip))])
        client.CertificatesV1Api(kubelet.api).create_certificate_signing_request(body)
        kubelet.serving_csr = name
        kubelet.serving_key = _key_pem(key)

    def _collect_serving_certificate(self, kubelet: SimKubelet) -> None:
        from kubernetes import client

        assert kubelet.serving_csr is not None
        obj: Any = client.CertificatesV1Api(kubelet.api).read_certificate_signing_request(
            kubelet.serving_csr)
        if obj.status and obj.status.certificate:
            assert kubelet.serving_key is not None
            kubelet.serving_certificate = base64.b64decode(obj.status.certificate)
            host = kubelet.host
            host.fs.make_directory(kubelet.args.cert_dir)
            host.fs.write_bytes(self._serving_path(kubelet),
                                kubelet.serving_certificate + kubelet.serving_key)

    def _status(self, kubelet: SimKubelet, *, ready: bool | None) -> dict[str, Any]:
        host = kubelet.host
        build = host.os_build.split(".")
        containerd = "containerd://unknown"
        try:
            exe = host.scm.get(CONTAINERD_SERVICE).executable
            version = payload_version(host.fs.read_bytes(exe))
            if version:
                containerd = "containerd://" + version.lstrip("v")
        except Win32Error:
            pass
        resources = {"cpu": "4", "memory": "16776740Ki", "pods": "110",
                     "ephemeral-storage": "104857600Ki"}
        return {
            "conditions": self._conditions(kubelet, ready=ready),
            "addresses": [
                {"type": "InternalIP", "address": kubelet.args.node_ip or host.address},
                {"type": "Hostname", "address": kubelet.node_name},
            ],
            "capacity": resources,
            "allocatable": resources,
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": host.name,
                "systemUUID": host.name.upper(),
                "bootID": host.boot_id,
                "kernelVersion": host.os_build,
                "osImage": _OS_IMAGES.get(int(build[2]) if len(build) > 2 else 0,
                                          "Windows Server Datacenter"),
                "containerRuntimeVersion": containerd,
                "kubeletVersion": kubelet.version,
                "kubeProxyVersion": "",
                "operatingSystem": "windows",
                "architecture": "amd64",
            },
        }

    def _register(self, kubelet: SimKubelet) -> None:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        core = client.CoreV1Api(kubelet.api)
        spec: dict[str, Any] = {}
        if kubelet.args.taints:
            spec["taints"] = kubelet.args.taints
        provider_id = kubelet.args.provider_id or kubelet.host.provider_id
        if provider_id:
            spec["providerID"] = provider_id
        body: Any = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": kubelet.node_name, "labels": self._labels(kubelet),
                         "annotations": {"node.alpha.kubernetes.io/ttl": "0"}},
            "spec": spec,
            "status": self._status(kubelet, ready=True),
        }
        try:
            core.create_node(body)
        except ApiException as err:
            if err.status != 409:
                raise
            # A kubelet takes over an existing Node of its name and refreshes its labels.
            core.patch_node(kubelet.node_name, {"metadata": {"labels": self._labels(kubelet)}})

    def _post_status(self, kubelet: SimKubelet, *, ready: bool | None = True) -> None:
        from kubernetes import client

        core = client.CoreV1Api(kubelet.api)
        status = self._status(kubelet, ready=ready)
        core.patch_node_status(kubelet.node_name, {"status": status})
        kubelet.last_status = time.monotonic()
        kubelet.last_ready = self._ready(kubelet) if ready else None
        if self.lifecycle_api is not None:
            self._lifecycle_taints(kubelet.node_name, ready)

    def _lifecycle_taints(self, node_name: str, ready: bool | None) -> None:
        """The node lifecycle controller's taints. Like it (nodelifecycle's
        SwapNodeControllerTaint, under clientretry.RetryOnConflict), a conflict with
        another writer of the Node is retried on the fresh object, never given up on."""
        from kubernetes.client.exceptions import ApiException

        for attempt in range(10):
            try:
                self._swap_taints(node_name, ready)
                return
            except ApiException as err:
                if err.status != 409 or attempt == 9:
                    raise
                time.sleep(0.01 * (attempt + 1))

    def _swap_taints(self, node_name: str, ready: bool | None) -> None:
        from kubernetes import client

        core = client.CoreV1Api(self.lifecycle_api)
        node: Any = core.read_node(node_name)
        taints = [t for t in (node.spec.taints or []) if t.key not in (
            "node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")]
        if ready is None:
            taints.append(client.V1Taint(key="node.kubernetes.io/unreachable",
                                         effect="NoSchedule"))
        if [t.key for t in taints] != [t.key for t in (node.spec.taints or [])]:
            body: Any = {"spec": {"taints": [
                {"key": t.key, "value": t.value, "effect": t.effect} for t in taints]},
                "metadata": {"resourceVersion": node.metadata.resource_version}}
            core.patch_node(node_name, body, _content_type="application/merge-patch+json")

    def _renew_lease(self, kubelet: SimKubelet) -> None:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        leases = client.CoordinationV1Api(kubelet.api)
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        body: Any = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": kubelet.node_name, "namespace": LEASE_NAMESPACE},
            "spec": {"holderIdentity": kubelet.node_name, "leaseDurationSeconds": 40,
                     "renewTime": now},
        }
        try:  # the answer is not decoded: no model objects made every heartbeat
            _drain(leases.patch_namespaced_lease(kubelet.node_name, LEASE_NAMESPACE,
                                                 {"spec": body["spec"]},
                                                 _preload_content=False))
        except ApiException as err:
            if err.status != 404:
                raise
            try:
                leases.create_namespaced_lease(LEASE_NAMESPACE, body)
            except ApiException as again:
                if again.status != 409:
                    raise
                leases.patch_namespaced_lease(kubelet.node_name, LEASE_NAMESPACE,
                                              {"spec": body["spec"]})

    # --- heartbeats and stop ------------------------------------------------------------------
    def _heartbeat_loop(self) -> None:
        """Each running kubelet beats every ``heartbeat_seconds`` counted from its own
        start, as every kubelet runs its own lease loop
        (component-helpers/apimachinery/lease/controller.go ``Run``:
        ``wait.JitterUntilWithContext(ctx, c.sync, c.renewInterval, 0.04, true)``): a
        fleet's renewals arrive spread over the interval, not all in the same instant."""
        while True:
            now = time.monotonic()
            with self._lock:
                kubelets = [k for k in self._running.values() if not k.stopped]
            due = []
            for kubelet in kubelets:
                if not kubelet.next_beat:
                    kubelet.next_beat = now + self.heartbeat_seconds
                elif kubelet.next_beat <= now:
                    missed = int((now - kubelet.next_beat) // self.heartbeat_seconds)
                    kubelet.next_beat += self.heartbeat_seconds * (missed + 1)
                    due.append(kubelet)
            for kubelet in due:
                self._submit(self._beat, kubelet)
            wake = min((k.next_beat for k in kubelets), default=now + self.heartbeat_seconds)
            if self._stop.wait(min(max(wake - time.monotonic(), 0.01), 0.5)):
                return

    def _beat(self, kubelet: SimKubelet) -> None:
        if kubelet.stopped or not kubelet.busy.acquire(blocking=False):
            return  # stopped, or registering / beating already
        try:
            self._beat_locked(kubelet)
        finally:
            kubelet.busy.release()

    def _beat_locked(self, kubelet: SimKubelet) -> None:
        try:
            if not kubelet.registered:
                self._register(kubelet)
                kubelet.registered = True
                self._post_status(kubelet)
            elif (time.monotonic() - kubelet.last_status >= self.status_seconds
                  or self._ready(kubelet) != kubelet.last_ready):
                self._post_status(kubelet)  # at once when Ready changes (node status sync)
            self._renew_lease(kubelet)
            if kubelet.serving_csr and kubelet.serving_certificate is None:
                self._collect_serving_certificate(kubelet)
            self._sync_pods(kubelet)
            kubelet.error = None
        except Exception as err:
            kubelet.error = f"{type(err).__name__}: {err}"
            log.info("%s: kubelet heartbeat failed: %s", kubelet.host.name, kubelet.error)

    def _stopped(self, host: SimHost) -> None:
        with self._lock:
            kubelet = self._running.pop(host.name, None)
        if kubelet is None:
            return
        kubelet.stopped = True
        if kubelet.registered:
            try:
                with kubelet.busy:
                    self._post_status(kubelet, ready=None)
            except Exception as err:
                log.info("%s: could not mark the Node unknown: %s", host.name, err)
        self._close(kubelet)

    @staticmethod
    def _close(kubelet: SimKubelet) -> None:
        api: Any = kubelet.api
        if api is not None:
            try:
                api.close()
            except Exception:
                log.debug("closing the kubelet's client failed", exc_info=True)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """The key as a kubelet's certificate store writes it (an ``EC PRIVATE KEY`` block,
    keyutil.ECPrivateKeyBlockType), not the PKCS#8 of :func:`syncer_lab.pki.key_pem`."""
    pem: bytes = key.private_bytes(serialization.Encoding.PEM,
                                   serialization.PrivateFormat.TraditionalOpenSSL,
                                   serialization.NoEncryption())
    return pem


def _drain(answer: Any) -> bytes:
    """The body of an answer asked for with ``_preload_content=False``, its connection
    back in the pool."""
    try:
        data: bytes = answer.data
    finally:
        answer.release_conn()
    return data

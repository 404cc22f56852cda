"""A real Kubernetes control plane (etcd + kube-apiserver) on loopback, for tests and the demo.

Server-side apply, managedFields, resourceVersion conflicts, CRD validation, RBAC and
evictions behave in ways no fake reproduces, so syncer is tested against the real API
server, run the way controller-runtime's envtest runs it:

- **Binaries** come from :mod:`syncer_lab.binaries` (built once from Go modules by
  ``tools/kube/build.sh``, cached under ``~/.cache/syncer/kube/<version>/bin``).
- **etcd** listens on a free loopback port with its data dir in a per-instance temp dir
  (on ``/dev/shm`` when available) and ``--unsafe-no-fsync``: nothing is meant to survive.
- **kube-apiserver** serves HTTPS on a free loopback port with a serving certificate from a
  fresh cluster CA (:mod:`syncer_lab.pki`), ``Node,RBAC`` authorization, the default
  admission plugins plus ``NodeRestriction``, and ServiceAccount token signing keys, so the
  TokenRequest API works. The admin is a client certificate ``CN=admin, O=system:masters``.
- After ``/readyz`` answers ok, the harness installs the ``machine.openshift.io`` MachineSet
  and Machine CRDs (``crds/``), waits until they are Established, and creates the
  ``openshift-machine-api`` namespace, so rendered MachineSets apply for real.

There is **no kube-controller-manager**. What that means (see docs/development.md, "Development and
tests"): deleted namespaces stay ``Terminating`` forever, CSRs are never signed, no
``default`` ServiceAccount appears in new namespaces, ServiceAccount token Secrets are
not filled, PodDisruptionBudget status is never computed, garbage collection of
dependents and node lifecycle (taints, pod eviction on NotReady) never happen,
aggregated ClusterRoles (``admin``, ``edit``, ``view``) stay empty. Stand-ins, clearly
labelled: :meth:`ControlPlane.start_csr_signer` (signs approved kubelet CSRs like the
csrsigning controller, and fills ServiceAccount token Secrets like the tokens
controller), :meth:`ControlPlane.ensure_service_account` and
:meth:`ControlPlane.create_namespace` (which also creates the ``default`` ServiceAccount),
:meth:`ControlPlane.aggregate_cluster_roles` (run once at start).

**Processes never outlive the harness.** Each child runs in its own process group and,
when started from the main thread, with ``PR_SET_PDEATHSIG=SIGKILL`` so the kernel kills
it if the Python process dies (even by SIGKILL). :meth:`ControlPlane.stop` runs on context
exit, at interpreter exit (``atexit``) and on SIGTERM; SIGINT arrives as
``KeyboardInterrupt`` and unwinds through the same paths. Stale temp dirs of dead owners
are swept at the next start.

Environment: ``SYNCER_KUBE_TMPDIR`` (where temp dirs go), ``SYNCER_KUBE_KEEP=1`` (keep
the temp dir with logs, PKI and kubeconfig after stop), plus those of
:mod:`syncer_lab.binaries`. On a failed start the logs stay and the error shows their
last lines.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import http.client
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.client.rest import RESTClientObject
from ruamel.yaml import YAML
from urllib3 import HTTPHeaderDict

from syncer_lab import openshift
from syncer_lab.binaries import KubeBinaries, kube_binaries
from syncer_lab.csr_signer import CSRSigner
from syncer_lab.ovnk import OVNKubernetes
from syncer_lab.pki import (
    CertificateAuthority,
    key_pem,
    new_key,
    public_key_pem,
    write_key_and_cert,
)
from syncer_lab.processes import die_with_parent, free_port
from syncer_lab.standins import aggregate_cluster_roles
from syncer_lab.tokens import TokensController

# Namespaces every OpenShift cluster has that syncer uses; created at start.
DEFAULT_NAMESPACES = ("openshift-machine-api", "openshift-config")
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
KUBERNETES_SERVICE_IP = "10.0.0.1"
AUTHENTICATED = "system:authenticated"
_WORKDIR_PREFIX = "syncer-kube-"
_LOG_TAIL_LINES = 40


class ControlPlaneError(RuntimeError):
    """The control plane failed to start or stopped unexpectedly."""


class _PortConflict(ControlPlaneError):
    """A process lost the race for the free port it was given; start again."""


def _tmp_base() -> Path:
    """Where per-instance dirs go: ``$SYNCER_KUBE_TMPDIR``, else /dev/shm, else $TMPDIR."""
    if override := os.environ.get("SYNCER_KUBE_TMPDIR"):
        return Path(override)
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return shm
    return Path(tempfile.gettempdir())


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sweep_stale_workdirs(base: Path) -> None:
    """Remove temp dirs left by control planes whose owner process is gone."""
    for d in base.glob(_WORKDIR_PREFIX + "*"):
        try:
            owner = int((d / "owner.pid").read_text())
        except (OSError, ValueError):
            continue
        if not _pid_alive(owner):
            shutil.rmtree(d, ignore_errors=True)


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])


# --- process supervision ---------------------------------------------------------------

class _Process:
    """One supervised child process with its log file."""

    def __init__(self, name: str, args: Sequence[str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("ab")
        self.popen = subprocess.Popen(
            list(args),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent(),
            close_fds=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def stop(self, grace: float) -> None:
        """SIGTERM the process group, SIGKILL it after ``grace`` seconds."""
        if self.running():
            for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, sig)
                try:
                    self.popen.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        else:
            self.popen.wait()
        self._log.close()

    def failure(self, what: str) -> ControlPlaneError:
        """An error that explains an early exit, with the tail of the log."""
        tail = _tail(self.log_path)
        cls = _PortConflict if "address already in use" in tail else ControlPlaneError
        return cls(
            f"{self.name} {what} (exit code {self.popen.poll()}); "
            f"last lines of {self.log_path}:\n{tail}"
        )


_live: set[ControlPlane] = set()
_live_lock = threading.Lock()
_handlers_installed = False


def _stop_all() -> None:
    with _live_lock:
        planes = list(_live)
    for plane in planes:
        with contextlib.suppress(Exception):
            plane.stop()


def _install_exit_handlers() -> None:
    """atexit always; a SIGTERM handler when started from the main thread."""
    global _handlers_installed
    if _handlers_installed:
        return
    _handlers_installed = True
    atexit.register(_stop_all)
    if threading.current_thread() is not threading.main_thread():
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous is signal.SIG_IGN:
        return

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        _stop_all()
        if callable(previous):
            previous(signum, frame)
        else:  # default action: die of SIGTERM, as if we had never been here
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    signal.signal(signal.SIGTERM, on_sigterm)


# --- impersonation -----------------------------------------------------------------------


class _ImpersonatingRESTClient(RESTClientObject):
    """Adds ``Impersonate-User`` and one ``Impersonate-Group`` header per group.

    The client's default headers are a plain dict (one value per name), but the API server
    reads every ``Impersonate-Group`` header, so the headers are added here as a
    multi-valued ``HTTPHeaderDict`` that urllib3 sends as repeated header lines.
    """

    def __init__(self, configuration: client.Configuration, user: str, groups: Sequence[str]):
        super().__init__(configuration)
        self._user = user
        self._groups = list(groups)

    def request(
        self, method: str, url: str, *args: Any, headers: Mapping[str, str] | None = None, **kw: Any
    ) -> Any:
        merged = HTTPHeaderDict(dict(headers or {}))
        merged["Impersonate-User"] = self._user
        for group in self._groups:
            merged.add("Impersonate-Group", group)
        return super().request(method, url, *args, headers=merged, **kw)  # type: ignore[no-untyped-call, misc]


def unique_name(prefix: str = "test") -> str:
    """A DNS-1123 label from ``prefix`` plus a random suffix.

    The session's control plane is shared: cluster-scoped objects (Nodes, CSRs,
    RuntimeClasses, ClusterRoles) and shared namespaces such as ``openshift-machine-api``
    need names no other test uses.
    """
    base = re.sub(r"[^a-z0-9-]+", "-", prefix.lower()).strip("-")[:50].strip("-") or "test"
    return f"{base}-{secrets.token_hex(3)}"


def service_account_username(namespace: str, name: str) -> str:
    """The user name the API server gives a ServiceAccount."""
    return f"system:serviceaccount:{namespace}:{name}"


def service_account_groups(namespace: str) -> list[str]:
    """The groups the API server gives every ServiceAccount of ``namespace``."""
    return ["system:serviceaccounts", f"system:serviceaccounts:{namespace}", AUTHENTICATED]


# --- the control plane -------------------------------------------------------------------


class ControlPlane:
    """etcd + kube-apiserver on loopback; see the module docstring.

    Use as a context manager, or call :meth:`start` and :meth:`stop`::

        with ControlPlane() as cp:
            core = kubernetes.client.CoreV1Api(cp.api_client())
    """

    def __init__(
        self,
        *,
        binaries: KubeBinaries | None = None,
        install_crds: bool = True,
        namespaces: Sequence[str] = DEFAULT_NAMESPACES,
        extra_apiserver_args: Sequence[str] = (),
        ready_timeout: float = 60.0,
        keep_workdir: bool | None = None,
    ) -> None:
        self.binaries = binaries or kube_binaries()
        self.install_crds = install_crds
        self.namespaces = tuple(namespaces)
        self.extra_apiserver_args = tuple(extra_apiserver_args)
        self.ready_timeout = ready_timeout
        self.keep_workdir = (
            keep_workdir if keep_workdir is not None else bool(os.environ.get("SYNCER_KUBE_KEEP"))
        )
        self.startup_seconds: float | None = None  # wall time of the last start()
        # Seconds from the start of start() at which each phase ended (etcd healthy,
        # /readyz ok, CRDs established and namespaces created).
        self.timings: dict[str, float] = {}
        self._workdir: Path | None = None
        self._server: str | None = None
        self._etcd_url: str | None = None
        self._ca: CertificateAuthority | None = None
        self._procs: list[_Process] = []
        self._signer: CSRSigner | None = None
        self._tokens: TokensController | None = None
        self._ovnk: OVNKubernetes | None = None
        self._lock = threading.RLock()

    # -- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, attempts: int = 3) -> ControlPlane:
        """Start etcd and kube-apiserver, wait for ``/readyz``, install CRDs. Returns self."""
        with self._lock:
            if self._procs:
                return self
            _install_exit_handlers()
            begin = time.monotonic()
            for attempt in range(attempts):
                try:
                    self._start_once(begin)
                    break
                except _PortConflict:
                    self._stop_processes()
                    if attempt == attempts - 1:
                        raise
                except BaseException:
                    self._abort()
                    raise
            self.startup_seconds = time.monotonic() - begin
            return self

    def stop(self) -> None:
        """Stop everything (idempotent) and remove the temp dir unless kept."""
        with self._lock:
            if self._signer is not None:
                self._signer.stop()
                self._signer = None
            if self._tokens is not None:
                self._tokens.stop()
                self._tokens = None
            if self._ovnk is not None:
                self._ovnk.stop()
                self._ovnk = None
            self._stop_processes()
            if self._workdir is not None and not self.keep_workdir:
                shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
            with _live_lock:
                _live.discard(self)

    def _abort(self) -> None:
        """Stop after a failed start; keep the logs (not etcd's data) for a post-mortem."""
        keep, self.keep_workdir = self.keep_workdir, True
        try:
            workdir = self._workdir
            self.stop()
            if workdir is not None and not keep:
                for data in workdir.glob("etcd-*"):
                    shutil.rmtree(data, ignore_errors=True)
        finally:
            self.keep_workdir = keep

    def _stop_processes(self) -> None:
        # API server first (it would log etcd errors otherwise), then etcd.
        for proc in reversed(self._procs):
            proc.stop(grace=5.0)
        self._procs = []

    def _start_once(self, begin: float) -> None:
        base = _tmp_base()
        base.mkdir(parents=True, exist_ok=True)
        _sweep_stale_workdirs(base)
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix=_WORKDIR_PREFIX, dir=base))
            (self._workdir / "owner.pid").write_text(str(os.getpid()))
        with _live_lock:
            _live.add(self)
        work = self._workdir
        etcd_port, api_port = free_port(), free_port()
        self._etcd_url = f"http://127.0.0.1:{etcd_port}"
        self._server = f"https://127.0.0.1:{api_port}"
        etcd_data = work / f"etcd-{etcd_port}"
        etcd = _Process(
            "etcd",
            [
                str(self.binaries.etcd),
                f"--data-dir={etcd_data}",
                f"--listen-client-urls={self._etcd_url}",
                f"--advertise-client-urls={self._etcd_url}",
                "--listen-peer-urls=http://127.0.0.1:0",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
            work / "etcd.log",
        )
        self._procs.append(etcd)
        self._write_pki()  # meanwhile etcd starts
        self._wait_etcd(etcd)
        self.timings["etcd"] = time.monotonic() - begin
        apiserver = _Process(
            "kube-apiserver", self._apiserver_args(api_port), work / "kube-apiserver.log"
        )
        self._procs.append(apiserver)
        self._write_kubeconfig(self.kubeconfig)
        self._wait_ready(apiserver)
        self.timings["kube-apiserver"] = time.monotonic() - begin
        with self.api_client() as api:
            if self.install_crds:
                self._install_crds(api)
            aggregate_cluster_roles(api)
            for ns in self.namespaces:
                self._create_namespace(api, ns)
        self.timings["crds+namespaces"] = time.monotonic() - begin

    def restart_apiserver(self, down: float = 0.0) -> None:
        """Stop kube-apiserver (SIGTERM), wait ``down`` seconds, start it again on the same
        port with the same state in etcd: what a control-plane upgrade looks like to a
        client. Returns once it is ready."""
        with self._lock:
            old = next(p for p in self._procs if p.name == "kube-apiserver")
            old.stop(grace=5.0)
            self._procs.remove(old)
            time.sleep(down)
            port = int(self.server.rsplit(":", 1)[1])
            apiserver = _Process("kube-apiserver", self._apiserver_args(port),
                                 self.workdir / "kube-apiserver.log")
            self._procs.append(apiserver)
            self._wait_ready(apiserver)

    def _write_pki(self) -> None:
        pki = self.workdir / "pki"
        pki.mkdir(exist_ok=True)
        self._ca = ca = CertificateAuthority.create("syncer-test-ca")
        write_key_and_cert(pki, "ca", ca.key, ca.cert)
        key, cert = ca.issue(
            "kube-apiserver",
            server=True,
            dns_names=[
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ],
            ip_addresses=[
                ipaddress.ip_address("127.0.0.1"),
                ipaddress.ip_address(KUBERNETES_SERVICE_IP),
            ],
        )
        write_key_and_cert(pki, "apiserver", key, cert)
        key, cert = ca.issue("admin", ["system:masters"], client=True)
        write_key_and_cert(pki, "admin", key, cert)
        sa_key = new_key()
        (pki / "sa.key").touch(mode=0o600)
        (pki / "sa.key").write_bytes(key_pem(sa_key))
        (pki / "sa.pub").write_bytes(public_key_pem(sa_key))

    def _apiserver_args(self, port: int) -> list[str]:
        pki = self.workdir / "pki"
        return [
            str(self.binaries.kube_apiserver),
            f"--etcd-servers={self._etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={self.workdir / 'cert-dir'}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--service-account-issuer={self.server}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            "--allow-privileged=true",
            "--profiling=false",
            "--v=1",
            *self.extra_apiserver_args,
        ]

    def _wait_etcd(self, etcd: _Process) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while True:
            if not etcd.running():
                raise etcd.failure("exited during start-up")
            try:
                with urllib.request.urlopen(f"{self._etcd_url}/health", timeout=1) as r:
                    if json.loads(r.read()).get("health") == "true":
                        return
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise etcd.failure(f"not healthy after {self.ready_timeout:.0f}s")
            time.sleep(0.05)

    def _ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca_cert_path))
        pki = self.workdir / "pki"
        ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        return ctx

    def _get(self, path: str, timeout: float = 2.0) -> tuple[int, str]:
        """GET ``path`` on the API server as admin; returns (status, body)."""
        host, port = self.server.removeprefix("https://").rsplit(":", 1)
        conn = http.client.HTTPSConnection(
            host, int(port), timeout=timeout, context=self._ssl_context()
        )
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.read().decode(errors="replace")
        finally:
            conn.close()

    def _wait_ready(self, apiserver: _Process) -> None:
        deadline = time.monotonic() + self.ready_timeout
        last = ""
        while True:
            for proc in self._procs:
                if not proc.running():
                    raise proc.failure("exited during start-up")
            try:
                status, body = self._get("/readyz")
                if status == 200:
                    return
                last = f"/readyz {status}: {body.strip()[-500:]}"
            except (OSError, ssl.SSLError) as exc:
                last = f"/readyz: {exc}"
            if time.monotonic() > deadline:
                raise apiserver.failure(f"not ready after {self.ready_timeout:.0f}s ({last})")
            time.sleep(0.05)

    def _install_crds(self, api: client.ApiClient) -> None:
        ext = client.ApiextensionsV1Api(api)
        yaml = YAML(typ="safe")
        names = []
        for path in openshift.crd_paths():
            crd = yaml.load(path.read_text())
            names.append(crd["metadata"]["name"])
            _create_if_missing(ext.create_custom_resource_definition, crd)
        deadline = time.monotonic() + 30
        for name in names:
            while True:
                crd = ext.read_custom_resource_definition(name)
                conds = {c.type: c.status for c in ((crd.status and crd.status.conditions) or [])}
                if conds.get("Established") == "True":
                    break
                if time.monotonic() > deadline:
                    raise ControlPlaneError(f"CRD {name} not Established: {conds}")
                time.sleep(0.05)

    # -- where things are -----------------------------------------------------------------

    def _require(self, value: Any, what: str) -> Any:
        if value is None:
            raise ControlPlaneError(f"control plane not started ({what} unknown)")
        return value

    @property
    def workdir(self) -> Path:
        """The per-instance temp dir (PKI, etcd data, logs, kubeconfig)."""
        path: Path = self._require(self._workdir, "workdir")
        return path

    @property
    def server(self) -> str:
        """The API server's URL, ``https://127.0.0.1:<port>``."""
        url: str = self._require(self._server, "server")
        return url

    @property
    def version(self) -> str:
        """The Kubernetes version of the binaries, e.g. ``v1.34.4``."""
        return self.binaries.version

    @property
    def kubeconfig(self) -> Path:
        """Admin kubeconfig (client certificate in ``system:masters``)."""
        return self.workdir / "kubeconfig"

    @property
    def ca_cert_path(self) -> Path:
        return self.workdir / "pki" / "ca.crt"

    @property
    def ca(self) -> CertificateAuthority:
        ca: CertificateAuthority = self._require(self._ca, "CA")
        return ca

    def pids(self) -> list[int]:
        """PIDs of the running child processes (for leak checks)."""
        return [p.pid for p in self._procs if p.running()]

    # -- clients --------------------------------------------------------------------------

    def configuration(self) -> client.Configuration:
        """A client configuration for the admin (fresh object; safe to modify)."""
        pki = self.workdir / "pki"
        cfg = client.Configuration()
        cfg.host = self.server
        cfg.ssl_ca_cert = str(self.ca_cert_path)
        cfg.cert_file = str(pki / "admin.crt")
        cfg.key_file = str(pki / "admin.key")
        cfg.verify_ssl = True
        return cfg

    def api_client(self) -> client.ApiClient:
        """An ApiClient authenticated as the cluster admin."""
        return client.ApiClient(self.configuration())

    def impersonate(self, user: str, groups: Sequence[str] = (AUTHENTICATED,)) -> client.ApiClient:
        """An ApiClient whose requests the API server authorizes as ``user`` in ``groups``.

        The admin's certificate authenticates; ``Impersonate-User``/``Impersonate-Group``
        headers select the identity, exactly as ``kubectl --as/--as-group`` does. Pass
        ``system:authenticated`` in ``groups`` when the identity should have it (the
        default does): impersonated users get only the groups given.
        """
        api = client.ApiClient(self.configuration())
        api.rest_client = _ImpersonatingRESTClient(api.configuration, user, groups)
        return api

    def service_account_client(self, namespace: str, name: str) -> client.ApiClient:
        """An ApiClient acting as ServiceAccount ``namespace/name`` (by impersonation).

        The ServiceAccount need not exist; RBAC only looks at the user name and groups.
        """
        return self.impersonate(
            service_account_username(namespace, name), service_account_groups(namespace)
        )

    def service_account_token(
        self, namespace: str, name: str, expiration_seconds: int = 86400
    ) -> str:
        """A bound token for the ServiceAccount (TokenRequest API), creating the SA if needed."""
        self.ensure_service_account(namespace, name)
        req = client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=expiration_seconds)
        )
        with self.api_client() as api:
            resp = client.CoreV1Api(api).create_namespaced_service_account_token(
                name, namespace, req
            )
        if resp.status is None or not resp.status.token:
            raise ControlPlaneError(f"TokenRequest for {namespace}/{name} returned no token")
        return resp.status.token

    def kubeconfig_for_service_account(self, namespace: str, name: str, path: Path) -> Path:
        """Write a kubeconfig at ``path`` that acts as ServiceAccount ``namespace/name``.

        It holds a bound token from the TokenRequest API (the SA is created if missing),
        not impersonation settings: the Python client ignores a kubeconfig's ``as:``
        fields, so a subprocess such as ``syncer run`` would silently act as admin. With a
        token it authenticates as the ServiceAccount for real, as it would in a Pod.
        """
        token = self.service_account_token(namespace, name)
        self._write_kubeconfig(path, token=token, user=service_account_username(namespace, name))
        return path

    def kubectl(
        self,
        *args: str,
        kubeconfig: Path | None = None,
        check: bool = True,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run the kubectl built with kube-apiserver against this control plane."""
        return subprocess.run(
            [str(self.binaries.kubectl), f"--kubeconfig={kubeconfig or self.kubeconfig}", *args],
            check=check,
            capture_output=True,
            text=True,
            input=input,
        )

    def _write_kubeconfig(
        self, path: Path, *, token: str | None = None, user: str = "admin"
    ) -> None:
        """A kubeconfig with ``token``, or else the admin's client certificate."""

        def b64(p: Path) -> str:
            return base64.b64encode(p.read_bytes()).decode()

        pki = self.workdir / "pki"
        creds: dict[str, str]
        if token is None:
            creds = {
                "client-certificate-data": b64(pki / "admin.crt"),
                "client-key-data": b64(pki / "admin.key"),
            }
        else:
            creds = {"token": token}
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "syncer-test",
                    "cluster": {
                        "server": self.server,
                        "certificate-authority-data": b64(self.ca_cert_path),
                    },
                }
            ],
            "users": [{"name": user, "user": creds}],
            "contexts": [
                {"name": "syncer-test", "context": {"cluster": "syncer-test", "user": user}}
            ],
            "current-context": "syncer-test",
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        yaml = YAML()
        yaml.default_flow_style = False
        with path.open("w") as f:
            yaml.dump(config, f)

    # -- kube-controller-manager stand-ins ------------------------------------------------

    def start_csr_signer(self) -> CSRSigner:
        """Start (once) the stand-ins for kube-controller-manager's CSR signer and its
        ServiceAccount tokens controller (what node bootstrap needs of it)."""
        with self._lock:
            if self._signer is None:
                self._signer = CSRSigner(self.api_client(), self.ca).start()
            if self._tokens is None:
                pki = self.workdir / "pki"
                self._tokens = TokensController(
                    self.api_client(), (pki / "sa.key").read_bytes(),
                    self.ca_cert_path.read_bytes()).start()
            return self._signer

    @property
    def csr_signer(self) -> CSRSigner | None:
        return self._signer

    def start_ovn_kubernetes(self, *, vxlan_port: int | None = None) -> OVNKubernetes:
        """Start (once) the stand-in for OVN-Kubernetes' cluster side (hybrid overlay node
        subnets, ovn-node CSR approval), with the signer that issues what it approves,
        and the OpenShift cluster objects that describe the network
        (:func:`syncer_lab.openshift.install_cluster_config`)."""
        with self._lock:
            if self._ovnk is None:
                self.start_csr_signer()
                with self.api_client() as api:
                    openshift.install_cluster_config(api, self.server, vxlan_port=vxlan_port)
                self._ovnk = OVNKubernetes(self.api_client()).start()
            return self._ovnk

    def aggregate_cluster_roles(self) -> None:
        """Fill aggregated ClusterRoles (``admin``, ``edit``, ``view``, ...) once more.

        Stand-in for kube-controller-manager's clusterrole-aggregation controller; runs at
        start. Call it again after creating ClusterRoles with ``aggregate-to-*`` labels.
        """
        with self.api_client() as api:
            aggregate_cluster_roles(api)

    def ensure_service_account(self, namespace: str, name: str = "default") -> None:
        """Create ServiceAccount ``namespace/name`` if missing.

        Stand-in for kube-controller-manager's serviceaccounts controller (which creates
        ``default`` in every namespace). Token Secrets are never filled: use
        :meth:`service_account_token` (the TokenRequest API) instead.
        """
        with self.api_client() as api:
            _create_service_account(api, namespace, name)

    def create_namespace(
        self, prefix: str = "test", labels: Mapping[str, str] | None = None
    ) -> str:
        """Create a namespace with a unique name from ``prefix``, with its ``default`` SA.

        Without kube-controller-manager a deleted namespace never finishes deleting, so
        tests get a fresh one each and leave it behind (it dies with the control plane).
        """
        name = unique_name(prefix)
        with self.api_client() as api:
            self._create_namespace(api, name, labels)
        return name

    def _create_namespace(
        self, api: client.ApiClient, name: str, labels: Mapping[str, str] | None = None
    ) -> None:
        ns = client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=dict(labels or {})))
        _create_if_missing(client.CoreV1Api(api).create_namespace, ns)
        _create_service_account(api, name, "default")

    # -- diagnostics ----------------------------------------------------------------------

    def logs(self) -> str:
        """The tail of every component's log (for failure messages)."""
        return "\n".join(
            f"--- {p.name} ({p.log_path}) ---\n{_tail(p.log_path)}" for p in self._procs
        )

    def __repr__(self) -> str:
        state = self.server if self._server and self._procs else "stopped"
        return f"ControlPlane({self.version}, {state})"


def _create_service_account(api: client.ApiClient, namespace: str, name: str) -> None:
    sa = client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name))
    _create_if_missing(client.CoreV1Api(api).create_namespaced_service_account, namespace, sa)


def _create_if_missing(create: Callable[..., object], *args: object) -> None:
    """``create(*args)``; an object of that name existing already (409) is fine."""
    try:
        create(*args)
    except ApiException as exc:
        if exc.status != 409:
            raise


@contextlib.contextmanager
def control_plane(**kwargs: Any) -> Iterator[ControlPlane]:
    """``with control_plane() as cp:`` — a started :class:`ControlPlane`."""
    cp = ControlPlane(**kwargs)
    with cp:
        yield cp

"""What the Windows programs a node runs do when their service starts.

The service control manager (:mod:`syncer_lab.winhost.service_manager`) starts a process
for a service's executable; :class:`Programs` then plays that program, from its own
source where it decides whether the node works:

- ``kube-log-runner.exe`` takes its own flags (``-log-file=...``) and runs the rest as a
  child process (``k8s.io/component-base/logs/kube-log-runner``): both processes hold
  their executables; the child's output goes to the log file. A flag it does not know
  ends it (Go's ``flag`` package: ``flag provided but not defined``).
- ``kubelet.exe`` and ``kube-proxy.exe`` start only when their own start-up code accepts
  the command line and config file (:mod:`syncer_lab.winhost.nodecheck`); otherwise the
  process exits with that error text in its log and the service stops (1067).
- ``kube-proxy.exe`` then builds the winkernel proxier (``pkg/proxy/winkernel/
  proxier.go`` ``NewProxier``): no network name is fatal ("Environment variable
  KUBE_NETWORK and network-flag not initialized"), a network that does not exist is
  waited for forever ("Unable to find HNS Network specified"), and an overlay network
  needs ``sourceVip`` ("source-vip flag not set") and the WinOverlay gate.
- ``hybrid-overlay-node.exe`` (ovn-kubernetes ``hybrid-overlay-node.go``): urfave/cli
  flags, ``--node`` required, credentials from ``--k8s-kubeconfig`` or, with
  ``--bootstrap-kubeconfig``, a per-node client certificate it requests
  (``system:ovn-node:<node>``, ``pkg/util/kube.go`` ``StartNodeCertificateManager``);
  then the HNS networks (:mod:`syncer_lab.winhost.hns`) once the Node has its
  hybrid-overlay subnet, and the distributed-router MAC annotation on its Node.
- ``containerd.exe`` needs its ``--config`` file to exist and be TOML (it exits with
  "failed to load TOML") and the Containers feature for sandboxes; its CRI ``cni``
  section says where pod network configuration is read from.
- ``windows_exporter.exe`` refuses unknown collectors; ``cs`` is gone since v0.31
  (prometheus-community/windows_exporter PR #1693, removed by WMCO in PR #3835).

Everything else (csi-proxy, unknown programs) simply runs.
"""

from __future__ import annotations

import logging
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from syncer_lab.winhost import hns
from syncer_lab.winhost.nodecheck import NodeCheck, Verdict
from syncer_lab.winhost.pwsh import split_command_line
from syncer_lab.winhost.service_manager import Service
from syncer_lab.winhost.win32 import Win32Error

if TYPE_CHECKING:
    from syncer_lab.winhost.host import SimHost

log = logging.getLogger(__name__)

ERROR_PROCESS_ABORTED = 1067
WINDOWS_EXPORTER_COLLECTORS = frozenset({
    # windows_exporter v0.31 collectors (collector/ directory, README "Collectors"); "cs"
    # was removed in v0.31 (PR #1693), "textfile" stays.
    "ad", "adcs", "adfs", "cache", "container", "cpu", "cpu_info", "dfsr", "dhcp",
    "diskdrive", "dns", "exchange", "filetime", "fsrmquota", "gpu", "hyperv", "iis",
    "license", "logical_disk", "memory", "mscluster", "msmq", "mssql", "net",
    "netframework", "nps", "os", "pagefile", "performancecounter", "physical_disk",
    "printer", "process", "remote_fx", "scheduled_task", "service", "smb", "smbclient",
    "smtp", "system", "tcp", "terminal_services", "textfile", "thermalzone", "time",
    "udp", "update", "vmware",
})
# hybrid-overlay-node's flags syncer and WMCO use (ovn-kubernetes go-controller/pkg/config
# config.go GetFlags plus hybrid-overlay-node.go's own "node" and "windows-service").
HYBRID_OVERLAY_FLAGS = frozenset({
    "node", "windows-service", "k8s-kubeconfig", "bootstrap-kubeconfig", "cert-dir",
    "cert-duration", "k8s-apiserver", "k8s-cacert", "k8s-token", "hybrid-overlay-vxlan-port",
    "logfile", "loglevel", "config-file",
})
HYBRID_OVERLAY_BOOL_FLAGS = frozenset({"windows-service"})
CONTAINERD_DEFAULT_CNI_CONF_DIR = "C:\\Program Files\\containerd\\cni\\conf"


class ProgramExit(Exception):
    """The program exits at start-up; the message is what it prints."""


@dataclass
class Launch:
    """One program started for a service: its image, arguments and log file."""

    host: SimHost
    service: Service
    image: str
    argv: list[str]
    log_file: str | None = None

    @property
    def program(self) -> str:
        return self.image.replace("/", "\\").rsplit("\\", 1)[-1].lower()


@dataclass
class Running:
    """What the programs of one host left running that others depend on."""

    containerd_config: dict[str, Any] = field(default_factory=dict)
    kube_proxy: str = ""  # "proxying" once the winkernel proxier runs, else why not
    hybrid_overlay: str = ""  # "ready" once its overlay network exists, else why not


class Programs:
    """The programs of every host in a lab (attach each host)."""

    def __init__(self, checker: NodeCheck,
                 kubelet: Callable[[Launch, Verdict], None] | None = None,
                 hybrid_overlay: Callable[[Launch, dict[str, str]], None] | None = None) -> None:
        self.checker = checker
        self._kubelet = kubelet
        self._hybrid_overlay = hybrid_overlay
        self._hooks: dict[str, Callable[[Service], None]] = {}
        self.state: dict[str, Running] = {}
        # Every judgement node-check made of what this lab's hosts started, in order.
        self.judged: list[tuple[str, tuple[str, ...], Verdict]] = []
        self._lock = threading.Lock()

    def attach(self, host: SimHost) -> None:
        def on_start(svc: Service) -> None:
            self.start(host, svc)

        host.scm.on_start.append(on_start)
        self._hooks[host.name] = on_start
        self.state.setdefault(host.name, Running())

    def detach(self, host: SimHost) -> None:
        hook = self._hooks.pop(host.name, None)
        if hook is not None:
            host.scm.on_start.remove(hook)

    def running(self, host: SimHost) -> Running:
        return self.state.setdefault(host.name, Running())

    # --- start ---------------------------------------------------------------------------
    def start(self, host: SimHost, svc: Service) -> None:
        argv = split_command_line(svc.binary_path)
        launch = Launch(host, svc, svc.executable, argv[1:])
        try:
            if launch.program == "kube-log-runner.exe":
                launch = self._log_runner(launch)
            self._run(launch)
        except ProgramExit as exit_:
            self._exit(launch, str(exit_))

    def _exit(self, launch: Launch, message: str) -> None:
        host = launch.host
        log.info("%s: %s exits: %s", host.name, launch.program, message)
        self._log(launch, message)
        host.scm.crash(launch.service.name, ERROR_PROCESS_ABORTED)

    @staticmethod
    def _log(launch: Launch, message: str) -> None:
        """A line the program writes to stderr: kept only when kube-log-runner redirects it
        to a file (a Windows service's stderr goes nowhere)."""
        host = launch.host
        if launch.log_file:
            try:
                previous = (host.fs.read_bytes(launch.log_file)
                            if host.fs.is_file(launch.log_file) else b"")
                host.fs.write_bytes(launch.log_file, previous + message.encode() + b"\r\n")
            except Win32Error:
                pass

    def _check(self, component: str, argv: list[str],
               files: dict[str, bytes] | None = None) -> Verdict:
        verdict = self.checker.check(component, argv, files)
        with self._lock:
            self.judged.append((component, tuple(argv), verdict))
        return verdict

    def _log_runner(self, launch: Launch) -> Launch:
        verdict = self._check("kube-log-runner", launch.argv)
        if not verdict.ok:
            raise ProgramExit(verdict.error)
        child = list(verdict.args)
        log_file = verdict.flags.get("log-file")
        if log_file and not launch.host.fs.is_dir(log_file.rsplit("\\", 1)[0]):
            # logrotation.Open creates the file, not its directory.
            raise ProgramExit(f"failed to create log file {log_file}: open {log_file}: "
                              "The system cannot find the path specified.")
        if not launch.host.fs.is_file(child[0]):
            raise ProgramExit(f'exec: "{child[0]}": file does not exist')
        launch.host.scm.add_child(launch.service.name, child[0])
        return Launch(launch.host, launch.service, child[0], child[1:],
                      verdict.flags.get("log-file"))

    def _run(self, launch: Launch) -> None:
        program = launch.program
        if program == "kubelet.exe":
            self._kubelet_start(launch)
        elif program == "kube-proxy.exe":
            self._kube_proxy(launch)
        elif program == "hybrid-overlay-node.exe":
            self._hybrid_overlay_start(launch)
        elif program == "containerd.exe":
            self._containerd(launch)
        elif program == "windows_exporter.exe":
            self._windows_exporter(launch)

    # --- the kubelet ------------------------------------------------------------------------
    def _files_named(self, launch: Launch, flags: tuple[str, ...]) -> dict[str, bytes]:
        """The host files the command line names with ``flags`` (for node-check)."""
        found: dict[str, bytes] = {}
        for i, arg in enumerate(launch.argv):
            name, _, value = arg.lstrip("-").partition("=")
            if name in flags:
                if not value and i + 1 < len(launch.argv):
                    value = launch.argv[i + 1]
                if value and launch.host.fs.is_file(value):
                    found[value] = launch.host.fs.read_bytes(value)
        return found

    def _kubelet_start(self, launch: Launch) -> None:
        files = self._files_named(launch, ("config",))
        verdict = self._check("kubelet", launch.argv, files)
        if not verdict.ok:
            raise ProgramExit(verdict.error)
        config = verdict.flags.get("config")
        if config and not launch.host.fs.is_file(config):
            # configfiles.NewFsLoader: the file must exist.
            raise ProgramExit(f"failed to load kubelet config file, path: {config}, error: "
                              f"open {config}: The system cannot find the file specified.")
        # pkg/kubelet/kubelet.go, syncLoop: klog.InfoS("Starting kubelet main sync loop")
        self._log(launch, "Starting kubelet main sync loop")
        if self._kubelet is not None:
            self._kubelet(launch, verdict)

    # --- kube-proxy -------------------------------------------------------------------------
    def _kube_proxy(self, launch: Launch) -> None:
        files = self._files_named(launch, ("config",))
        verdict = self._check("kube-proxy", launch.argv, files)
        if not verdict.ok:
            raise ProgramExit(verdict.error)
        config = verdict.config
        winkernel = config.get("winkernel") or {}
        network_name = str(winkernel.get("networkName") or "")
        if not network_name:
            raise ProgramExit("Environment variable KUBE_NETWORK and network-flag not initialized")
        running = self.running(launch.host)
        network = launch.host.hns.network(network_name)
        if network is None:
            # getNetworkInfo retries every second, forever: the service runs, proxies nothing.
            running.kube_proxy = (f"Unable to find HNS Network specified, please check network "
                                  f"name and CNI deployment: {network_name}")
            return
        gates = verdict.gates
        if winkernel.get("enableDSR") and not gates.get("WinDSR", False):
            raise ProgramExit("WinDSR feature gate not enabled")
        if not gates.get("WinOverlay", False):
            raise ProgramExit("WinOverlay feature gate not enabled")
        if not winkernel.get("sourceVip"):
            raise ProgramExit("source-vip flag not set")
        running.kube_proxy = "proxying"

    # --- hybrid-overlay ---------------------------------------------------------------------
    def _hybrid_overlay_flags(self, launch: Launch) -> dict[str, str]:
        """urfave/cli parsing: ``--name value``, ``--name=value``, one or two dashes."""
        flags: dict[str, str] = {}
        args = list(launch.argv)
        while args:
            arg = args.pop(0)
            if not arg.startswith("-"):
                raise ProgramExit(f"Incorrect Usage: unexpected argument {arg!r}")
            name, eq, value = arg.lstrip("-").partition("=")
            if name not in HYBRID_OVERLAY_FLAGS:
                raise ProgramExit(f"flag provided but not defined: -{name}")
            if name in HYBRID_OVERLAY_BOOL_FLAGS:
                flags[name] = value or "true"
                continue
            if not eq:
                if not args:
                    raise ProgramExit(f"flag needs an argument: -{name}")
                value = args.pop(0)
            flags[name] = value
        if not flags.get("node"):
            raise ProgramExit("missing node name; use the 'node' flag to provide one")
        if "hybrid-overlay-vxlan-port" in flags:
            port = flags["hybrid-overlay-vxlan-port"]
            if not port.isdigit() or int(port) > 65535:
                raise ProgramExit(f"the hybrid overlay VXLAN port cannot be greater than 65535."
                                  f" Current value: {port}")
        return flags

    def _hybrid_overlay_start(self, launch: Launch) -> None:
        flags = self._hybrid_overlay_flags(launch)
        host = launch.host
        if not host.features.get("Containers"):
            # No HNS without the Containers feature: hcn calls fail, the process exits.
            raise ProgramExit("unable to create the base overlay network, error: "
                              "hcnCreateNetwork failed: The system cannot find the file "
                              "specified. (the Containers feature is not enabled)")
        host.hns.ensure_network(hns.BASE_NETWORK, hns.BASE_SUBNET,
                                int(flags.get("hybrid-overlay-vxlan-port") or
                                    hns.DEFAULT_VXLAN_PORT))
        self.running(host).hybrid_overlay = "waiting for the node subnet"
        if self._hybrid_overlay is not None:
            self._hybrid_overlay(launch, flags)

    # --- containerd --------------------------------------------------------------------------
    def _containerd(self, launch: Launch) -> None:
        config_path = ""
        for i, arg in enumerate(launch.argv):
            name, _, value = arg.lstrip("-").partition("=")
            if name == "config":
                config_path = value or (launch.argv[i + 1] if i + 1 < len(launch.argv) else "")
        running = self.running(launch.host)
        running.containerd_config = {}
        if not config_path:
            return  # containerd's defaults
        host = launch.host
        if not host.fs.is_file(config_path):
            raise ProgramExit(f"containerd: failed to load TOML from {config_path}: open "
                              f"{config_path}: The system cannot find the file specified.")
        try:
            running.containerd_config = tomllib.loads(
                host.fs.read_bytes(config_path).decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
            raise ProgramExit(f"containerd: failed to load TOML: {config_path}: {err}") from None

    def cni_dirs(self, host: SimHost) -> tuple[str, str]:
        """(conf_dir, bin_dir) of the CRI plugin in the running containerd's config."""
        plugins = self.running(host).containerd_config.get("plugins") or {}
        cri = plugins.get("io.containerd.grpc.v1.cri") or {}
        cni = cri.get("cni") or {}
        return (str(cni.get("conf_dir") or CONTAINERD_DEFAULT_CNI_CONF_DIR),
                str(cni.get("bin_dir") or "C:\\Program Files\\containerd\\cni\\bin"))

    # --- windows_exporter --------------------------------------------------------------------
    def _windows_exporter(self, launch: Launch) -> None:
        args = list(launch.argv)
        collectors = ""
        while args:
            arg = args.pop(0)
            name, eq, value = arg.lstrip("-").partition("=")
            if name == "collectors.enabled":
                collectors = value if eq else (args.pop(0) if args else "")
        for name in filter(None, collectors.split(",")):
            if name not in WINDOWS_EXPORTER_COLLECTORS:
                raise ProgramExit(f'windows_exporter: unknown collector "{name}"')


def wait_for(predicate: Callable[[], bool], timeout: float, every: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return predicate()

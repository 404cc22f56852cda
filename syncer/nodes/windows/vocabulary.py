"""The Windows command vocabulary: every command syncer sends to a host over SSH exec.

This module is pure: *builders* return the exact command string for one vocabulary entry,
*parsers* turn a :class:`CommandResult` (exit code, stdout, stderr) into dataclasses or
raise :class:`CommandFailed` carrying the Win32 error code. Nothing here opens a
connection; the node stage runs the strings and hands the results back. The list of
entries, their output formats and exit codes is ``docs/windows-commands.md``; the
simulated hosts in ``syncer_lab.winhost`` implement exactly that list, and refuse
anything else.

How data reaches the host without being interpreted
---------------------------------------------------
Windows OpenSSH runs an exec request as ``cmd.exe /c <command>`` (cmd.exe is the default
shell WMCO requires). cmd.exe expands ``%VAR%`` everywhere, even inside double quotes, and
a ``"`` in data ends a quoted argument, so no repository value may ever appear in the
command line itself. Therefore:

- Only two commands are raw: ``Get-Help`` (shell detection, like WMCO) and ``hostname``.
- Everything else is a PowerShell script sent as
  ``powershell.exe -NonInteractive -ExecutionPolicy Bypass -EncodedCommand <base64>``
  (base64 of the UTF-16LE script): cmd.exe sees only ``[A-Za-z0-9+/=]``. The same string
  works when PowerShell is the default shell.
- Inside the script, every value from outside enters as a single-quoted PowerShell literal
  (``'`` doubled, and the typographic quotes PowerShell also accepts as single quotes
  doubled too) in an assignment ``$name='...'`` at the top; the script body after those
  assignments is fixed text per entry. Single-quoted literals expand nothing: ``$(...)``,
  backticks, ``%PATH%`` and ``"`` stay data.
- Native programs (``sc.exe``, ``tar.exe``) get their arguments from those variables.
  Windows PowerShell 5.1 rebuilds a command line for them: it wraps an argument with
  whitespace in ``"..."`` *without* escaping inner quotes and drops empty arguments, so
  the builders refuse values containing ``"``, empty values, and values with whitespace
  that end in a backslash; sc.exe's ``binPath=`` and its value are separate arguments.
- Every value is validated (no NUL or control characters; Windows paths absolute and free
  of ``*?"<>|``; service and process names ``[A-Za-z0-9_.-]``), and the whole command must
  fit cmd.exe's 8191-character limit (:class:`CommandTooLong`).

Every script starts with ``$ProgressPreference='SilentlyContinue'`` (progress records
over SSH fail with 0x5) and ``$ErrorActionPreference='Stop'`` and runs in one
``try``/``catch`` that writes the error message to stderr and exits with the Win32 code
of the failure (e.g. 32 sharing violation, 5 access denied, 112 disk full) or 1. The node
stage matches exit codes, never English text (localised output broke WMCO).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any

# --- Win32 error codes the node stage matches ------------------------------------------
ERROR_FILE_NOT_FOUND = 2
ERROR_PATH_NOT_FOUND = 3
ERROR_ACCESS_DENIED = 5
ERROR_SHARING_VIOLATION = 32
ERROR_DISK_FULL = 112
ERROR_ALREADY_EXISTS = 183
ERROR_DEPENDENT_SERVICES_RUNNING = 1051
ERROR_SERVICE_REQUEST_TIMEOUT = 1053
ERROR_SERVICE_ALREADY_RUNNING = 1056
ERROR_SERVICE_DISABLED = 1058
ERROR_SERVICE_DOES_NOT_EXIST = 1060
ERROR_SERVICE_CANNOT_ACCEPT_CTRL = 1061
ERROR_SERVICE_NOT_ACTIVE = 1062
ERROR_SERVICE_DEPENDENCY_FAIL = 1068
ERROR_SERVICE_MARKED_FOR_DELETE = 1072
ERROR_SERVICE_EXISTS = 1073
ERROR_SERVICE_DEPENDENCY_DELETED = 1075
ERROR_TIMEOUT = 1460
ERROR_INVALID_COMMAND_LINE = 1639
# The exit code paramiko reports when the channel closed without an exit status (the
# connection went away, e.g. because the host is rebooting).
NO_EXIT_STATUS = -1

# cmd.exe refuses longer command lines ("The command line is too long.").
MAX_COMMAND_LENGTH = 8191

POWERSHELL = "powershell.exe -NonInteractive -ExecutionPolicy Bypass"
PRELUDE = "$ProgressPreference='SilentlyContinue'\n$ErrorActionPreference='Stop'\ntry {\n"
# `exit 0` makes the exit code independent of the last statement's $? (PowerShell -Command
# otherwise exits 1 when the last pipeline "failed", e.g. an empty Get-Process).
EPILOGUE = (
    "\nexit 0\n"
    "} catch {\n"
    "[Console]::Error.WriteLine($_.Exception.Message)\n"
    "$h=$_.Exception.HResult\n"
    "if((($h -shr 16) -band 0xFFFF) -eq 0x8007){exit ($h -band 0xFFFF)}\n"
    "exit 1\n"
    "}\n"
)

# The characters PowerShell treats as a single quote inside a single-quoted string.
_SINGLE_QUOTES = "'\u2018\u2019\u201a\u201b"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_IPV4 = re.compile(r"^(\d{1,3}\.){3}\d{1,3}$")
_CONTROL_EXCEPT_NEWLINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,256}$")
_WINDOWS_PATH = re.compile(r"^[A-Za-z]:\\")
_PATH_FORBIDDEN = re.compile(r'[*?"<>|]')


# --- results and errors ------------------------------------------------------------------
@dataclass(frozen=True)
class CommandResult:
    """What one SSH exec returned. ``exit_code`` is -1 when there was no exit status."""

    exit_code: int
    stdout: str = ""
    stderr: str = ""


class CommandFailed(Exception):
    """A vocabulary command exited with a code its parser does not accept.

    ``code`` is the exit code, which is the Win32 error code for every entry (see the
    ERROR_* constants); ``message`` is the host's own text, for people only.
    """

    def __init__(self, entry: str, result: CommandResult) -> None:
        self.entry = entry
        self.code = result.exit_code
        self.result = result
        self.message = error_text(result)
        super().__init__(f"{entry}: exit code {self.code}: {self.message}")


class CommandTooLong(ValueError):
    """The command would exceed cmd.exe's command-line limit; split the request."""


# --- quoting and validation ------------------------------------------------------------
def check_text(value: str, what: str, *, multiline: bool = False) -> str:
    """Refuse NUL and control characters (newlines and tabs only when ``multiline``)."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a string, not {type(value).__name__}")
    pattern = _CONTROL_EXCEPT_NEWLINES if multiline else _CONTROL
    if pattern.search(value):
        raise ValueError(f"{what} contains a control character: {value!r}")
    return value


def check_path(path: str, what: str = "path") -> str:
    """An absolute Windows path (``C:\\...``) without characters Windows forbids."""
    check_text(path, what)
    if not _WINDOWS_PATH.match(path):
        raise ValueError(f"{what} must be an absolute Windows path like C:\\k\\x: {path!r}")
    if _PATH_FORBIDDEN.search(path) or ":" in path[2:]:
        raise ValueError(f"{what} contains a character Windows forbids in paths: {path!r}")
    if any(part == ".." for part in re.split(r"[\\/]", path)):
        raise ValueError(f"{what} must not contain '..': {path!r}")
    return path


def check_name(name: str, what: str = "name") -> str:
    """A service or process name: letters, digits, ``_``, ``.``, ``-`` (no wildcards)."""
    check_text(name, what)
    if not _NAME.match(name):
        raise ValueError(f"{what} must match [A-Za-z0-9_.-]{{1,256}}: {name!r}")
    return name


def check_within(value: int, high: int, what: str) -> int:
    """An integer parameter within ``0..high``."""
    if not 0 <= value <= high:
        raise ValueError(f"{what} must be within 0..{high}: {value}")
    return value


def check_native_argument(value: str, what: str) -> str:
    """A value Windows PowerShell 5.1 passes to a native program unchanged."""
    check_text(value, what)
    if value == "":
        raise ValueError(f"{what} must not be empty (PowerShell 5.1 drops empty arguments)")
    if '"' in value:
        raise ValueError(f"{what} must not contain '\"' (PowerShell 5.1 does not escape it)")
    if re.search(r"\s", value) and value.endswith("\\"):
        raise ValueError(f"{what} with spaces must not end in a backslash: {value!r}")
    return value


def ps_literal(value: str) -> str:
    """``value`` as a PowerShell single-quoted literal: nothing inside is interpreted."""
    check_text(value, "value", multiline=True)
    escaped = "".join(c + c if c in _SINGLE_QUOTES else c for c in value)
    return f"'{escaped}'"


def ps_array(values: Iterable[str]) -> str:
    return "@(" + ",".join(ps_literal(v) for v in values) + ")"


def encode_powershell(script: str) -> str:
    """The cmd.exe-safe command that runs ``script``: ``... -EncodedCommand <base64>``."""
    encoded = base64.b64encode(script.encode("utf-16-le")).decode("ascii")
    command = f"{POWERSHELL} -EncodedCommand {encoded}"
    if len(command) > MAX_COMMAND_LENGTH:
        raise CommandTooLong(
            f"command is {len(command)} characters, cmd.exe accepts {MAX_COMMAND_LENGTH}"
        )
    return command


Param = str | int | Sequence[str]


def script(params: Sequence[tuple[str, Param]], body: str) -> str:
    """The full PowerShell text: prelude, one assignment per parameter, body, epilogue."""
    lines = []
    for name, value in params:
        if isinstance(value, int):
            rendered = str(value)
        elif isinstance(value, str):
            rendered = ps_literal(value)
        else:
            rendered = ps_array(value)
        lines.append(f"${name}={rendered}")
    return PRELUDE + "".join(line + "\n" for line in lines) + body + EPILOGUE


def powershell(params: Sequence[tuple[str, Param]], body: str) -> str:
    return encode_powershell(script(params, body))


def decode_clixml(text: str) -> str:
    """Plain text from PowerShell's ``#< CLIXML`` stderr form (other text unchanged).

    powershell.exe started with -EncodedCommand writes uncaught errors and progress
    records to stderr as CLIXML; only the ``S="Error"`` strings are messages.
    """
    if "#< CLIXML" not in text:
        return text
    out: list[str] = []
    for match in re.finditer(r'<S S="Error">(.*?)</S>', text, re.S):
        piece = re.sub(r"_x([0-9A-Fa-f]{4})_", lambda m: chr(int(m.group(1), 16)), match[1])
        piece = piece.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"')
        out.append(piece.replace("&apos;", "'").replace("&amp;", "&"))
    before = text.split("#< CLIXML", 1)[0]
    return before + "".join(out)


def error_text(result: CommandResult) -> str:
    """The host's error message, one line, for logs and status (never for decisions)."""
    text = decode_clixml(result.stderr).strip() or result.stdout.strip()
    return " ".join(text.split())[:500]


def _ok(entry: str, result: CommandResult, *accepted: int) -> None:
    if result.exit_code not in (accepted or (0,)):
        raise CommandFailed(entry, result)


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.replace("\r\n", "\n").split("\n") if line.strip()]


# --- enums shared by the service entries -----------------------------------------------
class Shell(StrEnum):
    CMD = "cmd"
    POWERSHELL = "powershell"


class ServiceState(IntEnum):
    """The SERVICE_STATE codes ``sc.exe query`` prints before the (English) name."""

    STOPPED = 1
    START_PENDING = 2
    STOP_PENDING = 3
    RUNNING = 4
    CONTINUE_PENDING = 5
    PAUSE_PENDING = 6
    PAUSED = 7


# Get-Service's Status names (ServiceControllerStatus enum; not localised).
_STATUS_NAMES = {
    "Stopped": ServiceState.STOPPED,
    "StartPending": ServiceState.START_PENDING,
    "StopPending": ServiceState.STOP_PENDING,
    "Running": ServiceState.RUNNING,
    "ContinuePending": ServiceState.CONTINUE_PENDING,
    "PausePending": ServiceState.PAUSE_PENDING,
    "Paused": ServiceState.PAUSED,
}


class StartType(StrEnum):
    """sc.exe ``start=`` values."""

    AUTO = "auto"
    DELAYED_AUTO = "delayed-auto"
    DEMAND = "demand"
    DISABLED = "disabled"


# Get-Service's StartType names (5.1 cannot tell delayed from plain automatic).
_START_TYPE_NAMES = {
    "Automatic": StartType.AUTO,
    "AutomaticDelayedStart": StartType.DELAYED_AUTO,
    "Manual": StartType.DEMAND,
    "Disabled": StartType.DISABLED,
}


# --- probe: shell, host name, OS build --------------------------------------------------
def shell_probe() -> str:
    """``Get-Help``: succeeds only where PowerShell is the default shell (WMCO's test)."""
    return "Get-Help"


def parse_shell_probe(result: CommandResult) -> Shell:
    return Shell.POWERSHELL if result.exit_code == 0 else Shell.CMD


def hostname() -> str:
    return "hostname"


def parse_hostname(result: CommandResult) -> str:
    _ok("hostname", result)
    lines = _lines(result.stdout)
    if len(lines) != 1:
        raise ValueError(f"hostname printed {len(lines)} lines: {result.stdout!r}")
    return lines[0]


@dataclass(frozen=True, order=True)
class OsBuild:
    """``10.0.20348.2340``: major.minor.build.revision (UBR)."""

    major: int
    minor: int
    build: int
    revision: int = 0

    @classmethod
    def parse(cls, text: str) -> OsBuild:
        match = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)(?:\.(\d+))?", text.strip())
        if not match:
            raise ValueError(f"not a Windows OS build: {text!r}")
        major, minor, build, revision = match.groups()
        return cls(int(major), int(minor), int(build), int(revision or 0))

    @property
    def label(self) -> str:
        """The value of ``node.kubernetes.io/windows-build`` (``10.0.20348``)."""
        return f"{self.major}.{self.minor}.{self.build}"

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.build}.{self.revision}"


OS_BUILD_BODY = (
    "$v=Get-ItemProperty -LiteralPath 'HKLM:\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion'\n"
    "'{0}.{1}.{2}.{3}' -f $v.CurrentMajorVersionNumber,$v.CurrentMinorVersionNumber,"
    "$v.CurrentBuildNumber,$v.UBR"
)


def os_build() -> str:
    return powershell([], OS_BUILD_BODY)


def parse_os_build(result: CommandResult) -> OsBuild:
    _ok("os-build", result)
    lines = _lines(result.stdout)
    if len(lines) != 1:
        raise ValueError(f"os-build printed {len(lines)} lines: {result.stdout!r}")
    return OsBuild.parse(lines[0])


# --- probe: the one-round-trip inventory ------------------------------------------------
INVENTORY_BODY = (
    "$v=Get-ItemProperty -LiteralPath 'HKLM:\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion'\n"
    "$r=[ordered]@{}\n"
    "$r.hostname=[System.Net.Dns]::GetHostName()\n"
    "$r.osBuild='{0}.{1}.{2}.{3}' -f $v.CurrentMajorVersionNumber,$v.CurrentMinorVersionNumber,"
    "$v.CurrentBuildNumber,$v.UBR\n"
    "$r.freeBytes=(Get-PSDrive -Name C).Free\n"
    "$r.files=[ordered]@{}\n"
    "foreach($f in $files){$x=$null;if(Test-Path -LiteralPath $f -PathType Leaf)"
    "{$x=(Get-FileHash -LiteralPath $f -Algorithm SHA256).Hash};$r.files[$f]=$x}\n"
    "$r.services=[ordered]@{}\n"
    "foreach($n in $services){$s=$null;$k='HKLM:\\SYSTEM\\CurrentControlSet\\Services\\'+$n;"
    "if(Test-Path -LiteralPath $k){$g=Get-Service -Name $n;$p=Get-ItemProperty -LiteralPath $k;"
    "$s=[ordered]@{state=[string]$g.Status;startType=[string]$g.StartType;"
    "binaryPath=[string]$p.ImagePath;dependencies=@($p.DependOnService|Where-Object{$_});"
    "description=[string]$p.Description}};$r.services[$n]=$s}\n"
    "$r.processes=[ordered]@{}\n"
    "foreach($n in $processes){$r.processes[$n]="
    "@(Get-Process -Name $n -ErrorAction SilentlyContinue).Count -gt 0}\n"
    "$r|ConvertTo-Json -Depth 4 -Compress"
)
HOST_FACTS_BODY = (
    "$r=[ordered]@{}\n"
    "$r.nodeIP=(Get-NetRoute -DestinationPrefix '0.0.0.0/0'|"
    "Get-NetIPAddress -AddressFamily IPv4 -InterfaceIndex {$_.ifIndex}|"
    "Select-Object -First 1).IPAddress\n"
    "$r.containers=$null -ne (Get-Service -Name vmcompute -ErrorAction SilentlyContinue)\n"
    "$r.network=$null\n"
    "if(Get-Command Get-HnsNetwork -ErrorAction SilentlyContinue){"
    "$h=Get-HnsNetwork|Where-Object{$_.Name -eq $network}|Select-Object -First 1;"
    "if($h){$r.network=[ordered]@{subnet=[string]@($h.Subnets)[0].AddressPrefix;"
    "managementIP=[string]$h.ManagementIP;vip=$null};"
    "$e=Get-HnsEndpoint|Where-Object{$_.Name -eq $endpoint}|Select-Object -First 1;"
    "if($h -and $e){$r.network.vip=[string]$e.IPAddress}}}\n"
    "$r.domain=[System.Net.NetworkInformation.IPGlobalProperties]::GetIPGlobalProperties()"
    ".DomainName\n"
    "$r.managed=@(foreach($s in @(Get-ChildItem -LiteralPath "
    "'HKLM:\\SYSTEM\\CurrentControlSet\\Services')){$d=[string](Get-ItemProperty "
    "-LiteralPath $s.PSPath -ErrorAction SilentlyContinue).Description;"
    "if($d.StartsWith($prefix)){$s.PSChildName}})\n"
    "$r.cloudHostname=$null\n"
    "if($platform -eq 'aws'){$r.cloudHostname=[string](Invoke-RestMethod -UseBasicParsing "
    "-TimeoutSec 10 -Uri 'http://169.254.169.254/latest/meta-data/local-hostname')}\n"
    "if($platform -eq 'gcp'){$r.cloudHostname=[string](Invoke-RestMethod -UseBasicParsing "
    "-TimeoutSec 10 -Headers @{'Metadata-Flavor'='Google'} "
    "-Uri 'http://metadata.google.internal/computeMetadata/v1/instance/hostname')}\n"
    "$r|ConvertTo-Json -Depth 4 -Compress"
)
# The HNS networks hybrid-overlay creates (ovn-kubernetes ho_node_windows.go): the pods'
# overlay, and the base network it makes first.
OVERLAY_NETWORK = "OVNKubernetesHybridOverlayNetwork"
BASE_NETWORK = "BaseOVNKubernetesHybridOverlayNetwork"


@dataclass(frozen=True)
class ServiceInfo:
    state: ServiceState
    start_type: StartType
    binary_path: str  # the full ImagePath: executable and arguments
    dependencies: tuple[str, ...]
    description: str


@dataclass(frozen=True)
class HnsNetwork:
    """The pod network hybrid-overlay made on the host."""

    subnet: str  # the node's hybrid overlay subnet, e.g. 10.132.0.0/23
    management_ip: str  # the host address the overlay uses (CNI ProviderAddress)
    vip: str | None = None  # the VIPEndpoint's address (kube-proxy's source VIP), if made


@dataclass(frozen=True)
class Inventory:
    """What the probe reads of a host's files and services, from one command."""

    hostname: str
    os_build: OsBuild
    free_bytes: int
    files: dict[str, str | None]  # path -> lowercase sha256 hex, None when missing
    services: dict[str, ServiceInfo | None]  # None when the service does not exist
    processes: dict[str, bool]  # process name (no .exe) -> running


@dataclass(frozen=True)
class NodeFacts:
    """What the probe reads of a host as a node, from one command."""

    node_ip: str | None = None  # IPv4 of the default route's interface (WMCO's node IP)
    containers: bool = True  # the Containers feature (its Host Compute Service) is there
    network: HnsNetwork | None = None  # the overlay network, once hybrid-overlay made it
    domain: str = ""  # the primary DNS suffix ("" when the host has none)
    managed: tuple[str, ...] = ()  # services whose description starts with the prefix
    cloud_hostname: str | None = None  # the cloud's name for the host (aws, gcp)


def inventory(
    files: Sequence[str] = (), services: Sequence[str] = (), processes: Sequence[str] = ()
) -> str:
    """Host name, OS build, free bytes on C:, hashes, services and processes, as JSON."""
    for path in files:
        check_path(path, "file")
    for name in services:
        check_name(name, "service name")
    for name in processes:
        check_name(name, "process name")
    params: list[tuple[str, Param]] = [
        ("files", list(files)),
        ("services", list(services)),
        ("processes", list(processes)),
    ]
    return powershell(params, INVENTORY_BODY)


PLATFORMS = ("aws", "gcp", "azure", "vsphere", "nutanix", "none")


def node_facts(network: str = OVERLAY_NETWORK, endpoint: str = "VIPEndpoint",
               prefix: str = "OpenShift managed", platform: str = "none") -> str:
    """The node IP (the default route's IPv4), whether the Containers feature is there
    (its ``vmcompute`` service), the pod overlay network and its VIP endpoint, the primary
    DNS suffix, the services whose description starts with ``prefix``, and on AWS and GCP
    the cloud's host name (the instance metadata service, as WMCO's kubelet pre-script
    asks it), as JSON."""
    if platform not in PLATFORMS:
        raise ValueError(f"unknown platform {platform!r}")
    check_text(prefix, "description prefix")
    if not prefix:
        raise ValueError("the description prefix must not be empty")
    return powershell([("network", check_name(network, "network name")),
                       ("endpoint", check_name(endpoint, "endpoint name")),
                       ("prefix", prefix), ("platform", platform)], HOST_FACTS_BODY)


def _typed(value: Any, kind: type, what: str) -> Any:
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ValueError(f"inventory: {what} is {type(value).__name__}, not {kind.__name__}")
    return value


def _json_doc(entry: str, result: CommandResult) -> dict[str, Any]:
    _ok(entry, result)
    try:
        doc = json.loads(result.stdout)
    except json.JSONDecodeError as err:
        raise ValueError(f"{entry} is not JSON: {err}: {result.stdout[:200]!r}") from err
    except RecursionError:
        raise ValueError(f"{entry} is nested too deeply to be the inventory") from None
    typed: dict[str, Any] = _typed(doc, dict, "the document")
    return typed


def parse_inventory(result: CommandResult) -> Inventory:
    """The inventory; ValueError (never anything else) when the host printed something
    that is not one, so one odd host is that host's problem only."""
    doc = _json_doc("inventory", result)
    try:
        return _inventory_of(doc)
    except (KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"inventory is malformed: {type(err).__name__}: {err}") from None


def parse_node_facts(result: CommandResult) -> NodeFacts:
    """The node facts; ValueError (never anything else) when malformed."""
    doc = _json_doc("node-facts", result)
    try:
        network = doc.get("network")
        hns = None
        if network:
            _typed(network, dict, "network")
            hns = HnsNetwork(str(network.get("subnet") or ""),
                             str(network.get("managementIP") or ""),
                             str(network["vip"]) if network.get("vip") else None)
        managed = doc.get("managed") or []
        if isinstance(managed, str):  # ConvertTo-Json writes a lone element as itself
            managed = [managed]
        return NodeFacts(
            node_ip=str(doc["nodeIP"]) if doc.get("nodeIP") else None,
            containers=bool(doc.get("containers", True)),
            network=hns,
            domain=_host_name(str(doc.get("domain") or ""), "domain", dotted=True),
            managed=tuple(str(n) for n in _typed(managed, list, "managed")),
            cloud_hostname=_host_name(str(doc["cloudHostname"]), "cloudHostname", dotted=True)
            if doc.get("cloudHostname") else None,
        )
    except (KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"node-facts is malformed: {type(err).__name__}: {err}") from None


_HOST_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def _host_name(value: str, what: str, *, dotted: bool = False) -> str:
    """A name the host reports about itself, used in its Node name and its own service
    arguments: DNS labels only (a space would add an argument to the ImagePath)."""
    labels = value.split(".") if dotted else [value]
    if value and (len(value) > 253 or not all(_HOST_LABEL.fullmatch(p) for p in labels)):
        raise ValueError(f"the host reports {what} {value[:80]!r}, which is not a DNS name")
    if not value and not dotted:
        raise ValueError(f"the host reports an empty {what}")
    return value


def _inventory_of(doc: dict[str, Any]) -> Inventory:
    services: dict[str, ServiceInfo | None] = {}
    for name, svc in _typed(doc.get("services") or {}, dict, "services").items():
        if svc is None:
            services[name] = None
            continue
        _typed(svc, dict, f"service {name}")
        services[name] = ServiceInfo(
            state=_STATUS_NAMES[svc["state"]],
            start_type=_START_TYPE_NAMES[svc["startType"]],
            binary_path=_typed(svc["binaryPath"], str, f"service {name} binaryPath"),
            dependencies=tuple(str(d) for d in _typed(svc.get("dependencies") or [], list,
                                                      f"service {name} dependencies")),
            description=str(svc.get("description") or ""),
        )
    files: dict[str, str | None] = {}
    for path, digest in _typed(doc.get("files") or {}, dict, "files").items():
        files[path] = _typed(digest, str, f"hash of {path}").lower() if digest else None
    return Inventory(
        hostname=_host_name(_typed(doc["hostname"], str, "hostname"), "hostname"),
        os_build=OsBuild.parse(_typed(doc["osBuild"], str, "osBuild")),
        free_bytes=int(_typed(doc["freeBytes"], int, "freeBytes")),
        files=files,
        services=services,
        processes={n: bool(v) for n, v in
                   _typed(doc.get("processes") or {}, dict, "processes").items()},
    )


# --- files and directories ---------------------------------------------------------------
FILE_HASH_BODY = (
    "if(Test-Path -LiteralPath $path -PathType Leaf)"
    "{(Get-FileHash -LiteralPath $path -Algorithm SHA256).Hash}"
)
TEST_PATH_BODY = "Test-Path -LiteralPath $path"
MAKE_DIRECTORY_BODY = "foreach($p in $paths){[System.IO.Directory]::CreateDirectory($p)|Out-Null}"
REMOVE_PATH_BODY = (
    "if(Test-Path -LiteralPath $path){Remove-Item -LiteralPath $path -Recurse -Force}"
)
MOVE_FILE_BODY = "Move-Item -LiteralPath $source -Destination $destination -Force"
WRITE_FILE_BODY = "[System.IO.File]::WriteAllText($path,$content)"
EXPAND_ARCHIVE_BODY = (
    "& tar.exe -xzf $archive -C $directory --strip-components $strip\nexit $LASTEXITCODE"
)


def file_hash(path: str) -> str:
    """``Get-FileHash -Algorithm SHA256`` of one file; prints nothing when it is missing."""
    return powershell([("path", check_path(path))], FILE_HASH_BODY)


def parse_file_hash(result: CommandResult) -> str | None:
    _ok("file-hash", result)
    lines = _lines(result.stdout)
    if not lines:
        return None
    if len(lines) != 1 or not re.fullmatch(r"[0-9A-Fa-f]{64}", lines[0]):
        raise ValueError(f"file-hash printed {result.stdout!r}")
    return lines[0].lower()


def test_path(path: str) -> str:
    """``Test-Path``: whether a file or directory exists."""
    return powershell([("path", check_path(path))], TEST_PATH_BODY)


test_path.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def parse_test_path(result: CommandResult) -> bool:
    _ok("test-path", result)
    lines = _lines(result.stdout)
    if lines == ["True"]:
        return True
    if lines == ["False"]:
        return False
    raise ValueError(f"test-path printed {result.stdout!r}")


def make_directory(*paths: str) -> str:
    """Create each directory and its parents, in order, in one command; nothing happens
    for one that exists. A path that is a file stops it there (``ERROR_ALREADY_EXISTS``)."""
    if not paths:
        raise ValueError("make_directory needs a path")
    return powershell([("paths", [check_path(p) for p in paths])], MAKE_DIRECTORY_BODY)


def remove_path(path: str) -> str:
    """Remove a file, or a directory recursively; nothing happens when it is missing."""
    path = check_path(path)
    if re.fullmatch(r"[A-Za-z]:\\*", path):
        raise ValueError(f"refusing to remove a drive root: {path!r}")
    return powershell([("path", path)], REMOVE_PATH_BODY)


CNI_STATE_DIR = "C:\\var\\lib\\cni"


def remove_cni_state() -> str:
    """Delete ``C:\\var\\lib\\cni`` (stale IPAM state broke pod IPs on re-join, in WMCO)."""
    return remove_path(CNI_STATE_DIR)


def move_file(source: str, destination: str) -> str:
    """``Move-Item -Force``: rename, replacing ``destination`` (a file path) if it exists."""
    params = [("source", check_path(source)), ("destination", check_path(destination))]
    return powershell(params, MOVE_FILE_BODY)


def write_file(path: str, content: str) -> str:
    """Write a small text file as UTF-8 without BOM. Prefer SFTP; this is for tiny files."""
    check_text(content, "content", multiline=True)
    params = [("path", check_path(path)), ("content", content)]
    return powershell(params, WRITE_FILE_BODY)


def expand_archive(archive: str, directory: str, strip: int = 0) -> str:
    """``tar.exe -xzf <archive> -C <directory> --strip-components <strip>`` (bsdtar, which
    Windows ships; the directory must exist): ``strip`` leading directories dropped, so
    containerd's ``bin/containerd.exe`` lands at ``<directory>\\containerd.exe``."""
    check_native_argument(check_path(archive, "archive"), "archive")
    check_native_argument(check_path(directory, "directory"), "directory")
    return powershell([("archive", archive), ("directory", directory),
                       ("strip", check_within(strip, 16, "strip"))],
                      EXPAND_ARCHIVE_BODY)


def check_done(result: CommandResult, entry: str = "command") -> None:
    """Parser for the entries that print nothing: exit 0 or :class:`CommandFailed`."""
    _ok(entry, result)


# --- processes and reboot -----------------------------------------------------------------
WAIT_PROCESS_BODY = (
    "$p=@(Get-Process -Name $names -ErrorAction SilentlyContinue)\n"
    "if($p.Count -gt 0){try{$p|Wait-Process -Timeout $timeout}catch{}}\n"
    "$r=@(Get-Process -Name $names -ErrorAction SilentlyContinue)\n"
    "if($r.Count -gt 0){$r.ProcessName|Sort-Object -Unique;exit 1460}"
)
RESTART_BODY = "Restart-Computer -Force"


def wait_process_exit(names: Sequence[str], timeout_seconds: int) -> str:
    """Wait up to ``timeout_seconds`` until no process of ``names`` (without .exe) runs:
    the exits overlap, in one round trip.

    Exit 0 when none runs (or none ran); 1460 (ERROR_TIMEOUT) when some still run, their
    names printed one per line. The SSH exec timeout must be longer than ``timeout_seconds``.
    """
    if not names:
        raise ValueError("wait_process_exit needs at least one process name")
    return powershell([("names", [check_name(n, "process name") for n in names]),
                       ("timeout", check_within(timeout_seconds, 3600, "timeout_seconds"))],
                      WAIT_PROCESS_BODY)


def parse_wait_process_exit(result: CommandResult) -> list[str]:
    """The processes still running at the timeout; empty when they are all gone."""
    _ok("wait-process-exit", result, 0, ERROR_TIMEOUT)
    if result.exit_code == 0:
        return []
    running = [line for line in _lines(result.stdout) if _NAME.match(line)]
    if not running:
        raise ValueError(f"wait-process-exit: timed out naming no process: {result.stdout!r}")
    return running


def restart_computer() -> str:
    return powershell([], RESTART_BODY)


def parse_restart_computer(result: CommandResult) -> None:
    """A reboot that closed the connection without an exit status succeeded (WMCO bug)."""
    _ok("restart-computer", result, 0, NO_EXIT_STATUS)


STOP_PROCESS_BODY = "Stop-Process -Force -Name $name -ErrorAction SilentlyContinue"


def stop_process(name: str) -> str:
    """End every process named ``name`` (no .exe), as WMCO's cleanup ends the containerd
    shims of pods a drain leaves (``Stop-Process -Force -Name containerd-shim-runhcs-v1``,
    ``pkg/daemon/cleanup/cleanup.go``): their executable is held while they run."""
    return powershell([("name", check_name(name, "process name"))], STOP_PROCESS_BODY)


# --- Windows features and the host name ------------------------------------------------------
ENABLE_CONTAINERS_BODY = "Install-WindowsFeature -Name Containers|Out-Null"
RENAME_COMPUTER_BODY = "Rename-Computer -NewName $name -Force|Out-Null"
_COMPUTER_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,13}[A-Za-z0-9])?$")


def enable_containers() -> str:
    """Install the Containers feature (HNS and the Host Compute Service); it takes effect
    at the next boot (WMCO ``pkg/windows/windows.go`` ``enableContainersWindowsFeature``)."""
    return powershell([], ENABLE_CONTAINERS_BODY)


def rename_computer(name: str) -> str:
    """Give the host ``name`` from the next boot on (WMCO renames vSphere and Nutanix
    Machines to their Machine name). A NetBIOS name: letters, digits, hyphens, <= 15."""
    if not _COMPUTER_NAME.match(name):
        raise ValueError(f"not a Windows computer name (<= 15 letters, digits, '-'): {name!r}")
    return powershell([("name", name)], RENAME_COMPUTER_BODY)


# --- cluster-wide settings: trusted CAs, the proxy ---------------------------------------
IMPORT_CERTIFICATES_BODY = (
    "$t=[System.IO.File]::ReadAllText($path)\n"
    "$s=New-Object System.Security.Cryptography.X509Certificates.X509Store('Root','LocalMachine')\n"
    "$s.Open('ReadWrite')\n"
    "$n=0\n"
    "foreach($m in [regex]::Matches($t,'-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\\s]+)"
    "-----END CERTIFICATE-----')){"
    "$b=[Convert]::FromBase64String(($m.Groups[1].Value -replace '\\s',''));"
    "$s.Add([System.Security.Cryptography.X509Certificates.X509Certificate2]::new($b));"
    "$n++}\n"
    "$s.Close()\n"
    "$n"
)
SET_MACHINE_ENVIRONMENT_BODY = (
    "for($i=0;$i -lt $names.Count;$i++){$v=$values[$i];if($v -eq ''){$v=$null};"
    "[Environment]::SetEnvironmentVariable($names[$i],$v,'Machine')}"
)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def import_certificates(path: str) -> str:
    """Add every certificate of the PEM bundle at ``path`` to the machine's trusted
    roots (``Cert:\\LocalMachine\\Root``), as WMCO's daemon imports its trusted CA bundle.
    Prints how many."""
    return powershell([("path", check_path(path, "bundle"))], IMPORT_CERTIFICATES_BODY)


def parse_import_certificates(result: CommandResult) -> int:
    _ok("import-certificates", result)
    lines = _lines(result.stdout)
    if len(lines) != 1 or not lines[0].isdigit():
        raise ValueError(f"import-certificates printed {result.stdout!r}, not a count")
    return int(lines[0])


def set_machine_environment(names: Sequence[str], values: Sequence[str]) -> str:
    """Set machine-wide environment variables (an empty value removes one): the cluster
    proxy, as WMCO's daemon sets it. Services see them after the next boot."""
    if len(names) != len(values):
        raise ValueError("one value per variable")
    for name in names:
        if not _ENV_NAME.match(name):
            raise ValueError(f"not an environment variable name: {name!r}")
    for value in values:
        check_text(value, "environment value")
    return powershell([("names", list(names)), ("values", list(values))],
                      SET_MACHINE_ENVIRONMENT_BODY)


# --- the pod network's HNS objects ------------------------------------------------------------
VIP_ENDPOINT_BODY = (
    "Import-Module -DisableNameChecking $module\n"
    "$n=Get-HnsNetwork|Where-Object{$_.Name -eq $network}|Select-Object -First 1\n"
    "if($null -eq $n){[Console]::Error.WriteLine('no HNS network '+$network);exit 1168}\n"
    "$e=Invoke-HNSRequest GET endpoints|Where-Object{$_.Name -eq $endpoint}|"
    "Select-Object -First 1\n"
    "if($null -eq $e){$e=New-HnsEndpoint -NetworkId $n.ID -Name $endpoint;"
    "Attach-HNSHostEndpoint -EndpointID $e.ID -CompartmentID 1}\n"
    "$v=(Get-NetIPConfiguration -AllCompartments -All -Detailed|"
    "Where-Object{$_.NetAdapter.LinkLayerAddress -eq $e.MacAddress}).IPV4Address.IPAddress\n"
    "[ordered]@{subnet=[string]@($n.Subnets)[0].AddressPrefix;managementIP=[string]$n.ManagementIP;"
    "vip=[string]$v}|ConvertTo-Json -Compress"
)
REMOVE_HNS_NETWORK_BODY = "Get-HnsNetwork|Where-Object{$_.Name -eq $name}|Remove-HnsNetwork"
ERROR_NOT_FOUND = 1168
VIP_ENDPOINT = "VIPEndpoint"


def vip_endpoint(module: str, network: str = OVERLAY_NETWORK,
                 endpoint: str = VIP_ENDPOINT) -> str:
    """kube-proxy's source VIP: the host endpoint ``endpoint`` on the overlay network,
    created and attached to the host's compartment when missing, and its IPv4 (WMCO's
    network-conf script, ``pkg/nodeconfig/payload/payload.go``; the cmdlets come from
    ``hns.psm1``), with the network's subnet and management IP (read as ``node_facts``
    reads them), as JSON. Exit 1168 when the network does not exist yet."""
    return powershell([("module", check_path(module, "module")),
                       ("network", check_name(network, "network name")),
                       ("endpoint", check_name(endpoint, "endpoint name"))], VIP_ENDPOINT_BODY)


def parse_vip_endpoint(result: CommandResult) -> HnsNetwork | None:
    """The network with its VIP, or None while the network does not exist."""
    _ok("vip-endpoint", result, 0, ERROR_NOT_FOUND)
    if result.exit_code == ERROR_NOT_FOUND:
        return None
    doc = _json_doc("vip-endpoint", result)
    vip = doc.get("vip")
    if not isinstance(vip, str) or not _IPV4.match(vip.strip()):
        raise ValueError(f"vip-endpoint printed {result.stdout[:200]!r}: the VIP is not one "
                         "IPv4 address")
    return HnsNetwork(str(doc.get("subnet") or ""), str(doc.get("managementIP") or ""),
                      vip.strip())


def remove_hns_network(name: str) -> str:
    """Remove an HNS network; the host's connections drop while it goes (WMCO reconnects
    after each one: ``pkg/windows/windows.go`` ``ensureHNSNetworksAreRemoved``)."""
    return powershell([("name", check_name(name, "network name"))], REMOVE_HNS_NETWORK_BODY)


def parse_remove_hns_network(result: CommandResult) -> None:
    """Removing the network may cut the connection before an exit status arrives."""
    _ok("remove-hns-network", result, 0, NO_EXIT_STATUS)


# --- services: sc.exe -----------------------------------------------------------------------
SC_BODY = "& sc.exe @argv\nexit $LASTEXITCODE"


def _sc(argv: list[str]) -> str:
    for i, arg in enumerate(argv):
        check_native_argument(arg, f"sc.exe argument {i}")
    return powershell([("argv", argv)], SC_BODY)


def _service_options(
    binary_path: str | None,
    start: StartType | None,
    depends_on: Sequence[str] | None,
    display_name: str | None,
) -> list[str]:
    argv: list[str] = []
    if binary_path is not None:
        # The executable, then its arguments (no quotes: they cannot pass PowerShell 5.1).
        check_path(binary_path.split()[0] if binary_path.split() else "", "service executable")
        argv += ["binPath=", binary_path]
    if start is not None:
        argv += ["start=", StartType(start).value]
    if depends_on is not None:
        deps = [check_name(d, "dependency") for d in depends_on]
        argv += ["depend=", "/".join(deps) if deps else "/"]
    if display_name is not None:
        argv += ["DisplayName=", display_name]
    return argv


def sc_create(
    name: str,
    binary_path: str,
    *,
    start: StartType = StartType.AUTO,
    depends_on: Sequence[str] = (),
    display_name: str | None = None,
) -> str:
    """``sc.exe create <name> binPath= <path and args> start= <type> [depend= a/b]``."""
    options = _service_options(binary_path, start, list(depends_on) or None, display_name)
    return _sc(["create", check_name(name, "service name"), *options])


def sc_config(
    name: str,
    *,
    binary_path: str | None = None,
    start: StartType | None = None,
    depends_on: Sequence[str] | None = None,
    display_name: str | None = None,
) -> str:
    """``sc.exe config``; only the given options change; ``depends_on=()`` clears them."""
    options = _service_options(binary_path, start, depends_on, display_name)
    if not options:
        raise ValueError("sc_config needs at least one option to change")
    return _sc(["config", check_name(name, "service name"), *options])


def sc_qc(name: str) -> str:
    return _sc(["qc", check_name(name, "service name")])


def sc_query(name: str) -> str:
    return _sc(["query", check_name(name, "service name")])


def sc_start(name: str) -> str:
    return _sc(["start", check_name(name, "service name")])


def sc_stop(name: str) -> str:
    return _sc(["stop", check_name(name, "service name")])


def sc_delete(name: str) -> str:
    return _sc(["delete", check_name(name, "service name")])


def sc_description(name: str, description: str) -> str:
    return _sc(["description", check_name(name, "service name"), description])


def sc_failure(
    name: str,
    *,
    reset_seconds: int = 86400,
    actions: Sequence[tuple[str, int]] = (("restart", 10000),) * 3,
) -> str:
    """``sc.exe failure <name> reset= <s> actions= restart/10000/...`` (recovery)."""
    parts: list[str] = []
    for action, delay_ms in actions:
        if action not in ("restart", "run", "reboot", ""):
            raise ValueError(f"unknown failure action {action!r}")
        parts += [action, str(int(delay_ms))]
    if not parts:
        raise ValueError("sc_failure needs at least one action")
    argv = ["failure", check_name(name, "service name"), "reset=", str(int(reset_seconds))]
    return _sc([*argv, "actions=", "/".join(parts)])


# Waits on the host for a service to reach a state, then prints its ``sc.exe query`` block:
# one round trip instead of a query per poll. ``[int]`` of a ServiceControllerStatus is the
# SERVICE_STATE code (Stopped 1 ... Running 4). A service that stops while a start is
# awaited ends the wait (it failed); one that disappears meanwhile (deleted) too, and
# ``sc.exe query`` then says 1060.
WAIT_SERVICE_BODY = (
    "$s=Get-Service -Name $name -ErrorAction SilentlyContinue\n"
    "if($s){$end=[DateTime]::UtcNow.AddMilliseconds($timeout);$d=10\n"
    "while([DateTime]::UtcNow -lt $end){$t=[int]$s.Status;"
    "if($t -eq $want -or ($want -eq 4 -and $t -eq 1)){break};"
    "Start-Sleep -Milliseconds $d;$d=[Math]::Min(2*$d,200);try{$s.Refresh()}catch{break}}}\n"
    "& sc.exe query $name\n"
    "exit $LASTEXITCODE"
)


def _with_wait(name: str, state: ServiceState, timeout_ms: int, body: str) -> str:
    """``body`` (one that ends with the wait-service text) with its parameters."""
    return powershell([("name", check_name(name, "service name")), ("want", int(state)),
                       ("timeout", check_within(timeout_ms, 3_600_000, "timeout_ms"))], body)


def wait_service(name: str, state: ServiceState, timeout_ms: int) -> str:
    """Wait on the host, up to ``timeout_ms``, until service ``name`` is in ``state``
    (STOPPED or RUNNING; awaiting RUNNING also ends when it is STOPPED), then print its
    status as ``sc-query`` does. The SSH exec timeout must be longer than the wait."""
    if state not in (ServiceState.STOPPED, ServiceState.RUNNING):
        raise ValueError(f"wait_service waits for STOPPED or RUNNING, not {state.name}")
    return _with_wait(name, state, timeout_ms, WAIT_SERVICE_BODY)


# sc-start and sc-stop with the wait after them, in one round trip: each SSH exec starts a
# PowerShell on the host, which costs more than either command. A stop is retried every
# 200 ms while the service cannot accept it (1061: a start or stop is pending), for up to
# $timeout; a failure prints sc.exe's own answer and exits with its code.
START_SERVICE_BODY = (
    "$o=& sc.exe start $name\n"
    "if($LASTEXITCODE -ne 0 -and $LASTEXITCODE -ne 1056){$o;exit $LASTEXITCODE}\n"
    + WAIT_SERVICE_BODY
)
# sc.exe stop $name, again every 200 ms while it answers 1061, until $end; its answer in
# $o, its code in $c.
STOP_RETRYING = (
    "do{$o=& sc.exe stop $name;$c=$LASTEXITCODE;if($c -ne 1061){break};"
    "Start-Sleep -Milliseconds 200}while([DateTime]::UtcNow -lt $end)\n"
)
STOP_SERVICE_BODY = (
    "$end=[DateTime]::UtcNow.AddMilliseconds($timeout)\n"
    + STOP_RETRYING
    + "if($c -ne 0 -and $c -ne 1062){$o;exit $c}\n"
    + WAIT_SERVICE_BODY
)


def start_service(name: str, timeout_ms: int) -> str:
    """``sc.exe start`` (already running is fine), then ``wait-service`` RUNNING: the
    status the wait ended with, or sc.exe's failure and its exit code."""
    return _with_wait(name, ServiceState.RUNNING, timeout_ms, START_SERVICE_BODY)


def stop_service(name: str, timeout_ms: int) -> str:
    """``sc.exe stop`` (not running is fine; retried while start- or stop-pending), then
    ``wait-service`` STOPPED. The SSH exec timeout must cover twice ``timeout_ms``."""
    return _with_wait(name, ServiceState.STOPPED, timeout_ms, STOP_SERVICE_BODY)


# stop-service for several services in turn, then wait-process-exit for their processes,
# in one round trip: an upgrade stops kube-proxy, hybrid-overlay-node and the kubelet. Each
# service's part of the output follows a line "== <name>": its sc.exe query block once it
# is STOPPED, nothing when it does not exist (sc.exe stop 1060, or deleted meanwhile). A
# service still not STOPPED after $wait ms ends the command with its block (exit 0); a
# stop sc.exe refuses prints sc.exe's answer and exits with its code. Then a line "==" and
# the wait-process-exit body for $names, when there are any.
STOP_SERVICES_BODY = (
    "foreach($name in $services){'== '+$name\n"
    "$end=[DateTime]::UtcNow.AddMilliseconds($wait)\n"
    + STOP_RETRYING
    + "if($c -eq 1060){continue}\n"
    "if($c -ne 0 -and $c -ne 1062){$o;exit $c}\n"
    "$s=Get-Service -Name $name -ErrorAction SilentlyContinue\n"
    "if($s){$end=[DateTime]::UtcNow.AddMilliseconds($wait);$d=10\n"
    "while([DateTime]::UtcNow -lt $end){if([int]$s.Status -eq 1){break};"
    "Start-Sleep -Milliseconds $d;$d=[Math]::Min(2*$d,200);try{$s.Refresh()}catch{break}}}\n"
    "$q=& sc.exe query $name\n"
    "if($LASTEXITCODE -ne 0){continue}\n"
    "$q\n"
    "if([int]$s.Status -ne 1){exit 0}}\n"
    "'=='\n"
    "if($names.Count -gt 0){\n" + WAIT_PROCESS_BODY + "}"
)


def stop_services(services: Sequence[str], processes: Sequence[str], timeout_ms: int,
                  exit_seconds: int) -> str:
    """``stop-service`` for each of ``services`` in this order, then ``wait-process-exit``
    for ``processes`` (none: no wait), in one command. The SSH exec timeout must cover
    twice ``timeout_ms`` per service plus ``exit_seconds``."""
    if not services:
        raise ValueError("stop_services needs at least one service")
    return powershell([("services", [check_name(n, "service name") for n in services]),
                       ("wait", check_within(timeout_ms, 3_600_000, "timeout_ms")),
                       ("names", [check_name(n, "process name") for n in processes]),
                       ("timeout", check_within(exit_seconds, 3600, "exit_seconds"))],
                      STOP_SERVICES_BODY)


@dataclass(frozen=True)
class ServicesStopped:
    """What ``stop-services`` reported."""

    # Each service the command reached, in order: its status once the wait ended, None
    # when it does not exist. A status that is not STOPPED ended the command. Empty when
    # a stop was refused.
    statuses: dict[str, ServiceStatus | None]
    refused: str | None = None  # the service whose stop sc.exe refused (the exit code)
    answer: str = ""  # sc.exe's answer to that stop
    waited: bool = False  # the processes' wait ran (every service is STOPPED or gone)
    running: tuple[str, ...] = ()  # processes still running when that wait ended


def parse_stop_services(result: CommandResult) -> ServicesStopped:
    """The services' parts and the processes still running; a refused stop is data
    (``refused``), any other failure :class:`CommandFailed`."""
    parts: dict[str, list[str]] = {}
    tail: list[str] | None = None
    current: list[str] | None = None
    for line in result.stdout.replace("\r\n", "\n").split("\n"):
        if line.rstrip() == "==":
            current = tail = []
        elif line.startswith("== ") and tail is None:
            current = parts.setdefault(line[3:].strip(), [])
        elif current is not None:
            current.append(line)
    if tail is None and parts and result.exit_code not in (0, NO_EXIT_STATUS):
        name = list(parts)[-1]
        return ServicesStopped({}, refused=name, answer="\n".join(parts[name]).strip())
    _ok("stop-services", result, 0, ERROR_TIMEOUT)
    statuses: dict[str, ServiceStatus | None] = {}
    for name, lines in parts.items():
        block = "\n".join(lines).strip()
        statuses[name] = parse_sc_status(CommandResult(0, block), "stop-services") \
            if block else None
    running = tuple(n for n in _lines("\n".join(tail or [])) if _NAME.match(n))
    if result.exit_code == ERROR_TIMEOUT and not running:
        raise ValueError(f"stop-services: timed out naming no process: {result.stdout!r}")
    return ServicesStopped(statuses, waited=tail is not None, running=running)


def parse_wait_service(result: CommandResult) -> ServiceStatus | None:
    """The status the wait ended with; None when the service does not exist."""
    if result.exit_code == ERROR_SERVICE_DOES_NOT_EXIST:
        return None
    return parse_sc_status(result, "wait-service")


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    state: ServiceState
    win32_exit_code: int
    pid: int | None  # only sc.exe start prints it


@dataclass(frozen=True)
class ServiceConfig:
    name: str
    start_type: StartType
    binary_path: str
    dependencies: tuple[str, ...]
    display_name: str


# sc.exe translates its labels (``STATE`` is ``STATUS`` on a German host, ``ÉTAT`` on a
# French one, ``ESTADO`` on a Portuguese one, and non-ASCII letters arrive in the console's
# OEM code page) but never its layout or its values: the fields come in a fixed order and
# the numbers and constants after the colon are the same in every language. So the
# parsers read fields by position and check each value's shape; the labels are ignored.
_STATUS_FIELDS = ("SERVICE_NAME", "TYPE", "STATE", "WIN32_EXIT_CODE", "SERVICE_EXIT_CODE",
                  "CHECKPOINT", "WAIT_HINT")  # then PID and FLAGS after start and stop
_CONFIG_FIELDS = ("SERVICE_NAME", "TYPE", "START_TYPE", "ERROR_CONTROL", "BINARY_PATH_NAME",
                  "LOAD_ORDER_GROUP", "TAG", "DISPLAY_NAME", "DEPENDENCIES",
                  "SERVICE_START_NAME")
_STATE_VALUE = re.compile(r"([1-7])\s+[A-Z_]+")
_CODE_VALUE = re.compile(r"(\d+)\s+\(0x[0-9a-fA-F]+\)")
_START_VALUE = re.compile(r"([0-4])\s+[A-Z_]+(\s+\(.+\))?")


def _sc_fields(text: str) -> list[tuple[str, list[str]]]:
    """The ``label : value`` lines of sc.exe output in order, each with its continuation
    lines (an empty label: the second and later dependencies). Lines without a colon (the
    ``(STOPPABLE, ...)`` flags, blank lines) and ``[SC] ...`` banners are skipped."""
    fields: list[tuple[str, list[str]]] = []
    for raw in text.replace("\r\n", "\n").split("\n"):
        if ":" not in raw or raw.startswith("[SC]"):
            continue
        label, _, value = raw.partition(":")  # a label never holds a colon; C:\ is a value
        label, value = label.strip(), value.strip()
        if label:
            fields.append((label, [value]))
        elif fields:
            fields[-1][1].append(value)
    return fields


def _field(fields: list[tuple[str, list[str]]], names: tuple[str, ...], name: str) -> str:
    return fields[names.index(name)][1][0]


def _match(fields: list[tuple[str, list[str]]], names: tuple[str, ...], name: str,
           shape: re.Pattern[str]) -> re.Match[str]:
    value = _field(fields, names, name)
    match = shape.fullmatch(value)
    if match is None:
        raise ValueError(f"{name} is {value!r}")
    return match


def parse_sc_status(result: CommandResult, entry: str = "sc-query") -> ServiceStatus:
    """Parse ``sc.exe query`` (and the status ``sc.exe start``/``stop`` print)."""
    _ok(entry, result)
    fields = _sc_fields(result.stdout)
    try:
        if len(fields) < len(_STATUS_FIELDS):
            raise ValueError(f"{len(fields)} fields")
        state = _match(fields, _STATUS_FIELDS, "STATE", _STATE_VALUE)
        code = _match(fields, _STATUS_FIELDS, "WIN32_EXIT_CODE", _CODE_VALUE)
        pid_value = fields[len(_STATUS_FIELDS)][1][0] if len(fields) > len(_STATUS_FIELDS) else ""
        pid = int(pid_value) if pid_value else None
        return ServiceStatus(_field(fields, _STATUS_FIELDS, "SERVICE_NAME"),
                             ServiceState(int(state.group(1))), int(code.group(1)), pid)
    except (ValueError, IndexError) as err:
        raise ValueError(f"{entry}: unexpected output ({err}): {result.stdout!r}") from err


def parse_sc_qc(result: CommandResult) -> ServiceConfig:
    _ok("sc-qc", result)
    fields = _sc_fields(result.stdout)
    try:
        if len(fields) != len(_CONFIG_FIELDS):
            raise ValueError(f"{len(fields)} fields")
        start = _match(fields, _CONFIG_FIELDS, "START_TYPE", _START_VALUE)
        start_type = {2: StartType.AUTO, 3: StartType.DEMAND, 4: StartType.DISABLED}[
            int(start.group(1))]
        if start_type is StartType.AUTO and start.group(2):  # "(DELAYED)", translated
            start_type = StartType.DELAYED_AUTO
        dependencies = fields[_CONFIG_FIELDS.index("DEPENDENCIES")][1]
        return ServiceConfig(
            name=_field(fields, _CONFIG_FIELDS, "SERVICE_NAME"),
            start_type=start_type,
            binary_path=_field(fields, _CONFIG_FIELDS, "BINARY_PATH_NAME"),
            dependencies=tuple(d for d in dependencies if d),
            display_name=_field(fields, _CONFIG_FIELDS, "DISPLAY_NAME"),
        )
    except (KeyError, ValueError, IndexError) as err:
        raise ValueError(f"sc-qc: unexpected output ({err}): {result.stdout!r}") from err


def parse_sc_done(result: CommandResult, entry: str = "sc") -> None:
    """create, config, delete, description, failure: exit 0 or :class:`CommandFailed`."""
    _ok(entry, result)


# --- managed services: the cleanup's search ----------------------------------------------
MANAGED_SERVICES_BODY = (
    "foreach($s in @(Get-ChildItem -LiteralPath 'HKLM:\\SYSTEM\\CurrentControlSet\\Services'))"
    "{$d=[string](Get-ItemProperty -LiteralPath $s.PSPath -ErrorAction SilentlyContinue)"
    ".Description;if($d.StartsWith($prefix)){$s.PSChildName}}"
)


def managed_services(prefix: str) -> str:
    """Names of every service whose description starts with ``prefix`` (one per line):
    how deconfiguration finds managed services of any version, old and new."""
    check_text(prefix, "description prefix")
    if not prefix:
        raise ValueError("the description prefix must not be empty")
    return powershell([("prefix", prefix)], MANAGED_SERVICES_BODY)


def parse_managed_services(result: CommandResult) -> list[str]:
    """The service names, in the host's order; names that are not valid service names
    for the vocabulary (see :func:`check_name`) are dropped."""
    _ok("managed-services", result)
    return [line for line in _lines(result.stdout) if _NAME.match(line)]


# --- the vocabulary, for documentation and tests -------------------------------------------
@dataclass(frozen=True)
class Entry:
    name: str
    builder: Callable[..., str]
    parser: Callable[..., Any]
    step: str  # which node-stage step uses it


VOCABULARY: tuple[Entry, ...] = (
    Entry("shell-probe", shell_probe, parse_shell_probe, "probe"),
    Entry("hostname", hostname, parse_hostname, "probe, CSR name fallback"),
    Entry("os-build", os_build, parse_os_build, "probe"),
    Entry("node-facts", node_facts, parse_node_facts, "probe"),
    Entry("inventory", inventory, parse_inventory, "probe, verify"),
    Entry("file-hash", file_hash, parse_file_hash, "transfer (skip identical files)"),
    Entry("test-path", test_path, parse_test_path, "transfer, verify"),
    Entry("make-directory", make_directory, check_done, "transfer"),
    Entry("remove-path", remove_path, check_done, "transfer, deconfigure"),
    Entry("remove-cni-state", remove_cni_state, check_done, "configure, deconfigure"),
    Entry("move-file", move_file, check_done, "transfer (replace a binary)"),
    Entry("write-file", write_file, check_done, "transfer (small config files)"),
    Entry("expand-archive", expand_archive, check_done, "transfer (archives)"),
    Entry("sc-create", sc_create, parse_sc_done, "services"),
    Entry("sc-config", sc_config, parse_sc_done, "services"),
    Entry("sc-qc", sc_qc, parse_sc_qc, "services, verify"),
    Entry("sc-query", sc_query, parse_sc_status, "services, verify"),
    Entry("sc-start", sc_start, parse_sc_status, "start-service"),
    Entry("sc-stop", sc_stop, parse_sc_status, "stop-service"),
    Entry("sc-delete", sc_delete, parse_sc_done, "services, deconfigure"),
    Entry("sc-description", sc_description, parse_sc_done, "services (mark managed)"),
    Entry("sc-failure", sc_failure, parse_sc_done, "services (recovery actions)"),
    Entry("wait-service", wait_service, parse_wait_service, "start-service, stop-service"),
    Entry("start-service", start_service, parse_wait_service, "services"),
    Entry("stop-service", stop_service, parse_wait_service, "services, deconfigure"),
    Entry("stop-services", stop_services, parse_stop_services,
          "stop-services (an upgrade's services, in order)"),
    Entry("wait-process-exit", wait_process_exit, parse_wait_process_exit, "services"),
    Entry("restart-computer", restart_computer, parse_restart_computer, "reboot"),
    Entry("managed-services", managed_services, parse_managed_services, "deconfigure"),
    Entry("stop-process", stop_process, check_done, "services, deconfigure (containerd shims)"),
    Entry("enable-containers", enable_containers, check_done, "prepare"),
    Entry("rename-computer", rename_computer, check_done, "prepare (vSphere, Nutanix)"),
    Entry("vip-endpoint", vip_endpoint, parse_vip_endpoint, "network"),
    Entry("import-certificates", import_certificates, parse_import_certificates,
          "files, refresh (trusted CA bundle)"),
    Entry("set-machine-environment", set_machine_environment, check_done,
          "files (cluster proxy)"),
    Entry("remove-hns-network", remove_hns_network, parse_remove_hns_network, "deconfigure"),
)

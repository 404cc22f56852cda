"""The PowerShell vocabulary as the simulated host recognises and executes it.

Each :class:`Body` is the fixed script text of one vocabulary entry, with its
parameters (``$name`` assignments that must precede the body, in order, each a
single-quoted string, an integer, or ``@(...)`` of strings). A script is accepted when it
is exactly ``PRELUDE``, the assignments, a body, and ``EPILOGUE`` (token for token; see
``pwsh.py``), and its handler then does natively what the script does on Windows.

This text is the contract with ``syncer/nodes/windows/vocabulary.py`` and
``docs/windows-commands.md`` and is deliberately *copied*, not imported: the simulator
checks the product's builders, so it must not share their code. The catch block's exit
code is emulated: a Win32 error exits with its code (the HRESULT's low word), anything else with 1.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from syncer_lab.winhost import sc_exe, win32
from syncer_lab.winhost.filesystem import Drive
from syncer_lab.winhost.hns import HostNetworking
from syncer_lab.winhost.pwsh import (
    Token,
    ps51_command_line,
    same,
    split_command_line,
    tokenize,
)
from syncer_lab.winhost.service_manager import ServiceControlManager, State
from syncer_lab.winhost.win32 import Win32Error

CRLF = "\r\n"

PRELUDE = "$ProgressPreference='SilentlyContinue'\n$ErrorActionPreference='Stop'\ntry {\n"
EPILOGUE = (
    "\nexit 0\n"
    "} catch {\n"
    "[Console]::Error.WriteLine($_.Exception.Message)\n"
    "$h=$_.Exception.HResult\n"
    "if((($h -shr 16) -band 0xFFFF) -eq 0x8007){exit ($h -band 0xFFFF)}\n"
    "exit 1\n"
    "}\n"
)
PRELUDE_TOKENS = tokenize(PRELUDE)
EPILOGUE_TOKENS = tokenize(EPILOGUE)


class Machine(Protocol):
    """What a handler may use of the host."""

    name: str
    computer_name: str
    address: str
    os_build: str
    fs: Drive
    scm: ServiceControlManager
    hns: HostNetworking
    features: dict[str, bool]
    pending_features: dict[str, bool]
    pending_name: str | None
    dns_suffix: str  # the primary DNS suffix ("" for none)
    trusted_roots: set[str]  # thumbprints in Cert:\\LocalMachine\\Root added by commands
    machine_environment: dict[str, str]  # machine-wide variables (services see them at boot)
    cloud_hostname: str | None  # what the cloud's instance metadata service calls the host

    def sleep(self, seconds: float) -> bool: ...  # False when the host goes down meanwhile

    def request_reboot(self) -> None: ...

    def drop_connections_soon(self) -> None: ...


@dataclass
class Outcome:
    """What the host answers: ``exit_code`` None means the channel closes without one."""

    exit_code: int | None
    stdout: str = ""
    stderr: str = ""
    unexpected: str | None = None  # why this is not vocabulary (recorded by the host)


class PSError(Exception):
    """A PowerShell error that is not a Win32 error (exit code 1 from the catch block)."""


Handler = Callable[[Machine, dict[str, Any]], Outcome]


@dataclass(frozen=True)
class Body:
    name: str
    params: tuple[tuple[str, str], ...]  # (variable, "str" | "int" | "list")
    text: str
    handler: Handler

    @property
    def tokens(self) -> list[Token]:
        return tokenize(self.text)


def _lines(*lines: str) -> str:
    return "".join(line + CRLF for line in lines)


# --- handlers ------------------------------------------------------------------------
def _os_build(m: Machine, p: dict[str, Any]) -> Outcome:
    return Outcome(0, _lines(m.os_build))


_PS_STATUS = {
    State.STOPPED: "Stopped",
    State.START_PENDING: "StartPending",
    State.STOP_PENDING: "StopPending",
    State.RUNNING: "Running",
}
_PS_START_TYPE = {
    "auto": "Automatic", "delayed-auto": "Automatic", "demand": "Manual",
    "disabled": "Disabled", "boot": "Boot", "system": "System",
}


def convert_to_json(value: Any) -> str:
    """``ConvertTo-Json -Compress`` as Windows PowerShell 5.1 writes it."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("'", "\\u0027"), ("&", "\\u0026")):
        text = text.replace(char, escaped)
    return text


def _inventory(m: Machine, p: dict[str, Any]) -> Outcome:
    doc: dict[str, Any] = {
        "hostname": m.computer_name,
        "osBuild": m.os_build,
        "freeBytes": m.fs.free(),
        "files": {},
        "services": {},
        "processes": {},
    }
    for path in p["files"]:
        doc["files"][path] = m.fs.sha256(path) if m.fs.is_file(path) else None
    for name in p["services"]:
        if not m.scm.exists(name):
            doc["services"][name] = None
            continue
        svc = m.scm.get(name)
        doc["services"][name] = {
            "state": _PS_STATUS[svc.state],
            "startType": _PS_START_TYPE[svc.start_type],
            "binaryPath": svc.binary_path,
            "dependencies": list(svc.dependencies),
            "description": svc.description,
        }
    for name in p["processes"]:
        doc["processes"][name] = bool(m.scm.processes(name))
    return Outcome(0, _lines(convert_to_json(doc)))


def _node_facts(m: Machine, p: dict[str, Any]) -> Outcome:
    doc: dict[str, Any] = {}
    # The default route's interface address is the host's address here (one NIC).
    doc["nodeIP"] = m.address
    # vmcompute (the Host Compute Service) exists once the Containers feature is installed.
    doc["containers"] = bool(m.features.get("Containers"))
    network = m.hns.network(p["network"]) if m.features.get("Containers") else None
    doc["network"] = (None if network is None else
                      {"subnet": network.subnet, "managementIP": network.management_ip,
                       "vip": None})
    endpoint = m.hns.endpoint(p["endpoint"]) if network is not None else None
    if network is not None and endpoint is not None:
        doc["network"]["vip"] = endpoint.ip
    doc["domain"] = m.dns_suffix
    doc["managed"] = [s.name for s in m.scm.services() if s.description.startswith(p["prefix"])]
    doc["cloudHostname"] = None
    if p["platform"] in ("aws", "gcp"):
        # The instance metadata service answers on a cloud instance only; elsewhere
        # Invoke-RestMethod fails (the whole command with it, as on Windows).
        if m.cloud_hostname is None:
            raise PSError("Unable to connect to the remote server")
        doc["cloudHostname"] = m.cloud_hostname
    return Outcome(0, _lines(convert_to_json(doc)))


def _file_hash(m: Machine, p: dict[str, Any]) -> Outcome:
    if not m.fs.is_file(p["path"]):
        return Outcome(0)
    return Outcome(0, _lines(m.fs.sha256(p["path"])))


def _test_path(m: Machine, p: dict[str, Any]) -> Outcome:
    return Outcome(0, _lines("True" if m.fs.exists(p["path"]) else "False"))


def _make_directory(m: Machine, p: dict[str, Any]) -> Outcome:
    # $ErrorActionPreference='Stop': the first CreateDirectory that throws ends the loop.
    for path in p["paths"]:
        m.fs.make_directory(path)
    return Outcome(0)


def _remove_path(m: Machine, p: dict[str, Any]) -> Outcome:
    if m.fs.exists(p["path"]):
        m.fs.remove(p["path"], recursive=True)
    return Outcome(0)


def _move_file(m: Machine, p: dict[str, Any]) -> Outcome:
    if not m.fs.exists(p["source"]):
        raise PSError(f"Cannot find path '{p['source']}' because it does not exist.")
    m.fs.move(p["source"], p["destination"], replace=True)
    return Outcome(0)


def _write_file(m: Machine, p: dict[str, Any]) -> Outcome:
    m.fs.write_bytes(p["path"], p["content"].encode("utf-8"))
    return Outcome(0)


def _expand_archive(m: Machine, p: dict[str, Any]) -> Outcome:
    line = ps51_command_line("tar.exe", ["-xzf", p["archive"], "-C", p["directory"],
                                         "--strip-components", str(p["strip"])])
    argv = split_command_line(line)[1:]
    if (len(argv) != 6 or argv[0] != "-xzf" or argv[2] != "-C"
            or argv[4] != "--strip-components" or not argv[5].isdigit()):
        return Outcome(1, "", _lines(f"tar.exe: Error: unexpected arguments {argv!r}"),
                       unexpected=f"tar.exe received {argv!r}")
    errors = m.fs.extract_tar_gz(argv[1], argv[3], int(argv[5]))
    if errors:
        return Outcome(1, "", _lines(*errors, "tar.exe: Error exit delayed from previous errors."))
    return Outcome(0)


def _sc(m: Machine, p: dict[str, Any]) -> Outcome:
    argv = split_command_line(ps51_command_line("sc.exe", list(p["argv"])))[1:]
    result = sc_exe.run(m.scm, argv)
    unexpected = f"sc.exe usage error: {result.usage_error}" if result.usage_error else None
    return Outcome(result.exit_code, result.stdout, unexpected=unexpected)


def _wait_process(m: Machine, p: dict[str, Any]) -> Outcome:
    # Wait-Process returns when the last process exits, not at a poll: PowerShell's
    # WaitProcessCommand (src/Microsoft.PowerShell.Commands.Management/commands/management/
    # Process.cs) counts down on each Process.Exited event and waits on one ManualResetEvent
    # with the one -Timeout for them all. Here, a sleep until the latest known exit time (a
    # running process has none: look again in 50 ms); then the names of those still
    # running, as $r.ProcessName | Sort-Object -Unique (case-insensitive, like Sort-Object).
    deadline = time.monotonic() + int(p["timeout"])
    while running := [proc for name in p["names"] for proc in m.scm.processes(name)]:
        now = time.monotonic()
        if now >= deadline:
            return Outcome(win32.TIMEOUT, _lines(*sorted({proc.name for proc in running},
                                                         key=str.casefold)))
        exits = [proc.exit_at for proc in running if proc.exit_at is not None]
        until = max(exits) if len(exits) == len(running) else now + 0.05
        if not m.sleep(min(max(until - now, 0.001), deadline - now)):
            return Outcome(None)
    return Outcome(0)


def _wait_service(m: Machine, p: dict[str, Any]) -> Outcome:
    # Get-Service, then ServiceController.Status until the state is $want (or STOPPED while
    # RUNNING is awaited) or the time is up, sleeping 10 ms, 20 ms, ... up to 200 ms
    # between Refresh() calls; then `sc.exe query`. ServiceController.Status is the cached
    # state until Refresh() reads it again (.NET System.ServiceProcess docs), and its
    # ServiceControllerStatus values are the SERVICE_STATE codes (Stopped 1 ... Running 4),
    # hence the state is read once per pass here too; a service deleted meanwhile makes
    # Refresh() throw, which ends the loop, and `sc.exe query` then says 1060.
    want = State(int(p["want"]))
    deadline = time.monotonic() + int(p["timeout"]) / 1000
    delay = 0.01
    while time.monotonic() < deadline:
        state = m.scm.state(p["name"])
        if state is None or state is want or (want is State.RUNNING and state is State.STOPPED):
            break
        if not m.sleep(delay):
            return Outcome(None)
        delay = min(2 * delay, 0.2)
    return _sc(m, {"argv": ["query", p["name"]]})


_WAIT_SERVICE = (
    "$s=Get-Service -Name $name -ErrorAction SilentlyContinue\n"
    "if($s){$end=[DateTime]::UtcNow.AddMilliseconds($timeout);$d=10\n"
    "while([DateTime]::UtcNow -lt $end){$t=[int]$s.Status;"
    "if($t -eq $want -or ($want -eq 4 -and $t -eq 1)){break};"
    "Start-Sleep -Milliseconds $d;$d=[Math]::Min(2*$d,200);try{$s.Refresh()}catch{break}}}\n"
    "& sc.exe query $name\n"
    "exit $LASTEXITCODE"
)


# stop-service's and stop-services' `sc.exe stop`, retried on 1061 until $end (_sc_stop).
_STOP_RETRYING = (
    "do{$o=& sc.exe stop $name;$c=$LASTEXITCODE;if($c -ne 1061){break};"
    "Start-Sleep -Milliseconds 200}while([DateTime]::UtcNow -lt $end)\n"
)
_WAIT_PROCESS_EXIT = (
    "$p=@(Get-Process -Name $names -ErrorAction SilentlyContinue)\n"
    "if($p.Count -gt 0){try{$p|Wait-Process -Timeout $timeout}catch{}}\n"
    "$r=@(Get-Process -Name $names -ErrorAction SilentlyContinue)\n"
    "if($r.Count -gt 0){$r.ProcessName|Sort-Object -Unique;exit 1460}"
)


def _start_service(m: Machine, p: dict[str, Any]) -> Outcome:
    # `$o=& sc.exe start $name`; on an exit code other than 0 or 1056 (already running)
    # print sc.exe's answer and exit with its code, else the wait-service body.
    started = _sc(m, {"argv": ["start", p["name"]]})
    if started.exit_code not in (0, win32.SERVICE_ALREADY_RUNNING) or started.unexpected:
        return started
    return _wait_service(m, p)


def _sc_stop(m: Machine, name: str, timeout_ms: int) -> Outcome:
    # `sc.exe stop` again every 200 ms while it answers 1061 (a start or stop is pending)
    # and the timeout has not passed.
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        stopped = _sc(m, {"argv": ["stop", name]})
        if stopped.exit_code != win32.SERVICE_CANNOT_ACCEPT_CTRL:
            return stopped
        if not m.sleep(0.2):
            return Outcome(None)
        if time.monotonic() >= deadline:
            return stopped


def _stop_service(m: Machine, p: dict[str, Any]) -> Outcome:
    # The stop (_sc_stop); an exit code other than 0 or 1062 (not started) prints sc.exe's
    # answer and exits with it, else the wait-service body.
    stopped = _sc_stop(m, p["name"], int(p["timeout"]))
    if stopped.exit_code not in (0, win32.SERVICE_NOT_ACTIVE) or stopped.unexpected:
        return stopped
    return _wait_service(m, p)


def _stop_services(m: Machine, p: dict[str, Any]) -> Outcome:
    # For each of $services in turn, after a line "== <name>": the stop (_sc_stop), where
    # 1060 (no such service) goes on to the next and another code other than 0 or 1062
    # prints sc.exe's answer and exits with it; the wait-service loop for STOPPED; then
    # `sc.exe query`: a failure (deleted meanwhile) goes on to the next, else its block is
    # printed and a state other than STOPPED ends the command (exit 0). After them a line
    # "==" and, when $names has any, the wait-process-exit body (_wait_process). The loop is
    # PowerShell's: `continue` in a foreach statement goes on with the next item and `exit`
    # ends the script with its code (about_Continue, about_Foreach, about_Language_Keywords).
    out = ""
    for name in p["services"]:
        out += _lines(f"== {name}")
        stopped = _sc_stop(m, name, int(p["wait"]))
        if stopped.exit_code is None or stopped.unexpected:
            return stopped
        if stopped.exit_code == win32.SERVICE_DOES_NOT_EXIST:
            continue
        if stopped.exit_code not in (0, win32.SERVICE_NOT_ACTIVE):
            return Outcome(stopped.exit_code, out + stopped.stdout)
        queried = _wait_service(m, {"name": name, "want": int(State.STOPPED),
                                    "timeout": p["wait"]})
        if queried.exit_code is None or queried.unexpected:
            return queried
        if queried.exit_code != 0:
            continue
        out += queried.stdout
        if m.scm.state(name) is not State.STOPPED:
            return Outcome(0, out)
    out += _lines("==")
    if not p["names"]:
        return Outcome(0, out)
    waited = _wait_process(m, {"names": p["names"], "timeout": p["timeout"]})
    if waited.exit_code is None:
        return waited
    return Outcome(waited.exit_code, out + waited.stdout)


def _managed_services(m: Machine, p: dict[str, Any]) -> Outcome:
    found = [s.name for s in m.scm.services() if s.description.startswith(p["prefix"])]
    return Outcome(0, _lines(*found) if found else "")


def _restart(m: Machine, p: dict[str, Any]) -> Outcome:
    m.request_reboot()
    return Outcome(None)


def _stop_process(m: Machine, p: dict[str, Any]) -> Outcome:
    m.scm.kill(p["name"])
    return Outcome(0)


def _enable_containers(m: Machine, p: dict[str, Any]) -> Outcome:
    # Install-WindowsFeature reports RestartNeeded: the feature works after the next boot.
    if not m.features.get("Containers"):
        m.pending_features["Containers"] = True
    return Outcome(0)


def _rename_computer(m: Machine, p: dict[str, Any]) -> Outcome:
    m.pending_name = p["name"]  # Rename-Computer: effective after a restart
    return Outcome(0)


def _vip_endpoint(m: Machine, p: dict[str, Any]) -> Outcome:
    if not m.fs.is_file(p["module"]):
        raise PSError(f"The specified module '{p['module']}' was not loaded because no valid "
                      "module file was found in any module directory.")
    if not m.features.get("Containers"):
        raise PSError("The term 'Get-HnsNetwork' is not recognized as the name of a cmdlet.")
    network = m.hns.network(p["network"])
    if network is None:
        return Outcome(1168, "", _lines("no HNS network " + p["network"]))
    endpoint = m.hns.vip_endpoint(p["network"])
    # The network's fields as node-facts reads them (_node_facts); ConvertTo-Json -Compress.
    return Outcome(0, _lines(json.dumps({"subnet": network.subnet,
                                         "managementIP": network.management_ip,
                                         "vip": endpoint.ip}, separators=(",", ":"))))


def _import_certificates(m: Machine, p: dict[str, Any]) -> Outcome:
    # X509Store.Add of each certificate in the bundle; a file that is not there fails
    # ReadAllText with "Could not find file".
    if not m.fs.is_file(p["path"]):
        raise PSError(f"Could not find file '{p['path']}'.")
    text = m.fs.read_bytes(p["path"]).decode("utf-8", errors="replace")
    blocks = re.findall(r"-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+)-----END CERTIFICATE-----",
                        text)
    for block in blocks:
        der = base64.b64decode("".join(block.split()))
        m.trusted_roots.add(hashlib.sha1(der).hexdigest().upper())  # the store's thumbprint
    return Outcome(0, _lines(str(len(blocks))))


def _set_machine_environment(m: Machine, p: dict[str, Any]) -> Outcome:
    # HKLM\SYSTEM\CurrentControlSet\Control\Session Manager\Environment: written now,
    # read by the service control manager at the next boot.
    for name, value in zip(p["names"], p["values"], strict=True):
        if value:
            m.machine_environment[name] = value
        else:
            m.machine_environment.pop(name, None)
    return Outcome(0)


def _remove_hns_network(m: Machine, p: dict[str, Any]) -> Outcome:
    if m.hns.remove_network(p["name"]):
        m.drop_connections_soon()  # the host's network stack resets (WMCO reconnects)
        return Outcome(None)
    return Outcome(0)


OS_BUILD = (
    "$v=Get-ItemProperty -LiteralPath 'HKLM:\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion'\n"
    "'{0}.{1}.{2}.{3}' -f $v.CurrentMajorVersionNumber,$v.CurrentMinorVersionNumber,"
    "$v.CurrentBuildNumber,$v.UBR"
)

BODIES: tuple[Body, ...] = (
    Body("os-build", (), OS_BUILD, _os_build),
    Body(
        "inventory",
        (("files", "list"), ("services", "list"), ("processes", "list")),
        OS_BUILD.split("\n")[0] + "\n"
        "$r=[ordered]@{}\n"
        "$r.hostname=[System.Net.Dns]::GetHostName()\n"
        "$r.osBuild=" + OS_BUILD.split("\n")[1] + "\n"
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
        "$r|ConvertTo-Json -Depth 4 -Compress",
        _inventory,
    ),
    Body(
        "node-facts",
        (("network", "str"), ("endpoint", "str"), ("prefix", "str"), ("platform", "str")),
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
        "$r|ConvertTo-Json -Depth 4 -Compress",
        _node_facts,
    ),
    Body(
        "file-hash",
        (("path", "str"),),
        "if(Test-Path -LiteralPath $path -PathType Leaf)"
        "{(Get-FileHash -LiteralPath $path -Algorithm SHA256).Hash}",
        _file_hash,
    ),
    Body("test-path", (("path", "str"),), "Test-Path -LiteralPath $path", _test_path),
    Body(
        "make-directory",
        (("paths", "list"),),
        "foreach($p in $paths){[System.IO.Directory]::CreateDirectory($p)|Out-Null}",
        _make_directory,
    ),
    Body(
        "remove-path",
        (("path", "str"),),
        "if(Test-Path -LiteralPath $path){Remove-Item -LiteralPath $path -Recurse -Force}",
        _remove_path,
    ),
    Body(
        "move-file",
        (("source", "str"), ("destination", "str")),
        "Move-Item -LiteralPath $source -Destination $destination -Force",
        _move_file,
    ),
    Body(
        "write-file",
        (("path", "str"), ("content", "str")),
        "[System.IO.File]::WriteAllText($path,$content)",
        _write_file,
    ),
    Body(
        "expand-archive",
        (("archive", "str"), ("directory", "str"), ("strip", "int")),
        "& tar.exe -xzf $archive -C $directory --strip-components $strip\nexit $LASTEXITCODE",
        _expand_archive,
    ),
    Body("sc", (("argv", "list"),), "& sc.exe @argv\nexit $LASTEXITCODE", _sc),
    Body("wait-service", (("name", "str"), ("want", "int"), ("timeout", "int")),
         _WAIT_SERVICE, _wait_service),
    Body(
        "start-service",
        (("name", "str"), ("want", "int"), ("timeout", "int")),
        "$o=& sc.exe start $name\n"
        "if($LASTEXITCODE -ne 0 -and $LASTEXITCODE -ne 1056){$o;exit $LASTEXITCODE}\n"
        + _WAIT_SERVICE,
        _start_service,
    ),
    Body(
        "stop-service",
        (("name", "str"), ("want", "int"), ("timeout", "int")),
        "$end=[DateTime]::UtcNow.AddMilliseconds($timeout)\n"
        + _STOP_RETRYING
        + "if($c -ne 0 -and $c -ne 1062){$o;exit $c}\n"
        + _WAIT_SERVICE,
        _stop_service,
    ),
    Body(
        "stop-services",
        (("services", "list"), ("wait", "int"), ("names", "list"), ("timeout", "int")),
        "foreach($name in $services){'== '+$name\n"
        "$end=[DateTime]::UtcNow.AddMilliseconds($wait)\n"
        + _STOP_RETRYING
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
        "if($names.Count -gt 0){\n" + _WAIT_PROCESS_EXIT + "}",
        _stop_services,
    ),
    Body("wait-process-exit", (("names", "list"), ("timeout", "int")), _WAIT_PROCESS_EXIT,
         _wait_process),
    Body("restart-computer", (), "Restart-Computer -Force", _restart),
    Body("stop-process", (("name", "str"),),
         "Stop-Process -Force -Name $name -ErrorAction SilentlyContinue", _stop_process),
    Body("enable-containers", (), "Install-WindowsFeature -Name Containers|Out-Null",
         _enable_containers),
    Body("rename-computer", (("name", "str"),), "Rename-Computer -NewName $name -Force|Out-Null",
         _rename_computer),
    Body(
        "vip-endpoint",
        (("module", "str"), ("network", "str"), ("endpoint", "str")),
        "Import-Module -DisableNameChecking $module\n"
        "$n=Get-HnsNetwork|Where-Object{$_.Name -eq $network}|Select-Object -First 1\n"
        "if($null -eq $n){[Console]::Error.WriteLine('no HNS network '+$network);exit 1168}\n"
        "$e=Invoke-HNSRequest GET endpoints|Where-Object{$_.Name -eq $endpoint}|"
        "Select-Object -First 1\n"
        "if($null -eq $e){$e=New-HnsEndpoint -NetworkId $n.ID -Name $endpoint;"
        "Attach-HNSHostEndpoint -EndpointID $e.ID -CompartmentID 1}\n"
        "$v=(Get-NetIPConfiguration -AllCompartments -All -Detailed|"
        "Where-Object{$_.NetAdapter.LinkLayerAddress -eq $e.MacAddress}).IPV4Address.IPAddress\n"
        "[ordered]@{subnet=[string]@($n.Subnets)[0].AddressPrefix;"
        "managementIP=[string]$n.ManagementIP;vip=[string]$v}|ConvertTo-Json -Compress",
        _vip_endpoint,
    ),
    Body(
        "import-certificates",
        (("path", "str"),),
        "$t=[System.IO.File]::ReadAllText($path)\n"
        "$s=New-Object System.Security.Cryptography.X509Certificates.X509Store('Root',"
        "'LocalMachine')\n"
        "$s.Open('ReadWrite')\n"
        "$n=0\n"
        "foreach($m in [regex]::Matches($t,'-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\\s]+)"
        "-----END CERTIFICATE-----')){"
        "$b=[Convert]::FromBase64String(($m.Groups[1].Value -replace '\\s',''));"
        "$s.Add([System.Security.Cryptography.X509Certificates.X509Certificate2]::new($b));"
        "$n++}\n"
        "$s.Close()\n"
        "$n",
        _import_certificates,
    ),
    Body(
        "set-machine-environment",
        (("names", "list"), ("values", "list")),
        "for($i=0;$i -lt $names.Count;$i++){$v=$values[$i];if($v -eq ''){$v=$null};"
        "[Environment]::SetEnvironmentVariable($names[$i],$v,'Machine')}",
        _set_machine_environment,
    ),
    Body("remove-hns-network", (("name", "str"),),
         "Get-HnsNetwork|Where-Object{$_.Name -eq $name}|Remove-HnsNetwork",
         _remove_hns_network),
    Body(
        "managed-services",
        (("prefix", "str"),),
        "foreach($s in @(Get-ChildItem -LiteralPath 'HKLM:\\SYSTEM\\CurrentControlSet\\Services'))"
        "{$d=[string](Get-ItemProperty -LiteralPath $s.PSPath -ErrorAction SilentlyContinue)"
        ".Description;if($d.StartsWith($prefix)){$s.PSChildName}}",
        _managed_services,
    ),
)
_BODY_TOKENS = [(body, body.tokens) for body in BODIES]


@dataclass(frozen=True)
class Match:
    body: Body
    params: dict[str, Any]


def _parse_value(tokens: list[Token], i: int, kind: str) -> tuple[Any, int]:
    """One literal value at ``tokens[i]``; returns (value, next index) or raises."""
    tok = tokens[i]
    if kind == "str" and tok.kind == "STR":
        return tok.text, i + 1
    if kind == "int" and tok.kind == "WORD" and tok.text.isdigit():
        return int(tok.text), i + 1
    if kind == "list" and tok.kind == "PUNCT" and tok.text == "@(":
        values: list[str] = []
        i += 1
        while True:
            tok = tokens[i]
            if tok.kind == "PUNCT" and tok.text == ")":
                return values, i + 1
            if values:
                if not (tok.kind == "PUNCT" and tok.text == ","):
                    raise ValueError("expected ','")
                i += 1
                tok = tokens[i]
            if tok.kind != "STR":
                raise ValueError("array elements must be single-quoted literals")
            values.append(tok.text)
            i += 1
    raise ValueError(f"expected a {kind} literal, found {tok}")


def _match_body(body: Body, body_tokens: list[Token], middle: list[Token]) -> Match | None:
    params: dict[str, Any] = {}
    i = 0
    try:
        for name, kind in body.params:
            var, eq = middle[i], middle[i + 1]
            if not (var.kind == "VAR" and var.text.casefold() == name.casefold()):
                return None
            if not (eq.kind == "PUNCT" and eq.text == "="):
                return None
            params[name], i = _parse_value(middle, i + 2, kind)
            if middle[i].kind != "SEP":
                return None
            i += 1
    except (IndexError, ValueError):
        return None
    return Match(body, params) if same(middle[i:], body_tokens) else None


def recognise(tokens: list[Token]) -> Match | str:
    """The vocabulary entry ``tokens`` is, or a reason why it is none."""
    pre, post = PRELUDE_TOKENS, EPILOGUE_TOKENS
    if len(tokens) < len(pre) + len(post) or not same(tokens[: len(pre)], pre):
        return "script does not start with the vocabulary prelude"
    if not same(tokens[-len(post):], post):
        return "script does not end with the vocabulary catch block"
    middle = tokens[len(pre): len(tokens) - len(post)]
    if middle and middle[-1].kind == "SEP":
        middle = middle[:-1]
    for body, body_tokens in _BODY_TOKENS:
        found = _match_body(body, body_tokens, middle)
        if found is not None:
            return found
    return "script body is not a vocabulary entry: " + " ".join(str(t) for t in middle)[:300]


def execute(m: Machine, match: Match) -> Outcome:
    """Run a recognised script the way its catch block would report errors."""
    try:
        return match.body.handler(m, match.params)
    except Win32Error as err:
        return Outcome(err.code, "", _lines(err.powershell_message))
    except PSError as err:
        return Outcome(1, "", _lines(str(err)))

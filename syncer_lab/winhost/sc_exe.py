"""``sc.exe``: argument parsing and the exact output of the subcommands the vocabulary uses.

sc.exe reads ``argv`` as split by the C runtime. Options are two arguments, the name with
its ``=`` and then the value (``binPath= C:\\k\\kubelet.exe``); ``binPath=C:\\k\\...`` as one
argument is a usage error, as on Windows. Output and exit codes are Windows': success
prints ``[SC] <Function> SUCCESS`` (or a status block), failure
``[SC] <Function> FAILED <code>:`` and the message, and the exit code is the Win32 code.
A usage error prints sc.exe's ``ERROR:`` line and exits 1639 (ERROR_INVALID_COMMAND_LINE);
it is also reported as unexpected, since the product's builders never produce one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from syncer_lab.winhost import win32
from syncer_lab.winhost.service_manager import Service, ServiceControlManager, State
from syncer_lab.winhost.win32 import Win32Error

CRLF = "\r\n"

_STATE_TEXT = {
    State.STOPPED: ("STOPPED", "(NOT_STOPPABLE, NOT_PAUSABLE, IGNORES_SHUTDOWN)"),
    State.START_PENDING: ("START_PENDING", "(NOT_STOPPABLE, NOT_PAUSABLE, IGNORES_SHUTDOWN)"),
    State.STOP_PENDING: ("STOP_PENDING", "(STOPPABLE, NOT_PAUSABLE, ACCEPTS_SHUTDOWN)"),
    State.RUNNING: ("RUNNING", "(STOPPABLE, NOT_PAUSABLE, ACCEPTS_SHUTDOWN)"),
}
_START_TYPE_TEXT = {
    "boot": "0   BOOT_START",
    "system": "1   SYSTEM_START",
    "auto": "2   AUTO_START",
    "delayed-auto": "2   AUTO_START  (DELAYED)",
    "demand": "3   DEMAND_START",
    "disabled": "4   DISABLED",
}
_OPTIONS = {
    "type=", "start=", "error=", "binpath=", "group=", "tag=", "depend=", "obj=",
    "displayname=", "password=",
}
_FAILURE_ACTION = re.compile(r"^((restart|run|reboot|)/\d+)(/(restart|run|reboot|)/\d+)*$")


class UsageError(Exception):
    pass


@dataclass(frozen=True)
class ScResult:
    exit_code: int
    stdout: str
    usage_error: str | None = None


def _failed(function: str, code: int) -> ScResult:
    message = win32.MESSAGES.get(code, f"Win32 error {code}.")
    return ScResult(code, f"[SC] {function} FAILED {code}:{CRLF}{CRLF}{message}{CRLF}{CRLF}")


def status_block(svc: Service, *, with_pid: bool) -> str:
    name, flags = _STATE_TEXT[svc.state]
    code = svc.win32_exit_code
    lines = [
        "",
        f"SERVICE_NAME: {svc.name} ",
        "        TYPE               : 10  WIN32_OWN_PROCESS  ",
        f"        STATE              : {int(svc.state)}  {name} ",
        f"                                {flags}",
        f"        WIN32_EXIT_CODE    : {code}  (0x{code:x})",
        "        SERVICE_EXIT_CODE  : 0  (0x0)",
        "        CHECKPOINT         : 0x0",
        "        WAIT_HINT          : " + ("0x7d0" if svc.state is State.START_PENDING else "0x0"),
    ]
    if with_pid:
        lines.append(f"        PID                : {svc.pid or 0}")
        lines.append("        FLAGS              : ")
    return CRLF.join(lines) + CRLF


def config_block(svc: Service) -> str:
    deps = svc.dependencies or [""]
    lines = [
        "[SC] QueryServiceConfig SUCCESS",
        "",
        f"SERVICE_NAME: {svc.name}",
        "        TYPE               : 10  WIN32_OWN_PROCESS ",
        f"        START_TYPE         : {_START_TYPE_TEXT[svc.start_type]}",
        "        ERROR_CONTROL      : 1   NORMAL",
        f"        BINARY_PATH_NAME   : {svc.binary_path}",
        "        LOAD_ORDER_GROUP   : ",
        "        TAG                : 0",
        f"        DISPLAY_NAME       : {svc.display_name}",
        f"        DEPENDENCIES       : {deps[0]}",
        *[f"                           : {d}" for d in deps[1:]],
        "        SERVICE_START_NAME : LocalSystem",
    ]
    return CRLF.join(lines) + CRLF


def _options(args: list[str]) -> dict[str, str]:
    if len(args) % 2:
        raise UsageError(f"option without a value: {args[-1]!r}")
    options: dict[str, str] = {}
    for key, value in zip(args[::2], args[1::2], strict=True):
        if key.lower() not in _OPTIONS:
            raise UsageError(f"unknown option {key!r} (options are 'name=' then the value)")
        options[key.lower()] = value
    if "start=" in options and options["start="] not in _START_TYPE_TEXT:
        raise UsageError(f"invalid start= value {options['start=']!r}")
    return options


def _deps(value: str) -> list[str]:
    return [d for d in value.split("/") if d]


def run(scm: ServiceControlManager, argv: list[str]) -> ScResult:
    """Run ``sc.exe`` with ``argv`` (without the program name)."""
    try:
        return _run(scm, argv)
    except UsageError as err:
        text = f"ERROR:  {err}{CRLF}DESCRIPTION:{CRLF}        SC is a command line program " \
               f"used for communicating with the{CRLF}        Service Control Manager and " \
               f"services.{CRLF}"
        return ScResult(win32.INVALID_COMMAND_LINE, text, usage_error=str(err))


def _run(scm: ServiceControlManager, argv: list[str]) -> ScResult:
    if len(argv) < 2:
        raise UsageError("a subcommand and a service name are required")
    command, name, rest = argv[0].lower(), argv[1], argv[2:]
    if command in ("query", "qc", "start", "stop", "delete") and rest:
        raise UsageError(f"{command} takes only a service name")
    try:
        if command == "query":
            return ScResult(0, status_block(scm.get(name), with_pid=False))
        if command == "qc":
            return ScResult(0, config_block(scm.get(name)))
        if command == "create":
            options = _options(rest)
            if "binpath=" not in options:
                raise UsageError("create needs binPath=")
            try:
                scm.create(name, options["binpath="], options.get("start=", "demand"),
                           _deps(options.get("depend=", "")), options.get("displayname="))
            except Win32Error as err:
                return _failed("CreateService", err.code)
            return ScResult(0, f"[SC] CreateService SUCCESS{CRLF}")
        if command == "config":
            options = _options(rest)
            if not options:
                raise UsageError("config needs at least one option")
            scm.get(name)  # 1060 first, from OpenService
            try:
                scm.config(
                    name,
                    binary_path=options.get("binpath="),
                    start_type=options.get("start="),
                    dependencies=_deps(options["depend="]) if "depend=" in options else None,
                    display_name=options.get("displayname="),
                )
            except Win32Error as err:
                return _failed("ChangeServiceConfig", err.code)
            return ScResult(0, f"[SC] ChangeServiceConfig SUCCESS{CRLF}")
        if command == "description":
            if len(rest) != 1:
                raise UsageError("description takes a service name and one description")
            scm.get(name)
            try:
                scm.describe(name, rest[0])
            except Win32Error as err:
                return _failed("ChangeServiceConfig2", err.code)
            return ScResult(0, f"[SC] ChangeServiceConfig2 SUCCESS{CRLF}")
        if command == "failure":
            options = dict(zip([a.lower() for a in rest[::2]], rest[1::2], strict=False))
            if len(rest) % 2 or set(options) - {"reset=", "actions=", "reboot=", "command="}:
                raise UsageError("failure takes reset= <seconds> actions= <a/ms/...>")
            if "actions=" in options and "reset=" not in options:
                raise UsageError("reset= must be given with actions=")
            if "actions=" in options and not _FAILURE_ACTION.match(options["actions="]):
                raise UsageError(f"invalid actions= value {options['actions=']!r}")
            if "reset=" in options and not options["reset="].isdigit():
                raise UsageError(f"invalid reset= value {options['reset=']!r}")
            scm.get(name)
            try:
                reset = int(options["reset="]) if "reset=" in options else None
                scm.set_failure_actions(name, reset, options.get("actions=", ""))
            except Win32Error as err:
                return _failed("ChangeServiceConfig2", err.code)
            return ScResult(0, f"[SC] ChangeServiceConfig2 SUCCESS{CRLF}")
        if command == "start":
            scm.get(name)
            try:
                svc = scm.start(name)
            except Win32Error as err:
                return _failed("StartService", err.code)
            return ScResult(0, status_block(svc, with_pid=True))
        if command == "stop":
            scm.get(name)
            try:
                svc = scm.stop(name)
            except Win32Error as err:
                return _failed("ControlService", err.code)
            return ScResult(0, status_block(svc, with_pid=False))
        if command == "delete":
            scm.get(name)
            try:
                scm.delete(name)
            except Win32Error as err:
                return _failed("DeleteService", err.code)
            return ScResult(0, f"[SC] DeleteService SUCCESS{CRLF}")
    except Win32Error as err:
        return _failed("OpenService", err.code)
    raise UsageError(f"{command!r} is not a subcommand the vocabulary uses")

"""The Windows output parsers against output real Windows hosts printed, not output we wrote.

Each recording below is sc.exe output as published from a real host (the source is named
above it; service names and values are as recorded, lines end in CRLF as sc.exe writes
them). The simulator's own sc.exe output is checked against the same recordings, field by
field, so the simulator cannot drift into a dialect only our parser understands.

What the recordings teach, and the parser must survive:
- trailing spaces after values (``SERVICE_NAME: WiseBootAssistant ``), a flags line in
  parentheses under STATE, ``TYPE : 110 WIN32_OWN_PROCESS (interactive)``;
- ``sc start`` adds ``PID`` and an empty ``FLAGS :``; ``sc stop`` returns STOP_PENDING
  before the service is stopped; ``AUTO_START  (DELAYED)``;
- a second dependency is a continuation line with an empty label;
- on a localised Windows the labels are translated (German ``STATUS``, French ``ÉTAT``,
  Portuguese ``ESTADO``/``CÓDIGO_DE_SAÍDA_DO_WIN32``, whose accents arrive as replacement
  characters from the OEM code page) while the layout and the values are not.
"""

from __future__ import annotations

from typing import cast

import pytest

from syncer.nodes.services import ServiceFailed, Services, Waits
from syncer.nodes.ssh import HostSession
from syncer.nodes.windows import vocabulary
from syncer.nodes.windows.vocabulary import (
    CommandResult,
    ServiceState,
    StartType,
    parse_sc_qc,
    parse_sc_status,
)
from syncer_lab.winhost import sc_exe
from syncer_lab.winhost.service_manager import Service, State


def crlf(text: str) -> str:
    """The recording with CRLF line ends; a ``|`` ends a line whose trailing spaces are
    part of the recording (so no editor strips them)."""
    return "\r\n".join(line.removesuffix("|") for line in text.split("\n"))


# sc query on Windows Server (TryHackMe "Hack Smarter Security" write-up, spoofer-scheduler).
QUERY_RUNNING = crlf("""
SERVICE_NAME: spoofer-scheduler
        TYPE               : 10  WIN32_OWN_PROCESS
        STATE              : 4  RUNNING
                                (STOPPABLE, PAUSABLE, IGNORES_SHUTDOWN)     |
        WIN32_EXIT_CODE    : 0  (0x0)
        SERVICE_EXIT_CODE  : 0  (0x0)
        CHECKPOINT         : 0x0
        WAIT_HINT          : 0x0
""")

# sc stop, then sc query (a public write-up, WiseBootAssistant; note the trailing spaces).
STOP_PENDING = crlf("""
SERVICE_NAME: WiseBootAssistant |
        TYPE               : 110  WIN32_OWN_PROCESS  (interactive)
        STATE              : 3  STOP_PENDING |
                                (STOPPABLE, NOT_PAUSABLE, ACCEPTS_SHUTDOWN)
        WIN32_EXIT_CODE    : 0  (0x0)
        SERVICE_EXIT_CODE  : 0  (0x0)
        CHECKPOINT         : 0x3
        WAIT_HINT          : 0x1388
""")
STOPPED = crlf("""
SERVICE_NAME: WiseBootAssistant |
        TYPE               : 110  WIN32_OWN_PROCESS  (interactive)
        STATE              : 1  STOPPED |
        WIN32_EXIT_CODE    : 0  (0x0)
        SERVICE_EXIT_CODE  : 0  (0x0)
        CHECKPOINT         : 0x0
        WAIT_HINT          : 0x0
""")

# sc start on Windows Server 2016 (HackTheBox "Resolute" write-up, the dns service).
START_PENDING = crlf("""
SERVICE_NAME: dns
        TYPE               : 10  WIN32_OWN_PROCESS
        STATE              : 2  START_PENDING
                                (NOT_STOPPABLE, NOT_PAUSABLE, IGNORES_SHUTDOWN)
        WIN32_EXIT_CODE    : 0  (0x0)
        SERVICE_EXIT_CODE  : 0  (0x0)
        CHECKPOINT         : 0x0
        WAIT_HINT          : 0x7d0
        PID                : 3800
        FLAGS              :
""")

# sc start of a service whose process never reported RUNNING (TryHackMe "Wreath" write-up).
START_FAILED_1053 = crlf("""[SC] StartService FAILED 1053:

The service did not respond to the start or control request in a timely fashion.

""")

# sc query of a service that does not exist: exit code 1060 (documented system error
# ERROR_SERVICE_DOES_NOT_EXIST; the banner as several public transcripts show it).
QUERY_MISSING = crlf("""[SC] EnumQueryServicesStatus:OpenService FAILED 1060:

The specified service does not exist as an installed service.

""")

# sc qc on Windows 10/Server (public write-ups: UsoSvc, delayed automatic start).
QC_DELAYED = crlf("""[SC] QueryServiceConfig SUCCESS

SERVICE_NAME: usosvc
        TYPE               : 20  WIN32_SHARE_PROCESS |
        START_TYPE         : 2   AUTO_START  (DELAYED)
        ERROR_CONTROL      : 1   NORMAL
        BINARY_PATH_NAME   : C:\\Windows\\system32\\svchost.exe -k netsvcs -p
        LOAD_ORDER_GROUP   : |
        TAG                : 0
        DISPLAY_NAME       : Update Orchestrator Service
        DEPENDENCIES       : rpcss
        SERVICE_START_NAME : LocalSystem
""")

# sc qc of the print spooler, whose two dependencies print as a label line and a
# continuation line (Windows 10; the layout several public tools record for Spooler).
QC_TWO_DEPENDENCIES = crlf("""[SC] QueryServiceConfig SUCCESS

SERVICE_NAME: Spooler
        TYPE               : 110  WIN32_OWN_PROCESS  (interactive)
        START_TYPE         : 2   AUTO_START
        ERROR_CONTROL      : 1   NORMAL
        BINARY_PATH_NAME   : C:\\Windows\\System32\\spoolsv.exe
        LOAD_ORDER_GROUP   : SpoolerGroup
        TAG                : 0
        DISPLAY_NAME       : Print Spooler
        DEPENDENCIES       : RPCSS
                           : http
        SERVICE_START_NAME : LocalSystem
""")

# sc query on a Portuguese Windows, as a project recorded it from its own machine: the
# accents of the translated labels arrive as U+FFFD (the OEM code page read as UTF-8),
# the values are untranslated. The recording stops at CHECKPOINT; WAIT_HINT is added in
# the same language to make a whole block.
QUERY_PORTUGUESE = crlf("""NOME_DO_SERVI\ufffdO: wuauserv |
        TIPO               : 20  WIN32_SHARE_PROCESS  |
        ESTADO              : 1  STOPPED |
        C\ufffdDIGO_DE_SA\ufffdDA_DO_WIN32    : 1077  (0x435)
        C\ufffdDIGO_DE_SA\ufffdDA_DO_SERVI\ufffdO : 0  (0x0)
        PONTO_DE_VERIFICA\ufffd\ufffdO         : 0x0
        DICA_DE_ESPERA     : 0x0
""")


def ok(stdout: str, code: int = 0) -> CommandResult:
    return CommandResult(code, stdout)


@pytest.mark.parametrize(("recording", "name", "state", "pid"), [
    (QUERY_RUNNING, "spoofer-scheduler", ServiceState.RUNNING, None),
    (STOP_PENDING, "WiseBootAssistant", ServiceState.STOP_PENDING, None),
    (STOPPED, "WiseBootAssistant", ServiceState.STOPPED, None),
    (START_PENDING, "dns", ServiceState.START_PENDING, 3800),
    (QUERY_PORTUGUESE, "wuauserv", ServiceState.STOPPED, None),
])
def test_sc_status_recordings(recording: str, name: str, state: ServiceState,
                              pid: int | None) -> None:
    status = parse_sc_status(ok(recording))
    assert (status.name, status.state, status.pid) == (name, state, pid)


def test_the_exit_code_of_a_crashed_service_is_read_on_a_localised_host() -> None:
    assert parse_sc_status(ok(QUERY_PORTUGUESE)).win32_exit_code == 1077


@pytest.mark.parametrize("label", ["STATUS", "\u00c9TAT", "ESTADO"])
def test_a_translated_state_label_reads_the_same(label: str) -> None:
    """German, French and Portuguese hosts print these labels (recorded by projects that
    met them); the English recording with only the label changed parses the same."""
    translated = QUERY_RUNNING.replace("STATE             ", f"{label:<18}", 1)
    assert translated != QUERY_RUNNING
    assert parse_sc_status(ok(translated)).state is ServiceState.RUNNING


def test_a_type_line_is_not_read_as_the_state() -> None:
    """Both lines start with a number; a block missing its STATE line is an error, not a
    service in state 10."""
    lines = QUERY_RUNNING.split("\r\n")
    without_state = "\r\n".join(line for line in lines if "RUNNING" not in line)
    with pytest.raises(ValueError, match="unexpected output"):
        parse_sc_status(ok(without_state))


@pytest.mark.parametrize(("recording", "start", "path", "deps", "display"), [
    (QC_DELAYED, StartType.DELAYED_AUTO, "C:\\Windows\\system32\\svchost.exe -k netsvcs -p",
     ("rpcss",), "Update Orchestrator Service"),
    (QC_TWO_DEPENDENCIES, StartType.AUTO, "C:\\Windows\\System32\\spoolsv.exe",
     ("RPCSS", "http"), "Print Spooler"),
])
def test_sc_qc_recordings(recording: str, start: StartType, path: str,
                          deps: tuple[str, ...], display: str) -> None:
    config = parse_sc_qc(ok(recording))
    assert (config.start_type, config.binary_path, config.dependencies,
            config.display_name) == (start, path, deps, display)


def test_sc_qc_with_translated_labels() -> None:
    translated = QC_TWO_DEPENDENCIES.replace("START_TYPE        ", "STARTTYP          ")
    translated = translated.replace("DEPENDENCIES      ", "ABH\ufffdNGIGKEITEN  ")
    assert parse_sc_qc(ok(translated)).dependencies == ("RPCSS", "http")


# --- the product's service operations, replayed against recorded answers ---------------
class Replay:
    """A host session that answers the expected commands with recordings, in order; any
    other command is an error (the product must not send what we did not expect)."""

    def __init__(self, script: list[tuple[str, CommandResult]]) -> None:
        self.script = list(script)

    def run(self, command: str, timeout: float | None = None) -> CommandResult:
        assert self.script, f"unexpected command after the script ended: {command!r}"
        expected, result = self.script.pop(0)
        assert command == expected, (command, expected)
        return result


def services(script: list[tuple[str, CommandResult]]) -> tuple[Services, Replay]:
    replay = Replay(script)
    return Services(cast(HostSession, replay), Waits(service=5)), replay


# stop-service and start-service print what their wait ended with (sc.exe query's block),
# or, when sc.exe stop / start failed, that command's own answer and exit code.
def test_a_stop_waits_on_the_host_until_stopped() -> None:
    svc, replay = services([(vocabulary.stop_service("kubelet", 5000), ok(STOPPED))])
    assert svc.stop("kubelet") is True
    assert replay.script == []


def test_a_stop_still_pending_at_the_timeout_fails_with_the_state() -> None:
    svc, _ = services([(vocabulary.stop_service("kubelet", 5000), ok(STOP_PENDING))])
    with pytest.raises(ServiceFailed) as err:
        svc.stop("kubelet")
    assert str(err.value) == "service kubelet is STOP_PENDING after 5s, expected STOPPED"


# stop-services: each service's part after "== <name>" (its wait's block; nothing when it
# does not exist), then "==" and what the processes' wait printed.
STOP_THREE = (vocabulary.stop_services(["kube-proxy", "nope", "kubelet"], ["kubelet"], 5000, 120))
KUBELET = {"kubelet": "process kubelet of service kubelet"}


def test_stop_services_stop_in_one_command() -> None:
    out = "== kube-proxy\r\n" + STOPPED + "== nope\r\n== kubelet\r\n" + STOPPED + "==\r\n"
    svc, replay = services([(STOP_THREE, ok(out))])
    svc.stop_all(["kube-proxy", "nope", "kubelet"], KUBELET)
    assert replay.script == []


@pytest.mark.parametrize(("out", "code", "message"), [
    # The wait ended with the service still stopping: the command ended there.
    ("== kube-proxy\r\n" + STOP_PENDING, 0,
     "service kube-proxy is STOP_PENDING after 5s, expected STOPPED"),
    # sc.exe stop still answered 1061 at the timeout: its answer, its code.
    ("== kube-proxy\r\n" + STOPPED + "== nope\r\n== kubelet\r\n[SC] ControlService FAILED "
     "1061:\r\n\r\nThe service cannot accept control messages at this time.\r\n", 1061,
     "service kubelet did not accept a stop request"),
    # Every service stopped; the kubelet's process had not exited when the wait ended.
    ("== kube-proxy\r\n" + STOPPED + "== nope\r\n== kubelet\r\n" + STOPPED + "==\r\nkubelet\r\n",
     1460, "process kubelet of service kubelet still runs after 120s"),
])
def test_stop_services_failures_name_the_service(out: str, code: int, message: str) -> None:
    svc, _ = services([(STOP_THREE, ok(out, code))])
    with pytest.raises(ServiceFailed) as err:
        svc.stop_all(["kube-proxy", "nope", "kubelet"], KUBELET)
    assert str(err.value) == message


def test_stop_services_refused_with_another_code_is_sc_exes_answer() -> None:
    out = ("== kubelet\r\n[SC] ControlService FAILED 1051:\r\n\r\nA stop control has been "
           "sent to a service that other running services are dependent on.\r\n")
    svc, _ = services([(vocabulary.stop_services(["kubelet"], [], 5000, 120), ok(out, 1051))])
    with pytest.raises(vocabulary.CommandFailed) as err:
        svc.stop_all(["kubelet"], {})
    assert err.value.code == 1051 and err.value.entry == "sc stop kubelet"
    assert "other running services are dependent on" in str(err.value)


def test_a_start_that_times_out_fails_with_the_hosts_message() -> None:
    svc, _ = services([(vocabulary.start_service("kubelet", 5000), ok(START_FAILED_1053, 1053))])
    with pytest.raises(ServiceFailed) as err:
        svc.start("kubelet")
    assert str(err.value) == (
        "service kubelet did not start: Win32 error 1053: [SC] StartService FAILED 1053: "
        "The service did not respond to the start or control request in a timely fashion.")


def test_a_missing_service_has_no_state() -> None:
    svc, _ = services([(vocabulary.sc_query("kubelet"), ok(QUERY_MISSING, 1060))])
    assert svc.state("kubelet") is None
    svc, _ = services([(vocabulary.stop_service("kubelet", 5000), ok(QUERY_MISSING, 1060))])
    assert svc.stop("kubelet") is False


def test_a_start_waits_for_running() -> None:
    svc, replay = services([
        (vocabulary.start_service("dns", 5000),
         ok(QUERY_RUNNING.replace("spoofer-scheduler", "dns"))),
    ])
    svc.start("dns")
    assert replay.script == []


def test_a_service_that_stops_while_starting_fails_with_its_exit_code() -> None:
    crashed = STOPPED.replace("WIN32_EXIT_CODE    : 0  (0x0)", "WIN32_EXIT_CODE    : 1067  (0x42b)")
    svc, _ = services([(vocabulary.start_service("kubelet", 5000), ok(crashed))])
    with pytest.raises(ServiceFailed) as err:
        svc.start("kubelet")
    assert str(err.value) == "service kubelet stopped after start (exit code 1067)"


# --- the simulator speaks the recorded layout ---------------------------------------------
def labels(text: str) -> list[str]:
    return [label for label, _ in vocabulary._sc_fields(text)]


def test_the_simulators_sc_output_has_the_recorded_layout() -> None:
    svc = Service("kubelet", "C:\\k\\kubelet.exe --windows-service",
                  start_type="delayed-auto", dependencies=["containerd", "hns"],
                  display_name="kubelet")
    svc.state = State.START_PENDING
    svc.pid = 4242
    assert labels(sc_exe.status_block(svc, with_pid=True)) == labels(START_PENDING)
    svc.state = State.STOPPED
    assert labels(sc_exe.status_block(svc, with_pid=False)) == labels(STOPPED)
    assert labels(sc_exe.config_block(svc)) == labels(QC_TWO_DEPENDENCIES)
    assert parse_sc_qc(ok(sc_exe.config_block(svc))).dependencies == ("containerd", "hns")

"""Service control manager semantics as the node stage meets them, through sc.exe."""

from __future__ import annotations

import io
import threading
import time

import pytest
from winhelpers import payload, run, wait_for

from syncer.nodes.windows import vocabulary as c
from syncer_lab.nodelab import tar_gz
from syncer_lab.winhost import SimClient, SimHost

# Images no simulated program claims (programs.py): these tests are about the SCM itself.
PROXY = "C:\\k\\proxy-service.exe"
OVERLAY = "C:\\k\\overlay-service.exe"


def sc_code(client: SimClient, command: str) -> int:
    return run(client, command).exit_code


@pytest.fixture
def installed(win_host: SimHost) -> SimHost:
    """containerd <- hybrid-overlay-node <- kube-proxy, binaries on the drive, stopped."""
    win_host.fs.make_directory("C:\\k\\containerd")
    win_host.fs.write_bytes("C:\\k\\containerd\\containerd.exe", payload("containerd", "v1.7.20"))
    win_host.fs.write_bytes(OVERLAY, payload("hybrid-overlay", "v0.1.0"))
    win_host.fs.write_bytes(PROXY, payload("kube-proxy", "v1.30.4"))
    win_host.scm.create("containerd", "C:\\k\\containerd\\containerd.exe", "auto")
    win_host.scm.create("hybrid-overlay-node", OVERLAY, "auto",
                        ["containerd"])
    win_host.scm.create("kube-proxy", PROXY + " --v=2", "auto", ["hybrid-overlay-node"])
    return win_host


def start_and_wait(client: SimClient, host: SimHost, name: str) -> None:
    c.parse_sc_status(run(client, c.sc_start(name)), "sc-start")
    assert wait_for(lambda: host.scm.state(name) == c.ServiceState.RUNNING)


def test_start_needs_running_dependencies(win_client: SimClient, installed: SimHost) -> None:
    assert sc_code(win_client, c.sc_start("kube-proxy")) == c.ERROR_SERVICE_DEPENDENCY_FAIL
    result = run(win_client, c.sc_start("kube-proxy"))
    assert result.stdout.startswith("[SC] StartService FAILED 1068:")
    start_and_wait(win_client, installed, "containerd")
    start_and_wait(win_client, installed, "hybrid-overlay-node")
    start_and_wait(win_client, installed, "kube-proxy")
    assert sc_code(win_client, c.sc_start("kube-proxy")) == c.ERROR_SERVICE_ALREADY_RUNNING


def test_start_with_a_missing_dependency(win_client: SimClient, installed: SimHost) -> None:
    installed.scm.config("containerd", dependencies=["hcs-ghost"])
    assert sc_code(win_client, c.sc_start("containerd")) == c.ERROR_SERVICE_DEPENDENCY_DELETED


def test_start_with_a_missing_or_empty_binary(win_client: SimClient, installed: SimHost) -> None:
    installed.fs.remove("C:\\k\\containerd\\containerd.exe", recursive=False)
    assert sc_code(win_client, c.sc_start("containerd")) == c.ERROR_FILE_NOT_FOUND
    installed.fs.write_bytes("C:\\k\\containerd\\containerd.exe", b"")
    assert sc_code(win_client, c.sc_start("containerd")) == 193  # ERROR_BAD_EXE_FORMAT
    status = c.parse_sc_status(run(win_client, c.sc_query("containerd")))
    assert status.state is c.ServiceState.STOPPED and status.win32_exit_code == 193


def test_disabled_and_stop_errors(win_client: SimClient, installed: SimHost) -> None:
    c.parse_sc_done(run(win_client, c.sc_config("containerd", start=c.StartType.DISABLED)))
    assert sc_code(win_client, c.sc_start("containerd")) == c.ERROR_SERVICE_DISABLED
    c.parse_sc_done(run(win_client, c.sc_config("containerd", start=c.StartType.AUTO)))
    assert sc_code(win_client, c.sc_stop("containerd")) == c.ERROR_SERVICE_NOT_ACTIVE
    c.parse_sc_status(run(win_client, c.sc_start("containerd")), "sc-start")
    # Still START_PENDING: it cannot take a stop yet.
    assert sc_code(win_client, c.sc_stop("containerd")) == c.ERROR_SERVICE_CANNOT_ACCEPT_CTRL
    assert wait_for(lambda: installed.scm.state("containerd") == 4)
    start_and_wait(win_client, installed, "hybrid-overlay-node")
    # Stop in reverse dependency order, or Windows refuses.
    assert sc_code(win_client, c.sc_stop("containerd")) == c.ERROR_DEPENDENT_SERVICES_RUNNING
    c.parse_sc_status(run(win_client, c.sc_stop("hybrid-overlay-node")), "sc-stop")
    assert wait_for(lambda: installed.scm.state("hybrid-overlay-node") == 1)
    c.parse_sc_status(run(win_client, c.sc_stop("containerd")), "sc-stop")


def test_create_existing_and_delete_while_running(win_client: SimClient,
                                                  installed: SimHost) -> None:
    assert sc_code(win_client, c.sc_create("containerd", "C:\\k\\x.exe")) == c.ERROR_SERVICE_EXISTS
    start_and_wait(win_client, installed, "containerd")
    c.parse_sc_done(run(win_client, c.sc_delete("containerd")))  # only marked: it runs
    for command in (c.sc_delete("containerd"), c.sc_create("containerd", "C:\\k\\x.exe"),
                    c.sc_config("containerd", start=c.StartType.DEMAND),
                    c.sc_description("containerd", "x")):
        assert sc_code(win_client, command) == c.ERROR_SERVICE_MARKED_FOR_DELETE
    c.parse_sc_status(run(win_client, c.sc_stop("containerd")), "sc-stop")
    assert wait_for(lambda: not installed.scm.exists("containerd"))
    c.parse_sc_done(run(win_client, c.sc_create("containerd", "C:\\k\\containerd\\containerd.exe")))


def test_unknown_service_everywhere(win_client: SimClient) -> None:
    for command in (c.sc_query("nope"), c.sc_qc("nope"), c.sc_start("nope"), c.sc_stop("nope"),
                    c.sc_delete("nope"), c.sc_description("nope", "d"), c.sc_failure("nope"),
                    c.sc_config("nope", start=c.StartType.AUTO)):
        result = run(win_client, command)
        assert result.exit_code == c.ERROR_SERVICE_DOES_NOT_EXIST
        assert result.stdout.startswith("[SC] OpenService FAILED 1060:")


def test_start_fault_1053(win_client: SimClient, installed: SimHost) -> None:
    installed.faults.fail_service_start("containerd", 1053)
    assert sc_code(win_client, c.sc_start("containerd")) == c.ERROR_SERVICE_REQUEST_TIMEOUT


def test_lingering_process_blocks_replacing_the_binary(win_client: SimClient,
                                                       installed: SimHost) -> None:
    """After sc stop, the process still holds its executable for a while (WMCO's lesson)."""
    installed.process_linger_seconds = 1.5
    start_and_wait(win_client, installed, "containerd")
    start_and_wait(win_client, installed, "hybrid-overlay-node")
    start_and_wait(win_client, installed, "kube-proxy")
    c.parse_sc_status(run(win_client, c.sc_stop("kube-proxy")), "sc-stop")
    assert wait_for(lambda: c.parse_sc_status(run(win_client, c.sc_query("kube-proxy"))).state
                    is c.ServiceState.STOPPED)
    # The service says STOPPED, but its process is still there, holding the executable.
    inventory = c.parse_inventory(run(win_client, c.inventory(processes=["proxy-service"])))
    assert inventory.processes == {"proxy-service": True}
    sftp = win_client.sftp()
    with pytest.raises(PermissionError):
        sftp.putfo(io.BytesIO(payload("kube-proxy", "v1.31.0")), "/C:/k/proxy-service.exe")
    held = run(win_client, c.write_file(PROXY, "new"))
    assert held.exit_code == c.ERROR_SHARING_VIOLATION
    assert "being used by another process" in held.stderr
    sftp.putfo(io.BytesIO(payload("kube-proxy", "v1.31.0")), "/C:/k/proxy-service.exe.new")
    with pytest.raises(PermissionError):
        sftp.posix_rename("/C:/k/proxy-service.exe.new", "/C:/k/proxy-service.exe")
    replaced = run(win_client, c.move_file(PROXY + ".new", PROXY))
    assert replaced.exit_code == c.ERROR_ACCESS_DENIED
    assert run(win_client, c.remove_path(PROXY)).exit_code == c.ERROR_ACCESS_DENIED
    assert installed.fs.read_bytes(PROXY) == payload("kube-proxy", "v1.30.4")
    # The right way: wait for the process to exit, then replace.
    gone = run(win_client, c.wait_process_exit(["proxy-service"], 30))
    assert c.parse_wait_process_exit(gone) == []
    c.check_done(run(win_client, c.move_file(PROXY + ".new", PROXY)))
    assert installed.fs.read_bytes(PROXY) == payload("kube-proxy", "v1.31.0")
    sftp.close()


def test_a_running_binary_can_be_renamed_away(win_client: SimClient, installed: SimHost) -> None:
    start_and_wait(win_client, installed, "containerd")
    c.check_done(run(win_client, c.move_file("C:\\k\\containerd\\containerd.exe",
                                             "C:\\k\\containerd\\containerd.exe.old")))
    assert installed.fs.exists("C:\\k\\containerd\\containerd.exe.old")


def test_archive_over_a_held_file(win_client: SimClient, installed: SimHost) -> None:
    start_and_wait(win_client, installed, "containerd")
    installed.fs.write_bytes("C:\\k\\containerd.tar.gz", tar_gz({
        "containerd.exe": payload("containerd", "v1.7.21"), "ctr.exe": b"ctr\n"}))
    result = run(win_client, c.expand_archive("C:\\k\\containerd.tar.gz", "C:\\k\\containerd"))
    assert result.exit_code == 1
    assert "Can't unlink already-existing object" in result.stderr
    assert installed.fs.exists("C:\\k\\containerd\\ctr.exe")  # the rest was extracted


def test_wait_service_waits_on_the_host_in_one_round_trip(win_client: SimClient,
                                                          installed: SimHost) -> None:
    installed.service_transition_seconds = 1.0
    c.parse_sc_status(run(win_client, c.sc_start("containerd")), "sc-start")
    before = len(installed.commands)
    started = time.monotonic()
    status = c.parse_wait_service(run(win_client, c.wait_service(
        "containerd", c.ServiceState.RUNNING, 10_000)))
    assert status is not None and status.state is c.ServiceState.RUNNING
    assert time.monotonic() - started >= 0.5  # it waited out START_PENDING on the host
    assert len(installed.commands) == before + 1
    c.parse_sc_status(run(win_client, c.sc_stop("containerd")), "sc-stop")
    # Time up: the state it had, for the caller to report.
    pending = c.parse_wait_service(run(win_client, c.wait_service(
        "containerd", c.ServiceState.STOPPED, 0)))
    assert pending is not None and pending.state is c.ServiceState.STOP_PENDING
    stopped = c.parse_wait_service(run(win_client, c.wait_service(
        "containerd", c.ServiceState.STOPPED, 10_000)))
    assert stopped is not None and stopped.state is c.ServiceState.STOPPED
    assert c.parse_wait_service(run(win_client, c.wait_service(
        "nope", c.ServiceState.STOPPED, 10_000))) is None


def test_start_and_stop_service_wait_in_the_same_command(win_client: SimClient,
                                                        installed: SimHost) -> None:
    """start-service and stop-service: sc.exe and the wait after it in one round trip; a
    stop is retried on the host while the service is still START_PENDING (1061)."""
    installed.service_transition_seconds = 1.0
    before = len(installed.commands)
    started = time.monotonic()
    status = c.parse_wait_service(run(win_client, c.start_service("containerd", 10_000)))
    assert status is not None and status.state is c.ServiceState.RUNNING
    assert time.monotonic() - started >= 0.5  # it waited out START_PENDING on the host
    assert [x.summary for x in installed.commands[before:]] == ["start-service containerd"]
    assert c.parse_wait_service(run(win_client, c.start_service(
        "containerd", 10_000))).state is c.ServiceState.RUNNING  # type: ignore[union-attr]
    c.parse_sc_status(run(win_client, c.sc_stop("containerd")), "sc-stop")  # STOP_PENDING
    c.parse_sc_status(run(win_client, c.sc_query("containerd")))
    stopped = c.parse_wait_service(run(win_client, c.stop_service("containerd", 10_000)))
    assert stopped is not None and stopped.state is c.ServiceState.STOPPED
    assert run(win_client, c.stop_service("nope", 10_000)).exit_code == 1060
    # Still START_PENDING: sc.exe stop answers 1061 and is asked again until it is not.
    c.parse_sc_status(run(win_client, c.sc_start("containerd")), "sc-start")
    status = c.parse_wait_service(run(win_client, c.stop_service("containerd", 10_000)))
    assert status is not None and status.state is c.ServiceState.STOPPED
    # A start sc.exe refuses: its answer and its code, no wait.
    installed.scm.start_failures["containerd"] = 1053
    failed = run(win_client, c.start_service("containerd", 10_000))
    assert failed.exit_code == 1053 and "StartService FAILED 1053" in failed.stdout


def test_stop_services_stops_each_in_turn_then_waits_for_the_processes(
        win_client: SimClient, installed: SimHost) -> None:
    """stop-services: each service until STOPPED, dependents first, one that does not
    exist passed over, then the processes' exits: one round trip."""
    for name in ("containerd", "hybrid-overlay-node", "kube-proxy"):
        start_and_wait(win_client, installed, name)
    before = len(installed.commands)
    order = ["kube-proxy", "nope", "hybrid-overlay-node", "containerd"]
    report = c.parse_stop_services(run(win_client, c.stop_services(
        order, ["proxy-service", "overlay-service", "containerd"], 10_000, 30)))
    assert list(report.statuses) == order and report.statuses["nope"] is None
    assert {n: s.state for n, s in report.statuses.items() if s is not None} == dict.fromkeys(
        ["kube-proxy", "hybrid-overlay-node", "containerd"], c.ServiceState.STOPPED)
    assert report.waited and report.running == ()
    assert not installed.scm.processes("containerd")  # the exits were awaited too
    assert [x.summary for x in installed.commands[before:]] == [
        "stop-services kube-proxy nope hybrid-overlay-node containerd"]


def test_stop_services_ends_at_a_refused_or_unfinished_stop(win_client: SimClient,
                                                            installed: SimHost) -> None:
    for name in ("containerd", "hybrid-overlay-node", "kube-proxy"):
        start_and_wait(win_client, installed, name)
    # A dependency while its dependents run: sc.exe refuses (1051) and the command ends.
    refused = run(win_client, c.stop_services(["containerd", "kube-proxy"], [], 10_000, 30))
    assert refused.exit_code == c.ERROR_DEPENDENT_SERVICES_RUNNING
    report = c.parse_stop_services(refused)
    assert report.refused == "containerd" and "FAILED 1051" in report.answer
    assert installed.scm.state("kube-proxy") == c.ServiceState.RUNNING
    # Still STOP_PENDING when the wait ends: its block is the last part, nothing after it.
    installed.service_transition_seconds = 5.0
    report = c.parse_stop_services(run(win_client, c.stop_services(
        ["kube-proxy", "hybrid-overlay-node"], ["proxy-service"], 300, 30)))
    assert list(report.statuses) == ["kube-proxy"] and not report.waited
    assert report.statuses["kube-proxy"].state is c.ServiceState.STOP_PENDING  # type: ignore[union-attr]
    assert installed.scm.state("hybrid-overlay-node") == c.ServiceState.RUNNING
    with pytest.raises(ValueError):
        c.stop_services([], [], 1000, 30)


def test_a_service_that_stops_while_starting_ends_the_wait(win_client: SimClient,
                                                           installed: SimHost) -> None:
    installed.service_transition_seconds = 5.0
    c.parse_sc_status(run(win_client, c.sc_start("containerd")), "sc-start")
    threading.Timer(0.3, installed.scm.crash, ("containerd", 1067)).start()
    started = time.monotonic()
    status = c.parse_wait_service(run(win_client, c.wait_service(
        "containerd", c.ServiceState.RUNNING, 30_000)))
    assert time.monotonic() - started < 3  # not the whole START_PENDING, not the timeout
    assert status is not None and status.state is c.ServiceState.STOPPED
    assert status.win32_exit_code == 1067
    with pytest.raises(ValueError):
        c.wait_service("containerd", c.ServiceState.START_PENDING, 1000)

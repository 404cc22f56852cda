"""Windows service operations over one SSH session, with the waits they need.

Configuring, upgrading and removing a host all stop, start, create and delete services;
they do it through :class:`Services` so every path waits the same way:

- **stop**: ``stop-service``: ``sc stop`` (retried on the host while the service cannot
  accept the control, i.e. is start- or stop-pending), then a wait on the host until
  STOPPED, in one round trip (each SSH exec starts a PowerShell, which costs more on a
  Windows host than the command itself); then, when asked, until its process has exited:
  a binary still held by an exiting process cannot be replaced (WMCO learned this) and a
  directory holding it cannot be deleted. A service that does not exist is already
  stopped.
- **stop several**: ``stop-services``: the same stop for each service in turn, then the
  wait for their processes, all in one round trip (an upgrade stops three services).
- **start**: ``start-service``: ``sc start`` (already running is fine), then a wait on
  the host until RUNNING, in one round trip; a service that stops again while starting
  is a failure that says so with its exit code.
- **ensure**: create the service, or reconfigure it, with its binary path, dependencies
  and start type, then its description and its recovery actions.
- **delete**: ``sc delete``; gone or marked for deletion is fine.
- **end processes**: ``Stop-Process -Force`` by name and wait for them to exit (the
  containerd shims of pods a drain leaves, WMCO's cleanup).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NoReturn

from syncer.nodes.ssh import HostSession
from syncer.nodes.windows import vocabulary
from syncer.nodes.windows.layout import ServiceSpec
from syncer.nodes.windows.vocabulary import CommandFailed, ServiceState


class ServiceFailed(Exception):
    """A service did not reach the state it had to; the message says which and why."""


@dataclass(frozen=True)
class Waits:
    service: float = 120.0  # one service to reach RUNNING / STOPPED
    process_exit: int = 120  # wait-process-exit timeout, passed to the host
    command: float = 60.0  # the SSH command timeout, added to the host-side waits


class Services:
    def __init__(self, session: HostSession, waits: Waits) -> None:
        self.session = session
        self.waits = waits

    def _run(self, command: str, entry: str) -> vocabulary.CommandResult:
        result = self.session.run(command)
        vocabulary.check_done(result, entry)
        return result

    # --- stop ----------------------------------------------------------------------------
    def stop(self, service: str, process: str | None = None) -> bool:
        """Stop ``service`` and wait for ``process`` to exit. False if it does not exist."""
        result = self.session.run(vocabulary.stop_service(service, self._timeout_ms),
                                  timeout=2 * self.waits.service + self.waits.command)
        if result.exit_code == vocabulary.ERROR_SERVICE_DOES_NOT_EXIST:
            return False
        if result.exit_code != 0:
            _refused(service, result)
        status = vocabulary.parse_wait_service(result)
        if status is None:  # deleted meanwhile
            return False
        self._reached(service, status, ServiceState.STOPPED)
        if process is not None:
            self.wait_exit({process: f"process {process} of service {service}"})
        return True

    def stop_all(self, services: Sequence[str], processes: Mapping[str, str]) -> None:
        """Stop ``services`` in this order, each until STOPPED, then wait until none of
        ``processes`` (name -> what it is, for the error) runs: one command. A service
        that does not exist is already stopped."""
        result = self.session.run(
            vocabulary.stop_services(services, list(processes), self._timeout_ms,
                                     self.waits.process_exit),
            timeout=len(services) * 2 * self.waits.service + self.waits.process_exit
            + self.waits.command)
        report = vocabulary.parse_stop_services(result)
        if report.refused is not None:
            _refused(report.refused, vocabulary.CommandResult(result.exit_code, report.answer,
                                                              result.stderr))
        for name, status in report.statuses.items():
            if status is not None:
                self._reached(name, status, ServiceState.STOPPED)
        if not report.waited:
            raise ServiceFailed(f"stop-services ended before its last service: "
                                f"{vocabulary.error_text(result)}")
        self._still_running(processes, report.running)

    def wait_exit(self, processes: Mapping[str, str]) -> None:
        """Wait until none of ``processes`` (name -> what it is, for the error) runs."""
        self._still_running(processes, vocabulary.parse_wait_process_exit(self.session.run(
            vocabulary.wait_process_exit(list(processes), self.waits.process_exit),
            timeout=self.waits.process_exit + self.waits.command)))

    def _still_running(self, processes: Mapping[str, str], running: Sequence[str]) -> None:
        if running:
            folded = {name.casefold(): what for name, what in processes.items()}
            still = [folded.get(name.casefold(), f"process {name}") for name in running]
            verb = "still runs" if len(still) == 1 else "still run"
            raise ServiceFailed(f"{', '.join(still)} {verb} after {self.waits.process_exit}s")

    def end_processes(self, process: str) -> None:
        """End every process named ``process`` and wait until they are gone."""
        self._run(vocabulary.stop_process(process), "stop-process")
        self.wait_exit({process: f"process {process}"})

    # --- start ---------------------------------------------------------------------------
    def start(self, service: str) -> None:
        result = self.session.run(vocabulary.start_service(service, self._timeout_ms),
                                  timeout=self.waits.service + self.waits.command)
        if result.exit_code != 0:
            raise ServiceFailed(
                f"service {service} did not start: Win32 error {result.exit_code}: "
                f"{vocabulary.error_text(result)}")
        self._reached(service, vocabulary.parse_wait_service(result), ServiceState.RUNNING)

    def restart(self, service: str, process: str | None = None) -> None:
        self.stop(service, process)
        self.start(service)

    # --- state ---------------------------------------------------------------------------
    def state(self, service: str) -> ServiceState | None:
        result = self.session.run(vocabulary.sc_query(service))
        if result.exit_code == vocabulary.ERROR_SERVICE_DOES_NOT_EXIST:
            return None
        return vocabulary.parse_sc_status(result).state

    @property
    def _timeout_ms(self) -> int:
        return int(self.waits.service * 1000)

    def _reached(self, service: str, status: vocabulary.ServiceStatus | None,
                 want: ServiceState) -> None:
        """The wait on the host ended with ``status``: fail unless it is ``want``."""
        if status is None:
            raise ServiceFailed(f"service {service} disappeared while waiting for "
                                f"{want.name}")
        if status.state is want:
            return
        if want is ServiceState.RUNNING and status.state is ServiceState.STOPPED:
            raise ServiceFailed(
                f"service {service} stopped after start (exit code {status.win32_exit_code})")
        raise ServiceFailed(
            f"service {service} is {status.state.name} after {self.waits.service:.0f}s, "
            f"expected {want.name}")

    # --- create, configure, delete -------------------------------------------------------------
    def ensure(self, spec: ServiceSpec, exists: bool) -> None:
        """Create or reconfigure the service ``spec`` describes."""
        if exists:
            self._config(spec)
        else:
            result = self.session.run(
                vocabulary.sc_create(spec.name, spec.binary_path, depends_on=spec.depends_on))
            if result.exit_code == vocabulary.ERROR_SERVICE_EXISTS:
                self._config(spec)  # created meanwhile (an earlier, interrupted run)
            else:
                vocabulary.parse_sc_done(result, "sc create")
        vocabulary.parse_sc_done(
            self.session.run(vocabulary.sc_description(spec.name, spec.description)),
            "sc description")
        vocabulary.parse_sc_done(self.session.run(vocabulary.sc_failure(spec.name)),
                                 "sc failure")

    def _config(self, spec: ServiceSpec) -> None:
        vocabulary.parse_sc_done(self.session.run(vocabulary.sc_config(
            spec.name, binary_path=spec.binary_path, start=vocabulary.StartType.AUTO,
            depends_on=spec.depends_on)), "sc config")

    def delete(self, service: str) -> None:
        result = self.session.run(vocabulary.sc_delete(service))
        if result.exit_code not in (0, vocabulary.ERROR_SERVICE_DOES_NOT_EXIST,
                                    vocabulary.ERROR_SERVICE_MARKED_FOR_DELETE):
            raise CommandFailed(f"sc delete {service}", result)


def _refused(service: str, result: vocabulary.CommandResult) -> NoReturn:
    """sc.exe refused to stop ``service`` (``result``: its answer and code)."""
    if result.exit_code == vocabulary.ERROR_SERVICE_CANNOT_ACCEPT_CTRL:
        raise ServiceFailed(f"service {service} did not accept a stop request")
    raise CommandFailed(f"sc stop {service}", result)

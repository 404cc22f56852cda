"""Windows service operations over one SSH session, with the waits they need.

Configuring, upgrading and removing a host all stop, start, create and delete services;
they do it through :class:`Services` so every path waits the same way:

- **stop**: ``sc stop`` (retried while the service cannot accept the control, i.e. is
  start- or stop-pending), then wait on the host until STOPPED (``wait-service``: one
  round trip, not a query per poll), then until its process has exited: a binary still
  held by an exiting process cannot be replaced (WMCO learned this) and a directory
  holding it cannot be deleted. A service that does not exist is already stopped.
- **start**: ``sc start`` (already running is fine), then wait on the host until RUNNING;
  a service that stops again while starting is a failure that says so with its exit code.
- **ensure**: create the service, or reconfigure it, with its binary path, dependencies
  and start type, then its description and its recovery actions.
- **delete**: ``sc delete``; gone or marked for deletion is fine.
- **end processes**: ``Stop-Process -Force`` by name and wait for them to exit (the
  containerd shims of pods a drain leaves, WMCO's cleanup).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

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
    poll: float = 1.0
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
        deadline = time.monotonic() + self.waits.service
        while True:
            result = self.session.run(vocabulary.sc_stop(service))
            if result.exit_code == vocabulary.ERROR_SERVICE_DOES_NOT_EXIST:
                return False
            if result.exit_code in (0, vocabulary.ERROR_SERVICE_NOT_ACTIVE):
                break
            if result.exit_code != vocabulary.ERROR_SERVICE_CANNOT_ACCEPT_CTRL:
                raise CommandFailed(f"sc stop {service}", result)
            if time.monotonic() > deadline:
                raise ServiceFailed(f"service {service} did not accept a stop request")
            time.sleep(self.waits.poll)  # start or stop pending: try again
        if not self.wait(service, ServiceState.STOPPED):
            return False
        if process is not None:
            self.wait_exit({process: f"process {process} of service {service}"})
        return True

    def wait_exit(self, processes: Mapping[str, str]) -> None:
        """Wait until none of ``processes`` (name -> what it is, for the error) runs."""
        running = vocabulary.parse_wait_process_exit(self.session.run(
            vocabulary.wait_process_exit(list(processes), self.waits.process_exit),
            timeout=self.waits.process_exit + self.waits.command))
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
        result = self.session.run(vocabulary.sc_start(service))
        if result.exit_code not in (0, vocabulary.ERROR_SERVICE_ALREADY_RUNNING):
            raise ServiceFailed(
                f"service {service} did not start: Win32 error {result.exit_code}: "
                f"{vocabulary.error_text(result)}")
        self.wait(service, ServiceState.RUNNING)

    def restart(self, service: str, process: str | None = None) -> None:
        self.stop(service, process)
        self.start(service)

    # --- state ---------------------------------------------------------------------------
    def state(self, service: str) -> ServiceState | None:
        result = self.session.run(vocabulary.sc_query(service))
        if result.exit_code == vocabulary.ERROR_SERVICE_DOES_NOT_EXIST:
            return None
        return vocabulary.parse_sc_status(result).state

    def wait(self, service: str, want: ServiceState) -> bool:
        """Wait until ``service`` is in state ``want``; False if it does not exist."""
        timeout_ms = int(self.waits.service * 1000)
        status = vocabulary.parse_wait_service(self.session.run(
            vocabulary.wait_service(service, want, timeout_ms),
            timeout=self.waits.service + self.waits.command))
        if status is None:
            return False
        if status.state is want:
            return True
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

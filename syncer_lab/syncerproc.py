"""``syncer run`` as a child process, the way a container runs it (demo and end-to-end tests).

:class:`SyncerProcess` starts ``python -m syncer run ARGS`` with the same interpreter, on a
free loopback port, with its output in a log file. It never outlives its parent: the child
runs in its own session (a Ctrl-C in the terminal reaches only the parent, which stops the
child in the right order) and, when started from the main thread, with
``PR_SET_PDEATHSIG=SIGKILL`` so the kernel kills it even if the parent is killed.

Helpers read what an operator would look at: ``/healthz``, ``/metrics`` (parsed with
prometheus_client), and the log. :meth:`stop` is a graceful SIGTERM (the controller parks
its rollout and releases its Lease), :meth:`kill` a SIGKILL (a crashed pod).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import IO

import requests
from prometheus_client.parser import text_string_to_metric_families

from syncer_lab.processes import die_with_parent, free_port

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class SyncerProcess:
    """One ``syncer run`` child process (see the module docstring)."""

    def __init__(self, name: str, args: list[str], log: Path,
                 env: Mapping[str, str] | None = None, host: str = "127.0.0.1") -> None:
        self.name = name
        self.port = free_port(host)
        self.url = f"http://{host}:{self.port}"  # webhooks
        self.probe_port = free_port(host)
        self.probe_url = f"http://{host}:{self.probe_port}"  # /healthz, /readyz, /metrics
        self.log = log
        full_env = {**os.environ, **(env or {}), "SYNCER_LISTEN": f"{host}:{self.port}",
                    "SYNCER_PROBE_LISTEN": f"{host}:{self.probe_port}", "POD_NAME": name}
        self._log_file: IO[bytes] = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "syncer", "run", *args],
            env=full_env, stdin=subprocess.DEVNULL, stdout=self._log_file,
            stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent(),
            close_fds=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    # --- what an operator looks at -------------------------------------------------------
    def healthy(self) -> bool:
        try:
            return requests.get(f"{self.probe_url}/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def metrics(self) -> Samples:
        """Every sample of ``/metrics``: (name, sorted labels) -> value ({} if down)."""
        try:
            text = requests.get(f"{self.probe_url}/metrics", timeout=5).text
        except requests.RequestException:
            return {}
        found: Samples = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                found[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return found

    def metric(self, name: str, samples: Samples | None = None, **labels: str) -> float | None:
        """The samples of ``name`` that carry ``labels`` (and any others, e.g. ``fleet``),
        summed; None when there is none. ``samples``: a scrape already taken (else one
        now)."""
        samples = self.metrics() if samples is None else samples
        found = [value for (sample, have), value in samples.items()
                 if sample == name and set(labels.items()) <= set(have)]
        return sum(found) if found else None

    def family(self, name: str, label: str, samples: Samples | None = None) -> dict[str, float]:
        """``label`` value -> sample value for every sample of ``name`` (summed over the
        other labels, e.g. every fleet's). ``samples``: as for :meth:`metric`."""
        samples = self.metrics() if samples is None else samples
        out: dict[str, float] = {}
        for (sample, labels), value in samples.items():
            if sample == name:
                key = dict(labels).get(label, "")
                out[key] = out.get(key, 0.0) + value
        return out

    def revision(self) -> str | None:
        """The revision ``syncer_last_applied_revision_info`` names."""
        for revision, value in self.family("syncer_last_applied_revision_info",
                                           "revision").items():
            if value >= 1:  # 1 per fleet that applied it
                return revision
        return None

    def usage(self) -> tuple[float, float]:
        """(peak resident memory in MiB, CPU seconds used so far), from /proc: what sizes
        the Deployment's resource requests."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return 0.0, 0.0
        peak = next((int(line.split()[1]) for line in status.splitlines()
                     if line.startswith("VmHWM:")), 0)
        fields = stat.rpartition(")")[2].split()
        ticks = int(fields[11]) + int(fields[12])  # utime + stime
        return peak / 1024, ticks / os.sysconf("SC_CLK_TCK")

    def is_leader(self) -> bool:
        return self.metric("syncer_leader") == 1.0

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    # --- stopping --------------------------------------------------------------------------
    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM (graceful: park, release the Lease), SIGKILL after ``timeout``."""
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self.close()
        return int(self.proc.returncode)

    def kill(self) -> None:
        """SIGKILL, as when a node or pod dies: nothing is released."""
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        self.proc.wait(10)

    def close(self) -> None:
        """Make sure the process is gone and its log file closed."""
        if self.running():
            self.kill()
        self._log_file.close()

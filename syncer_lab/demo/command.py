"""``syncer demo``: run the story, report how it ended, always clean up.

Exit codes: 0 when the story completed (every host at the new version, the status commit
present), 1 when a step failed (the failure, then the controller's last log lines), 130
when interrupted (Ctrl-C or SIGTERM). Whatever happens, the clean-up runs: the controller
is stopped gracefully, then the forge, the hosts (their loopback listeners closed), the
control plane, and the temp directory is removed. SIGTERM is turned into the same unwind
as Ctrl-C, and both are ignored while cleaning up so a second Ctrl-C cannot leave half of
it running. With ``--keep`` everything stays up after the story (or the failure) and the
demo prints how to look around, until Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from types import FrameType
from typing import Any

import click

from syncer.problems import UserError
from syncer_lab.demo.lab import DemoFailed, DemoLab, DemoOptions
from syncer_lab.demo.story import Story
from syncer_lab.demo.ui import Narrator

INTERRUPTED = 130


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextlib.contextmanager
def _signals(handler: Any) -> Iterator[None]:
    """Install ``handler`` for SIGINT and SIGTERM (main thread only), restore after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for sig in saved:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, previous in saved.items():
            signal.signal(sig, previous)


def run_demo(options: DemoOptions, *, keep: bool = False, ui: Narrator | None = None) -> int:
    """Run the demo; return the exit code (see the module docstring)."""
    ui = ui or Narrator()
    code = 1
    with _signals(_interrupt):
        lab: DemoLab | None = None
        pids: list[int] = []
        try:
            lab = DemoLab(options, ui)
            try:
                Story(lab, ui).run()
                code = 0
                ui.heading(f"Done: the story completed in {ui.elapsed():.0f}s")
            except DemoFailed as err:
                _report_failure(ui, lab, str(err))
            except KeyboardInterrupt:
                ui.warn("interrupted")
                code = INTERRUPTED
            except UserError:
                raise
            except Exception as err:
                _report_failure(ui, lab, f"{type(err).__name__}: {err}",
                                traceback.format_exc())
            pids = _pids(lab)
            if keep and code != INTERRUPTED:
                _keep(ui, lab)
        except KeyboardInterrupt:
            ui.warn("interrupted")
            code = INTERRUPTED
        finally:
            with _signals(signal.SIG_IGN):
                if lab is not None:
                    _clean_up(ui, lab, pids or _pids(lab))
    return code


def _report_failure(ui: Narrator, lab: DemoLab, message: str, trace: str = "") -> None:
    ui.fail(message)
    if trace:
        ui.block(trace, dim=True)
    log = lab.controller_log(30)
    if log:
        ui.say("last lines of the controller's log:")
        ui.block(log, dim=True)


def _pids(lab: DemoLab) -> list[int]:
    pids = []
    if lab.controller is not None:
        pids.append(lab.controller.pid)
    if lab.control_plane is not None:
        pids += lab.control_plane.pids()
    return pids


def _keep(ui: Narrator, lab: DemoLab) -> None:
    cp, controller = lab.control_plane, lab.controller
    ui.heading("Still running (--keep): look around, then press Ctrl-C to clean up")
    if cp is not None:
        ui.command(f"export KUBECONFIG={cp.kubeconfig}")
        ui.command(f"syncer status --kubeconfig {cp.kubeconfig}")
        ui.command(f"{cp.binaries.kubectl} get nodes -o wide")
    ui.command(f"git clone {lab.remote.as_uri()} fleet && cd fleet && git log "
               "origin/syncer/status --oneline")
    ui.command(f"syncer history --repo {lab.remote.as_uri()}")
    if controller is not None:
        ui.command(f"curl -s {controller.probe_url}/metrics | grep ^syncer_")
        ui.say(f"controller log: {controller.log}")
    if lab.hosts:
        host = lab.hosts[0]
        port = f" -P {host.port}" if host.port != 22 else ""
        opts = (f"-i {lab.key_file}{port} -o StrictHostKeyChecking=no "
                "-o UserKnownHostsFile=/dev/null")
        ui.say("a simulated host answers syncer's command vocabulary "
               "(docs/windows-commands.md) and SFTP:")
        ui.command(f"ssh {opts.replace('-P', '-p')} Administrator@{host.address} hostname")
        ui.command(f"echo 'ls -l /C:/k' | sftp {opts} -b - Administrator@{host.address}")
    if lab.forge is not None:
        ui.say(f"forge API: {lab.forge.api_url} (token in {lab.root / 'secrets'})")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:  # the way out of --keep, not a failure
        return


def _clean_up(ui: Narrator, lab: DemoLab, pids: list[int]) -> None:
    ui.heading("Cleaning up")
    began = time.monotonic()
    root = lab.root
    try:
        lab.close()
    except Exception as err:  # report it, and still check what is left
        ui.fail(f"clean-up: {type(err).__name__}: {err}")
    left = [p for p in pids if _alive(p)]
    if left:
        ui.fail(f"processes still running after clean-up: {left}")
        return
    what = f"stopped syncer run, the forge, {len(lab.hosts)} hosts, kube-apiserver and etcd"
    removed = "kept" if lab.options.keep_files else "removed"
    ui.ok(f"{what}; {removed} {root} ({time.monotonic() - began:.1f}s)")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped by its parent) counts as gone
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().rsplit(") ", 1)[-1][:1]
    except OSError:
        return False
    return state != "Z"


@click.command("demo")
@click.option("--hosts", type=click.IntRange(1, 20), default=3, show_default=True,
              help="How many simulated Windows hosts.")
@click.option("--forge", type=click.Choice(["github", "gitlab", "gitea"]), default="github",
              show_default=True, help="Which forge API the pull request lives on.")
@click.option("--keep", is_flag=True,
              help="Leave everything running after the story and print how to look "
                   "around; Ctrl-C cleans up.")
@click.option("--interval", default="15s", show_default=True, hidden=True,
              help="The controller's poll interval.")
@click.option("--keep-files", is_flag=True, hidden=True,
              help="Do not remove the temp directory (logs, repositories).")
def demo_command(hosts: int, forge: str, keep: bool, interval: str, keep_files: bool) -> None:
    """Run the whole story locally: a cluster, simulated Windows hosts, a Git remote and a
    forge; syncer run applies main, a pull request bumps the components, its merge rolls
    out host by host, and the status is written back to Git. Then everything is cleaned
    up. Needs the control plane binaries (make setup)."""
    options = DemoOptions(hosts=hosts, forge=forge, interval=interval, keep_files=keep_files)
    sys.exit(run_demo(options, keep=keep))

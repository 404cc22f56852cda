"""Run a lab of simulated Windows hosts in its own process (demo, end-to-end tests).

    python -m syncer_lab.winhost --hosts 3 --authorized-key "ssh-ed25519 AAAA..."
    python -m syncer_lab.winhost --config lab.json

When every host listens, one JSON line per host is printed on stdout
(``{"name", "address", "port", "host_key", "drive"}``), then ``{"ready": true}``. Hosts
the machine-API simulator creates later are printed the same way as they appear. SIGTERM
or SIGINT stops the lab cleanly (every socket and thread closed) and exits 0.

With ``--control`` the lab also takes one JSON command per line on stdin and answers each
with host lines (for ``add_hosts``) and then one ``{"ok": ...}`` line; the end of stdin (the
parent gone) stops the lab. This is how :class:`~syncer_lab.winhost.workers.LabProcesses`
spreads hosts over several processes::

    {"op": "add_hosts", "hosts": [{"name": "WIN-1", ...host options...}]}
    {"op": "slow_command", "pattern": "^start-service kubelet$", "seconds": 10}
    {"op": "clear_faults"}
    {"op": "unexpected"}          -> {"ok": true, "unexpected": ["WIN-1: ...", ...]}
    {"op": "usage"}               -> {"ok": true, "rss_kib": ..., "cpu_seconds": ...}

``lab.json``::

    {"root": "/tmp/lab", "port": 22,
     "authorized_keys": ["ssh-ed25519 AAAA..."],        # for every host without its own
     "hosts": [{"name": "WIN-A", "address": "127.0.1.1", "os_build": "10.0.17763.6054",
                "default_shell": "cmd", "authorized_keys": [...],
                "process_linger_seconds": 1.0, "reboot_downtime": 2.0}],
     "machine_api": {"kubeconfig": "/path/admin.kubeconfig", "interval": 1.0},
     "first_address": "127.0.1.1",                       # where host addresses start
     "kubelets": {"heartbeat_seconds": 5, "status_seconds": 20}}
"""

from __future__ import annotations

import argparse
import json
import queue
import resource
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from syncer_lab.winhost.host import SimHost
from syncer_lab.winhost.kubelet import Kubelets
from syncer_lab.winhost.lab import FIRST_ADDRESS, HostLab

_HOST_OPTIONS = {
    "os_build", "default_shell", "authorized_keys", "users", "host_key_types",
    "process_linger_seconds", "service_transition_seconds", "reboot_delay",
    "reboot_downtime", "command_latency", "address",
}


def _say(doc: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(doc, sort_keys=True) + "\n")
    sys.stdout.flush()


def describe(host: SimHost) -> dict[str, Any]:
    return {"name": host.name, "address": host.address, "port": host.port,
            "host_key": host.host_key_line, "drive": str(host.drive)}


def _config(args: argparse.Namespace) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if args.config:
        config = json.loads(Path(args.config).read_text())
    keys = list(config.get("authorized_keys", []))
    keys += args.authorized_key or []
    if args.authorized_keys_file:
        keys += [ln for ln in Path(args.authorized_keys_file).read_text().splitlines()
                 if ln.strip()]
    config["authorized_keys"] = keys
    hosts = list(config.get("hosts", []))
    hosts += [{"name": f"{args.prefix}{i + 1:02d}"} for i in range(args.hosts)]
    for host in hosts:
        host.setdefault("authorized_keys", keys)
        if args.os_build:
            host.setdefault("os_build", args.os_build)
        if args.default_shell:
            host.setdefault("default_shell", args.default_shell)
    config["hosts"] = hosts
    if args.root:
        config["root"] = args.root
    if args.port is not None:
        config["port"] = args.port
    if args.machine_api_kubeconfig:
        config.setdefault("machine_api", {})["kubeconfig"] = args.machine_api_kubeconfig
    return config


def _add_hosts(lab: HostLab, specs: list[dict[str, Any]]) -> None:
    for spec in specs:
        options = {k: v for k, v in spec.items() if k in _HOST_OPTIONS}
        _say(describe(lab.add_host(spec["name"], **options)))


def _usage() -> dict[str, Any]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    with open("/proc/self/statm") as statm:
        rss_pages = int(statm.read().split()[1])
    return {"rss_kib": rss_pages * resource.getpagesize() // 1024,
            "peak_rss_kib": usage.ru_maxrss, "cpu_seconds": usage.ru_utime + usage.ru_stime}


def _obey(lab: HostLab, command: dict[str, Any]) -> dict[str, Any]:
    """Carry out one ``--control`` command; the answer's ``ok`` line fields."""
    op = command.get("op")
    hosts = list(lab.hosts.values())
    if op == "add_hosts":
        _add_hosts(lab, command["hosts"])
        return {}
    if op == "slow_command":
        for host in hosts:
            host.faults.slow_command(command["pattern"], float(command["seconds"]))
        return {}
    if op == "clear_faults":
        for host in hosts:
            host.faults.clear()
        return {}
    if op == "unexpected":
        return {"unexpected": [f"{h.name}: {c.command[:200]}" for h in hosts
                               for c in h.unexpected_commands]}
    if op == "usage":
        return _usage()
    raise ValueError(f"unknown op {op!r}")


def _read_commands(commands: queue.Queue[dict[str, Any] | None]) -> None:
    for line in sys.stdin:
        if line.strip():
            commands.put(json.loads(line))
    commands.put(None)  # end of input: the parent is gone


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m syncer_lab.winhost",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", help="lab.json (see the module documentation)")
    parser.add_argument("--hosts", type=int, default=0, help="number of extra hosts")
    parser.add_argument("--prefix", default="WIN-SIM", help="name prefix of --hosts hosts")
    parser.add_argument("--root", help="directory for the hosts' drives (default: temp)")
    parser.add_argument("--port", type=int, help="SSH port (default 22 as root, else 2222)")
    parser.add_argument("--authorized-key", action="append", help="public key line")
    parser.add_argument("--authorized-keys-file", help="file of public key lines")
    parser.add_argument("--os-build", help="OS build of every host, e.g. 10.0.20348.2340")
    parser.add_argument("--default-shell", choices=["cmd", "powershell"])
    parser.add_argument("--machine-api-kubeconfig",
                        help="run the machine-API simulator against this cluster")
    parser.add_argument("--control", action="store_true",
                        help="take JSON commands on stdin; its end stops the lab")
    args = parser.parse_args(argv)
    config = _config(args)

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    kubelets: Kubelets | bool = (Kubelets(**config["kubelets"]) if "kubelets" in config
                                 else True)
    lab = HostLab(config.get("root"), port=config.get("port"), kubelets=kubelets,
                  first_address=config.get("first_address", FIRST_ADDRESS))
    machine_api: Any = None
    commands: queue.Queue[dict[str, Any] | None] = queue.Queue()
    try:
        lab.start()
        _add_hosts(lab, config["hosts"])
        if "machine_api" in config:
            from syncer_lab.machineapi import MachineAPISimulator

            settings = config["machine_api"]
            machine_api = MachineAPISimulator.from_kubeconfig(
                settings["kubeconfig"], lab, interval=float(settings.get("interval", 1.0)),
                on_host=lambda host: _say(describe(host)),
            ).start()
        _say({"ready": True, "hosts": len(lab.hosts)})
        if args.control:
            threading.Thread(target=_read_commands, args=(commands,), daemon=True).start()
        while not stop.is_set():
            try:
                command = commands.get(timeout=0.5)
            except queue.Empty:
                continue
            if command is None:
                break
            try:
                _say({"ok": True, **_obey(lab, command)})
            except Exception as err:  # answer, keep serving
                _say({"ok": False, "error": f"{type(err).__name__}: {err}"})
    finally:
        if machine_api is not None:
            machine_api.stop()
        lab.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

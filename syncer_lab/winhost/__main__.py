"""Run a lab of simulated Windows hosts in its own process (demo, end-to-end tests).

    python -m syncer_lab.winhost --hosts 3 --authorized-key "ssh-ed25519 AAAA..."
    python -m syncer_lab.winhost --config lab.json

When every host listens, one JSON line per host is printed on stdout
(``{"name", "address", "port", "host_key", "drive"}``), then ``{"ready": true}``. Hosts
the machine-API simulator creates later are printed the same way as they appear. SIGTERM
or SIGINT stops the lab cleanly (every socket and thread closed) and exits 0.

``lab.json``::

    {"root": "/tmp/lab", "port": 22,
     "authorized_keys": ["ssh-ed25519 AAAA..."],        # for every host without its own
     "hosts": [{"name": "WIN-A", "address": "127.0.1.1", "os_build": "10.0.17763.6054",
                "default_shell": "cmd", "authorized_keys": [...],
                "process_linger_seconds": 1.0, "reboot_downtime": 2.0}],
     "machine_api": {"kubeconfig": "/path/admin.kubeconfig", "interval": 1.0}}
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from syncer_lab.winhost.host import SimHost
from syncer_lab.winhost.lab import HostLab

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
    args = parser.parse_args(argv)
    config = _config(args)

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    lab = HostLab(config.get("root"), port=config.get("port"))
    machine_api: Any = None
    try:
        lab.start()
        for spec in config["hosts"]:
            options = {k: v for k, v in spec.items() if k in _HOST_OPTIONS}
            _say(describe(lab.add_host(spec["name"], **options)))
        if "machine_api" in config:
            from syncer_lab.machineapi import MachineAPISimulator

            settings = config["machine_api"]
            machine_api = MachineAPISimulator.from_kubeconfig(
                settings["kubeconfig"], lab, interval=float(settings.get("interval", 1.0)),
                on_host=lambda host: _say(describe(host)),
            ).start()
        _say({"ready": True, "hosts": len(lab.hosts)})
        while not stop.wait(0.5):
            pass
    finally:
        if machine_api is not None:
            machine_api.stop()
        lab.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

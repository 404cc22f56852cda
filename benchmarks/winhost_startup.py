"""How long fifty simulated Windows hosts take to start, and to answer one command each.

    .venv/bin/python benchmarks/winhost_startup.py [--hosts 50] [--workers 10]

Prints the time to start the lab and create the hosts (keys, drives, listening sockets),
then the time for a real paramiko client per host (host-key checking on) to connect and
run the one-command no-change probe (the vocabulary's ``inventory``) on every host, and
the ratio of that to running the same probe against one host fifty times in a row over
one connection (the baseline measured in the same run).
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from syncer.nodes.windows import vocabulary as c
from syncer_lab.winhost import HostLab, SimClient, SimHost, key_line
from syncer_lab.winhost.host import generate_host_key

FILES = ["C:\\k\\kubelet.exe", "C:\\k\\kube-proxy.exe", "C:\\k\\containerd\\containerd.exe"]
SERVICES = ["containerd", "kubelet", "kube-proxy", "hybrid-overlay-node", "windows_exporter"]


@dataclass
class Result:
    hosts: int
    start_seconds: float
    one_command_each_seconds: float
    baseline_sequential_seconds: float
    ratio: float
    threads_after_stop: int


def measure(count: int = 50, workers: int = 10) -> Result:
    import threading

    key = generate_host_key()
    probe = c.inventory(files=FILES, services=SERVICES, processes=["kubelet"])
    threads_before = threading.active_count()
    began = time.perf_counter()
    lab = HostLab().start()
    hosts = [lab.add_host(f"WIN-BENCH{i:02d}", authorized_keys=[key_line(key)])
             for i in range(count)]
    start_seconds = time.perf_counter() - began
    try:
        def one(host: SimHost) -> None:
            with SimClient(host.address, host.port, host.host_key_line, key) as client:
                c.parse_inventory(_result(client.run(probe)))

        began = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(one, hosts))
        each = time.perf_counter() - began

        began = time.perf_counter()
        with SimClient(hosts[0].address, hosts[0].port, hosts[0].host_key_line, key) as client:
            for _ in range(count):
                c.parse_inventory(_result(client.run(probe)))
        baseline = time.perf_counter() - began
        unexpected = sum(len(h.unexpected_commands) for h in hosts)
        if unexpected:
            raise SystemExit(f"{unexpected} unexpected commands")
    finally:
        lab.stop()
    return Result(count, start_seconds, each, baseline, each / baseline,
                  threading.active_count() - threads_before)


def _result(r: object) -> c.CommandResult:
    return c.CommandResult(r.exit_code, r.stdout, r.stderr)  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--workers", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = measure(args.hosts, args.workers)
    if args.json:
        print(json.dumps(asdict(result)))
        return
    print(f"{result.hosts} simulated hosts started in {result.start_seconds:.2f}s")
    print(f"connect + inventory on each ({args.workers} clients in parallel): "
          f"{result.one_command_each_seconds:.2f}s")
    print(f"baseline, {result.hosts} inventories on one connection: "
          f"{result.baseline_sequential_seconds:.2f}s "
          f"(ratio {result.ratio:.2f})")
    print(f"threads left after stop: {result.threads_after_stop}")


if __name__ == "__main__":
    main()

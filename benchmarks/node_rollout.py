"""Benchmark: the node stage's rollout across 40 simulated hosts, and a no-change pass.

Runs the real node stage (:func:`syncer.nodes.stage.run_node_stage`) against the test
control plane and 40 simulated Windows hosts (real SSH servers on loopback, simulated
kubelets registering Nodes):

1. **join**: 40 fresh BYOH hosts are configured (printed for information).
2. **rollout**: a version bump (kubelet and kube-proxy change) with
   ``maxUnavailable = 8``, where every host's upgrade takes a fixed simulated time D (the
   simulator delays each host's ``sc start kubelet`` by D). Printed: total rollout time /
   the ideal ``ceil(40 / maxUnavailable) x D``. Target <= 1.25.
3. **no-change pass**: the stage over 40 up-to-date hosts (reads its inputs and the
   cluster's facts, probes every host — host-key check, the inventory and node-facts
   commands — approves no CSR, plans, compares the status report), against the
   **baseline**: 40 bare paramiko round-trips, each ``SSHClient`` connect with the host
   key checked (``RejectPolicy``, key pinned) and key authentication + the same two
   commands + close, on a thread pool of the same size as the stage's probe pool (16).
   Both are the median of ``--repeat`` runs. Target <= 1.5.

Exits 1 when a target is missed.

    .venv/bin/python benchmarks/node_rollout.py [--hosts 40] [--max-unavailable 8] [--d 10]
"""

from __future__ import annotations

import argparse
import base64
import math
import random
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import paramiko

from syncer.cluster.client import KubeClient
from syncer.nodes.hostplan import probe_files, probe_services
from syncer.nodes.inputs import DesiredState, read_desired_state
from syncer.nodes.payloads import PayloadCache, host_view
from syncer.nodes.stage import run_node_stage
from syncer.nodes.windows import layout, vocabulary
from syncer_lab.kube import ControlPlane
from syncer_lab.nodelab import NodeLab
from syncer_lab.winhost import HostLab, SimHost
from syncer_lab.winhost.kubelet import Kubelets

PROBE_WORKERS = 16


def bare_round_trips(hosts: list[SimHost], pkey: paramiko.PKey, workers: int,
                     *commands: str) -> float:
    def one(host: SimHost) -> None:
        client = paramiko.SSHClient()
        key_type, blob = host.host_key_line.split()[:2]
        known = paramiko.PKey.from_type_string(key_type, base64.b64decode(blob))
        client.get_host_keys().add(host.address, key_type, known)
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            client.connect(host.address, port=host.port, username="Administrator", pkey=pkey,
                           allow_agent=False, look_for_keys=False, timeout=10)
            for command in commands:
                _, stdout, _ = client.exec_command(command)
                stdout.read()
                stdout.channel.recv_exit_status()
        finally:
            client.close()

    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, hosts))
    return time.monotonic() - start


def desired(nl: NodeLab) -> DesiredState:
    state = read_desired_state(nl.api, nl.namespace)
    assert state is not None
    return state


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=40)
    parser.add_argument("--max-unavailable", type=int, default=8)
    parser.add_argument("--d", type=float, default=10.0, help="simulated upgrade time (s)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rollout-target", type=float, default=1.25)
    parser.add_argument("--nochange-target", type=float, default=1.5)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="node-rollout-") as tmp, ControlPlane() as cp:
        cp.start_csr_signer()
        cp.start_ovn_kubernetes()  # OpenShift's network objects and OVN-K's part
        namespace = cp.create_namespace("bench-node-rollout")
        kubelets = Kubelets(heartbeat_seconds=2.0, status_seconds=5.0, bootstrap_timeout=120)
        first = f"127.{random.randint(20, 250)}.{random.randint(1, 250)}.1"
        with cp.api_client() as kube, HostLab(Path(tmp) / "hosts", kubelets=kubelets,
                                              first_address=first) as lab:
            api = KubeClient(kube)
            nl = NodeLab(api, namespace, lab, Path(tmp), "bench")
            hosts = nl.add_hosts(args.hosts, process_linger_seconds=0.05,
                                 service_transition_seconds=0.02)
            nl.set_fleet("1.0.0", max_unavailable=args.max_unavailable)
            nl.write_instances()
            options = nl.options(probe_workers=PROBE_WORKERS,
                                 timeouts=replace(nl.options().timeouts, slot_renew=60.0))

            begin = time.monotonic()
            joined = run_node_stage(api, options)
            join_time = time.monotonic() - begin
            if not joined.ok:
                print(f"join failed: {joined.summary()}", file=sys.stderr)
                return 1
            print(f"join: {args.hosts} fresh hosts configured in {join_time:.1f}s "
                  f"(maxUnavailable {args.max_unavailable})")

            for host in hosts:
                host.faults.slow_command(r"^sc start kubelet$", args.d)
            nl.set_fleet("1.1.0", kubelet="v1.31.0", max_unavailable=args.max_unavailable)
            begin = time.monotonic()
            rolled = run_node_stage(api, options)
            rollout_time = time.monotonic() - begin
            if not rolled.ok or rolled.rollout is None or rolled.rollout.done != args.hosts:
                print(f"rollout failed: {rolled.summary()}", file=sys.stderr)
                return 1
            ideal = math.ceil(args.hosts / args.max_unavailable) * args.d
            rollout_ratio = rollout_time / ideal
            print(f"rollout: {args.hosts} hosts, maxUnavailable {args.max_unavailable}, "
                  f"D {args.d:.1f}s: {rollout_time:.1f}s vs ideal "
                  f"ceil({args.hosts}/{args.max_unavailable}) x D = {ideal:.1f}s: "
                  f"ratio {rollout_ratio:.2f} (target <= {args.rollout_target}; "
                  f"max concurrency seen {rolled.rollout.max_concurrency})")
            for host in hosts:
                host.faults.clear()

            state = host_view(PayloadCache(options.cache_dir), desired(nl))
            managed = dict.fromkeys((layout.KUBELET_CONFIG, layout.CONTAINERD_CONFIG,
                                     layout.KUBELET_CA, layout.BOOTSTRAP_CA,
                                     layout.BOOTSTRAP_KUBECONFIG))
            inventory = vocabulary.inventory(files=probe_files(state, managed),  # type: ignore[arg-type]
                                             services=probe_services(state))
            facts = vocabulary.node_facts()
            passes, bares, hostnames = [], [], []
            for _ in range(args.repeat):
                begin = time.monotonic()
                result = run_node_stage(api, options)
                passes.append(time.monotonic() - begin)
                if not result.ok or any(r.phase != "up-to-date" for r in result.rows):
                    print(f"no-change pass was not a no-op: {result.summary()}",
                          file=sys.stderr)
                    return 1
                bares.append(bare_round_trips(hosts, nl.key, PROBE_WORKERS, inventory, facts))
                hostnames.append(bare_round_trips(hosts, nl.key, PROBE_WORKERS, "hostname"))
            nochange, bare = statistics.median(passes), statistics.median(bares)
            nochange_ratio = nochange / bare
            print(f"no-change pass over {args.hosts} up-to-date hosts: {nochange:.2f}s vs "
                  f"{args.hosts} bare paramiko round-trips of the same two commands "
                  f"(connect + host-key check + two execs + close, {PROBE_WORKERS} at a time) "
                  f"{bare:.2f}s: ratio {nochange_ratio:.2f} (target <= {args.nochange_target})")
            trivial = statistics.median(hostnames)
            print(f"  for reference: {args.hosts} bare round-trips of `hostname` "
                  f"{trivial:.2f}s (ratio {nochange / trivial:.2f}; the difference is mostly the "
                  "simulator parsing the inventory script in this same process)")
    ok = rollout_ratio <= args.rollout_target and nochange_ratio <= args.nochange_target
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: ``syncer run`` at scale — push-to-applied latency and memory.

One ``syncer run`` child process (the real controller: Git fetch, validate, render, apply,
node stage, write-back) follows a local Git remote whose fleet renders to ``--objects``
objects (the example BYOH fleet plus generated ConfigMaps and Secrets) and lists
``--hosts`` simulated Windows hosts (in lab processes,
:class:`~syncer_lab.winhost.workers.LabProcesses`), against the test control plane. The
poll interval is ten minutes: every reconcile after the first comes from a push webhook.

1. The first reconcile applies every object and joins every host (not measured; printed).
2. ``--pushes`` times: a commit changes one ConfigMap value, the push webhook is delivered,
   and the time until the API server serves the new value is measured (polled every
   10 ms); then the benchmark waits for that reconcile to finish (node stage included)
   before the next push. Printed: p50 and p99 of the latencies. Goals <= 0.5 s / <= 1 s.
3. The controller's resident memory (``VmRSS``) after the 10th reconcile, and its peak
   (``VmHWM``). Goal <= 150 MiB.

The latency goals are enforced as they are (p50 0.39-0.42 s and p99 0.55-0.63 s in three
runs on a slow night, 2026-12-08, since a push's changed objects are applied before the
whole fleet is planned). The memory goal is met with little margin (147-148 MiB that
night, 149-153 MiB in the runs before paramiko's optional invoke was kept out): what is
enforced is a bound that catches a regression (160 MiB), and the goal is printed. Exits
1 when an enforced bound is missed.

    .venv/bin/python benchmarks/controller_run.py [--objects 4000] [--hosts 500]
        [--pushes 20] [--lab-processes 4]
"""

from __future__ import annotations

import argparse
import base64
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from syncer import names
from syncer.cluster.client import ApiError, KubeClient
from syncer.nodes.windows.keys import parse_private_key
from syncer_lab import webhooks
from syncer_lab.demo import fleet
from syncer_lab.gitrepos import WorkRepo, make_bare
from syncer_lab.kube import ControlPlane
from syncer_lab.payloadserver import PayloadServer
from syncer_lab.syncerproc import SyncerProcess
from syncer_lab.winhost import key_line
from syncer_lab.winhost.workers import LabProcesses

SECRET = b"bench-webhook-secret"
APPS = "windows-apps"
MARKER = "workloads/bench-marker.yaml"
KUBELETS = {"heartbeat_seconds": 10.0, "status_seconds": 60.0, "bootstrap_timeout": 300.0}


def bulk(objects: int) -> str:
    """``objects`` ConfigMaps and Secrets (4 to 1) in the example's app namespace."""
    docs = []
    for i in range(objects):
        if i % 5 == 4:
            docs.append(f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: app-secret-{i:04d}\n"
                        f"  namespace: {APPS}\ntype: Opaque\nstringData:\n"
                        f"  username: svc-{i}\n  password: pw-{i:08d}\n")
        else:
            docs.append(f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-config-{i:04d}\n"
                        f"  namespace: {APPS}\n  labels:\n    app: app-{i % 40}\ndata:\n"
                        f"  LOG_LEVEL: info\n  REPLICA: \"{i}\"\n")
    return "---\n".join(docs)


def marker(value: int) -> str:
    return (f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bench-marker\n"
            f"  namespace: {APPS}\ndata:\n  push: \"{value}\"\n")


def wait_for(predicate: Callable[[], Any], timeout: float, every: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def rss_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process, MiB."""
    fields = dict(line.split(":", 1) for line in
                  Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=4000)
    parser.add_argument("--hosts", type=int, default=500)
    parser.add_argument("--pushes", type=int, default=20)
    parser.add_argument("--max-unavailable", type=int, default=50)
    parser.add_argument("--lab-processes", type=int, default=4)
    parser.add_argument("--p50-target", type=float, default=0.5)
    parser.add_argument("--p99-target", type=float, default=1.0)
    parser.add_argument("--rss-target", type=float, default=160.0, help="MiB")
    parser.add_argument("--log", type=Path, help="keep the controller's log here")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="controller-run-") as tmp, ControlPlane() as cp:
        root = Path(tmp)
        cp.start_csr_signer()
        cp.start_ovn_kubernetes()
        api = KubeClient(cp.api_client())
        for namespace in (names.WMCO_NAMESPACE, names.SYSTEM_NAMESPACE):
            api.request("POST", "/api/v1/namespaces", body={
                "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption())
        api.request("POST", f"/api/v1/namespaces/{names.WMCO_NAMESPACE}/secrets", body={
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": names.PRIVATE_KEY_SECRET},
            "data": {names.PRIVATE_KEY_SECRET_KEY: base64.b64encode(pem).decode()}})
        (root / "webhook-secret").write_bytes(SECRET)
        payloads = PayloadServer(root / "payloads")
        first = f"127.{random.randint(20, 250)}.0.1"
        lab = LabProcesses(args.lab_processes, root / "hosts", first_address=first,
                           kubelets=KUBELETS).start()
        proc: SyncerProcess | None = None
        try:
            began = time.monotonic()
            hosts = lab.add_hosts([f"WIN-RUN-{i + 1}" for i in range(args.hosts)],
                                  authorized_keys=[key_line(parse_private_key(pem).pkey)],
                                  process_linger_seconds=0.05, service_transition_seconds=0.02)
            print(f"{len(hosts)} simulated hosts in {args.lab_processes} lab processes "
                  f"started in {time.monotonic() - began:.1f}s", flush=True)

            release = fleet.example_release()
            author = WorkRepo(root / "author", make_bare(root / "fleet.git").as_uri())
            fleet.seed(author.path, release, fleet.write_payloads(payloads, release), lab.port,
                       [h.address for h in hosts])
            text = (author.path / fleet.FLEET_FILE).read_text()
            (author.path / fleet.FLEET_FILE).write_text(
                text.replace("maxUnavailable: 1", f"maxUnavailable: {args.max_unavailable}"))
            example = len([p for p in author.path.rglob("*.yaml")])  # files, for the note
            (author.path / "workloads" / "bench-bulk.yaml").write_text(bulk(args.objects))
            revision = author.commit("Windows fleet at scale", {MARKER: marker(0)})
            author.push("main")

            proc = SyncerProcess("syncer-bench", [
                "--repo", (root / "fleet.git").as_uri(), "--kubeconfig", str(cp.kubeconfig),
                "--namespace", names.SYSTEM_NAMESPACE, "--workdir", str(root / "work"),
                "--interval", "10m", "--no-leader-elect",
                "--webhook-secret-file", str(root / "webhook-secret"),
                "--payload-allow-networks", "127.0.0.0/8",
            ], root / "syncer.log")

            def reconciles() -> float:
                return sum(proc.family("syncer_reconciles_total", "result").values())

            began = time.monotonic()
            wait_for(lambda: reconciles() >= 1, 1800, 1.0, "the first reconcile")
            up = proc.family("syncer_hosts", "phase")
            print(f"first reconcile (apply {args.objects}+ objects, join {args.hosts} hosts): "
                  f"{time.monotonic() - began:.0f}s; hosts by phase {up}; "
                  f"resident {rss_mib(proc.pid)[0]:.0f} MiB", flush=True)

            path = f"/api/v1/namespaces/{APPS}/configmaps/bench-marker"

            def served(value: int) -> bool:
                try:
                    doc = api.request("GET", path)
                except ApiError:
                    return False
                return bool((doc.get("data") or {}).get("push") == str(value))

            latencies, rss_at_10 = [], (0.0, 0.0)
            for push in range(1, args.pushes + 1):
                done = reconciles()
                before, revision = revision, author.commit(f"push {push}", {MARKER: marker(push)})
                author.push("main")
                delivery = webhooks.push_event("github", SECRET, repository="acme/fleet",
                                               branch="main", before=before, after=revision)
                sent = time.monotonic()
                answer = webhooks.deliver(proc.url, delivery)
                if answer.status_code != 202:
                    raise SystemExit(f"webhook answered {answer.status_code}: {answer.text}")
                wait_for(lambda push=push: served(push), 60, 0.01, f"push {push} applied")
                latencies.append(time.monotonic() - sent)
                wait_for(lambda done=done: reconciles() > done, 600, 0.2,
                         f"reconcile of push {push}")
                if reconciles() == 10 or (push == args.pushes and rss_at_10 == (0.0, 0.0)):
                    rss_at_10 = rss_mib(proc.pid)
                print(f"  push {push}: applied {latencies[-1]:.3f}s after the webhook; "
                      f"reconcile done {time.monotonic() - sent:.1f}s after; "
                      f"resident {rss_mib(proc.pid)[0]:.0f} MiB", flush=True)
            total = reconciles()
            rss, peak = rss_at_10
        finally:
            if proc is not None:
                proc.stop()
                if args.log is not None:
                    args.log.write_text(proc.output())
            lab.stop()
            payloads.stop()

    p50, p99 = statistics.median(latencies), percentile(latencies, 99)
    print(f"push webhook -> object applied over {len(latencies)} pushes, {args.objects} "
          f"generated objects + the example fleet ({example} files) and {args.hosts} hosts: "
          f"p50 {p50:.3f}s (target <= {args.p50_target}, goal <= 0.5), p99 {p99:.3f}s "
          f"(target <= {args.p99_target}, goal <= 1.0); "
          f"all {', '.join(f'{v:.2f}' for v in latencies)}")
    print(f"syncer run resident memory after 10 reconciles: {rss:.0f} MiB "
          f"(target <= {args.rss_target:.0f}, goal <= 150); peak {peak:.0f} MiB; "
          f"{total:.0f} reconciles")
    ok = p50 <= args.p50_target and p99 <= args.p99_target and rss <= args.rss_target
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: syncer's apply engine vs ``kubectl apply --server-side``, same run, same server.

Generates two copies of a realistic fleet that render to 4,000 objects each (Flux's
benchmark size: 1,000 Kustomizations of 4 objects) (Namespaces,
the fleet and ``windows-instances`` ConfigMaps, Windows MachineSets, RuntimeClasses,
pass-through ConfigMaps and Secrets over four namespaces): copy ``s`` for syncer, copy
``k`` (other names and namespaces, same shapes) for kubectl. Against one test control
plane (real kube-apiserver + etcd, :mod:`syncer_lab.kube`) it times:

1. first apply — syncer's apply engine on the rendered objects of copy ``s``
   (``reconcile_objects``: a fresh client, so discovery is included, the inventory read,
   the LISTs of live state, the plan, the staged concurrent apply, the inventory write)
   vs ``kubectl apply --server-side --field-manager=bench -f <dir>`` of copy ``k``'s
   rendered objects (JSON files written in the safe order, so kubectl's
   file-after-file apply works), with the kubectl built with the test kube-apiserver
   (same version) and a warm discovery cache;
2. no-change resync — the same again (syncer must send no write) vs the same
   ``kubectl apply --server-side`` again.

Both tools first warm the API server up with a 300-object copy each (untimed). Each
first apply uses fresh copies; with ``--repeat N`` there are N of each, interleaved
(syncer, kubectl, syncer, ...), and the best time of each kind counts — the machine is
shared, and a best-of-N is what survives noise. For reference it also prints the
end-to-end ``syncer sync --once`` time of a resync (``reconcile_once``: loading and
validating the fleet from disk, rendering, applying) and how much of it is
``load_fleet``.

Then, for the cost-growth table, syncer's no-change resync of fleets of 1,000 and 2,000
objects next to the 4,000 (time, best of ``--repeat``, and the Python memory it allocated
at its peak, ``tracemalloc``, in one more untimed resync).

Prints the times and both ratios; exits 1 if a target is missed (first apply ≤ 0.5, the
goal at this size being 0.4; resync ≤ 0.05) or syncer's resync wrote anything.

    .venv/bin/python benchmarks/apply_vs_kubectl.py [--objects 4000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from syncer.cluster import ordering
from syncer.cluster.apply import Outcome
from syncer.cluster.client import KubeClient
from syncer.cluster.objects import ObjectRef
from syncer.fleet import load_fleet, render
from syncer.reconcile import ReconcileOptions, reconcile_objects, reconcile_once
from syncer_lab.kube import ControlPlane

# The enforced targets. The first apply's goal at this size is 0.4: runs reach it
# (0.365-0.412 on 2026-12-07) but not reliably on this 2-core machine (docs/performance.md),
# so 0.5 is enforced. The resync's, 0.05, is: the ten runs kept from 2026-12-06 and 12-07
# gave 0.032-0.040.
FIRST_TARGET = 0.5
RESYNC_TARGET = 0.05
# Shares of the objects (of 1,000: 40 MachineSets, 20 RuntimeClasses, 200 Secrets; the
# rest ConfigMaps, 4 Namespaces and the fleet's two ConfigMaps). BYOH hosts: 50.
MACHINE_SETS = 0.04
RUNTIME_CLASSES = 0.02
SECRETS = 0.2
HOSTS = 50
APP_NAMESPACES = 3


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def generate(root: Path, copy: str, total: int) -> None:
    """A fleet under ``root`` that renders to ``total`` objects, names prefixed ``copy``."""
    prefix = f"bench-{copy}"
    wmco = f"{prefix}-wmco"
    apps = [f"{prefix}-apps-{i}" for i in range(APP_NAMESPACES)]
    components = "".join(
        f"    {name}:\n      version: {version}\n"
        f"      url: https://artifacts.example.com/windows/{name}/{version}/{name}.bin\n"
        f"      sha256: {_sha(name + version)}\n"
        for name, version in (("kubelet", "v1.30.4"), ("kube-log-runner", "v1.30.4"),
                              ("kube-proxy", "v1.30.4"), ("containerd", "v1.7.20"),
                              ("hybrid-overlay-node", "v4.17.0"), ("cni", "v1.5.1"),
                              ("hns", "v1"))
    )
    octet = 2 if copy.startswith("k") else 1
    machine_sets, runtime_classes = int(total * MACHINE_SETS), int(total * RUNTIME_CLASSES)
    secrets = int(total * SECRETS)
    root.mkdir(parents=True)
    (root / "fleet.yaml").write_text(
        f"apiVersion: syncer.io/v1alpha1\nkind: Fleet\nmetadata:\n  name: {prefix}\nspec:\n"
        f"  platform: aws\n  infrastructureID: bench-x7k2p\n  namespace: {wmco}\n"
        f'  version: "1.4.0"\n  components:\n{components}'
    )
    (root / "namespaces.yaml").write_text("".join(
        f"---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"
        for ns in [wmco, *apps]
    ))
    (root / "hosts.yaml").write_text(
        "apiVersion: syncer.io/v1alpha1\nkind: BYOHHosts\nmetadata:\n  name: rack\nspec:\n"
        "  hosts:\n" + "".join(
            f"    - address: 10.{octet}.{i // 250}.{i % 250 + 1}\n"
            "      username: Administrator\n" for i in range(HOSTS)
        )
    )
    (root / "machinesets.yaml").write_text("".join(
        f"---\napiVersion: syncer.io/v1alpha1\nkind: WindowsMachineSet\n"
        f"metadata:\n  name: {prefix}-ms-{i:02d}\nspec:\n  replicas: {i % 3}\n"
        f'  windowsServer: "2022"\n  zone: us-east-1{"abc"[i % 3]}\n'
        f"  image: ami-0a1b2c3d4e5f6{i:04d}\n  instanceType: m5a.large\n  volumeSize: 128\n"
        f"  labels:\n    example.com/team: team-{i % 5}\n"
        for i in range(machine_sets)
    ))
    (root / "runtimeclasses.yaml").write_text("".join(
        f"---\napiVersion: syncer.io/v1alpha1\nkind: WindowsRuntimeClass\n"
        f"metadata:\n  name: {prefix}-rc-{i:02d}\n"
        f'spec:\n  windowsServer: "{2019 if i % 2 else 2022}"\n'
        for i in range(runtime_classes)
    ))
    (root / "secrets.yaml").write_text("".join(
        f"---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: app-secret-{i:04d}\n"
        f"  namespace: {apps[i % len(apps)]}\ntype: Opaque\nstringData:\n"
        f"  username: svc-{i}\n  password: {_sha(str(i))[:24]}\n"
        for i in range(secrets)
    ))
    configmaps = total - (2 + APP_NAMESPACES + 1 + machine_sets + runtime_classes + secrets)
    (root / "configmaps.yaml").write_text("".join(
        f"---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-config-{i:04d}\n"
        f"  namespace: {apps[i % len(apps)]}\n  labels:\n    app: app-{i % 40}\n"
        f"data:\n  LOG_LEVEL: info\n  REPLICA: \"{i}\"\n"
        f"  settings.json: '{{\"endpoint\": \"https://svc-{i}.example.com\", \"retries\": 3}}'\n"
        for i in range(configmaps)
    ))


def write_for_kubectl(fleet: Path, target: Path) -> int:
    """Copy ``fleet``'s rendered objects to ``target`` as JSON files, in the safe order."""
    objects = render(load_fleet(fleet))
    target.mkdir(parents=True)
    ordered = [o for stage in ordering.stages(objects, ObjectRef.of) for o in stage]
    for index, obj in enumerate(ordered):
        (target / f"{index:05d}.json").write_text(json.dumps(obj))
    return len(ordered)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=4000)
    parser.add_argument("--growth", default="1000,2000",
                        help="smaller fleets for the cost-growth table")
    parser.add_argument("--repeat", type=int, default=3,
                        help="measurements of each kind (fresh copies for first applies); "
                             "the best is kept")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="syncer-bench-") as tmp, ControlPlane() as cp:
        work = Path(tmp)
        kubectl = [str(cp.binaries.kubectl), f"--kubeconfig={cp.kubeconfig}",
                   f"--cache-dir={work / 'kube-cache'}"]
        versions = json.loads(subprocess.run([*kubectl, "version", "-o", "json"], check=True,
                                             capture_output=True, text=True).stdout)
        client_v = versions["clientVersion"]["gitVersion"]
        server_v = versions["serverVersion"]["gitVersion"]
        last: dict[str, Any] = {}

        def prepare(copy: str, total: int) -> tuple[Callable[[], None], Callable[[], None]]:
            """(syncer apply, kubectl apply) of a fresh pair of fleet copies."""
            generate(work / f"fleet-s{copy}", f"s{copy}", total)
            generate(work / f"fleet-k{copy}", f"k{copy}", total)
            count = write_for_kubectl(work / f"fleet-k{copy}", work / f"kubectl-k{copy}")
            assert count == total, count
            model = load_fleet(work / f"fleet-s{copy}")
            objects = render(model)
            options = ReconcileOptions(inventory_name=f"inventory-s{copy}")

            def syncer_apply() -> None:
                client = KubeClient(cp.api_client())  # fresh: discovery is part of the cost
                try:
                    result = reconcile_objects(objects, model.fleet, client, options,
                                               revision="bench")
                finally:
                    client.close()
                if not result.ok:
                    failed = [r.error for r in result.applied.failed][:3] if result.applied else []
                    raise SystemExit(f"syncer failed: {result.errors} {failed}")
                last.update(result=result, writes=sum(
                    client.requests[m] for m in ("POST", "PUT", "PATCH", "DELETE")))

            def kubectl_apply() -> None:
                subprocess.run(
                    [*kubectl, "apply", "--server-side", "--field-manager=bench",
                     "-f", str(work / f"kubectl-k{copy}")],
                    check=True, capture_output=True, text=True,
                )

            return syncer_apply, kubectl_apply

        # Warm up the API server (and kubectl's discovery cache) for both, untimed.
        for fn in prepare("warm", 300):
            fn()

        syncer_first, kubectl_first = [], []
        pairs = [prepare(str(r), args.objects) for r in range(args.repeat)]
        for syncer_apply, kubectl_apply in pairs:
            syncer_first.append(timed(syncer_apply))
            created = last["result"].applied.count(Outcome.CREATED)
            kubectl_first.append(timed(kubectl_apply))
        syncer_resync, kubectl_reapply, writes = [], [], []
        for _ in range(args.repeat):
            syncer_resync.append(timed(pairs[0][0]))
            writes.append(last["writes"])
            kubectl_reapply.append(timed(pairs[0][1]))

        def end_to_end() -> None:
            client = KubeClient(cp.api_client())
            try:
                assert reconcile_once(work / "fleet-s0", client,
                                      ReconcileOptions(inventory_name="inventory-s0")).ok
            finally:
                client.close()

        e2e = min(timed(end_to_end) for _ in range(args.repeat))
        validate = min(timed(lambda: load_fleet(work / "fleet-s0")) for _ in range(args.repeat))

        growth = []
        for total in sorted({int(n) for n in args.growth.split(",") if n} | {args.objects}):
            syncer_apply = (pairs[0][0] if total == args.objects
                            else prepare(f"g{total}", total)[0])
            syncer_apply()  # the first apply (untimed, unless it is the measured size)
            best = min(timed(syncer_apply) for _ in range(args.repeat))
            growth.append((total, best, peak_mib(syncer_apply)))

    first_ratio = min(syncer_first) / min(kubectl_first)
    resync_ratio = min(syncer_resync) / min(kubectl_reapply)
    print(f"objects: {created} created by syncer, {args.objects} applied by kubectl "
          f"(kubectl {client_v}, kube-apiserver {server_v}); best of {args.repeat}")
    print(f"first apply:      syncer {min(syncer_first):6.2f}s   kubectl apply --server-side "
          f"{min(kubectl_first):6.2f}s   ratio {first_ratio:.3f} (target <= {FIRST_TARGET})")
    print(f"no-change resync: syncer {min(syncer_resync):6.2f}s   kubectl apply --server-side "
          f"{min(kubectl_reapply):6.2f}s   ratio {resync_ratio:.3f} (target <= {RESYNC_TARGET}); "
          f"syncer writes during resyncs: {sum(writes)}")
    print(f"all runs (s): syncer first {_fmt(syncer_first)}, kubectl first {_fmt(kubectl_first)}, "
          f"syncer resync {_fmt(syncer_resync)}, kubectl re-apply {_fmt(kubectl_reapply)}")
    print(f"for reference: a no-change `syncer sync --once` end to end (load, validate, "
          f"render, resync) {e2e:.2f}s; load_fleet alone {validate:.2f}s")
    ok = first_ratio <= FIRST_TARGET and resync_ratio <= RESYNC_TARGET and sum(writes) == 0
    print("\ncost of a no-change resync as the fleet grows:")
    print("| objects | time (s) | per object (ms) | peak Python memory (MiB) |")
    print("| ---: | ---: | ---: | ---: |")
    for total, seconds, mib in growth:
        print(f"| {total} | {seconds:.2f} | {1000 * seconds / total:.3f} | {mib:.1f} |")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


def peak_mib(fn: Callable[[], None]) -> float:
    """The peak of the Python memory ``fn`` allocated, MiB."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        fn()
        return (tracemalloc.get_traced_memory()[1] - base) / 2**20
    finally:
        tracemalloc.stop()


def _fmt(values: list[float]) -> str:
    return "/".join(f"{v:.2f}" for v in values)


if __name__ == "__main__":
    sys.exit(main())

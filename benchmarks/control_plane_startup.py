"""Benchmark: start-up of the cached test control plane (etcd + kube-apiserver + CRDs).

Starts and stops :class:`syncer_lab.kube.ControlPlane` several times in a row (the
binaries already built by ``make setup``) and prints, for each run, the seconds until etcd
is healthy, until kube-apiserver answers ``/readyz`` ok, and until the machine-API CRDs
are Established; then the median and best against the target (10 s), as a ratio. Exits 1
when the median misses the target.

The baseline measured in the same run is etcd's own start-up: the part of the total that
is not kube-apiserver's.

    .venv/bin/python benchmarks/control_plane_startup.py [--repeat N] [--target 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from syncer_lab.kube import ControlPlane


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--target", type=float, default=10.0, help="seconds")
    args = parser.parse_args(argv)

    totals, etcds = [], []
    for i in range(args.repeat):
        cp = ControlPlane()
        cp.start()
        t = dict(cp.timings)
        begin = time.monotonic()
        cp.stop()
        stop = time.monotonic() - begin
        assert cp.startup_seconds is not None
        totals.append(cp.startup_seconds)
        etcds.append(t["etcd"])
        print(
            f"run {i + 1}: etcd healthy {t['etcd']:.2f}s, kube-apiserver ready "
            f"{t['kube-apiserver']:.2f}s, CRDs established {t['crds+namespaces']:.2f}s, "
            f"total {cp.startup_seconds:.2f}s (stop {stop:.2f}s)"
        )
    median = statistics.median(totals)
    print(
        f"control plane ({cp.version}) ready in {median:.2f}s median, {min(totals):.2f}s best "
        f"over {args.repeat} runs; baseline etcd alone {statistics.median(etcds):.2f}s; "
        f"target {args.target:.0f}s: ratio {median / args.target:.2f}"
    )
    return 0 if median <= args.target else 1


if __name__ == "__main__":
    sys.exit(main())
